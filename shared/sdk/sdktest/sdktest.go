// Package sdktest runs a connector through the conformance checks the
// built-in connectors pass, from the connector's own tests:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Source(t, sdktest.SourceCase{Name: "acme-counter", Config: "count: 50"})
//	}
//
// The connector is looked up in the catalog by name and built from a YAML
// config block the way a pipeline builds it (decoded, defaulted and
// validated by its struct tags), so registration and the config spec are
// checked too. Each check is a subtest:
//
//   - lifecycle: registered, config decodes, Check (if any) passes, Read
//     or Write runs, Read returns nil once its context ends, Close (if any)
//     returns nil.
//   - at-least-once on restart: a source whose Emit failed mid-stream,
//     restarted from the last position the engine committed, emits every
//     event of the failed batch again; a sink given the same batch again
//     after a restart (a redelivery) takes it without error, and with
//     SinkCase.Read every row is there.
//   - bad input: a sink given events it cannot write (null data, data that
//     is not an object, control events) neither panics nor fails the good
//     events of the batch: it returns nil or a *sdk.WriteError naming only
//     bad events; a transform does the same with a *sdk.TransformError; a
//     config with an unknown key or a wrong type is refused with the key's
//     path.
package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// SourceCase says how to run a source.
type SourceCase struct {
	// Name is the source's catalog name.
	Name string
	// Config is its YAML config block.
	Config string
	// Events is how many events the checks read (default 20). A source
	// that is exhausted earlier must emit at least 4.
	Events int
	// Timeout bounds each Read (default 30s).
	Timeout time.Duration
}

// SinkCase says how to run a sink.
type SinkCase struct {
	Name   string
	Config string
	// Batch is what the sink writes (default: Events()).
	Batch []*events.Event
	// Read, when set, returns the rows the sink wrote so far (as JSON
	// objects); the at-least-once check looks for every row of Batch.
	Read func(t testing.TB) []map[string]any
	// Timeout bounds each call (default 30s).
	Timeout time.Duration
}

// TransformCase says how to run a transform.
type TransformCase struct {
	Name   string
	Config string
	Batch  []*events.Event
}

func timeout(d time.Duration) time.Duration {
	if d <= 0 {
		return 30 * time.Second
	}
	return d
}

// build instantiates a component from the catalog like a pipeline does.
func build(t testing.TB, kind catalog.Kind, name, config string) any {
	t.Helper()
	e, ok := catalog.Lookup(kind, name)
	if !ok {
		t.Fatalf("%s %q is not registered in the catalog (is its package imported?)", kind, name)
	}
	var node yaml.Node
	if strings.TrimSpace(config) != "" {
		if err := yaml.Unmarshal([]byte(config), &node); err != nil {
			t.Fatalf("config of %s %s: %v", kind, name, err)
		}
	}
	root := &node
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == 0 {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := e.Instantiate(ctx, root, string(kind)+"s."+name+".config")
	if err != nil {
		t.Fatalf("building %s %s: %v", kind, name, err)
	}
	return c
}

// badConfig checks that an unknown key and a mistyped value are refused
// with their paths.
func badConfig(t *testing.T, kind catalog.Kind, name, config string) {
	e, ok := catalog.Lookup(kind, name)
	if !ok {
		t.Fatalf("%s %q is not registered", kind, name)
	}
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(config+"\nno_such_key_xyz: 1\n"), &node); err != nil {
		t.Fatal(err)
	}
	_, ps := e.Decode(node.Content[0], "cfg")
	if !strings.Contains(spec.Problems(ps).Error(), "cfg.no_such_key_xyz") {
		t.Errorf("an unknown key is not refused with its path: %v", spec.Problems(ps))
	}
	for _, f := range e.Fields {
		if f.Type != spec.TInteger && f.Type != spec.TNumber && f.Type != spec.TBoolean {
			continue
		}
		if err := yaml.Unmarshal([]byte(withKey(config, f.Name, "[not, a, scalar]")), &node); err != nil {
			t.Fatal(err)
		}
		_, ps := e.Decode(node.Content[0], "cfg")
		if !strings.Contains(spec.Problems(ps).Error(), "cfg."+f.Name) {
			t.Errorf("a list for %s field %s is not refused with its path: %v", f.Type, f.Name, spec.Problems(ps))
		}
		break
	}
}

