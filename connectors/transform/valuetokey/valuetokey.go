// Package valuetokey is the ValueToKey transform: it sets the event key to
// an object of fields taken from the row, so that partitioning and
// per-key ordering follow those fields.
package valuetokey

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "ValueToKey",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Sets the event key to an object of row fields (after, or before for deletes); a missing field dead-letters the event.",
		Tags:        []string{"key", "partitioning", "smt", "debezium"},
	}, New)
}

// Config is the ValueToKey config block.
type Config struct {
	Fields []string `yaml:"fields" required:"true" doc:"Row fields that make the key, in key order; a dotted path reaches into nested objects (the key then uses the path as its name)."`
}

// Validate checks the field paths.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Fields) == 0 {
		ps = append(ps, spec.Problem{Path: "fields", Message: "needs at least one field"})
	}
	seen := map[string]bool{}
	for i, f := range c.Fields {
		if _, err := row.ParsePath(f); err != nil {
			ps = append(ps, spec.Problem{Path: spec.Index("fields", i), Message: err.Error()})
		} else if seen[f] {
			ps = append(ps, spec.Problem{Path: spec.Index("fields", i), Message: fmt.Sprintf("field %q is listed twice", f)})
		}
		seen[f] = true
	}
	return ps
}

// Transform sets event keys; see Config.
type Transform struct {
	paths []row.Path
	names [][]byte // the JSON-quoted key names, `"id":`
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
	t := &Transform{}
	for _, f := range cfg.Fields {
		p, _ := row.ParsePath(f)
		name := events.ValuePayload(f)
		q, err := name.AppendJSON(nil)
		if err != nil {
			return nil, err
		}
		t.paths = append(t.paths, p)
		t.names = append(t.names, append(q, ':'))
	}
	return t, nil
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	if !e.Type.IsData() {
		return nil
	}
	if t.applyRaw(e) {
		return nil
	}
	r, err := e.Row()
	if err != nil {
		return err
	}
	if r == nil && e.Type == events.Update {
		r, err = e.Before() // an update without an after image still has its key
		if err != nil {
			return err
		}
	}
	if r == nil {
		return fmt.Errorf("ValueToKey: %s event has no row to take the key from", e.Type)
	}
	key := make([]byte, 0, 16*len(t.paths)+2)
	key = append(key, '{')
	for i, p := range t.paths {
		v, ok := p.Get(r)
		if !ok {
			return fmt.Errorf("ValueToKey: key field %q is missing from the %s event's row", p.String(), e.Type)
		}
		if i > 0 {
			key = append(key, ',')
		}
		key = append(key, t.names[i]...)
		val := events.ValuePayload(v)
		if key, err = val.AppendJSON(key); err != nil {
			return fmt.Errorf("ValueToKey: key field %q: %w", p.String(), err)
		}
	}
	e.Key = json.RawMessage(append(key, '}'))
	return nil
}

// applyRaw builds the key from the row's bytes while the data is bytes or
// fields: each key value is found without decoding the row, and copied
// when its bytes are already what encoding the decoded value writes (a
// number, literal or plain string), else decoded and encoded. It reports
// false, leaving the event alone, for anything apply's map path must
// decide (a missing row or field, malformed data).
func (t *Transform) applyRaw(e *events.Event) bool {
	r, ok := e.Data.Fields()
	if !ok {
		return false
	}
	if e.Type == events.Update {
		if r, _ = e.Data.Row(e.Type, "after"); r == nil {
			return false // no after row, or not an object: the map path says
		}
	}
	key := make([]byte, 0, 16*len(t.paths)+2)
	key = append(key, '{')
	for i, p := range t.paths {
		v, ok := r.Lookup(p...)
		if !ok {
			return false
		}
		if i > 0 {
			key = append(key, ',')
		}
		key = append(key, t.names[i]...)
		if canonical(v) {
			key = append(key, v...)
			continue
		}
		x, err := events.ValueOfRaw(v)
		if err != nil {
			return false
		}
		val := events.ValuePayload(x)
		if key, err = val.AppendJSON(key); err != nil {
			return false
		}
	}
	e.Key = json.RawMessage(append(key, '}'))
	return true
}

// canonical reports whether a value's JSON text is what encoding its
// decoded value gives: numbers (kept as written) and literals always;
// strings without escapes in valid UTF-8.
func canonical(v []byte) bool {
	switch v[0] {
	case '{', '[':
		return false
	case '"':
		return bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v)
	}
	return true
}
