package postgrescdc

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// checkOrdered checks a table of (id, v) written by writer, for sources
// that may repeat a state: per id, nothing follows a delete, a snapshot
// read never goes back behind a state already emitted (no stale read
// after a newer change), every update is exactly one more than the state
// before it (nothing lost), no id is inserted twice, and the last state
// is the database's. It returns how many snapshot reads repeated a state
// the stream had already delivered.
func checkOrdered(t *testing.T, h *harness, table string, evs []*events.Event) (repeats int) {
	t.Helper()
	type state struct {
		v               int64
		seen, gone, ins bool
	}
	rows := map[int64]*state{}
	for _, e := range dataEvents(evs, table) {
		r := rowOf(t, e)
		id := num(r["id"])
		s := rows[id]
		if s == nil {
			s = &state{}
			rows[id] = s
		}
		if s.gone {
			t.Fatalf("%s: id %d: %s event (v=%v) after its delete", table, id, e.Type, r["v"])
		}
		switch e.Type {
		case events.Delete:
			s.gone = true
			continue
		case events.Insert:
			if s.ins {
				t.Fatalf("%s: id %d inserted twice", table, id)
			}
			s.ins = true
		}
		v := num(r["v"])
		switch {
		case !s.seen:
		case e.Type == events.SnapshotRead && v < s.v:
			t.Fatalf("%s: id %d: snapshot read v=%d after v=%d was emitted (stale read)", table, id, v, s.v)
		case e.Type == events.SnapshotRead && v == s.v:
			repeats++
		case e.Type == events.Update && v != s.v+1:
			t.Fatalf("%s: id %d went from v=%d to v=%d (lost or repeated update)", table, id, s.v, v)
		case e.Type == events.Insert:
			t.Fatalf("%s: id %d inserted after it was emitted (v=%d)", table, id, s.v)
		}
		s.v, s.seen = v, true
	}
	inDB := map[int64]int64{}
	dbRows, err := h.db.Query(context.Background(), "SELECT id, v FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	for dbRows.Next() {
		var id, v int64
		if err := dbRows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		inDB[id] = v
	}
	dbRows.Close()
	for id, v := range inDB {
		s := rows[id]
		if s == nil || s.gone || s.v != v {
			t.Fatalf("%s: id %d: database has v=%d, events end at %+v", table, id, v, s)
		}
	}
	for id, s := range rows {
		if _, ok := inDB[id]; !ok && !s.gone {
			t.Fatalf("%s: id %d emitted (v=%d) but not in the database and no delete seen", table, id, s.v)
		}
	}
	return repeats
}

// TestWatermarkedSnapshotResume crashes the source in the middle of its
// snapshot while writers keep inserting, updating and deleting, and
// resumes it: the rest of the snapshot is read alongside the stream and
// reconciled with it by watermarks, so every row ends at its database
// image and no snapshot row is older than a change already emitted
// (before, the resumed chunks were read first and the stream then
// replayed older changes of the same rows after them).
func TestWatermarkedSnapshotResume(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO $T SELECT g, 0 FROM generate_series(1, 3000) g`,
	)
	table := h.name
	cfg := h.config([]string{"$T"}, "snapshot:\n  batch_size: 100\n  parallel_tables: 1\n")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); writer(t, table, 3001, 1500, 11) }()

	// First run: crash at the fourth batch, mid-snapshot.
	s := h.source(cfg)
	s.maxBatch = 100
	rec := &recorder{crashAt: 4}
	_, done := run(context.Background(), s, "", rec)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("first run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("first run did not crash")
	}
	all := rec.snapshot()
	pos := rec.position()
	if !strings.Contains(pos, `"snapshot"`) {
		t.Fatalf("crash position %s is not mid-snapshot", pos)
	}

	// Second run, from the crash position, while the writers go on.
	s = h.source(cfg)
	s.maxBatch = 100
	rec = &recorder{}
	stop, done2 := run(context.Background(), s, pos, rec)
	defer stop()
	wg.Wait()
	deadline := time.Now().Add(90 * time.Second)
	for !caughtUp(h, table, append(append([]*events.Event(nil), all...), rec.snapshot()...)) {
		select {
		case err := <-done2:
			t.Fatalf("second run ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up after 90s; position %s", rec.position())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	all = append(all, rec.snapshot()...)
	repeats := checkOrdered(t, h, table, all)
	var reads int
	for _, e := range dataEvents(all, table) {
		if e.Type == events.SnapshotRead {
			reads++
		}
	}
	t.Logf("%d events, %d snapshot reads, %d of them repeat a state the stream had delivered", len(all), reads, repeats)
	if p := rec.position(); strings.Contains(p, `"inc"`) || strings.Contains(p, `"snapshot"`) {
		t.Fatalf("final position %s still has a snapshot in progress", p)
	}
}

// TestSnapshotSignal: a source streaming without a snapshot (mode never)
// reads a table again when a second instance of the same config signals
// it (what `rivven-connect snapshot` does), while writers change it; the
// reads are reconciled with the stream like a resumed snapshot's.
func TestSnapshotSignal(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`,
		`CREATE TABLE $T_other (id bigint PRIMARY KEY)`,
		`INSERT INTO $T SELECT g, 0 FROM generate_series(1, 1500) g`,
	)
	table := h.name
	cfg := h.config([]string{"$T", "$T_other"}, "snapshot:\n  mode: never\n  batch_size: 100\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	defer stop()

	if err := h.source(cfg).RequestSnapshot(context.Background(), []string{"nosuchtable"}); err == nil || !strings.Contains(err.Error(), "nosuchtable") {
		t.Fatalf("signal for an unknown table: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); writer(t, table, 1501, 800, 23) }()
	if err := h.source(cfg).RequestSnapshot(context.Background(), []string{table}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitFor(t, 90*time.Second, "caught up", func() bool { return caughtUp(h, table, rec.snapshot()) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	evs := rec.snapshot()
	repeats := checkOrdered(t, h, table, evs)
	var reads int
	for _, e := range dataEvents(evs, table) {
		if e.Type == events.SnapshotRead {
			reads++
		}
	}
	if reads < 1000 {
		t.Fatalf("%d snapshot reads after the signal, want the table's rows", reads)
	}
	if n := len(dataEvents(evs, h.name+"_other")); n != 0 {
		t.Fatalf("%d events of a table that was not signalled", n)
	}
	t.Logf("%d events, %d snapshot reads, %d repeats", len(evs), reads, repeats)
	if p := rec.position(); strings.Contains(p, `"inc"`) {
		t.Fatalf("final position %s still has a snapshot in progress", p)
	}
}
