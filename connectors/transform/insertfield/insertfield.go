// Package insertfield adds fields to every row image: constants, and the
// processing time and date.
package insertfield

import (
	"context"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration.
type Config struct {
	Static         map[string]yaml.Node `yaml:"static" doc:"Field → constant value (any YAML value)."`
	StaticFields   map[string]yaml.Node `yaml:"static_fields" doc:"Same as static (the spelling of the reference implementation)."`
	Timestamp      Timestamp            `yaml:"timestamp" doc:"Processing-time field."`
	TimestampField string               `yaml:"timestamp_field" doc:"Same as timestamp.field."`
	DateField      string               `yaml:"date_field" doc:"Field that gets the processing date (YYYY-MM-DD, UTC)."`
	Overwrite      bool                 `yaml:"overwrite" default:"true" doc:"Replace fields that already exist; false keeps the row's value."`
}

// Timestamp is the timestamp block.
type Timestamp struct {
	Field string `yaml:"field" doc:"Field that gets the processing time (RFC 3339, UTC)."`
}

// Validate checks that something is inserted and the paths are sound.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Static)+len(c.StaticFields) == 0 && c.Timestamp.Field == "" && c.TimestampField == "" && c.DateField == "" {
		ps = append(ps, spec.Problem{Message: "give static fields, timestamp.field or date_field"})
	}
	check := func(path, f string) {
		if _, err := row.ParsePath(f); f != "" && err != nil {
			ps = append(ps, spec.Problem{Path: path, Message: err.Error()})
		}
	}
	for k := range c.Static {
		check("static."+k, k)
	}
	for k := range c.StaticFields {
		check("static_fields."+k, k)
	}
	check("timestamp.field", c.Timestamp.Field)
	check("timestamp_field", c.TimestampField)
	check("date_field", c.DateField)
	return ps
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "InsertField", Category: catalog.Transforms, Subcategory: "SMT",
		Description: "Adds constant fields and processing time to rows",
		Tags:        []string{"enrich", "add column", "lineage"},
	}, New)
}

type value struct {
	path row.Path
	v    any
	enc  []byte // v as JSON, for the byte path; nil when it has no JSON form
	tok  []byte // path as a JSON key token, for the byte path
}

type inserter struct {
	static   []value
	ts, date []row.Path
	// tsTok and dateTok are ts and date as JSON key tokens.
	tsTok, dateTok [][]byte
	overwrite      bool
	now            func() time.Time
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	in := &inserter{overwrite: cfg.Overwrite, now: time.Now}
	for _, m := range []map[string]yaml.Node{cfg.StaticFields, cfg.Static} {
		for k, n := range m {
			var v any
			if err := n.Decode(&v); err != nil {
				return nil, fmt.Errorf("static.%s: %w", k, err)
			}
			p, _ := row.ParsePath(k)
			enc, err := events.AppendJSONValue(nil, v)
			if err != nil {
				enc = nil
			}
			in.static = append(in.static, value{p, v, enc, events.AppendJSONString(nil, p.String())})
		}
	}
	for _, f := range []string{cfg.Timestamp.Field, cfg.TimestampField} {
		if f != "" {
			p, _ := row.ParsePath(f)
			in.ts = append(in.ts, p)
			in.tsTok = append(in.tsTok, events.AppendJSONString(nil, p.String()))
		}
	}
	if cfg.DateField != "" {
		p, _ := row.ParsePath(cfg.DateField)
		in.date = append(in.date, p)
		in.dateTok = append(in.dateTok, events.AppendJSONString(nil, p.String()))
	}
	return in, nil
}

// Apply implements connector.Transform.
func (in *inserter) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	return row.Each(in.apply).Apply(ctx, batch)
}

func (in *inserter) apply(_ context.Context, e *events.Event) error {
	var now time.Time
	var ts, date string
	if len(in.ts)+len(in.date) > 0 {
		now = in.now().UTC()
		ts, date = now.Format(time.RFC3339Nano), now.Format(time.DateOnly)
	}
	if handled, err := row.EditRaw(e, func(o *events.Object) (bool, error) { return in.applyRaw(o, ts, date) }); handled {
		return err
	}
	rows, err := row.Mutable(e)
	if err != nil || len(rows) == 0 {
		return err
	}
	for _, r := range rows {
		for _, s := range in.static {
			if err := in.set(r, s.path, s.v); err != nil {
				return err
			}
		}
		for _, p := range in.ts {
			if err := in.set(r, p, ts); err != nil {
				return err
			}
		}
		for _, p := range in.date {
			if err := in.set(r, p, date); err != nil {
				return err
			}
		}
	}
	return nil
}

func (in *inserter) set(r map[string]any, p row.Path, v any) error {
	if !in.overwrite {
		if _, ok := p.Get(r); ok {
			return nil
		}
	}
	return p.Set(r, v)
}

// applyRaw is apply on a row's bytes, for top-level fields; a dotted
// path takes the map path.
func (in *inserter) applyRaw(o *events.Object, ts, date string) (bool, error) {
	changed := false
	set := func(p row.Path, tok, enc []byte) error {
		if len(p) != 1 || enc == nil {
			return row.ErrNotRaw
		}
		if !in.overwrite && o.Index(p[0]) >= 0 {
			return nil
		}
		o.SetKey(tok, enc)
		changed = true
		return nil
	}
	for _, s := range in.static {
		if err := set(s.path, s.tok, s.enc); err != nil {
			return false, err
		}
	}
	if len(in.ts) > 0 {
		enc := events.AppendJSONString(nil, ts)
		for i, p := range in.ts {
			if err := set(p, in.tsTok[i], enc); err != nil {
				return false, err
			}
		}
	}
	if len(in.date) > 0 {
		enc := events.AppendJSONString(nil, date)
		for i, p := range in.date {
			if err := set(p, in.dateTok[i], enc); err != nil {
				return false, err
			}
		}
	}
	return changed, nil
}
