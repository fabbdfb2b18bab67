package flatten

import (
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
	return transformtest.Run(t, tr, e)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"Flatten", "flatten"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "Flatten" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

func TestApply(t *testing.T) {
	const nested = `{"id":1,"a":{"b":{"c":{"d":1}},"e":[{"f":{"g":1}}]},"h":{},"i":null}`
	for _, tc := range []struct {
		name, config string
		typ          events.Type
		data, want   string
		err          string
	}{
		{"unlimited", "{}", events.Insert, nested, `{"a.b.c.d":1,"a.e":[{"f":{"g":1}}],"h":{},"i":null,"id":1}`, ""},
		{"max_depth 1", "max_depth: 1", events.Insert, nested, `{"a.b":{"c":{"d":1}},"a.e":[{"f":{"g":1}}],"h":{},"i":null,"id":1}`, ""},
		{"max_depth 2", "max_depth: 2", events.Insert, nested, `{"a.b.c":{"d":1},"a.e":[{"f":{"g":1}}],"h":{},"i":null,"id":1}`, ""},
		{"max_depth beyond the nesting", "max_depth: 10", events.Insert, nested, `{"a.b.c.d":1,"a.e":[{"f":{"g":1}}],"h":{},"i":null,"id":1}`, ""},
		{"delimiter", "delimiter: __", events.Insert, `{"a":{"b":1,"c":{"d":2}}}`, `{"a__b":1,"a__c__d":2}`, ""},
		{"flat row is untouched", "{}", events.Insert, `{"a": 1, "b": [1]}`, `{"a": 1, "b": [1]}`, ""},
		{"update flattens both images", "delimiter: _", events.Update, `{"before":{"x":{"y":1}},"after":{"x":{"y":2}}}`, `{"after":{"x_y":2},"before":{"x_y":1}}`, ""},
		{"update without before", "{}", events.Update, `{"before":null,"after":{"x":{"y":2}}}`, `{"after":{"x.y":2},"before":null}`, ""},
		{"delete", "{}", events.Delete, `{"x":{"y":1}}`, `{"x.y":1}`, ""},
		{"snapshot read", "{}", events.SnapshotRead, `{"x":{"y":1}}`, `{"x.y":1}`, ""},
		{"record", "{}", events.Record, `{"x":{"y":1}}`, `{"x.y":1}`, ""},
		{"dotted names of removed objects are free", "{}", events.Insert, `{"a":{"b":1},"a.b":{"c":2}}`, `{"a.b":1,"a.b.c":2}`, ""},
		{"collision with a field", "{}", events.Insert, `{"a.b":1,"a":{"b":2}}`, "", `"a.b" collides with the existing field`},
		{"collision of two nested fields", "delimiter: _", events.Insert, `{"a":{"b_c":1,"b":{"c":2}}}`, "", `flatten to the same name "a_b_c"`},
		{"data not an object", "{}", events.Record, `[{"a":{"b":1}}]`, "", "not an object"},
		{"truncate passes", "{}", events.Truncate, `null`, `null`, ""},
		{"schema passes", "{}", events.Schema, `{"a":{"b":1}}`, `{"a":{"b":1}}`, ""},
		{"state passes", "{}", events.State, `{"a":{"b":1}}`, `{"a":{"b":1}}`, ""},
		{"log passes", "{}", events.Log, `{"a":{"b":1}}`, `{"a":{"b":1}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ev(tc.typ, tc.data)
			got, err := run(t, newT(t, tc.config), e)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if b, _ := e.Data.JSON(); e.Data.Changed() || string(b) != tc.data {
					t.Errorf("failed event changed: %s", b)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s %v, want %s", got, err, tc.want)
			}
		})
	}
}

func TestManyFields(t *testing.T) {
	// More than 8 flattened fields uses the map for duplicate checks.
	got, err := run(t, newT(t, "delimiter: _"), ev(events.Insert, `{"a":{"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":9},"b":{"c":0}}`))
	if err != nil || got != `{"a_1":1,"a_2":2,"a_3":3,"a_4":4,"a_5":5,"a_6":6,"a_7":7,"a_8":8,"a_9":9,"b_c":0}` {
		t.Errorf("%s %v", got, err)
	}
	_, err = run(t, newT(t, "delimiter: _"), ev(events.Insert, `{"a":{"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":{"x":1},"9_x":2}}`))
	if err == nil || !strings.Contains(err.Error(), `"a_9_x"`) {
		t.Errorf("duplicate among many: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"delimiter: ''", path + ".delimiter", "must not be empty"},
		{"max_depth: -1", path + ".max_depth", "out of range"},
		{"max_depth: two", path + ".max_depth", "expected an integer"},
		{"separator: _", path + ".separator", "unknown key"},
	} {
		_, ps := spec.DecodeString[Config](tc.yaml, path)
		found := false
		for _, p := range ps {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.msg)
		}
		if !found {
			t.Errorf("%q: problems %v, want %s: %s", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	cfg, ps := spec.DecodeString[Config]("", path)
	if len(ps) > 0 || cfg.Delimiter != "." || cfg.MaxDepth != 0 {
		t.Errorf("defaults: %+v %v", cfg, ps)
	}
}

func TestRoundTrip(t *testing.T) {
	e := ev(events.Update, `{"before":{"id":1,"addr":{"city":"Köln","geo":{"lat":50.94,"lon":6.96}}},"after":{"id":1,"addr":{"city":"Bonn","geo":null}}}`)
	if _, err := run(t, newT(t, "{}"), e); err != nil {
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
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"addr.city":"Bonn","addr.geo":null,"id":1},"before":{"addr.city":"Köln","addr.geo.lat":50.94,"addr.geo.lon":6.96,"id":1}}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkFlatten(b *testing.B) {
	const raw = `{"order_id":1,"customer":{"id":7592,"name":"Ada","address":{"city":"Köln","zip":"50667"}},"product":"Ultra Kit","total":41.16,"status":"cancelled"}`
	tr := newT(b, "{}")
	b.Run("apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
	b.Run("apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
}
