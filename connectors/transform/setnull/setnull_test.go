package setnull

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

const path = "sources.x.transforms[0].config"

func newT(t testing.TB, yaml string) connector.Transform {
	t.Helper()
	return transformtest.Build(t, yaml, New)
}

func ev(typ events.Type, data string) *events.Event {
	return events.New(typ, "orders", events.RawPayload([]byte(data)))
}

func run(t *testing.T, tr connector.Transform, e *events.Event) (string, error) {
	t.Helper()
	out, err := tr.Apply(context.Background(), []*events.Event{e})
	var te *connector.TransformError
	if errors.As(err, &te) {
		return "", te.Failed[0].Err
	}
	if err != nil || len(out) != 1 || out[0] != e {
		t.Fatalf("out %v err %v", out, err)
	}
	b, err := e.Data.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"SetNull", "set_null", "set-null"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "SetNull" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
	s, _ := catalog.Default.ConfigSchema("transform", "SetNull")
	if c := s["properties"].(map[string]any)["condition"].(map[string]any); c["oneOf"] == nil {
		t.Errorf("condition schema %v", c)
	}
}

func TestConditions(t *testing.T) {
	const row = `{"a":"","b":"N/A","c":1.50,"d":[],"e":{},"f":"  ","g":true,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`
	for _, tc := range []struct{ config, want string }{
		{"fields: [a, b, c, d, e, f, g, h, i.j, k, missing]", `{"a":null,"b":null,"c":null,"d":null,"e":null,"f":null,"g":null,"h":null,"i":{"j":null},"k":null}`},
		{"fields: [a, b, c, d, e, f, g, h, i.j, k, missing]\ncondition: always", `{"a":null,"b":null,"c":null,"d":null,"e":null,"f":null,"g":null,"h":null,"i":{"j":null},"k":null}`},
		{"fields: [a, b, c, d, e, f, g, h, k]\ncondition: if_empty", `{"a":null,"b":"N/A","c":1.50,"d":null,"e":null,"f":"  ","g":true,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`},
		{"fields: [a, d]\ncondition: empty", `{"a":null,"b":"N/A","c":1.50,"d":null,"e":{},"f":"  ","g":true,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`},
		{"fields: [a, b, i.j]\ncondition: {equals: N/A}", `{"a":"","b":null,"c":1.50,"d":[],"e":{},"f":"  ","g":true,"h":null,"i":{"j":null},"k":[1,{"x":"y"}]}`},
		{"fields: [b, c]\ncondition: {equals: 1.5}", `{"a":"","b":"N/A","c":null,"d":[],"e":{},"f":"  ","g":true,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`},
		{"fields: [c]\ncondition: {equals: '1.5'}", row},
		{"fields: [g]\ncondition: {equals: true}", `{"a":"","b":"N/A","c":1.50,"d":[],"e":{},"f":"  ","g":null,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`},
		{"fields: [k, d]\ncondition: {equals: [1, {x: y}]}", `{"a":"","b":"N/A","c":1.50,"d":[],"e":{},"f":"  ","g":true,"h":null,"i":{"j":"N/A"},"k":null}`},
		{"fields: [i]\ncondition: {equals: {j: N/A}}", `{"a":"","b":"N/A","c":1.50,"d":[],"e":{},"f":"  ","g":true,"h":null,"i":null,"k":[1,{"x":"y"}]}`},
		{"fields: [a, b, f, c]\ncondition: {regex: '^\\s*$'}", `{"a":null,"b":"N/A","c":1.50,"d":[],"e":{},"f":null,"g":true,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`},
		{"fields: [b]\ncondition: {matches: '/'}", `{"a":"","b":null,"c":1.50,"d":[],"e":{},"f":"  ","g":true,"h":null,"i":{"j":"N/A"},"k":[1,{"x":"y"}]}`},
	} {
		got, err := run(t, newT(t, tc.config), ev(events.Insert, row))
		if err != nil || got != tc.want && !(tc.want == row && got == row) {
			t.Errorf("%s:\n got %s %v\nwant %s", tc.config, got, err, tc.want)
		}
	}
}

