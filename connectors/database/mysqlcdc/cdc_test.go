package mysqlcdc

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// workload writes to a table (id INT PRIMARY KEY, v BIGINT) where every
// write sets v to a new, globally increasing version, so the chain of
// versions per key shows lost, repeated or reordered changes.
type workload struct {
	t       testing.TB
	c       *conn
	table   string
	rng     *rand.Rand
	mu      sync.Mutex
	version int64
	rows    map[int]int64
	written map[[2]int64]bool // (id, version) of every committed insert/update
	nextID  int
}

func newWorkload(t testing.TB, table string, seed uint64) *workload {
	c := testDB(t)
	return &workload{t: t, c: c, table: table, rng: rand.New(rand.NewPCG(seed, seed^0x9e37)), rows: map[int]int64{}, written: map[[2]int64]bool{}, nextID: 1}
}

// load inserts n rows in multi-row statements.
func (w *workload) load(n int) {
	for n > 0 {
		k := min(n, 500)
		q := "INSERT INTO " + w.table + " (id, v) VALUES "
		for i := range k {
			if i > 0 {
				q += ","
			}
			w.version++
			q += fmt.Sprintf("(%d,%d)", w.nextID, w.version)
			w.rows[w.nextID] = w.version
			w.written[[2]int64{int64(w.nextID), w.version}] = true
			w.nextID++
		}
		mustExec(w.t, w.c, q)
		n -= k
	}
}

// step runs one random transaction of 1..maxOps inserts, updates and
// deletes.
func (w *workload) step(maxOps int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ops := 1 + w.rng.IntN(maxOps)
	stmts := []string{"BEGIN"}
	pending := map[int]int64{}
	var written [][2]int64
	live := func(id int) (int64, bool) {
		if v, ok := pending[id]; ok {
			return v, v >= 0
		}
		v, ok := w.rows[id]
		return v, ok
	}
	for range ops {
		id := 1 + w.rng.IntN(w.nextID+5)
		w.version++
		_, exists := live(id)
		switch {
		case !exists:
			stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (id, v) VALUES (%d, %d)", w.table, id, w.version))
			pending[id] = w.version
			written = append(written, [2]int64{int64(id), w.version})
			if id >= w.nextID {
				w.nextID = id + 1
			}
		case w.rng.IntN(5) == 0:
			stmts = append(stmts, fmt.Sprintf("DELETE FROM %s WHERE id = %d", w.table, id))
			pending[id] = -1
		default:
			stmts = append(stmts, fmt.Sprintf("UPDATE %s SET v = %d WHERE id = %d", w.table, w.version, id))
			pending[id] = w.version
			written = append(written, [2]int64{int64(id), w.version})
		}
	}
	stmts = append(stmts, "COMMIT")
	mustExec(w.t, w.c, stmts...)
	for id, v := range pending {
		if v < 0 {
			delete(w.rows, id)
		} else {
			w.rows[id] = v
		}
	}
	for _, k := range written {
		w.written[k] = true
	}
}

// runConcurrently writes until stop is closed.
func (w *workload) runConcurrently(stop <-chan struct{}, maxOps int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.step(maxOps)
		}
	}()
	return done
}

func (w *workload) state() map[int]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int]int64, len(w.rows))
	for k, v := range w.rows {
		out[k] = v
	}
	return out
}

// replay applies events to a model of the table. strict requires exactly
// once in order: an insert or snapshot row for an absent key, updates and
// deletes whose before image is the current version. Otherwise changes
// may repeat (at least once) and the model just follows them.
type replay struct {
	rows map[int]int64
	seen map[[2]int64]bool
}

