// Package timezoneconverter is the TimezoneConverter transform: it
// expresses timestamp fields in another IANA time zone, as RFC 3339 with
// that zone's offset, as a date there, or in a strftime format.
package timezoneconverter

import (
	"context"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones work in minimal containers without /usr/share/zoneinfo

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "TimezoneConverter",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Converts timestamp fields between IANA time zones: RFC 3339 with the target offset, a date, or a strftime format.",
		Tags:        []string{"timezone", "time zone", "tz", "iana", "timestamp", "convert", "smt", "debezium"},
	}, New)
}

// Config is the TimezoneConverter config block.
type Config struct {
	Fields   []string `yaml:"fields" required:"true" doc:"Fields to convert (dotted paths reach into nested objects); missing or null fields are left alone."`
	From     string   `yaml:"from" default:"UTC" doc:"IANA zone (e.g. Europe/Berlin) of timestamps written without an offset, and of dates; values with an offset and epoch numbers are instants already."`
	To       string   `yaml:"to" default:"UTC" doc:"IANA zone the timestamps are expressed in."`
	DateOnly bool     `yaml:"date_only" default:"false" doc:"Write only the date in the target zone (2024-01-15) instead of RFC 3339 with the zone's offset."`
	Format   string   `yaml:"format" doc:"strftime pattern for the output in the target zone (e.g. \"%Y-%m-%d %H:%M:%S %Z\"); replaces the RFC 3339 output."`
}

// Validate loads the zones and compiles the format.
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
	for _, z := range []struct{ key, name string }{{"from", c.From}, {"to", c.To}} {
		if _, err := loadZone(z.name); err != nil {
			ps = append(ps, spec.Problem{Path: z.key, Message: err.Error()})
		}
	}
	if c.Format != "" {
		if _, err := compile(c.Format); err != nil {
			ps = append(ps, spec.Problem{Path: "format", Message: err.Error()})
		} else if c.DateOnly {
			ps = append(ps, spec.Problem{Path: "date_only", Message: "give date_only or format, not both (format %Y-%m-%d is date_only)"})
		}
	}
	return ps
}

// loadZone loads an IANA zone; "Local" is refused, since the machine's
// zone differs between hosts.
func loadZone(name string) (*time.Location, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("time zone must not be empty (UTC, or an IANA name such as America/New_York)")
	case strings.EqualFold(name, "local"):
		return nil, fmt.Errorf("time zone %q depends on the machine; name an IANA zone such as America/New_York", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as UTC, Europe/Berlin or America/New_York)", name)
	}
	return loc, nil
}

// Transform converts fields; see Config.
type Transform struct {
	paths    []row.Path
	from, to *time.Location
	dateOnly bool
	layout   layout
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
	t := &Transform{dateOnly: cfg.DateOnly}
	t.from, _ = loadZone(cfg.From)
	t.to, _ = loadZone(cfg.To)
	if cfg.Format != "" {
		t.layout, _ = compile(cfg.Format)
	}
	for _, f := range cfg.Fields {
		p, _ := row.ParsePath(f)
		t.paths = append(t.paths, p)
	}
	return t, nil
}

// render writes a time in the target zone.
func (t *Transform) render(ts time.Time) string {
	ts = ts.In(t.to)
	if t.layout != nil {
		return string(t.layout.append(make([]byte, 0, 64), ts))
	}
	var arr [40]byte
	b := arr[:0]
	if t.dateOnly {
		b = ts.AppendFormat(b, time.DateOnly)
	} else {
		b = row.AppendTime(b, ts)
	}
	return string(b)
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	return row.Convert(e, t.paths, func(i int, v any) (any, error) {
		ts, err := row.ParseTime(v, t.from)
		if err != nil {
			return nil, fmt.Errorf("TimezoneConverter: field %q: %w", t.paths[i].String(), err)
		}
		return t.render(ts), nil
	})
}