// withKey is config with key set to v (replacing a top-level line for it).
func withKey(config, key, v string) string {
	var keep []string
	for _, l := range strings.Split(config, "\n") {
		if strings.HasPrefix(l, key+":") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n") + "\n" + key + ": " + v + "\n"
}

// Events returns a batch of every data event type, with rows of mixed
// column types, as a CDC source or a record source emits them.
func Events() []*events.Event {
	mk := func(t events.Type, data string, pos int) *events.Event {
		e := events.New(t, "orders", events.RawPayload([]byte(data)))
		e.Timestamp = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		e.Key = json.RawMessage(fmt.Sprintf(`{"id":%d}`, pos))
		e.Metadata.Position = fmt.Sprint(pos)
		return e
	}
	return []*events.Event{
		mk(events.Insert, `{"id":1,"name":"Alice","amount":12.5,"active":true}`, 1),
		mk(events.Record, `{"id":2,"name":"Bob","amount":3,"active":false,"tags":["a","b"]}`, 2),
		mk(events.Update, `{"before":{"id":1,"name":"Alice","amount":12.5,"active":true},"after":{"id":1,"name":"Alice B","amount":13,"active":true}}`, 3),
		mk(events.SnapshotRead, `{"id":3,"name":"Carol","amount":null,"active":true}`, 4),
		mk(events.Delete, `{"id":2,"name":"Bob","amount":3,"active":false}`, 5),
	}
}

// badEvents are events a sink may be unable to write; good ones are
// interleaved so that a sink failing the whole batch is caught.
func badEvents() (batch []*events.Event, bad map[int]bool) {
	good := Events()
	mk := func(t events.Type, data string) *events.Event {
		e := events.New(t, "orders", events.RawPayload([]byte(data)))
		e.Metadata.Position = "bad"
		return e
	}
	batch = []*events.Event{
		good[0],
		mk(events.Insert, `null`),
		mk(events.Record, `"just a string"`),
		good[1],
		mk(events.Insert, `[1,2,3]`),
		mk(events.Update, `{"before":null,"after":null}`),
		mk(events.Schema, `{"ddl":"ALTER TABLE orders ADD COLUMN x int"}`),
		mk(events.State, `{"cursor":"abc"}`),
		mk(events.Log, `{"message":"hello"}`),
		mk(events.Record, `{"id":1e400,"name":"\ud800"}`),
		good[3],
	}
	bad = map[int]bool{1: true, 2: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}
	return batch, bad
}

// noPanic runs f and turns a panic into a test failure with its stack.
func noPanic(t testing.TB, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s panicked: %v\n%s", what, r, debug.Stack())
		}
	}()
	f()
}

