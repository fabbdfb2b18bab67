// Package timestampconverter is the TimestampConverter transform: it
// rewrites timestamp fields (date/time strings or epoch numbers) into one
// format: RFC 3339, epoch seconds/milliseconds/microseconds, a date or a
// time of day.
package timestampconverter

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "TimestampConverter",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Converts timestamp fields (RFC 3339 / ISO 8601 strings, dates, epoch numbers of any unit) to RFC 3339, epoch seconds/millis/micros, a date or a time.",
		Tags:        []string{"timestamp", "time", "date", "epoch", "iso8601", "convert", "smt", "debezium"},
	}, New)
}

// Config is the TimestampConverter config block.
type Config struct {
	Fields []string `yaml:"fields" required:"true" doc:"Fields to convert (dotted paths reach into nested objects); missing or null fields are left alone."`
	Format string   `yaml:"format" default:"iso8601" enum:"iso8601,epoch_millis,epoch_secs,epoch_micros,date,time,epoch_seconds,date_only,time_only" doc:"Target format: iso8601 = RFC 3339 in UTC (2024-01-15T10:30:00Z), epoch_* = integer, date = 2024-01-15, time = 10:30:00 (both UTC). epoch_seconds, date_only and time_only are the reference's other spellings."`
}

// Validate checks the field paths (the format is checked by its enum).
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Fields) == 0 {
		ps = append(ps, spec.Problem{Path: "fields", Message: "needs at least one field"})
	}
	for i, f := range c.Fields {
		if _, err := row.ParsePath(f); err != nil {
			ps = append(ps, spec.Problem{Path: spec.Index("fields", i), Message: err.Error()})
		}
	}
	if _, ok := formats[c.Format]; !ok {
		ps = append(ps, spec.Problem{Path: "format", Message: fmt.Sprintf("unknown format %q (allowed: iso8601, epoch_millis, epoch_secs, epoch_micros, date, time)", c.Format)})
	}
	return ps
}

type format func(time.Time) any

var formats = map[string]format{
	"iso8601":       func(t time.Time) any { return iso(t) },
	"epoch_secs":    func(t time.Time) any { return epoch(t.Unix()) },
	"epoch_seconds": func(t time.Time) any { return epoch(t.Unix()) },
	"epoch_millis":  func(t time.Time) any { return epoch(t.UnixMilli()) },
	"epoch_micros":  func(t time.Time) any { return epoch(t.UnixMicro()) },
	"date":          func(t time.Time) any { return layout(t, time.DateOnly) },
	"date_only":     func(t time.Time) any { return layout(t, time.DateOnly) },
	"time":          func(t time.Time) any { return layout(t, time.TimeOnly) },
	"time_only":     func(t time.Time) any { return layout(t, time.TimeOnly) },
}

// iso writes RFC 3339 in UTC as event timestamps are written.
func iso(t time.Time) string {
	var b [40]byte
	return string(row.AppendTime(b[:0], t.UTC()))
}

func layout(t time.Time, l string) string {
	var b [40]byte
	return string(t.UTC().AppendFormat(b[:0], l))
}

func epoch(n int64) any {
	var b [24]byte
	return json.Number(strconv.AppendInt(b[:0], n, 10))
}

// Transform converts fields; see Config.
type Transform struct {
	paths  []row.Path
	format format
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	t, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return row.Each(t.apply), nil
}

func build(cfg *Config) (*Transform, error) {
	t := &Transform{format: formats[cfg.Format]}
	for _, f := range cfg.Fields {
		p, _ := row.ParsePath(f)
		t.paths = append(t.paths, p)
	}
	return t, nil
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	return row.Convert(e, t.paths, func(i int, v any) (any, error) {
		ts, err := row.ParseTime(v, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("TimestampConverter: field %q: %w", t.paths[i].String(), err)
		}
		return t.format(ts), nil
	})
}
