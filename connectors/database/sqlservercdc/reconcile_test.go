package sqlservercdc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

// readHooked is read with a hook called (outside the emitter's lock)
// after each accepted batch, to change the database while the source
// runs.
func readHooked(t *testing.T, s *Source, resume []byte, want, crashAfter int, hook func(b []*events.Event), stop ...func() bool) run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	ctx = connector.WithRuntime(ctx, &connector.Runtime{Name: "sql", Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var mu sync.Mutex
	r := run{committed: resume}
	errCrash := errors.New("publish failed")
	emit := connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		mu.Lock()
		if crashAfter > 0 && len(r.events)+len(b) > crashAfter {
			mu.Unlock()
			cancel()
			return errCrash
		}
		r.events = append(r.events, b...)
		r.committed = []byte(b[len(b)-1].Metadata.Position)
		enough := want > 0 && len(r.events) >= want
		mu.Unlock()
		if hook != nil {
			hook(b)
		}
		if len(stop) > 0 && stop[0]() {
			enough = true
		}
		if enough {
			cancel()
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- s.Read(ctx, resume, emit) }()
	select {
	case r.err = <-done:
	case <-time.After(readGuard): // a guard against a hang, not a timing assertion
		cancel()
		t.Fatalf("Read did not return; %d events so far", len(r.events))
	}
	if errors.Is(r.err, errCrash) {
		r.err = nil
	}
	r.logs = logs.String()
	return r
}

// readUntilHooked reads until done holds for all events so far, calling
// hook after each accepted batch (before done is asked).
func readUntilHooked(t *testing.T, s *Source, resume []byte, hook func(b []*events.Event), done func(all []*events.Event) bool) []*events.Event {
	t.Helper()
	var evs []*events.Event
	r := readHooked(t, s, resume, -1, 0, func(b []*events.Event) {
		evs = append(evs, b...)
		hook(b)
	}, func() bool { return done(evs) })
	if r.err != nil {
		t.Fatal(r.err)
	}
	return evs
}

// once calls fn the first time cond holds for a batch.
func once(cond func(b []*events.Event) bool, fn func()) func(b []*events.Event) {
	done := false
	return func(b []*events.Event) {
		if !done && cond(b) {
			done = true
			fn()
		}
	}
}

func hasEvent(typ events.Type, stream, key string) func(b []*events.Event) bool {
	return func(b []*events.Event) bool {
		for _, e := range b {
			if e.Type == typ && e.Stream == stream && string(e.Key) == key {
				return true
			}
		}
		return false
	}
}

// reconcileWorld has six orders and one customer; the capture job lags
// (a commit reaches the change tables only after the next read of the
// max LSN), and one update is committed before the snapshot starts but
// not captured yet: its change lands above the snapshot's LSN.
func reconcileWorld(t *testing.T) *fakeDB {
	f := world(t, 6)
	f.lagging = true
	f.commit(func(x *tx) {
		x.update("orders", int64(3), []byte("3.3300"), "committed before the snapshot, captured after")
	})
	return f
}

// duringSnapshot changes rows while the snapshot's first orders chunk is
// published: one already read (1), one of the next chunk (4), one of a
// later chunk deleted (5) and one inserted into a later chunk (7).
func duringSnapshot(f *fakeDB) func() {
	return func() {
		f.commit(func(x *tx) {
			x.update("orders", int64(1), []byte("1.1100"), "changed after its chunk")
			x.update("orders", int64(4), []byte("4.4400"), "changed before its chunk")
			x.delete("orders", int64(5))
			x.insert("orders", int64(7), []byte("7.7700"), "inserted during the snapshot")
		})
	}
}

// TestSnapshotReconciledWithStream: a row changed during the snapshot, or
// committed before it and captured after its start, arrives once: rows
// whose changes the stream delivers are left out of their chunk, and the
// source waits for the lagging capture job before deciding that.
func TestSnapshotReconciledWithStream(t *testing.T) {
	// Also with a capture job whose quiet-period entries are logged
	// after a commit their scan did not reach: the wait goes on to the
	// next entry.
	for _, scanning := range []bool{false, true} {
		f := reconcileWorld(t)
		f.scanning = scanning
		r := readHooked(t, newSource(t, f, "snapshot_chunk_size: 2\n"), nil, 9, 0, once(hasEvent(events.SnapshotRead, "dbo.orders", `{"id":1}`), duringSnapshot(f)))
		if r.err != nil {
			t.Fatal(r.err)
		}
		wantLines(t, summary(r.events),
			`snapshot-read dbo.customers {"id":1} {"id":1,"name":"Ada"}`,
			`snapshot-read dbo.orders {"id":1} {"amount":1.5000,"id":1,"note":"order 1"}`,
			`snapshot-read dbo.orders {"id":2} {"amount":2.5000,"id":2,"note":"order 2"}`,
			// 3 and 4 (changed before their chunk was read), 5 (deleted)
			// and 7 (inserted) come from the stream only.
			`snapshot-read dbo.orders {"id":6} {"amount":6.5000,"id":6,"note":"order 6"}`,
			`update dbo.orders {"id":3} {"after":{"amount":3.3300,"id":3,"note":"committed before the snapshot, captured after"},"before":{"amount":3.5000,"id":3,"note":"order 3"}}`,
			`update dbo.orders {"id":1} {"after":{"amount":1.1100,"id":1,"note":"changed after its chunk"},"before":{"amount":1.5000,"id":1,"note":"order 1"}}`,
			`update dbo.orders {"id":4} {"after":{"amount":4.4400,"id":4,"note":"changed before its chunk"},"before":{"amount":4.5000,"id":4,"note":"order 4"}}`,
			`delete dbo.orders {"id":5} {"amount":5.5000,"id":5,"note":"order 5"}`,
			`insert dbo.orders {"id":7} {"amount":7.7700,"id":7,"note":"inserted during the snapshot"}`)
		if got, want := apply(t, r.events), tableState(t, f); got != want {
			t.Fatalf("final state\n%s\nwant\n%s", got, want)
		}
	}
}

// TestSnapshotWithoutCaptureWait: without waiting for the capture job,
// the change committed just before chunk 2 was read is not in the change
// tables yet when the chunk is reconciled: row 4 comes as a snapshot row
// with its new state and again as its change (what
// snapshot_capture_wait_secs prevents; the state stays right).
func TestSnapshotWithoutCaptureWait(t *testing.T) {
	f := reconcileWorld(t)
	r := readHooked(t, newSource(t, f, "snapshot_chunk_size: 2\nsnapshot_capture_wait_secs: 0\n"), nil, 10, 0, once(hasEvent(events.SnapshotRead, "dbo.orders", `{"id":1}`), duringSnapshot(f)))
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := strings.Join(summary(r.events), "\n")
	if !strings.Contains(got, `snapshot-read dbo.orders {"id":4} {"amount":4.4400`) || !strings.Contains(got, `update dbo.orders {"id":4}`) {
		t.Fatalf("without the wait, row 4 should arrive twice:\n%s", got)
	}
	if apply(t, r.events) != tableState(t, f) {
		t.Fatalf("final state differs:\n%s", got)
	}
}

// TestSnapshotReconcileAfterRestart: the keys a chunk leaves out are
// read again from the change tables after a restart (nothing of them is
// stored), so a snapshot resumed after a crash leaves out the same rows.
func TestSnapshotReconcileAfterRestart(t *testing.T) {
	f := reconcileWorld(t)
	s := newSource(t, f, "snapshot_chunk_size: 2\n")
	first := readHooked(t, s, nil, 0, 3, once(hasEvent(events.SnapshotRead, "dbo.orders", `{"id":1}`), duringSnapshot(f)))
	if first.err != nil || len(first.events) != 3 {
		t.Fatalf("%v, %d events", first.err, len(first.events))
	}
	rest := read(t, newSource(t, f, "snapshot_chunk_size: 2\n"), first.committed, 6, 0)
	if rest.err != nil {
		t.Fatal(rest.err)
	}
	wantLines(t, summary(rest.events),
		`snapshot-read dbo.orders {"id":6} {"amount":6.5000,"id":6,"note":"order 6"}`,
		`update dbo.orders {"id":3} {"after":{"amount":3.3300,"id":3,"note":"committed before the snapshot, captured after"},"before":{"amount":3.5000,"id":3,"note":"order 3"}}`,
		`update dbo.orders {"id":1} {"after":{"amount":1.1100,"id":1,"note":"changed after its chunk"},"before":{"amount":1.5000,"id":1,"note":"order 1"}}`,
		`update dbo.orders {"id":4} {"after":{"amount":4.4400,"id":4,"note":"changed before its chunk"},"before":{"amount":4.5000,"id":4,"note":"order 4"}}`,
		`delete dbo.orders {"id":5} {"amount":5.5000,"id":5,"note":"order 5"}`,
		`insert dbo.orders {"id":7} {"amount":7.7700,"id":7,"note":"inserted during the snapshot"}`)
}

// TestCaptureJobStopped: when the capture job does not move (SQL Server
// Agent stopped), a snapshot does not hang: it waits once for
// snapshot_capture_wait_secs, says so and goes on.
func TestCaptureJobStopped(t *testing.T) {
	f := world(t, 3)
	st := &stoppedJob{fakeDB: f}
	s := newSource(t, f, "snapshot_chunk_size: 1\nsnapshot_capture_wait_secs: 1\n")
	s.open = func(context.Context) (store, error) { return st, nil }
	r := read(t, s, nil, 4, 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.events) != 4 || strings.Count(r.logs, "the capture job has not passed") != 1 {
		t.Fatalf("%d events; logs:\n%s", len(r.events), r.logs)
	}
}

// stoppedJob is a database whose capture job does not run: the max LSN
// and its time stay where they are while the clock goes on.
type stoppedJob struct{ *fakeDB }

func (s *stoppedJob) Capture(context.Context) (captureState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = s.clock.Add(time.Second)
	return captureState{Max: s.max, MaxTime: s.maxTime, Now: s.clock}, nil
}

// tableState renders the fake's tables as apply renders events.
func tableState(t *testing.T, f *fakeDB) string {
	t.Helper()
	var evs []*events.Event
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.tables {
		tab := &table{name: ft.name, stream: "dbo." + ft.name, cols: ft.cols, key: ft.key, byName: map[string]*column{}}
		for i := range ft.cols {
			tab.byName[ft.cols[i].Name] = &tab.cols[i]
		}
		names := make([]string, len(ft.cols))
		for i, c := range ft.cols {
			names[i] = c.Name
		}
		for _, row := range ft.rows {
			obj, key, _, err := rowJSON(tab, names, row)
			if err != nil {
				panic(err)
			}
			evs = append(evs, &events.Event{Type: events.SnapshotRead, Stream: tab.stream, Key: key, Data: events.RawPayload(obj)})
		}
	}
	return apply(t, evs)
}

// TestTableEnabledWhileStreaming: a table enabled for CDC while the
// source streams (a new capture instance of a table include_tables
// takes) is announced, snapshotted in reconciled chunks and then
// streamed; with snapshot_mode never it is streamed from its capture
// instance's start without a snapshot.
func TestTableEnabledWhileStreaming(t *testing.T) {
	enableInvoices := func(f *fakeDB) func() {
		return func() {
			f.addTable("invoices", colsCustomers, []string{"id"})
			// Rows from before CDC was enabled: only a snapshot has them.
			f.commit(func(x *tx) {
				x.insert("invoices", int64(1), "first")
				x.insert("invoices", int64(2), "second")
			})
			f.enable("invoices", "dbo_invoices")
			f.commit(func(x *tx) {
				x.update("invoices", int64(1), "first, changed")
				x.insert("orders", int64(3), nil, "while streaming")
			})
		}
	}
	for _, c := range []struct {
		mode string
		want []string
	}{
		{"initial", []string{
			`schema dbo.invoices  {}`,
			`snapshot-read dbo.invoices {"id":1} {"id":1,"name":"first, changed"}`,
			// invoice 2 changed after the snapshot started: the
			// stream delivers it, the chunk leaves it out.
			`insert dbo.orders {"id":3} {"amount":null,"id":3,"note":"while streaming"}`,
			`update dbo.invoices {"id":2} {"after":{"id":2,"name":"second, changed"},"before":{"id":2,"name":"second"}}`,
		}},
		{"never", []string{
			`schema dbo.invoices  {}`,
			`update dbo.invoices {"id":1} {"after":{"id":1,"name":"first, changed"},"before":{"id":1,"name":"first"}}`,
			`insert dbo.orders {"id":3} {"amount":null,"id":3,"note":"while streaming"}`,
			`update dbo.invoices {"id":2} {"after":{"id":2,"name":"second, changed"},"before":{"id":2,"name":"second"}}`,
		}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			f := world(t, 2)
			s := newSource(t, f, "snapshot_chunk_size: 1\nsnapshot_mode: "+c.mode+"\n")
			start := 3 // the snapshot's three rows, or never's three inserts
			changeInvoice2 := func() {
				f.commit(func(x *tx) { x.update("invoices", int64(2), "second, changed") })
			}
			hookInvoices := once(hasEvent(events.Schema, "dbo.invoices", ""), func() {
				if c.mode == "never" {
					changeInvoice2()
				}
			})
			hookRead := once(hasEvent(events.SnapshotRead, "dbo.invoices", `{"id":1}`), changeInvoice2)
			n := 0
			r := readHooked(t, s, nil, start+len(c.want), 0, func(b []*events.Event) {
				n += len(b)
				if n == start {
					enableInvoices(f)()
				}
				hookInvoices(b)
				hookRead(b)
			})
			if r.err != nil {
				t.Fatal(r.err)
			}
			got := summary(r.events[start:])
			for i := range got {
				if strings.HasPrefix(got[i], "schema ") {
					got[i] = got[i][:strings.Index(got[i], "{")] + "{}"
				}
			}
			wantLines(t, got, c.want...)
			if apply(t, r.events) != tableState(t, f) {
				t.Fatalf("final state differs")
			}
		})
	}
}

