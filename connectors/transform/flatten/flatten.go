// Package flatten is the Flatten transform: nested objects in a row become
// top-level fields with delimited names ({"a":{"b":1}} → {"a.b":1}), for
// sinks that want flat columns.
package flatten

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
		Name:        "Flatten",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Flattens nested objects into top-level fields with delimited names (a.b.c), up to a maximum depth.",
		Tags:        []string{"flatten", "nested", "columns", "struct", "smt", "debezium"},
	}, New)
}

// Config is the Flatten config block.
type Config struct {
	Delimiter string `yaml:"delimiter" default:"\".\"" doc:"Text put between the names of a field and its parent."`
	MaxDepth  int    `yaml:"max_depth" default:"0" min:"0" doc:"How many levels of objects are merged into their parent; deeper objects stay as values. 0 = all."`
}

// Validate checks the delimiter.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.Delimiter == "" {
		ps = append(ps, spec.Problem{Path: "delimiter", Message: "must not be empty"})
	}
	if c.MaxDepth < 0 {
		ps = append(ps, spec.Problem{Path: "max_depth", Message: "must be at least 0"})
	}
	return ps
}

// Transform flattens rows; see Config.
type Transform struct {
	delim string
	max   int
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	t := &Transform{delim: cfg.Delimiter, max: cfg.MaxDepth}
	return row.Each(t.apply), nil
}

type kv struct {
	k string
	v any
}

// plan is the flattening of one row, computed before anything changes.
type plan struct {
	r       map[string]any
	removed []string // top-level objects merged into the row
	added   []kv
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	var arr [2]map[string]any
	rows, err := row.View(e, arr[:0])
	if err != nil {
		return err
	}
	var plans [2]plan
	n := 0
	for _, r := range rows {
		p := plan{r: r}
		for k, v := range r {
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				p.removed = append(p.removed, k)
				p.added = t.walk(p.added, k, sub, 1)
			}
		}
		if len(p.removed) == 0 {
			continue
		}
		if err := p.check(); err != nil {
			//lint:ignore ST1005 errors lead with the transform's registered name
			return fmt.Errorf("Flatten: %w", err)
		}
		plans[n] = p
		n++
	}
	if n > 0 {
		row.Changed(e)
	}
	for _, p := range plans[:n] {
		for _, k := range p.removed {
			delete(p.r, k)
		}
		for _, a := range p.added {
			p.r[a.k] = a.v
		}
	}
	return nil
}

// walk appends the fields of an object below prefix; depth is the level of
// the object's fields (1 = children of a top-level field).
func (t *Transform) walk(dst []kv, prefix string, obj map[string]any, depth int) []kv {
	for k, v := range obj {
		name := prefix + t.delim + k
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 && (t.max == 0 || depth < t.max) {
			dst = t.walk(dst, name, sub, depth+1)
			continue
		}
		dst = append(dst, kv{name, v})
	}
	return dst
}

// check refuses a flattening in which two fields end up with one name
// ({"a.b":1,"a":{"b":2}}): one of them would be lost.
func (p *plan) check() error {
	removed := func(k string) bool {
		for _, r := range p.removed {
			if r == k {
				return true
			}
		}
		return false
	}
	var seen map[string]bool
	if len(p.added) > 8 {
		seen = make(map[string]bool, len(p.added))
	}
	for i, a := range p.added {
		if _, exists := p.r[a.k]; exists && !removed(a.k) {
			return fmt.Errorf("flattened name %q collides with the existing field %q", a.k, a.k)
		}
		dup := false
		if seen != nil {
			dup = seen[a.k]
			seen[a.k] = true
		} else {
			for _, b := range p.added[:i] {
				dup = dup || b.k == a.k
			}
		}
		if dup {
			return fmt.Errorf("two nested fields flatten to the same name %q", a.k)
		}
	}
	return nil
}
