// Package setnull is the SetNull transform: it sets fields to null always,
// when they are empty, when they equal a value, or when they match a
// regular expression.
package setnull

import (
	"context"
	"regexp"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "SetNull",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Sets fields to null always, when empty, when equal to a value, or when matching a regular expression.",
		Tags:        []string{"null", "nullify", "clean", "empty", "redact", "smt", "debezium"},
	}, New)
}

// Config is the SetNull config block.
type Config struct {
	Fields    []string  `yaml:"fields" required:"true" doc:"Fields to set to null (dotted paths reach into nested objects); missing fields stay missing."`
	Condition Condition `yaml:"condition" default:"always" doc:"When to null a value: always; if_empty (\"\", [] or {}); {equals: VALUE} (any JSON value, numbers by value); {regex: PATTERN} (strings the RE2 expression matches anywhere)."`
}

// Validate checks the field paths (the condition checks itself).
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
	switch c.Condition.Kind {
	case "always", "if_empty", "equals":
	case "regex":
		if _, err := regexp.Compile(c.Condition.Pattern); err != nil {
			ps = append(ps, spec.Problem{Path: "condition.regex", Message: "invalid regular expression: " + err.Error()})
		}
	default:
		ps = append(ps, spec.Problem{Path: "condition", Message: "expected " + shapes})
	}
	return ps
}

// Transform nulls fields; see Config.
type Transform struct {
	paths []row.Path
	cond  Condition
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	t := &Transform{cond: cfg.Condition}
	if t.cond.Kind == "regex" && t.cond.re == nil { // built in code, not read from YAML
		t.cond.re = regexp.MustCompile(t.cond.Pattern)
	}
	for _, f := range cfg.Fields {
		p, _ := row.ParsePath(f)
		t.paths = append(t.paths, p)
	}
	return row.Each(t.apply), nil
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	var arr [2]map[string]any
	rows, err := row.View(e, arr[:0])
	if err != nil {
		return err
	}
	changed := false
	for _, r := range rows {
		for _, p := range t.paths {
			v, ok := p.Get(r)
			if !ok || v == nil || !t.cond.match(v) {
				continue
			}
			if !changed {
				row.Changed(e)
				changed = true
			}
			_ = p.Set(r, nil) // cannot fail: Get just walked the path
		}
	}
	return nil
}