func closeIt(t testing.TB, c any) {
	t.Helper()
	if cl, ok := c.(connector.Closer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

func check(t testing.TB, c any, d time.Duration) {
	t.Helper()
	if ch, ok := c.(connector.Checker); ok {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := ch.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
}

// errStop is what the test emitter returns to end a Read.
var errStop = errors.New("sdktest: emitter refused the batch (the engine could not publish it)")

// read runs one Read from resume. accept is called for each batch; it
// returns false to refuse the batch with errStop (the batch then counts
// as not published), and Read must return.
func read(t testing.TB, src connector.Source, resume []byte, d time.Duration, accept func([]*events.Event) bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var err error
	noPanic(t, "Read", func() {
		err = src.Read(ctx, resume, connector.EmitterFunc(func(ctx context.Context, b []*events.Event) error {
			cp := make([]*events.Event, len(b))
			for i, e := range b {
				cp[i] = e.Clone()
			}
			if !accept(cp) {
				return errStop
			}
			return nil
		}))
	})
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("Read did not return within %s after its emitter failed or it had emitted enough", d)
	}
	return err
}

// Source runs the source checks.
func Source(t *testing.T, c SourceCase) {
	t.Helper()
	want := c.Events
	if want <= 0 {
		want = 20
	}
	d := timeout(c.Timeout)

	t.Run("lifecycle", func(t *testing.T) {
		src := build(t, catalog.Source, c.Name, c.Config).(connector.Source)
		check(t, src, d)
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		n := 0
		var err error
		noPanic(t, "Read", func() {
			err = src.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
				for _, e := range b {
					if e.Type.IsData() && e.Metadata.Position == "" {
						t.Errorf("event %d (%s) has no Metadata.Position: the engine could not resume after it", n, e.Type)
					}
					if _, jerr := e.Data.JSON(); jerr != nil {
						t.Errorf("event %d: data is not JSON: %v", n, jerr)
					}
					n++
				}
				if n >= want {
					cancel() // the engine stopping the source
				}
				return nil
			}))
		})
		if ctx.Err() == context.DeadlineExceeded {
			t.Fatalf("Read did not return within %s of its context ending (emitted %d events)", d, n)
		}
		if err != nil {
			t.Errorf("Read returned %v after its context ended; want nil", err)
		}
		if n == 0 {
			t.Error("Read emitted nothing")
		}
		closeIt(t, src)
	})

	t.Run("at-least-once on restart", func(t *testing.T) {
		src := build(t, catalog.Source, c.Name, c.Config).(connector.Source)
		var committed []byte
		var seen, failed []*events.Event
		err := read(t, src, nil, d, func(b []*events.Event) bool {
			if len(seen) >= want/2 && len(b) > 0 {
				failed = b
				return false
			}
			seen = append(seen, b...)
			if len(b) > 0 {
				committed = []byte(b[len(b)-1].Metadata.Position)
			}
			return true
		})
		closeIt(t, src)
		if failed == nil {
			if len(seen) < 4 {
				t.Fatalf("the source emitted %d events and stopped (err %v); the check needs at least 4", len(seen), err)
			}
			t.Skipf("the source was exhausted after %d events before a batch could be refused", len(seen))
		}
		if err == nil {
			t.Errorf("Read returned nil after Emit failed: the engine would take the source as finished")
		}
		// A restart from the committed position must emit the refused
		// batch again.
		src = build(t, catalog.Source, c.Name, c.Config).(connector.Source)
		missing := map[string]bool{}
		for _, e := range failed {
			missing[identity(e)] = true
		}
		var again int
		rerr := read(t, src, committed, d, func(b []*events.Event) bool {
			for _, e := range b {
				delete(missing, identity(e))
				again++
			}
			return len(missing) > 0 && again < 100*want
		})
		closeIt(t, src)
		if rerr != nil && !errors.Is(rerr, errStop) {
			t.Errorf("restarted Read: %v", rerr)
		}
		if len(missing) > 0 {
			t.Errorf("restarted from %q, the source did not emit %d of the %d events whose publishing failed (at-least-once broken): e.g. %v", committed, len(missing), len(failed), firstKey(missing))
		}
	})

	t.Run("bad input", func(t *testing.T) {
		badConfig(t, catalog.Source, c.Name, c.Config)
	})
}

// identity is what makes a source event the same event when emitted
// again: its position and data.
func identity(e *events.Event) string {
	b, _ := e.Data.JSON()
	return e.Metadata.Position + "\x00" + string(e.Type) + "\x00" + string(b)
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return strings.ReplaceAll(k, "\x00", " ")
	}
	return ""
}

func write(t testing.TB, s connector.Sink, batch []*events.Event, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var err error
	noPanic(t, "Write", func() { err = s.Write(ctx, batch) })
	return err
}