// TestTableEnabledWhileDown: a table enabled while the source was down is
// snapshotted when it starts again (its rows from before CDC are only in
// a snapshot), and a restart in the middle of that snapshot goes on with
// it.
func TestTableEnabledWhileDown(t *testing.T) {
	f := world(t, 1)
	r := read(t, newSource(t, f, ""), nil, 2, 0)
	f.addTable("invoices", colsCustomers, []string{"id"})
	f.commit(func(x *tx) {
		for i := 1; i <= 3; i++ {
			x.insert("invoices", int64(i), fmt.Sprintf("invoice %d", i))
		}
	})
	f.enable("invoices", "dbo_invoices")
	s := newSource(t, f, "snapshot_chunk_size: 2\n")
	r2 := read(t, s, r.committed, 0, 2)
	wantLines(t, summary(r2.events),
		`snapshot-read dbo.invoices {"id":1} {"id":1,"name":"invoice 1"}`,
		`snapshot-read dbo.invoices {"id":2} {"id":2,"name":"invoice 2"}`)
	f.commit(func(x *tx) { x.delete("invoices", int64(1)) })
	r3 := read(t, newSource(t, f, "snapshot_chunk_size: 2\n"), r2.committed, 2, 0)
	if r3.err != nil {
		t.Fatal(r3.err)
	}
	wantLines(t, summary(r3.events),
		`snapshot-read dbo.invoices {"id":3} {"id":3,"name":"invoice 3"}`,
		`delete dbo.invoices {"id":1} {"id":1,"name":"invoice 1"}`)
	var p position
	if err := json.Unmarshal(r3.committed, &p); err != nil || !strings.Contains(strings.Join(p.Tables, ","), "invoices") {
		t.Fatalf("position %s %v", r3.committed, err)
	}
}

