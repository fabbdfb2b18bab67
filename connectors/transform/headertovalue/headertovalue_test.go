package headertovalue

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

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

// ev is a postgres-cdc event of shop.public.orders in transaction 771 at
// 2025-01-02T03:04:05.678Z.
func ev(typ events.Type, data string) *events.Event {
	e := events.New(typ, "orders", events.RawPayload([]byte(data)))
	e.Timestamp = time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	e.Source = &events.SourceInfo{Connector: "postgres-cdc", Database: "shop", Schema: "public", Table: "orders", Position: "0/16B3748"}
	e.Metadata.TransactionID = "771"
	return e
}

func run(t *testing.T, tr connector.Transform, e *events.Event) (string, error) {
	t.Helper()
	return transformtest.Run(t, tr, e)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"HeaderToValue", "header_to_value", "header-to-value"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "HeaderToValue" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

const all = "fields: {source: __source, db: __db, schema: __schema, table: __table, op: __op, ts: __ts_ms, txid: __txid}"

func TestApply(t *testing.T) {
	const hdr = `"__db":"shop","__op":"%s","__schema":"public","__source":"postgres-cdc","__table":"orders","__ts_ms":1735787045678,"__txid":"771"`
	with := func(op string) string { return strings.Replace(hdr, "%s", op, 1) }
	for _, tc := range []struct {
		name, config string
		e            *events.Event
		want         string
		err          string
	}{
		{"insert", all, ev(events.Insert, `{"id":1}`), `{` + with("c") + `,"id":1}`, ""},
		{"record", all, ev(events.Record, `{"id":1}`), `{` + with("c") + `,"id":1}`, ""},
		{"snapshot read", all, ev(events.SnapshotRead, `{"id":1}`), `{` + with("r") + `,"id":1}`, ""},
		{"update fills both images", all, ev(events.Update, `{"before":{"id":1},"after":{"id":2}}`), `{"after":{` + with("u") + `,"id":2},"before":{` + with("u") + `,"id":1}}`, ""},
		{"update without before", "fields: {op: op}", ev(events.Update, `{"before":null,"after":{"id":2}}`), `{"after":{"id":2,"op":"u"},"before":null}`, ""},
		{"delete", "fields: {op: op}", ev(events.Delete, `{"id":1}`), `{"id":1,"op":"d"}`, ""},
		{"reference spellings", "fields: {source_type: s, database: d, operation: o, timestamp: t, transaction_id: x}", ev(events.Insert, `{}`), `{"d":"shop","o":"c","s":"postgres-cdc","t":1735787045678,"x":"771"}`, ""},
		{"xid", "fields: {xid: x}", ev(events.Insert, `{}`), `{"x":"771"}`, ""},
		{"nested target created", "fields: {table: meta.table, op: meta.op}", ev(events.Insert, `{"meta":{"k":1}}`), `{"meta":{"k":1,"op":"c","table":"orders"}}`, ""},
		{"overwrites an existing field", "fields: {op: id}", ev(events.Insert, `{"id":1}`), `{"id":"c"}`, ""},
		{"unknown headers are null", all, func() *events.Event {
			e := ev(events.Insert, `{}`)
			e.Source, e.Metadata.TransactionID = nil, ""
			return e
		}(), `{"__db":null,"__op":"c","__schema":null,"__source":null,"__table":null,"__ts_ms":1735787045678,"__txid":null}`, ""},
		{"target inside a non-object", "fields: {table: id.x, op: op}", ev(events.Insert, `{"id":1}`), "", "cannot set id.x: id is not an object"},
		{"data not an object", all, ev(events.Record, `7`), "", "not an object"},
		{"truncate passes", all, ev(events.Truncate, `null`), `null`, ""},
		{"schema passes", all, ev(events.Schema, `{"ddl":"x"}`), `{"ddl":"x"}`, ""},
		{"state passes", all, ev(events.State, `{"k":1}`), `{"k":1}`, ""},
		{"log passes", all, ev(events.Log, `{"k":1}`), `{"k":1}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, newT(t, tc.config), tc.e)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if tc.e.Data.Changed() {
					t.Error("failed event marked changed")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s %v, want %s", got, err, tc.want)
			}
			if tc.e.Source != nil && tc.e.Source.Table != "orders" {
				t.Error("copy changed the headers")
			}
		})
	}
}

func TestMove(t *testing.T) {
	tr := newT(t, all+"\nmove: true")
	shared := &events.SourceInfo{Connector: "postgres-cdc", Database: "shop", Schema: "public", Table: "orders", Position: "0/1"}
	e1, e2 := ev(events.Insert, `{"id":1}`), ev(events.Insert, `{"id":2}`)
	e1.Source, e2.Source = shared, shared
	if _, err := tr.Apply(context.Background(), []*events.Event{e1, e2}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*events.Event{e1, e2} {
		if s := e.Source; s == shared || s.Connector != "" || s.Database != "" || s.Schema != "" || s.Table != "" || s.Position != "0/1" {
			t.Errorf("source after move: %+v", s)
		}
		if e.Metadata.TransactionID != "" || e.Type != events.Insert || e.Timestamp.IsZero() {
			t.Errorf("headers after move: %+v", e)
		}
		if v, _ := e.Data.Value(); v.(map[string]any)["__table"] != "orders" {
			t.Errorf("data %v", v)
		}
	}
	if shared.Table != "orders" {
		t.Error("move changed a source block shared with other events")
	}
	// Only the moved headers are cleared.
	e := ev(events.Insert, `{}`)
	if _, err := run(t, newT(t, "fields: {table: t, op: o}\nmove: true"), e); err != nil {
		t.Fatal(err)
	}
	if e.Source.Table != "" || e.Source.Schema != "public" || e.Metadata.TransactionID != "771" {
		t.Errorf("partial move: %+v %+v", e.Source, e.Metadata)
	}
	// Events without rows keep their headers.
	tr2 := newT(t, all+"\nmove: true")
	tev := ev(events.Truncate, `null`)
	if _, err := run(t, tr2, tev); err != nil || tev.Source.Table != "orders" {
		t.Errorf("truncate: %+v %v", tev.Source, err)
	}
	// No source: nothing to clear, no panic.
	ns := ev(events.Insert, `{}`)
	ns.Source = nil
	if _, err := run(t, tr2, ns); err != nil || ns.Source != nil || ns.Metadata.TransactionID != "" {
		t.Errorf("no source: %+v %v", ns, err)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"move: true", path + ".fields", "required"},
		{"fields: {}", path + ".fields", "at least one"},
		{"fields: [op]", path + ".fields", "expected a mapping"},
		{"fields: {tabel: t}", path + ".fields.tabel", `did you mean "table"`},
		{"fields: {lsn: l}", path + ".fields.lsn", "allowed: source, db, schema, table, op, ts, txid"},
		{"fields: {db: a, database: b}", path + ".fields.db", "are the same header"},
		{"fields: {db: a, table: a}", path + ".fields.table", `target "a" is also the target of "db"`},
		{"fields: {op: 'a..b'}", path + ".fields.op", "empty segment"},
		{"fields: {op: ''}", path + ".fields.op", "empty field path"},
		{"fields: {op: [a]}", path + ".fields.op", "expected a string"},
		{"fields: {op: o}\nmove: maybe", path + ".move", "true or false"},
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
	e := ev(events.Update, `{"before":{"id":1},"after":{"id":1}}`)
	if _, err := run(t, newT(t, "fields: {op: meta.op, ts: meta.ts, table: __table}\nmove: true"), e); err != nil {
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
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"__table":"orders","id":1,"meta":{"op":"u","ts":1735787045678}},"before":{"__table":"orders","id":1,"meta":{"op":"u","ts":1735787045678}}}` {
		t.Errorf("round trip data: %s", d)
	}
	if back.Source == nil || back.Source.Table != "" || back.Source.Schema != "public" {
		t.Errorf("round trip source: %+v", back.Source)
	}
}

func BenchmarkHeaderToValue(b *testing.B) {
	const raw = `{"order_id":1,"customer_id":7592,"product":"Ultra Kit","quantity":3,"total":41.16,"status":"cancelled"}`
	for _, c := range []struct{ name, config string }{
		{"copy", "fields: {table: __table, op: __op, ts: __ts_ms}"},
		{"move", "fields: {table: __table, op: __op, ts: __ts_ms}\nmove: true"},
	} {
		tr := newT(b, c.config)
		b.Run(c.name+"/apply", func(b *testing.B) { bench(b, tr, events.Insert, raw, false) })
		b.Run(c.name+"/apply+marshal", func(b *testing.B) { bench(b, tr, events.Insert, raw, true) })
	}
}

// bench applies tr to decoded events in batches of 1024, the size of a
// source batch (decoding them is not timed); one op is one event. With
// marshal each event is also encoded to Rivven JSON, as publishing does.
func bench(b *testing.B, tr connector.Transform, typ events.Type, raw string, marshal bool) {
	const n = 1024
	batch := make([]*events.Event, n)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	// The timed part runs with the collector off; the garbage of decoding
	// is collected before it, so each run measures the transform and not
	// how far a collection of the test's own allocations got.
	gc := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(gc)
	for done := 0; done < b.N; done += n {
		b.StopTimer()
		runtime.GC()
		k := min(n, b.N-done)
		for i := range k {
			e := ev(typ, raw)
			if _, err := e.Data.Value(); err != nil {
				b.Fatal(err)
			}
			batch[i] = e
		}
		b.StartTimer()
		out, err := tr.Apply(context.Background(), batch[:k])
		if err != nil || len(out) != k {
			b.Fatal(len(out), err)
		}
		if marshal {
			for _, e := range out {
				if buf, err = events.Rivven.Append(buf[:0], e); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}
