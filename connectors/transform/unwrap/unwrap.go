// Package unwrap is the Unwrap transform: it replaces each row with the
// object found at a path inside it, e.g. the "payload.after" of a
// Debezium-style envelope carried as a record.
package unwrap

import (
	"context"
	"fmt"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "Unwrap",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Replaces each row with the object at a dotted path inside it (e.g. payload.after); a row without that object dead-letters the event.",
		Tags:        []string{"unwrap", "extract", "envelope", "nested", "smt", "debezium"},
	}, New)
}

// Config is the Unwrap config block.
type Config struct {
	Field string `yaml:"field" required:"true" doc:"Dotted path of the object that becomes the row (e.g. payload.after)."`
}

// Validate checks the path.
func (c *Config) Validate() []spec.Problem {
	if _, err := row.ParsePath(c.Field); err != nil {
		return []spec.Problem{{Path: "field", Message: err.Error()}}
	}
	return nil
}

// Transform unwraps rows; see Config.
type Transform struct {
	path row.Path
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	p, _ := row.ParsePath(cfg.Field)
	t := &Transform{path: p}
	return row.Each(t.apply), nil
}

// extract returns the object at the path of a row.
func (t *Transform) extract(r map[string]any, image string) (map[string]any, error) {
	v, ok := t.path.Get(r)
	if !ok {
		//lint:ignore ST1005 errors lead with the transform's registered name
		return nil, fmt.Errorf("Unwrap: %s has no field %q", image, t.path.String())
	}
	obj, ok := v.(map[string]any)
	if !ok {
		what := "null"
		switch v.(type) {
		case nil:
		case string:
			what = "a string"
		case bool:
			what = "a boolean"
		case []any:
			what = "an array"
		default:
			what = "a number"
		}
		//lint:ignore ST1005 errors lead with the transform's registered name
		return nil, fmt.Errorf("Unwrap: %q in %s is %s, not an object", t.path.String(), image, what)
	}
	return obj, nil
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	if !e.Type.IsData() {
		return nil
	}
	v, err := e.Data.Value()
	if err != nil || v == nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s event data is %T, not an object", e.Type, v)
	}
	if e.Type != events.Update {
		obj, err := t.extract(m, "the row")
		if err != nil {
			return err
		}
		e.Data.Set(obj)
		return nil
	}
	// Both images first, so that a failure leaves the event as it was.
	var got [2]map[string]any
	keys := [2]string{"after", "before"}
	for i, k := range keys {
		switch r := m[k].(type) {
		case nil:
		case map[string]any:
			if got[i], err = t.extract(r, k); err != nil {
				return err
			}
		default:
			return fmt.Errorf("update event data.%s is %T, not an object", k, r)
		}
	}
	row.Changed(e)
	for i, k := range keys {
		if got[i] != nil {
			m[k] = got[i]
		}
	}
	return nil
}
