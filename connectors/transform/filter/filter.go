// Package filter keeps or drops events by a condition such as
// `value.amount > 100` (the language is described in shared/condition).
package filter

import (
	"context"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/condition"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration.
type Config struct {
	Condition string `yaml:"condition" required:"true" doc:"Condition, e.g. value.amount > 100 && after.status != \"void\"."`
	Action    string `yaml:"action" default:"keep" enum:"keep,drop" doc:"keep: events matching the condition are kept (others dropped); drop: matching events are dropped."`
	Drop      bool   `yaml:"drop" default:"false" doc:"Same as action: drop (the spelling of the reference implementation)."`
	Control   string `yaml:"control_events" default:"pass" enum:"pass,filter" doc:"Events without rows (schema, truncate, state, log): pass them on, or test them like the rest."`
}

// Validate compiles the condition at startup.
func (c *Config) Validate() []spec.Problem {
	if _, err := condition.Compile(c.Condition); err != nil {
		return []spec.Problem{{Path: "condition", Message: err.Error()}}
	}
	return nil
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "Filter", Category: catalog.Transforms, Subcategory: "SMT",
		Description: "Keeps or drops events matching a condition",
		Tags:        []string{"where", "predicate", "expression", "condition"},
	}, New)
}

type filter struct {
	cond     *condition.Condition
	keep     bool
	passCtrl bool
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	c, err := condition.Compile(cfg.Condition)
	if err != nil {
		return nil, err
	}
	return &filter{cond: c, keep: cfg.Action == "keep" && !cfg.Drop, passCtrl: cfg.Control == "pass"}, nil
}

// Apply keeps the events the condition selects, in order, reusing the
// input slice (the engine counts what was dropped).
func (f *filter) Apply(_ context.Context, batch []*events.Event) ([]*events.Event, error) {
	out := batch[:0]
	for _, e := range batch {
		if f.passCtrl && !e.Type.IsData() || f.cond.Match(e) == f.keep {
			out = append(out, e)
		}
	}
	return out, nil
}