// TestCommitTime: a change carries its transaction's commit time
// (fn_cdc_map_lsn_to_time, the server's local time, with the server's
// offset) as source.commit_ts, which the Debezium codec writes as
// source.ts_ms.
func TestCommitTime(t *testing.T) {
	f := world(t, 0)
	at := f.commit(func(x *tx) { x.insert("orders", int64(1), nil, "x") })
	r := read(t, newSource(t, f, "snapshot_mode: never\n"), nil, 2, 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	e := r.events[1]
	w := f.times[at] // 10:00:0x server time, +05:30: 04:30:0x UTC
	want := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, f.tz).UTC()
	if e.Source.CommitTS == nil || !e.Source.CommitTS.Equal(want) || want.Hour() != 4 || want.Minute() != 30 {
		t.Fatalf("commit_ts %v, want %v", e.Source.CommitTS, want)
	}
	codec, err := events.NewCodec(events.CodecDebezium, events.DebeziumOptions{}, events.CloudEventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := codec.Append(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(fmt.Sprintf(`"ts_ms":%d`, want.UnixMilli()))) {
		t.Fatalf("envelope %s lacks ts_ms %d", b, want.UnixMilli())
	}
}

// TestNewInstanceStartNotEstablished: a capture instance whose start the
// capture job has not established (fn_cdc_get_min_lsn NULL) is not
// snapshotted, and its table not taken as known, until it is.
func TestNewInstanceStartNotEstablished(t *testing.T) {
	f := world(t, 1)
	r := read(t, newSource(t, f, ""), nil, 2, 0)
	f.addTable("invoices", colsCustomers, []string{"id"})
	f.commit(func(x *tx) {
		x.insert("invoices", int64(1), "one")
		x.insert("invoices", int64(2), "two")
	})
	ci := f.enable("invoices", "dbo_invoices")
	f.mu.Lock()
	ci.min = lsn{}
	f.mu.Unlock()
	f.commit(func(x *tx) { x.insert("orders", int64(2), nil, "two") })
	establish := once(hasEvent(events.Insert, "dbo.orders", `{"id":2}`), func() {
		f.mu.Lock()
		ci.min = f.next()
		f.mu.Unlock()
		f.commit(func(x *tx) { x.update("orders", int64(2), []byte("2.0000"), "two, changed") })
	})
	evs := readUntilHooked(t, newSource(t, f, ""), r.committed, establish, hasEvent(events.Update, "dbo.orders", `{"id":2}`))
	wantLines(t, summary(evs),
		`insert dbo.orders {"id":2} {"amount":null,"id":2,"note":"two"}`,
		`snapshot-read dbo.invoices {"id":1} {"id":1,"name":"one"}`,
		`snapshot-read dbo.invoices {"id":2} {"id":2,"name":"two"}`,
		`update dbo.orders {"id":2} {"after":{"amount":2.0000,"id":2,"note":"two, changed"},"before":{"amount":null,"id":2,"note":"two"}}`)
	var p position
	if err := json.Unmarshal([]byte(evs[0].Metadata.Position), &p); err != nil || slices.Contains(p.Tables, "invoices") {
		t.Fatalf("position before the start was established: %s", evs[0].Metadata.Position)
	}
}

// TestReconcileInstanceStartLate: a table enabled just before the
// snapshot whose capture instance's start the capture job establishes
// only during it: its changes are read once the start is there, and the
// rows they changed are left out of their chunks.
func TestReconcileInstanceStartLate(t *testing.T) {
	f := newFake()
	f.addTable("orders", colsOrders, []string{"id"})
	f.commit(func(x *tx) {
		for i := 1; i <= 4; i++ {
			x.insert("orders", int64(i), []byte(fmt.Sprintf("%d.5000", i)), fmt.Sprintf("order %d", i))
		}
	})
	ci := f.enable("orders", "dbo_orders")
	f.mu.Lock()
	start := ci.min
	ci.min = lsn{}
	f.mu.Unlock()
	r := readHooked(t, newSource(t, f, "snapshot_chunk_size: 2\n"), nil, 4, 0, once(hasEvent(events.SnapshotRead, "dbo.orders", `{"id":1}`), func() {
		f.mu.Lock()
		ci.min = start
		f.mu.Unlock()
		f.commit(func(x *tx) { x.update("orders", int64(3), []byte("3.3000"), "changed before its chunk") })
	}))
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantLines(t, summary(r.events),
		`snapshot-read dbo.orders {"id":1} {"amount":1.5000,"id":1,"note":"order 1"}`,
		`snapshot-read dbo.orders {"id":2} {"amount":2.5000,"id":2,"note":"order 2"}`,
		`snapshot-read dbo.orders {"id":4} {"amount":4.5000,"id":4,"note":"order 4"}`,
		`update dbo.orders {"id":3} {"after":{"amount":3.3000,"id":3,"note":"changed before its chunk"},"before":{"amount":3.5000,"id":3,"note":"order 3"}}`)
}
