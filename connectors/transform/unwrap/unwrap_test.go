package unwrap

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
	for _, name := range []string{"Unwrap", "unwrap"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "Unwrap" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

func TestApply(t *testing.T) {
	const envelope = `{"schema":{"type":"struct"},"payload":{"before":null,"after":{"id":1,"n":{"x":2}},"op":"c"}}`
	for _, tc := range []struct {
		name, config string
		typ          events.Type
		data, want   string
		err          string
	}{
		{"record with an envelope", "field: payload.after", events.Record, envelope, `{"id":1,"n":{"x":2}}`, ""},
		{"insert", "field: payload.after", events.Insert, envelope, `{"id":1,"n":{"x":2}}`, ""},
		{"snapshot read, one level", "field: data", events.SnapshotRead, `{"data":{"id":3},"meta":1}`, `{"id":3}`, ""},
		{"delete", "field: data", events.Delete, `{"data":{"id":3}}`, `{"id":3}`, ""},
		{"update unwraps both images", "field: row", events.Update, `{"before":{"row":{"id":1,"v":"a"}},"after":{"row":{"id":1,"v":"b"}}}`, `{"after":{"id":1,"v":"b"},"before":{"id":1,"v":"a"}}`, ""},
		{"update without before", "field: row", events.Update, `{"before":null,"after":{"row":{"id":1}}}`, `{"after":{"id":1},"before":null}`, ""},
		{"empty object", "field: a", events.Insert, `{"a":{}}`, `{}`, ""},
		{"missing", "field: payload.after", events.Record, `{"payload":{"before":{}}}`, "", `the row has no field "payload.after"`},
		{"parent not an object", "field: payload.after", events.Record, `{"payload":"x"}`, "", `has no field "payload.after"`},
		{"null", "field: payload.after", events.Record, `{"payload":{"after":null}}`, "", `"payload.after" in the row is null, not an object`},
		{"string", "field: a", events.Record, `{"a":"s"}`, "", "is a string, not an object"},
		{"number", "field: a", events.Record, `{"a":1}`, "", "is a number, not an object"},
		{"boolean", "field: a", events.Record, `{"a":true}`, "", "is a boolean, not an object"},
		{"array", "field: a", events.Record, `{"a":[{"b":1}]}`, "", "is an array, not an object"},
		{"before image missing it", "field: row", events.Update, `{"before":{"id":1},"after":{"row":{"id":1}}}`, "", `before has no field "row"`},
		{"bad update image", "field: row", events.Update, `{"before":5,"after":{"row":{}}}`, "", "data.before is json.Number"},
		{"data not an object", "field: a", events.Record, `[1]`, "", "not an object"},
		{"null data passes", "field: a", events.Delete, `null`, `null`, ""},
		{"truncate passes", "field: a", events.Truncate, `null`, `null`, ""},
		{"schema passes", "field: a", events.Schema, `{"a":{"b":1}}`, `{"a":{"b":1}}`, ""},
		{"state passes", "field: a", events.State, `{"a":{"b":1}}`, `{"a":{"b":1}}`, ""},
		{"log passes", "field: a", events.Log, `{"a":{"b":1}}`, `{"a":{"b":1}}`, ""},
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

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"{}", path + ".field", "required"},
		{"field: ''", path + ".field", "empty field path"},
		{"field: 'payload..after'", path + ".field", "empty segment"},
		{"field: [a]", path + ".field", "expected a string"},
		{"fields: a", path + ".fields", `did you mean "field"`},
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
}

func TestRoundTrip(t *testing.T) {
	e := ev(events.Record, `{"payload":{"after":{"id":1,"price":19.990,"tags":["a"]}},"schema":{}}`)
	if _, err := run(t, newT(t, "field: payload.after"), e); err != nil {
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
	if d, _ := back.Data.JSON(); string(d) != `{"id":1,"price":19.990,"tags":["a"]}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkUnwrap(b *testing.B) {
	const raw = `{"schema":{"type":"struct","name":"orders.Envelope"},"payload":{"before":null,"after":{"order_id":1,"customer_id":7592,"product":"Ultra Kit","quantity":3,"total":41.16,"status":"cancelled"},"op":"c","ts_ms":1735689600100}}`
	tr := newT(b, "field: payload.after")
	b.Run("apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Record, raw, false) })
	b.Run("apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Record, raw, true) })
}