// Sink runs the sink checks.
func Sink(t *testing.T, c SinkCase) {
	t.Helper()
	d := timeout(c.Timeout)
	batch := c.Batch
	if batch == nil {
		batch = Events()
	}

	t.Run("lifecycle", func(t *testing.T) {
		s := build(t, catalog.Sink, c.Name, c.Config).(connector.Sink)
		check(t, s, d)
		if err := write(t, s, batch, d); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if err := write(t, s, nil, d); err != nil {
			t.Errorf("Write of an empty batch: %v", err)
		}
		closeIt(t, s)
	})

	t.Run("at-least-once on restart", func(t *testing.T) {
		s := build(t, catalog.Sink, c.Name, c.Config).(connector.Sink)
		if err := write(t, s, batch, d); err != nil {
			t.Fatalf("Write: %v", err)
		}
		closeIt(t, s)
		// The engine redelivers what it could not commit: the same batch
		// to a new instance.
		s = build(t, catalog.Sink, c.Name, c.Config).(connector.Sink)
		if err := write(t, s, batch, d); err != nil {
			t.Fatalf("Write of a redelivered batch after a restart: %v", err)
		}
		closeIt(t, s)
		if c.Read == nil {
			return
		}
		rows := c.Read(t)
		have := map[string]bool{}
		for _, r := range rows {
			b, _ := json.Marshal(r)
			have[string(b)] = true
		}
		for i, e := range batch {
			row, err := e.Row()
			if err != nil || row == nil {
				continue
			}
			b, _ := json.Marshal(normalize(row))
			if !have[string(b)] {
				t.Errorf("row of event %d is not in what the sink wrote: %s", i, b)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		badConfig(t, catalog.Sink, c.Name, c.Config)
		s := build(t, catalog.Sink, c.Name, c.Config).(connector.Sink)
		defer closeIt(t, s)
		b, bad := badEvents()
		err := write(t, s, b, d)
		var we *connector.WriteError
		switch {
		case err == nil:
		case errors.As(err, &we):
			for i, ferr := range we.Failed {
				if !bad[i] {
					t.Errorf("event %d is good but failed: %v", i, ferr)
				}
				if i < 0 || i >= len(b) {
					t.Errorf("WriteError names index %d of a batch of %d", i, len(b))
				}
			}
		default:
			t.Errorf("a batch with bad events failed whole (good events are lost with them): %v", err)
		}
	})
}

// normalize makes a row compare as JSON does after a round trip.
func normalize(row map[string]any) map[string]any {
	b, _ := json.Marshal(row)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// Transform runs the transform checks.
func Transform(t *testing.T, c TransformCase) {
	t.Helper()
	batch := c.Batch
	if batch == nil {
		batch = Events()
	}
	t.Run("lifecycle", func(t *testing.T) {
		tr := build(t, catalog.Transform, c.Name, c.Config).(connector.Transform)
		var err error
		noPanic(t, "Apply", func() { _, err = tr.Apply(context.Background(), batch) })
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		closeIt(t, tr)
	})
	t.Run("bad input", func(t *testing.T) {
		badConfig(t, catalog.Transform, c.Name, c.Config)
		tr := build(t, catalog.Transform, c.Name, c.Config).(connector.Transform)
		b, bad := badEvents()
		var out []*events.Event
		var err error
		noPanic(t, "Apply", func() { out, err = tr.Apply(context.Background(), b) })
		var te *connector.TransformError
		switch {
		case err == nil:
		case errors.As(err, &te):
			idx := map[*events.Event]int{}
			for i, e := range b {
				idx[e] = i
			}
			for _, f := range te.Failed {
				if i, ok := idx[f.Event]; ok && !bad[i] {
					t.Errorf("event %d is good but failed: %v", i, f.Err)
				}
			}
		default:
			t.Errorf("a batch with bad events failed whole: %v", err)
		}
		for _, e := range out {
			if _, err := events.Marshal(e); err != nil {
				t.Errorf("an output event does not encode: %v", err)
			}
		}
	})
}
