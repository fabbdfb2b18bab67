package postgrescdc

import (
	"context"
	"errors"
	"fmt"
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
// the stream had delivered at or after event from (of the table's events)
// — a row the stream delivered since the snapshot began, which must be
// left out of its chunk.
func checkOrdered(t *testing.T, h *harness, table string, evs []*events.Event, from int) (repeats int) {
	t.Helper()
	type state struct {
		v               int64
		at              int // index of the event that set v
		seen, gone, ins bool
	}
	rows := map[int64]*state{}
	for i, e := range dataEvents(evs, table) {
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
		case e.Type == events.SnapshotRead && v == s.v && s.at >= from:
			repeats++
			if repeats <= 10 {
				t.Logf("%s: id %d: snapshot read repeats v=%d, delivered by event %d (%s)", table, id, v, s.at, dataEvents(evs, table)[s.at].Type)
			}
		case e.Type == events.Update && v != s.v+1:
			t.Fatalf("%s: id %d went from v=%d to v=%d (lost or repeated update)", table, id, s.v, v)
		case e.Type == events.Insert:
			t.Fatalf("%s: id %d inserted after it was emitted (v=%d)", table, id, s.v)
		}
		s.v, s.seen, s.at = v, true, i
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

// finishSnapshot waits until the recorded position shows no snapshot in
// progress. When the stream had delivered every row of a table's last
// chunk, the chunk emits nothing and the next event's position is the
// first to carry the snapshot's end: rows are inserted (ids from
// 1000000 on) until one does.
func finishSnapshot(t *testing.T, h *harness, table string, rec *recorder) {
	t.Helper()
	for i := 0; ; i++ {
		if p := rec.position(); p != "" && !strings.Contains(p, `"inc"`) && !strings.Contains(p, `"snapshot"`) {
			return
		}
		if err := sourceStopped.Load(); err != nil {
			t.Fatalf("waiting for the snapshot to finish: the source stopped: %v", *err)
		}
		if i == 600 {
			t.Fatalf("the snapshot did not finish; position %s", rec.position())
		}
		h.exec(fmt.Sprintf("INSERT INTO %s (id, v) VALUES (%d, 0)", table, 1000000+i))
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWatermarkedSnapshotResume crashes the source in the middle of its
// snapshot while writers keep inserting, updating and deleting, and
// resumes it: the rest of the snapshot is read alongside the stream and
// reconciled with it by watermarks, so every row ends at its database
// image and no snapshot row is older than a change already emitted
// (before, the resumed chunks were read first and the stream then
// replayed older changes of the same rows after them), and no row the
// stream delivered is read again (before, some 50 of 3000 were).
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

	// Second run, from the crash position, while the writers go on (a
	// second one from now, so that rows change while the rest is read).
	wg.Add(1)
	go func() { defer wg.Done(); writer(t, table, 5001, 1500, 12) }()
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
	finishSnapshot(t, h, table, rec)
	waitFor(t, 60*time.Second, "caught up", func() bool {
		return caughtUp(h, table, append(append([]*events.Event(nil), all...), rec.snapshot()...))
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	all = append(all, rec.snapshot()...)
	repeats := checkOrdered(t, h, table, all, 0)
	var reads int
	for _, e := range dataEvents(all, table) {
		if e.Type == events.SnapshotRead {
			reads++
		}
	}
	t.Logf("%d events, %d snapshot reads, %d of them repeat a state the stream had delivered", len(all), reads, repeats)
	if repeats > 0 {
		t.Fatalf("%d snapshot reads repeat a state the stream had already delivered", repeats)
	}
	if p := rec.position(); strings.Contains(p, `"inc"`) || strings.Contains(p, `"snapshot"`) {
		t.Fatalf("final position %s still has a snapshot in progress", p)
	}
}

// TestSnapshotSignal: a source streaming without a snapshot (mode never)
// reads a table again when a second instance of the same config signals
// it (what `rivven-connect snapshot` does), while writers change it; the
// reads are reconciled with the stream like a resumed snapshot's: rows
// changed before the signal are read again, rows the stream delivered
// after it are not.
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
	// Changes before the signal, all emitted before it is written: the
	// insert into the other table commits after them.
	writer(t, table, 1501, 200, 23)
	h.exec(`INSERT INTO $T_other VALUES (1)`)
	waitFor(t, 60*time.Second, "changes before the signal", func() bool { return len(dataEvents(rec.snapshot(), h.name+"_other")) > 0 })
	before := len(dataEvents(rec.snapshot(), table))
	if err := h.source(cfg).RequestSnapshot(context.Background(), []string{table}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); writer(t, table, 2001, 800, 24) }()
	wg.Wait()
	finishSnapshot(t, h, table, rec)
	waitFor(t, 90*time.Second, "caught up", func() bool { return caughtUp(h, table, rec.snapshot()) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	evs := rec.snapshot()
	repeats := checkOrdered(t, h, table, evs, before)
	var reads int
	for _, e := range dataEvents(evs, table) {
		if e.Type == events.SnapshotRead {
			reads++
		}
	}
	if reads < 1000 {
		t.Fatalf("%d snapshot reads after the signal, want the table's rows", reads)
	}
	if n := len(dataEvents(evs, h.name+"_other")); n != 1 {
		t.Fatalf("%d events of a table that was not signalled, want its one insert", n)
	}
	t.Logf("%d events, %d snapshot reads, %d repeats of a change after the signal", len(evs), reads, repeats)
	if repeats > 0 {
		t.Fatalf("%d snapshot reads repeat a state the stream delivered after the signal", repeats)
	}
	if p := rec.position(); strings.Contains(p, `"inc"`) {
		t.Fatalf("final position %s still has a snapshot in progress", p)
	}
}

// TestSnapshotRestartLeavesDeliveredRowsOut: rows changed after a
// snapshot began and before their chunk was read arrive only through
// their changes, also when the source restarts between the change and
// the chunk. The first run crashes inside the slot's exported snapshot;
// while it is down rows of later chunks are updated, deleted and
// inserted; the second run streams those changes alongside the resumed
// snapshot and crashes a few chunks later, its position past the
// changes; the third finishes. The slot stays confirmed at the
// snapshot's start meanwhile, so the third run re-reads the WAL from
// there without emitting and leaves those rows out of their chunks
// (before, it read them again, repeating their changes).
func TestSnapshotRestartLeavesDeliveredRowsOut(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO $T SELECT g, 0 FROM generate_series(1, 1000) g`,
	)
	table := h.name
	cfg := h.config([]string{"$T"}, "snapshot:\n  batch_size: 100\n  parallel_tables: 1\n")
	runTo := func(resume string, rec *recorder) (string, []*events.Event) {
		t.Helper()
		s := h.source(cfg)
		s.maxBatch = 100 // a change and a chunk are never one batch
		_, done := run(context.Background(), s, resume, rec)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run from %s: %v", resume, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("run from %s did not crash", resume)
		}
		return rec.position(), rec.snapshot()
	}

	// 1: the slot's exported snapshot, interrupted at its third chunk.
	pos1, all := runTo("", &recorder{crashAt: 3})
	p1, err := parsePosition([]byte(pos1))
	if err != nil || p1.Snap == nil {
		t.Fatalf("first crash at %s, want a snapshot position (%v)", pos1, err)
	}
	start := h.slotConfirmed()

	// Down: change rows of chunks not read yet.
	h.exec(
		`UPDATE $T SET v = v + 1 WHERE id IN (800, 900)`,
		`UPDATE $T SET v = v + 1 WHERE id = 900`,
		`DELETE FROM $T WHERE id = 950`,
		`INSERT INTO $T VALUES (1001, 0)`,
	)

	// 2: the rest alongside the stream; crash at the first batch reading
	// past id 500, once the changes above were published.
	streamed := func(evs []*events.Event) bool {
		for _, e := range dataEvents(evs, table) {
			if e.Type == events.Insert {
				return true
			}
		}
		return false
	}
	pos2, evs := runTo(pos1, &recorder{crashIf: func(batch, acked []*events.Event) bool {
		if !streamed(acked) {
			return false
		}
		for _, e := range dataEvents(batch, table) {
			if e.Type == events.SnapshotRead && num(rowOf(t, e)["id"]) > 500 {
				return true
			}
		}
		return false
	}})
	all = append(all, evs...)
	p2, err := parsePosition([]byte(pos2))
	if err != nil || p2.Inc == nil || p2.LSN <= p1.LSN || !streamed(evs) {
		t.Fatalf("second crash at %s: want a streaming position past %s with the snapshot under way, after the changes (%v)", pos2, pos1, err)
	}
	held := h.slotConfirmed()

	// 3: to the end.
	s := h.source(cfg)
	rec := &recorder{}
	stop, done := run(context.Background(), s, pos2, rec)
	defer stop()
	waitFor(t, 60*time.Second, "caught up", func() bool {
		select {
		case err := <-done:
			t.Fatalf("third run ended: %v", err)
		default:
		}
		return caughtUp(h, table, append(append([]*events.Event(nil), all...), rec.snapshot()...))
	})
	finishSnapshot(t, h, table, rec)
	// Once the snapshot is done the slot moves on (keepalives at least).
	waitFor(t, 60*time.Second, "the slot confirmed past the snapshot's start", func() bool { return h.slotConfirmed() != start })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	all = append(all, rec.snapshot()...)
	if repeats := checkOrdered(t, h, table, all, 0); repeats > 0 {
		t.Fatalf("%d snapshot reads repeat a state the stream had delivered", repeats)
	}
	for _, e := range dataEvents(all, table) {
		if id := num(rowOf(t, e)["id"]); e.Type == events.SnapshotRead && (id == 800 || id == 900 || id == 1001) {
			t.Fatalf("id %d read by the snapshot after the stream delivered its change", id)
		}
	}
	if p := rec.position(); strings.Contains(p, `"inc"`) {
		t.Fatalf("final position %s still has a snapshot in progress", p)
	}
	// What let the third run know those rows: the slot kept the WAL
	// from the snapshot's start while it ran.
	if held != start {
		t.Fatalf("slot confirmed %s while the snapshot ran; want it held at the snapshot's start %s", held, start)
	}
}

// TestSignalledSnapshotSurvivesRestart: a snapshot requested while a
// source in mode never streams, interrupted by a crash after its first
// chunk, goes on after the restart from the stored position's progress
// (before, a restart in never or no_data dropped it and the rest of the
// table was never read).
func TestSignalledSnapshotSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T SELECT g, 0 FROM generate_series(1, 50) g`)
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: never\n  batch_size: 10\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	defer stop()
	rec.mu.Lock()
	rec.crashIf = func(batch, acked []*events.Event) bool {
		reads := 0
		for _, e := range acked {
			if e.Type == events.SnapshotRead {
				reads++
			}
		}
		return reads > 0 // the batch after the first chunk
	}
	rec.mu.Unlock()
	if err := h.source(cfg).RequestSnapshot(context.Background(), []string{h.name}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the crash after the first chunk", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.crashed
	})
	if err := stop(); err != nil && !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	pos := rec.position()
	first := len(eventsOf(rec, h.name, events.SnapshotRead))
	if first == 0 || first >= 50 || !strings.Contains(pos, `"inc"`) {
		t.Fatalf("before the restart: %d rows read, position %s", first, pos)
	}
	rec2 := &recorder{}
	stop2, _ := run(context.Background(), h.source(cfg), pos, rec2)
	defer stop2()
	finishSnapshot(t, h, h.name, rec2)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	ids := map[int64]bool{}
	for _, r := range [][]*events.Event{eventsOf(rec, h.name, events.SnapshotRead), eventsOf(rec2, h.name, events.SnapshotRead)} {
		for _, e := range r {
			ids[num(rowOf(t, e)["id"])] = true
		}
	}
	for id := int64(1); id <= 50; id++ {
		if !ids[id] {
			t.Fatalf("row %d never read: the requested snapshot was not continued after the restart (%d rows read before it, %d after)", id, first, len(eventsOf(rec2, h.name, events.SnapshotRead)))
		}
	}
}