func TestEvents(t *testing.T) {
	const cfg = "fields: [pw]\ncondition: {equals: secret}"
	for _, tc := range []struct {
		name       string
		typ        events.Type
		data, want string
		err        string
	}{
		{"insert", events.Insert, `{"pw":"secret"}`, `{"pw":null}`, ""},
		{"record", events.Record, `{"pw":"secret"}`, `{"pw":null}`, ""},
		{"snapshot read", events.SnapshotRead, `{"pw":"secret"}`, `{"pw":null}`, ""},
		{"update nulls both images", events.Update, `{"before":{"pw":"secret"},"after":{"pw":"secret"}}`, `{"after":{"pw":null},"before":{"pw":null}}`, ""},
		{"update, one image matches", events.Update, `{"before":{"pw":"secret"},"after":{"pw":"other"}}`, `{"after":{"pw":"other"},"before":{"pw":null}}`, ""},
		{"delete", events.Delete, `{"pw":"secret"}`, `{"pw":null}`, ""},
		{"no match keeps the bytes", events.Insert, `{"pw": "x"}`, `{"pw": "x"}`, ""},
		{"data not an object", events.Record, `"secret"`, "", "not an object"},
		{"truncate passes", events.Truncate, `null`, `null`, ""},
		{"schema passes", events.Schema, `{"pw":"secret"}`, `{"pw":"secret"}`, ""},
		{"state passes", events.State, `{"pw":"secret"}`, `{"pw":"secret"}`, ""},
		{"log passes", events.Log, `{"pw":"secret"}`, `{"pw":"secret"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, newT(t, cfg), ev(tc.typ, tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s %v, want %s", got, err, tc.want)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"condition: always", path + ".fields", "required"},
		{"fields: []", path + ".fields", "at least one"},
		{"fields: [a, 'b..c']", path + ".fields[1]", "empty segment"},
		{"fields: [a]\ncondition: alwys", path + ".condition", `unknown condition "alwys" (did you mean "always"?)`},
		{"fields: [a]\ncondition: '^x$'", path + ".condition", `write {regex: "^x$"}`},
		{"fields: [a]\ncondition: 5", path + ".condition", "expected always, if_empty, {equals: VALUE} or {regex: PATTERN}"},
		{"fields: [a]\ncondition: [always]", path + ".condition", "expected always"},
		{"fields: [a]\ncondition: {regex: 'a('}", path + ".condition.regex", "invalid regular expression"},
		{"fields: [a]\ncondition: {regex: [a]}", path + ".condition.regex", "expected a regular expression"},
		{"fields: [a]\ncondition: {regex: ~}", path + ".condition.regex", "expected a regular expression"},
		{"fields: [a]\ncondition: {equal: x}", path + ".condition.equal", `did you mean "equals"`},
		{"fields: [a]\ncondition: {equals: x, regex: y}", path + ".condition", "exactly one"},
		{"fields: [a]\ncondition: {}", path + ".condition", "exactly one"},
		{"fields: [a]\ncondition: {equals: .inf}", path + ".condition.equals", "not a JSON number"},
		{"fields: [a]\nconditon: always", path + ".conditon", `did you mean "condition"`},
	} {
		_, ps := spec.DecodeString[Config](tc.yaml, path)
		found := false
		for _, p := range ps {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.msg) && p.Line > 0
		}
		if !found {
			t.Errorf("%q: problems %v, want %s: %s", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	// Decoded values.
	for yaml, want := range map[string]Condition{
		"fields: [a]":                             {Kind: "always"},
		"fields: [a]\ncondition: ~":               {Kind: "always"},
		"fields: [a]\ncondition: if_empty":        {Kind: "if_empty"},
		"fields: [a]\ncondition: {equals: 0x1F}":  {Kind: "equals", Equals: "31"},
		"fields: [a]\ncondition: {equals: 1_000}": {Kind: "equals", Equals: "1000"},
		"fields: [a]\ncondition: {equals: 1.50}":  {Kind: "equals", Equals: "1.50"},
		"fields: [a]\ncondition: {equals: ~}":     {Kind: "equals", Equals: nil},
		"fields: [a]\ncondition: {regex: x+}":     {Kind: "regex", Pattern: "x+"},
	} {
		cfg, ps := spec.DecodeString[Config](yaml, path)
		if len(ps) > 0 {
			t.Errorf("%s: %v", yaml, ps)
			continue
		}
		c := cfg.Condition
		if c.Kind != want.Kind || c.Pattern != want.Pattern || want.Equals != nil && string(jsonNumberOr(c.Equals)) != want.Equals.(string) || want.Kind == "equals" && want.Equals == nil && c.Equals != nil {
			t.Errorf("%s: %+v", yaml, c)
		}
	}
	// A condition built in code compiles its pattern.
	tr, err := New(context.Background(), &Config{Fields: []string{"a"}, Condition: Condition{Kind: "regex", Pattern: "^x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := run(t, tr, ev(events.Insert, `{"a":"xy"}`)); got != `{"a":null}` {
		t.Errorf("code-built regex: %s", got)
	}
}

func jsonNumberOr(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case interface{ String() string }:
		return v.String()
	}
	return ""
}

func TestRoundTrip(t *testing.T) {
	e := ev(events.Update, `{"before":{"id":1,"note":""},"after":{"id":1,"note":"","tags":[]}}`)
	if _, err := run(t, newT(t, "fields: [note, tags]\ncondition: if_empty"), e); err != nil {
		t.Fatal(err)
	}
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"id":1,"note":null,"tags":null},"before":{"id":1,"note":null}}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkSetNull(b *testing.B) {
	const raw = `{"order_id":1,"customer_id":7592,"product":"Ultra Kit","quantity":3,"total":41.16,"status":"","note":"N/A"}`
	for _, c := range []struct{ name, config string }{
		{"if_empty", "fields: [status, note]\ncondition: if_empty"},
		{"equals", "fields: [status, note]\ncondition: {equals: N/A}"},
		{"regex", "fields: [status, note]\ncondition: {regex: '^(N/A|)$'}"},
	} {
		tr := newT(b, c.config)
		b.Run(c.name+"/apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
		b.Run(c.name+"/apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
	}
}
