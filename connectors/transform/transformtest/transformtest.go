// Package transformtest holds what transform tests share: events of every
// type, applying a transform the way the engine does, and reading results.
package transformtest

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Event returns an event of type t with the given data JSON and a source
// block (postgres-cdc, shop.public.orders).
func Event(t events.Type, data string) *events.Event {
	e := events.New(t, "orders", events.RawPayload([]byte(data)))
	e.Timestamp = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ns := "public"
	e.Namespace = &ns
	commit := time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)
	e.Source = &events.SourceInfo{Connector: "postgres-cdc", Database: "shop", Schema: "public", Table: "orders", Position: "0/16B3748", CommitTS: &commit}
	e.Metadata.Position = "0/16B3748"
	e.Metadata.TransactionID = "771"
	return e
}

// Build decodes a YAML config like the loader does and builds the
// transform with newFn; problems fail the test.
func Build[C any](t testing.TB, yaml string, newFn func(context.Context, *C) (connector.Transform, error)) connector.Transform {
	t.Helper()
	cfg, ps := spec.DecodeString[C](yaml, "transforms[0].config")
	if len(ps) > 0 {
		t.Fatalf("config %q: %v", yaml, spec.Problems(ps))
	}
	tr, err := newFn(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Problems decodes a config expected to be invalid and returns its
// problems as one string.
func Problems[C any](yaml string) string {
	_, ps := spec.DecodeString[C](yaml, "transforms[0].config")
	return spec.Problems(ps).Error()
}

// Apply runs a transform over one event and returns its output; it checks
// that every output still encodes and decodes as a Rivven event.
func Apply(t testing.TB, tr connector.Transform, e *events.Event) ([]*events.Event, error) {
	t.Helper()
	out, err := tr.Apply(context.Background(), []*events.Event{e})
	for _, o := range out {
		b, merr := events.Marshal(o)
		if merr != nil {
			t.Fatalf("transformed event does not encode: %v", merr)
		}
		if _, derr := events.Unmarshal(b); derr != nil {
			t.Fatalf("transformed event does not decode: %v\n%s", derr, b)
		}
	}
	return out, err
}

// Data returns an event's data as canonical JSON (sorted keys), for
// comparing with an expected literal.
func Data(t testing.TB, e *events.Event) string {
	t.Helper()
	v, err := e.Data.Value()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// JSON canonicalizes a JSON literal (sorted keys) for comparisons.
func JSON(t testing.TB, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON literal %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Run applies a transform that changes events in place to one event and
// returns the event's data as JSON, or the error the transform reported
// for it (checking that a failed event is not passed on as well).
func Run(t testing.TB, tr connector.Transform, e *events.Event) (string, error) {
	t.Helper()
	out, err := tr.Apply(context.Background(), []*events.Event{e})
	var te *connector.TransformError
	if errors.As(err, &te) {
		if len(out) != 0 || te.Failed[0].Event != e {
			t.Errorf("failed event passed on")
		}
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

// Bench applies tr to decoded events in batches of 1024, the size of a
// source batch (decoding them is not timed); one op is one event. With
// marshal each event is also encoded to Rivven JSON, as publishing does.
func Bench(b *testing.B, tr connector.Transform, typ events.Type, raw string, marshal bool) {
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
			e := events.New(typ, "orders", events.RawPayload([]byte(raw)))
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

// RawCases are events whose data a transform that edits bytes must treat
// as it treats the decoded maps: every row type, nested values, escaped
// and non-ASCII keys, a key named twice, white space, null and missing
// rows, non-object data and malformed JSON. fields are the top-level
// field names the transform under test reads or writes; each case has
// them as strings, numbers and nulls.
func RawCases(fields ...string) []*events.Event {
	row := func(v string) string {
		var b []byte
		b = append(b, `{"id":7,"note":"caf\u00e9 \"x\"","nested":{"a":[1,2,{"b":null}]}`...)
		for _, f := range fields {
			b = append(b, ',')
			b = events.AppendJSONString(b, f)
			b = append(b, ':')
			b = append(b, v...)
		}
		return string(append(b, '}'))
	}
	var out []*events.Event
	for _, v := range []string{`"4111-1111-1111-1234"`, `150.25`, `-3`, `null`, `"Zoë"`, `""`, `true`, `{"x":1}`} {
		r := row(v)
		out = append(out,
			Event(events.Insert, r), Event(events.Record, r), Event(events.SnapshotRead, r), Event(events.Delete, r),
			Event(events.Update, `{"before":`+r+`,"after":`+r+`}`),
			Event(events.Update, `{"after":`+r+`,"before":null,"extra":[1]}`),
			Event(events.Update, ` { "after" : `+r+` } `),
			Event(events.Schema, r),
		)
	}
	for _, d := range []string{
		`{"id":1,"id":2}`, `{"i\u0064":5}`, `{"a":1}   `, "\n{\"a\":\t1 }\n", `null`, ``, `[1,2]`, `"text"`, `{"a":`, `{"a":1}x`,
		`{"before":{"id":1},"after":"not a row"}`, `{"before":null}`, `{"after":{"id":1,"id":3}}`, `{"after":{"a":[}}`,
	} {
		for _, t := range []events.Type{events.Insert, events.Update, events.Delete} {
			out = append(out, Event(t, d))
		}
	}
	return out
}

// SameOnBytesAndMaps applies tr to each event twice: as it arrived (the
// data its bytes) and decoded and marked changed first (so a transform
// that edits bytes takes its map path), and fails when the two differ in
// what is passed on, failed, its type, route, key or data (compared
// decoded).
func SameOnBytesAndMaps(t *testing.T, tr connector.Transform, evs []*events.Event) {
	t.Helper()
	type outcome struct {
		failed bool
		events []string
	}
	run := func(e *events.Event) outcome {
		out, err := tr.Apply(context.Background(), []*events.Event{e})
		var o outcome
		var te *connector.TransformError
		if errors.As(err, &te) {
			o.failed = true
		} else if err != nil {
			t.Fatalf("%v", err)
		}
		for _, x := range out {
			v, err := x.Data.Value()
			data, _ := json.Marshal(v)
			s := string(x.Type) + " " + x.Route + " " + string(x.Key) + " " + string(data)
			if err != nil {
				s += " decode error"
			}
			o.events = append(o.events, s)
		}
		return o
	}
	for _, e := range evs {
		raw, _ := e.Data.JSON()
		asMaps := e.Clone()
		_, _ = asMaps.Data.Mutable()
		got, want := run(e.Clone()), run(asMaps)
		if got.failed != want.failed || len(got.events) != len(want.events) {
			t.Errorf("%s %s: on bytes failed=%v out=%q; on maps failed=%v out=%q", e.Type, raw, got.failed, got.events, want.failed, want.events)
			continue
		}
		for i := range got.events {
			if got.events[i] != want.events[i] {
				t.Errorf("%s %s: on bytes %s; on maps %s", e.Type, raw, got.events[i], want.events[i])
			}
		}
	}
}