func num(t testing.TB, m map[string]any, k string) int64 {
	t.Helper()
	n, ok := m[k].(json.Number)
	if !ok {
		t.Fatalf("field %s of %v is not a number", k, m)
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func apply(t testing.TB, evs []*events.Event, strict bool) *replay {
	t.Helper()
	return replayEvents(t, evs, strict, false, false)
}

// applyOnce replays events as a consumer of a snapshot read alongside the
// stream sees them: a row not read yet may first arrive as an update or
// delete (its change reached the stream before its chunk), but no row
// arrives twice and every change follows the state before it.
func applyOnce(t testing.TB, evs []*events.Event) *replay {
	t.Helper()
	return replayEvents(t, evs, true, true, false)
}

// applyResnapshot replays events around a snapshot asked for while
// streaming: rows the stream already delivered are read again, but a read
// always carries the row's state as the changes before it left it.
func applyResnapshot(t testing.TB, evs []*events.Event) *replay {
	t.Helper()
	return replayEvents(t, evs, true, true, true)
}

func replayEvents(t testing.TB, evs []*events.Event, strict, unseenChanges, rereads bool) *replay {
	t.Helper()
	r := &replay{rows: map[int]int64{}, seen: map[[2]int64]bool{}}
	known := map[int]bool{} // ids some event has named
	for i, e := range evs {
		if !e.Type.IsData() {
			continue
		}
		d := data(t, e)
		var key map[string]any
		if err := json.Unmarshal(e.Key, &key); err != nil {
			t.Fatalf("event %d key %s: %v", i, e.Key, err)
		}
		switch e.Type {
		case events.SnapshotRead, events.Insert:
			id, v := int(num(t, d, "id")), num(t, d, "v")
			if old, ok := r.rows[id]; rereads && e.Type == events.SnapshotRead && known[id] {
				if !ok || old != v {
					t.Fatalf("event %d: snapshot read of id %d v %d but the changes before it left v %d (present %v): stale read", i, id, v, old, ok)
				}
				continue
			}
			if old, ok := r.rows[id]; ok && strict {
				t.Fatalf("event %d: %s of id %d v %d but it exists with v %d (duplicate)", i, e.Type, id, v, old)
			}
			if e.Type == events.SnapshotRead && unseenChanges && known[id] {
				t.Fatalf("event %d: snapshot read of id %d v %d after the stream delivered a change of it", i, id, v)
			}
			known[id] = true
			r.rows[id] = v
			r.seen[[2]int64{int64(id), v}] = true
		case events.Update:
			b, a := d["before"].(map[string]any), d["after"].(map[string]any)
			id, bv, av := int(num(t, a, "id")), num(t, b, "v"), num(t, a, "v")
			if unseenChanges && !known[id] {
				r.rows[id] = bv
			}
			known[id] = true
			if old, ok := r.rows[id]; strict && (!ok || old != bv) {
				t.Fatalf("event %d: update of id %d from v %d but the model has v %d (present %v): lost or reordered change", i, id, bv, old, ok)
			}
			r.rows[id] = av
			r.seen[[2]int64{int64(id), av}] = true
		case events.Delete:
			id, bv := int(num(t, d, "id")), num(t, d, "v")
			if unseenChanges && !known[id] {
				r.rows[id] = bv
			}
			known[id] = true
			if old, ok := r.rows[id]; strict && (!ok || old != bv) {
				t.Fatalf("event %d: delete of id %d v %d but the model has v %d (present %v)", i, id, bv, old, ok)
			}
			delete(r.rows, id)
		}
	}
	return r
}

func sameRows(a, b map[int]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func versionedTable(t testing.TB, c *conn, prefix string) string {
	tbl := uniqueTable(t, c, prefix)
	mustExec(t, c, "CREATE TABLE "+tbl+" (id INT PRIMARY KEY, v BIGINT NOT NULL) ENGINE=InnoDB")
	return tbl
}

// TestSnapshotStreamHandoff: a snapshot taken while writers are busy,
// then streaming, delivers every change exactly once and in key order.
func TestSnapshotStreamHandoff(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "handoff")
	w := newWorkload(t, tbl, 1)
	w.load(3000)

	stopW := make(chan struct{})
	wdone := w.runConcurrently(stopW, 5)
	cfg := testConfig(tbl)
	cfg.Snapshot.BatchSize = 250
	cfg.MaxBatchSize = 64
	em := newRecorder()
	_, stop := runRead(t, newSource(t, cfg), nil, em)
	defer stop()
	waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) > 3500 })
	close(stopW)
	<-wdone
	want := w.state()
	waitFor(t, 30*time.Second, "stream to catch up", func() bool {
		ev, _ := em.snapshot()
		return sameRows(apply(t, ev, false).rows, want)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ev, _ := em.snapshot()
	r := apply(t, ev, true)
	if !sameRows(r.rows, want) {
		t.Fatalf("replayed %d rows, table has %d", len(r.rows), len(want))
	}
	snap, stream := 0, 0
	for _, e := range ev {
		if e.Type == events.SnapshotRead {
			snap++
		} else {
			stream++
		}
	}
	// Writers run from before the read view opens, so their deletes can
	// keep some of the 3000 loaded rows out of the snapshot.
	if snap < 2000 || stream == 0 {
		t.Fatalf("expected a snapshot and streamed changes, got %d snapshot and %d streamed events", snap, stream)
	}
	t.Logf("%d snapshot rows, %d streamed changes", snap, stream)
}

// TestCrashMidStream cancels Read at random batches while transactions of
// up to 40 rows are split across batches, and restarts from the last
// committed position: the result is still exactly once.
func TestCrashMidStream(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "crashstream")
	w := newWorkload(t, tbl, 2)
	w.load(500)
	cfg := testConfig(tbl)
	cfg.MaxBatchSize = 7 // split transactions across batches
	src := newSource(t, cfg)
	em := newRecorder()

	stopW := make(chan struct{})
	var wdone <-chan struct{}
	rng := rand.New(rand.NewPCG(7, 7))
	var resume []byte
	restarts := 0
	for round := 0; ; round++ {
		ctx, stop := runRead(t, src, resume, em)
		if round == 0 {
			waitFor(t, 20*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 500 })
			wdone = w.runConcurrently(stopW, 40)
		}
		if round < 8 {
			em.mu.Lock()
			em.failAfter = 1 + rng.IntN(6)
			em.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("no crash point reached")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			_, resume = em.snapshot()
			restarts++
			continue
		}
		close(stopW)
		<-wdone
		want := w.state()
		waitFor(t, 30*time.Second, "catch up", func() bool {
			ev, _ := em.snapshot()
			return sameRows(apply(t, ev, false).rows, want)
		})
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		break
	}
	ev, _ := em.snapshot()
	apply(t, ev, true) // exactly once despite restarts mid-transaction
	t.Logf("%d events over %d restarts", len(ev), restarts)
}

