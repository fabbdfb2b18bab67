package contentrouter

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
)

// The reference's example.
const regions = `
field: region
routes:
  us: us-events
  eu: eu-events
  apac: apac-events
default: other-events
`

func TestRoutes(t *testing.T) {
	cases := []struct {
		cfg, data, want string
		typ             events.Type
	}{
		{regions, `{"region":"eu"}`, "eu-events", events.Insert},
		{regions, `{"before":{"region":"us"},"after":{"region":"apac"}}`, "apac-events", events.Update},
		{regions, `{"region":"us"}`, "us-events", events.Delete},
		{regions, `{"region":"mars"}`, "other-events", events.Insert},
		{regions, `{"id":1}`, "other-events", events.Insert},
		{"field: region\nroutes: {us: us-events}\n", `{"region":"eu"}`, "", events.Insert},
		{"field: code\nroutes: {\"7\": sevens}\n", `{"code":7}`, "sevens", events.Insert},
		{"routes:\n  - {field: country.iso, pattern: '^(DE|FR)$', topic: eu}\n  - {field: tier, value: gold, topic: vip}\ndefault_topic: rest\n",
			`{"country":{"iso":"FR"},"tier":"gold"}`, "eu", events.Insert},
		{"routes:\n  - {field: country.iso, pattern: '^(DE|FR)$', topic: eu}\n  - {field: tier, value: gold, topic: vip}\ndefault_topic: rest\n",
			`{"country":{"iso":"US"},"tier":"gold"}`, "vip", events.Insert},
	}
	for _, c := range cases {
		out, err := transformtest.Apply(t, transformtest.Build(t, c.cfg, New), transformtest.Event(c.typ, c.data))
		if err != nil || len(out) != 1 {
			t.Fatalf("%s: %v", c.cfg, err)
		}
		if out[0].Route != c.want {
			t.Errorf("%s with %s: routed to %q, want %q", c.cfg, c.data, out[0].Route, c.want)
		}
	}
}

func TestConfigProblems(t *testing.T) {
	for cfg, want := range map[string]string{
		"routes: {us: x}\n":                                        "set field (or field on every route)",
		"field: r\nroutes: []\n":                                   "give at least one route",
		"field: r\nroutes: [{pattern: '([', topic: t}]\n":          "transforms[0].config.routes[0].pattern (line 2:20): bad regular expression",
		"field: r\nroutes: [{value: a}]\n":                         `transforms[0].config.routes[0].topic (line 2:10): required key "topic" is missing`,
		"field: r\nroutes: [{value: a, topc: b}]\n":                `routes[0].topc (line 2:21): unknown key "topc" (did you mean "topic"?)`,
		"field: r\nroutes: {a: [b]}\n":                             "transforms[0].config.routes.a (line 2:13): expected a topic name",
		"field: r\nroutes: {a: b}\ndefault: x\ndefault_topic: y\n": "default and default_topic disagree",
	} {
		if got := transformtest.Problems[Config](cfg); !strings.Contains(got, want) {
			t.Errorf("%q: problems %s, want %q", cfg, got, want)
		}
	}
}
