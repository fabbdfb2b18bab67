package condition

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Predicate restricts a transform step to the events it matches: every
// test that is set must hold (AND), and negate inverts the result.
type Predicate struct {
	Table       string      `yaml:"table" doc:"Only this table (source table, else the stream)."`
	Tables      []string    `yaml:"tables" doc:"Only these tables."`
	Schema      string      `yaml:"schema" doc:"Only this schema (source schema, else the namespace)."`
	Schemas     []string    `yaml:"schemas" doc:"Only these schemas."`
	Database    string      `yaml:"database" doc:"Regular expression the source database must match."`
	Operations  []string    `yaml:"operations" doc:"Only these operations: insert (c), update (u), delete (d), snapshot (r), truncate (t), schema (s), record."`
	FieldExists string      `yaml:"field_exists" doc:"Only events whose current row has this field (dot path)."`
	FieldValue  *FieldValue `yaml:"field_value" doc:"Only events whose current row field equals a value."`
	Condition   string      `yaml:"condition" doc:"Only events matching this condition (the Filter language)."`
	Negate      bool        `yaml:"negate" default:"false" doc:"Invert the predicate."`
}

// FieldValue is predicate.field_value.
type FieldValue struct {
	Field string `yaml:"field" required:"true" doc:"Dot path into the current row."`
	Value string `yaml:"value" required:"true" doc:"Value to compare with (numbers compare by value)."`
}

var opNames = map[string]events.Type{
	"insert": events.Insert, "c": events.Insert, "create": events.Insert,
	"update": events.Update, "u": events.Update,
	"delete": events.Delete, "d": events.Delete,
	"snapshot": events.SnapshotRead, "r": events.SnapshotRead, "read": events.SnapshotRead, "snapshot-read": events.SnapshotRead,
	"truncate": events.Truncate, "t": events.Truncate,
	"schema": events.Schema, "s": events.Schema,
	"record": events.Record,
}

// Validate checks the regular expression, operation names and condition,
// so a bad predicate fails at startup with its YAML path.
func (p *Predicate) Validate() []spec.Problem {
	var ps []spec.Problem
	if p.Database != "" {
		if _, err := regexp.Compile(p.Database); err != nil {
			ps = append(ps, spec.Problem{Path: "database", Message: fmt.Sprintf("bad regular expression: %v", err)})
		}
	}
	for i, op := range p.Operations {
		if _, ok := opNames[strings.ToLower(op)]; !ok {
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("operations[%d]", i),
				Message: fmt.Sprintf("%q is not an operation (allowed: insert, update, delete, snapshot, truncate, schema, record, or c, u, d, r, t, s)", op)})
		}
	}
	if p.Condition != "" {
		if _, err := Compile(p.Condition); err != nil {
			ps = append(ps, spec.Problem{Path: "condition", Message: err.Error()})
		}
	}
	return ps
}

// Matcher tests events.
type Matcher func(*events.Event) bool

// Compile turns a validated predicate into a matcher.
func (p *Predicate) Compile() (Matcher, error) {
	if ps := p.Validate(); len(ps) > 0 {
		return nil, spec.Problems(ps)
	}
	var tests []Matcher
	tables := append(slices.Clone(p.Tables), nonEmpty(p.Table)...)
	if len(tables) > 0 {
		tests = append(tests, func(e *events.Event) bool {
			t, _ := (&env{e: e}).attr("table").(string)
			return slices.Contains(tables, t) || slices.ContainsFunc(tables, func(want string) bool {
				s, _ := (&env{e: e}).attr("schema").(string)
				return s != "" && want == s+"."+t
			})
		})
	}
	schemas := append(slices.Clone(p.Schemas), nonEmpty(p.Schema)...)
	if len(schemas) > 0 {
		tests = append(tests, func(e *events.Event) bool {
			s, _ := (&env{e: e}).attr("schema").(string)
			return slices.Contains(schemas, s)
		})
	}
	if p.Database != "" {
		re := regexp.MustCompile(p.Database)
		tests = append(tests, func(e *events.Event) bool {
			d, _ := (&env{e: e}).attr("database").(string)
			return re.MatchString(d)
		})
	}
	if len(p.Operations) > 0 {
		var types []events.Type
		for _, op := range p.Operations {
			types = append(types, opNames[strings.ToLower(op)])
		}
		tests = append(tests, func(e *events.Event) bool { return slices.Contains(types, e.Type) })
	}
	if p.FieldExists != "" {
		c, err := Compile("value." + p.FieldExists + " is not null")
		if err != nil {
			return nil, fmt.Errorf("field_exists: %w", err)
		}
		tests = append(tests, c.Match)
	}
	if fv := p.FieldValue; fv != nil {
		c, err := Compile("value." + fv.Field + " != null")
		if err != nil {
			return nil, fmt.Errorf("field_value.field: %w", err)
		}
		path := strings.Split(fv.Field, ".")
		want := fv.Value
		tests = append(tests, func(e *events.Event) bool {
			if !c.Match(e) {
				return false
			}
			var cur any = (&env{e: e}).root("value")
			for _, seg := range path {
				obj, _ := cur.(map[string]any)
				cur = obj[seg]
			}
			if c, ok := compare(cur, want); ok && c == 0 {
				return true
			}
			return fmt.Sprint(cur) == want
		})
	}
	if p.Condition != "" {
		tests = append(tests, MustCompile(p.Condition).Match)
	}
	negate := p.Negate
	return func(e *events.Event) bool {
		for _, t := range tests {
			if !t(e) {
				return negate
			}
		}
		return !negate
	}, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