// TestCrashMidSnapshot cancels Read at random points of a chunked snapshot
// (with concurrent writers) and restarts from the committed position: the
// rest of the snapshot is read alongside the stream, no version is lost,
// no row arrives twice, no snapshot read follows a change of its row, and
// the replay converges on the table.
func TestCrashMidSnapshot(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "crashsnap")
	w := newWorkload(t, tbl, 3)
	w.load(2000)
	cfg := testConfig(tbl)
	cfg.Snapshot.BatchSize = 50
	src := newSource(t, cfg)
	em := newRecorder()
	stopW := make(chan struct{})
	wdone := w.runConcurrently(stopW, 3)
	rng := rand.New(rand.NewPCG(11, 3))
	var resume []byte
	snapshotResumes, streamedResumes := 0, 0
	for round := range 6 {
		ctx, stop := runRead(t, src, resume, em)
		em.mu.Lock()
		em.failAfter = 1 + rng.IntN(8)
		em.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: no crash point reached", round)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		_, resume = em.snapshot()
		if p, _ := parsePosition(resume); p != nil && p.Snap != nil {
			snapshotResumes++
			if f := p.Snap.From; f != nil && (f.File != p.File || f.Pos != p.Pos) {
				streamedResumes++ // resumed past where the snapshot began: the restart reads that binlog muted
			}
		}
	}
	if snapshotResumes == 0 || streamedResumes == 0 {
		t.Fatalf("%d restarts inside the snapshot, %d of them after streaming alongside it: want both", snapshotResumes, streamedResumes)
	}
	_, stop := runRead(t, src, resume, em)
	close(stopW)
	<-wdone
	want := w.state()
	waitFor(t, 60*time.Second, "catch up", func() bool {
		ev, _ := em.snapshot()
		return sameRows(apply(t, ev, false).rows, want)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ev, _ := em.snapshot()
	r := applyOnce(t, ev)
	// Every version committed after the load is seen at least once, and
	// every row of the load that was never changed came from the snapshot.
	w.mu.Lock()
	defer w.mu.Unlock()
	missing := 0
	for k := range w.written {
		if id := int(k[0]); w.rows[id] == k[1] && !r.seen[k] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d current row versions never emitted", missing)
	}
	t.Logf("%d events, %d snapshot resumes (%d after streaming alongside)", len(ev), snapshotResumes, streamedResumes)
}

// TestResumeFromCommittedPositionRepeatsNothing: a clean restart from the
// committed position emits only what came after it.
func TestResumeFromCommittedPositionRepeatsNothing(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "resume")
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (1, 1), (2, 2)")
	for _, useGTID := range []bool{true, false} {
		t.Run(fmt.Sprintf("gtid=%v", useGTID), func(t *testing.T) {
			cfg := testConfig(tbl)
			cfg.UseGTID = useGTID
			src := newSource(t, cfg)
			em := newRecorder()
			_, stop := runRead(t, src, nil, em)
			waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 2 })
			mustExec(t, c, "UPDATE "+tbl+" SET v = v + 10")
			waitFor(t, 30*time.Second, "first", func() bool { ev, _ := em.snapshot(); return len(ev) >= 4 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			ev, resume := em.snapshot()
			if len(ev) != 4 {
				t.Fatalf("got %d events, want 2 snapshot rows and 2 updates", len(ev))
			}
			mustExec(t, c, "UPDATE "+tbl+" SET v = v + 100 WHERE id = 2")
			em2 := newRecorder()
			_, stop = runRead(t, src, resume, em2)
			defer stop()
			waitFor(t, 30*time.Second, "resumed", func() bool { ev, _ := em2.snapshot(); return len(ev) >= 1 })
			_ = stop()
			ev2, _ := em2.snapshot()
			if len(ev2) != 1 || ev2[0].Type != events.Update {
				t.Fatalf("after resume got %d events (first %s), want the one later update", len(ev2), ev2[0].Type)
			}
			d := data(t, ev2[0])
			if got := num(t, d["after"].(map[string]any), "v"); got != 112 && got != 212 {
				t.Fatalf("after resume v = %d", got)
			}
			mustExec(t, c, "UPDATE "+tbl+" SET v = 2 WHERE id = 2", "UPDATE "+tbl+" SET v = 1 WHERE id = 1")
		})
	}
}

