package valuetokey

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
	e := events.New(typ, "orders", events.RawPayload([]byte(data)))
	e.Key = []byte(`{"old":true}`)
	return e
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"ValueToKey", "value_to_key", "value-to-key", "valuetokey"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "ValueToKey" || e.Category != catalog.Transforms || e.Subcategory != "SMT" {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		typ          events.Type
		data         string
		key          string // "" = unchanged
		err          string
	}{
		{"insert", "fields: [id]", events.Insert, `{"id":1,"name":"a"}`, `{"id":1}`, ""},
		{"record", "fields: [id]", events.Record, `{"id":"x-1"}`, `{"id":"x-1"}`, ""},
		{"snapshot read", "fields: [id]", events.SnapshotRead, `{"id":12345678901234567890}`, `{"id":12345678901234567890}`, ""},
		{"update uses after", "fields: [id]", events.Update, `{"before":{"id":1},"after":{"id":2}}`, `{"id":2}`, ""},
		{"update without after uses before", "fields: [id]", events.Update, `{"before":{"id":1},"after":null}`, `{"id":1}`, ""},
		{"delete uses before", "fields: [id]", events.Delete, `{"id":7,"name":"gone"}`, `{"id":7}`, ""},
		{"config order, any JSON type", "fields: [tenant, id, tags]", events.Insert, `{"id":1.50,"tenant":"t\u00e9","tags":[1,{"b":2,"a":1}],"x":null}`, `{"tenant":"té","id":1.50,"tags":[1,{"a":1,"b":2}]}`, ""},
		{"null value is kept", "fields: [id]", events.Insert, `{"id":null}`, `{"id":null}`, ""},
		{"nested path", "fields: [customer.id, id]", events.Insert, `{"id":1,"customer":{"id":9,"name":"c"}}`, `{"customer.id":9,"id":1}`, ""},
		{"missing field", "fields: [id, region]", events.Insert, `{"id":1}`, "", `key field "region" is missing from the insert event's row`},
		{"missing nested", "fields: [customer.id]", events.Update, `{"before":null,"after":{"customer":"flat"}}`, "", `"customer.id" is missing`},
		{"no row", "fields: [id]", events.Delete, `null`, "", "has no row"},
		{"data not an object", "fields: [id]", events.Record, `"text"`, "", "not an object"},
		{"truncate passes", "fields: [id]", events.Truncate, `null`, "", ""},
		{"schema passes", "fields: [id]", events.Schema, `{"ddl":"ALTER TABLE"}`, "", ""},
		{"state passes", "fields: [id]", events.State, `{"offset":1}`, "", ""},
		{"log passes", "fields: [id]", events.Log, `{"msg":"hi"}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newT(t, tc.config)
			e := ev(tc.typ, tc.data)
			out, err := tr.Apply(context.Background(), []*events.Event{e})
			if tc.err != "" {
				var te *connector.TransformError
				if !errors.As(err, &te) || len(te.Failed) != 1 || te.Failed[0].Event != e || !strings.Contains(te.Failed[0].Err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if len(out) != 0 {
					t.Errorf("failed event passed on")
				}
				return
			}
			if err != nil || len(out) != 1 || out[0] != e {
				t.Fatalf("out %v, err %v", out, err)
			}
			want := tc.key
			if want == "" {
				want = `{"old":true}`
			}
			if string(e.Key) != want {
				t.Errorf("key = %s, want %s", e.Key, want)
			}
			if e.Data.Changed() {
				t.Errorf("data marked changed; ValueToKey only reads it")
			}
		})
	}
}

func TestBatchDeadLettersOnlyTheBadEvent(t *testing.T) {
	tr := newT(t, "fields: [id]")
	good1, bad, good2 := ev(events.Insert, `{"id":1}`), ev(events.Insert, `{"x":1}`), ev(events.Delete, `{"id":3}`)
	out, err := tr.Apply(context.Background(), []*events.Event{good1, bad, good2})
	var te *connector.TransformError
	if !errors.As(err, &te) || len(te.Failed) != 1 || te.Failed[0].Event != bad {
		t.Fatalf("err = %v", err)
	}
	if len(out) != 2 || out[0] != good1 || out[1] != good2 {
		t.Fatalf("out = %v", out)
	}
	if string(good2.Key) != `{"id":3}` {
		t.Errorf("key %s", good2.Key)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"{}", path + ".fields", "required"},
		{"fields: []", path + ".fields", "at least one"},
		{"fields: id", path + ".fields", "expected a list"},
		{"fields: [id, 'a..b']", path + ".fields[1]", "empty segment"},
		{"fields: [id, '']", path + ".fields[1]", "empty field path"},
		{"fields: [id, id]", path + ".fields[1]", "twice"},
		{"fields: [id]\nfield: [x]", path + ".field", `did you mean "fields"`},
	} {
		_, ps := spec.DecodeString[Config](tc.yaml, path)
		found := false
		for _, p := range ps {
			if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: problems %v, want %s: %s", tc.yaml, ps, tc.path, tc.msg)
		}
	}
}

// TestRoundTrip encodes the transformed event and decodes it again: the
// key survives the wire format.
func TestRoundTrip(t *testing.T) {
	tr := newT(t, "fields: [id, customer.id]")
	e := ev(events.Update, `{"before":{"id":1,"customer":{"id":2}},"after":{"id":1,"customer":{"id":3}}}`)
	if _, err := tr.Apply(context.Background(), []*events.Event{e}); err != nil {
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
	if string(back.Key) != `{"id":1,"customer.id":3}` {
		t.Errorf("key after round trip: %s (%s)", back.Key, b)
	}
	if d, _ := back.Data.JSON(); string(d) != `{"before":{"id":1,"customer":{"id":2}},"after":{"id":1,"customer":{"id":3}}}` {
		t.Errorf("data after round trip: %s", d)
	}
}

// BenchmarkValueToKey: one op is one event, an insert with six columns.
func BenchmarkValueToKey(b *testing.B) {
	tr := newT(b, "fields: [order_id, customer_id]")
	const raw = `{"order_id":1,"customer_id":7592,"product":"Ultra Kit","quantity":3,"total":41.16,"status":"cancelled"}`
	b.Run("apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
	b.Run("apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
}

// TestBytesAsMaps: a key built from the row's bytes is byte for byte the
// key built from the decoded row.
func TestBytesAsMaps(t *testing.T) {
	for _, cfg := range []string{`{fields: [id]}`, `{fields: [id, cc]}`, `{fields: [note, nested]}`, `{fields: [nested.a]}`, `{fields: [cc, missing]}`} {
		transformtest.SameOnBytesAndMaps(t, transformtest.Build(t, cfg, New), transformtest.RawCases("cc"))
	}
}