// TestSnapshotSignal: `rivven-connect snapshot` asks a source that only
// streams (snapshot.mode never, so it has not seen the loaded rows) to read
// a table while writers change it: rows arrive as reads (again, for those
// the stream delivered before the signal), no read carries a state older
// than a change delivered before it, the replay ends at the table's state,
// and the signal row itself is never emitted.
func TestSnapshotSignal(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "signal")
	w := newWorkload(t, tbl, 5)
	w.load(1500)
	cfg := testConfig(tbl)
	cfg.Snapshot.Mode = "never"
	cfg.Snapshot.BatchSize = 40
	cfg.SignalTable = uniqueTable(t, c, "rivven_signal")
	src := newSource(t, cfg)
	em := newRecorder()
	_, stop := runRead(t, src, nil, em)
	defer func() { _ = stop() }()
	stopW := make(chan struct{})
	wdone := w.runConcurrently(stopW, 3)
	waitFor(t, 30*time.Second, "streamed changes", func() bool { ev, _ := em.snapshot(); return len(ev) > 20 })
	if err := src.RequestSnapshot(context.Background(), []string{"test." + tbl}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "snapshot reads", func() bool {
		ev, _ := em.snapshot()
		n := 0
		for _, e := range ev {
			if e.Type == events.SnapshotRead {
				n++
			}
		}
		return n > 500
	})
	close(stopW)
	<-wdone
	want := w.state()
	waitFor(t, 60*time.Second, "catch up", func() bool {
		ev, _ := em.snapshot()
		return sameRows(replayEvents(t, ev, false, true, true).rows, want)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ev, committed := em.snapshot()
	r := applyResnapshot(t, ev)
	if !sameRows(r.rows, want) {
		t.Fatalf("replayed %d rows, table has %d", len(r.rows), len(want))
	}
	reads := 0
	for _, e := range ev {
		if e.Source != nil && e.Source.Table == cfg.SignalTable {
			t.Fatalf("the signal row was emitted: %s", e.Stream)
		}
		if e.Type == events.SnapshotRead {
			reads++
		}
	}
	if p, err := parsePosition(committed); err != nil || p.Snap != nil {
		t.Fatalf("after the snapshot the position still carries progress: %s (%v)", committed, err)
	}
	if err := src.RequestSnapshot(context.Background(), []string{"no_such_table"}); err == nil || !strings.Contains(err.Error(), "not captured") {
		t.Fatalf("a signal for a table the source does not capture: %v", err)
	}
	t.Logf("%d events, %d snapshot reads", len(ev), reads)
}
