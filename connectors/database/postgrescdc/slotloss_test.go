package postgrescdc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

// slotLimit is max_slot_wal_keep_size of the private servers of the
// tests below: two of their 1 MB WAL segments, so that a few megabytes
// of WAL are enough to invalidate a slot that does not keep up.
const slotLimit = "max_slot_wal_keep_size=2MB"

// logCapture keeps what a source logs, for tests of what it tells the
// operator.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// context is a context whose runtime logs into l.
func (l *logCapture) context() context.Context {
	log := slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return connector.WithRuntime(context.Background(), &connector.Runtime{Name: "pg", Log: log})
}

// warnings are the lines logged at warn level or above containing s.
func (l *logCapture) warnings(s string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) && strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// walStatus is the slot's wal_status ("" when there is no such slot).
func (h *harness) walStatus() string {
	var st *string
	_ = h.db.QueryRow(context.Background(), `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, h.name).Scan(&st)
	if st == nil {
		return ""
	}
	return *st
}

// writeWAL writes about 1 MB of WAL into a table nothing captures and
// moves the server to a new WAL segment.
func (h *harness) writeWAL() {
	h.t.Helper()
	h.exec(`CREATE TABLE IF NOT EXISTS $T_filler (id serial PRIMARY KEY, pad text)`,
		`INSERT INTO $T_filler (pad) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 400) g`,
		`SELECT pg_switch_wal()`)
}

// invalidateSlot writes WAL past max_slot_wal_keep_size while nothing
// reads the slot, with checkpoints (where PostgreSQL invalidates slots
// and removes WAL), until the slot is lost.
func (h *harness) invalidateSlot() {
	h.t.Helper()
	for range 40 {
		if st := h.walStatus(); st == "lost" {
			return
		} else if st == "" {
			h.t.Fatalf("slot %s does not exist", h.name)
		}
		h.writeWAL()
		h.exec(`CHECKPOINT`)
	}
	h.t.Fatalf("slot %s still %q after writing 40 MB of WAL past max_slot_wal_keep_size", h.name, h.walStatus())
}

// TestInvalidatedSlot: PostgreSQL invalidated the slot (wal_status
// lost: its WAL went past max_slot_wal_keep_size and was removed) while
// the source was stopped, so the changes made meanwhile are gone from
// the stream. Each snapshot mode does what the README promises, and
// says so: initial refuses to start, leaving the slot as it is;
// when_needed and recovery drop the slot, take a new snapshot (carrying
// those changes in the rows' current images) and stream on; never
// continues without them. Nothing is skipped without a warning.
func TestInvalidatedSlot(t *testing.T) {
	h := newPrivateHarness(t, slotLimit)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T SELECT g, 0 FROM generate_series(1, 5) g`)
	count := func(rec *recorder, typ events.Type) int { return len(eventsOf(rec, h.name, typ)) }
	valueOf := func(rec *recorder, id int64) int64 {
		v := int64(-1)
		for _, e := range dataEvents(rec.snapshot(), h.name) {
			if r := rowOf(t, e); num(r["id"]) == id {
				v = num(r["v"])
			}
		}
		return v
	}
	// start runs the source from pos and returns once it streams (so
	// that a change made then is after the new slot's start).
	start := func(mode, pos string, logs *logCapture) (*recorder, func() error) {
		s := h.source(h.config([]string{"$T"}, "heartbeat_interval_secs: 1\nsnapshot:\n  mode: "+mode+"\n"))
		streaming := make(chan struct{})
		var once sync.Once
		s.streaming = func() { once.Do(func() { close(streaming) }) }
		rec := &recorder{}
		stop, done := run(logs.context(), s, pos, rec)
		t.Cleanup(func() { _ = stop() })
		awaitSignal(t, streaming, done, "Read returned before streaming", "Read did not start streaming within 60s")
		return rec, stop
	}

	// A first run: snapshot, then a streamed insert; its position is
	// what the later runs resume from.
	rec, stop := start("initial", "", &logCapture{})
	waitFor(t, 30*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 5 })
	h.exec(`INSERT INTO $T VALUES (6, 0)`)
	waitFor(t, 30*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pos := rec.position()

	// Down: a change, then the slot is invalidated.
	h.exec(`UPDATE $T SET v = 1 WHERE id = 1`)
	h.invalidateSlot()

	// initial promises every change: it refuses, loudly, and leaves the
	// slot for the operator to look at.
	t.Run("initial", func(t *testing.T) {
		s := h.source(h.config([]string{"$T"}, ""))
		rec := &recorder{}
		ctx, cancel := context.WithTimeout((&logCapture{}).context(), time.Minute)
		defer cancel()
		err := s.Read(ctx, []byte(pos), rec)
		if err == nil || !errors.Is(err, connector.ErrFatal) {
			t.Fatalf("initial on an invalidated slot: Read returned %v, want a fatal error", err)
		}
		for _, want := range []string{h.name, "invalidated", "max_slot_wal_keep_size", "recovery", "when_needed", "lost"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if n := len(rec.snapshot()); n != 0 {
			t.Errorf("initial emitted %d events", n)
		}
		if st := h.walStatus(); st != "lost" {
			t.Errorf("initial changed the slot: wal_status %q, want it left lost", st)
		}
	})

	// when_needed and recovery: a new slot and a new snapshot, which
	// carries the change made while down, then streaming.
	for i, mode := range []string{"when_needed", "recovery"} {
		t.Run(mode, func(t *testing.T) {
			if i > 0 {
				h.exec(`UPDATE $T SET v = v + 1 WHERE id = 1`)
				h.invalidateSlot()
			}
			logs := &logCapture{}
			rec, stop := start(mode, pos, logs)
			waitFor(t, 30*time.Second, "a new snapshot", func() bool { return count(rec, events.SnapshotRead) == 6+i })
			if v, want := valueOf(rec, 1), int64(1+i); v != want {
				t.Fatalf("row 1 read with v = %d, want the change made while down (%d)", v, want)
			}
			h.exec(`INSERT INTO $T VALUES (` + []string{"7", "8"}[i] + `, 0)`)
			waitFor(t, 30*time.Second, "the insert after the snapshot", func() bool { return count(rec, events.Insert) == 1 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if !caughtUp(h, h.name, rec.snapshot()) {
				t.Fatal("the events do not end at the table's rows")
			}
			if st := h.walStatus(); st == "lost" || st == "" {
				t.Fatalf("slot after %s: wal_status %q, want a usable slot", mode, st)
			}
			if w := logs.warnings("invalidated"); len(w) == 0 || !strings.Contains(w[0], "lost") || !strings.Contains(w[0], "position="+lsnString(mustPos(t, pos).LSN)) {
				t.Fatalf("%s re-snapshotted without a warning that the slot was invalidated and the changes after the position lost; log:\n%s", mode, logs)
			}
			if n := count(rec, events.Update); n != 0 {
				t.Fatalf("%d updates streamed from an invalidated slot", n)
			}
			t.Logf("%s warned: %s", mode, strings.Join(logs.warnings(""), "\n"))
			pos = rec.position()
		})
	}

	// never: streams on from a new slot without the changes made while
	// down, and says they are lost.
	t.Run("never", func(t *testing.T) {
		h.exec(`UPDATE $T SET v = 10 WHERE id = 2`)
		h.invalidateSlot()
		logs := &logCapture{}
		rec, stop := start("never", pos, logs)
		h.exec(`INSERT INTO $T VALUES (9, 0)`)
		waitFor(t, 30*time.Second, "the insert", func() bool { return count(rec, events.Insert) == 1 })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if n, u := count(rec, events.SnapshotRead), count(rec, events.Update); n != 0 || u != 0 {
			t.Fatalf("never: %d snapshot reads, %d updates", n, u)
		}
		if w := logs.warnings("invalidated"); len(w) == 0 || !strings.Contains(w[0], "lost") {
			t.Fatalf("never went on without the lost changes and without a warning; log:\n%s", logs)
		}
		t.Logf("never warned: %s", strings.Join(logs.warnings(""), "\n"))
	})

	// A snapshot interrupted by a crash, whose slot is invalidated before
	// the restart: its progress is no use without the slot's WAL, so
	// initial starts the snapshot over from a new slot (the update made
	// while down arrives in the row's current image), and says so.
	t.Run("interrupted snapshot", func(t *testing.T) {
		h.dropSlot()
		cfg := h.config([]string{"$T"}, "snapshot:\n  batch_size: 2\n  parallel_tables: 1\n")
		rec := &recorder{crashAt: 3}
		_, done := run(context.Background(), h.source(cfg), "", rec)
		if err := <-done; err != nil && !errors.Is(err, errCrash) { // the crash cancelled the run
			t.Fatal(err)
		}
		pos := rec.position()
		if p := mustPos(t, pos); p.Snap == nil {
			t.Fatalf("position %s is not inside the snapshot", pos)
		}
		emitted := map[int64]bool{}
		for _, e := range dataEvents(rec.snapshot(), h.name) {
			emitted[num(rowOf(t, e)["id"])] = true
		}
		var id int64
		for id = range emitted {
			break
		}
		h.exec(`UPDATE $T SET v = 20 WHERE id = ` + strconv.FormatInt(id, 10))
		h.invalidateSlot()

		logs := &logCapture{}
		rec2, stop2 := start("initial", pos, logs)
		n := 0
		_ = h.db.QueryRow(context.Background(), `SELECT count(*) FROM `+h.name).Scan(&n)
		waitFor(t, 30*time.Second, "a new snapshot", func() bool { return count(rec2, events.SnapshotRead) == n })
		if v := valueOf(rec2, id); v != 20 {
			t.Fatalf("row %d read again with v = %d, want the update made while down (20)", id, v)
		}
		h.exec(`INSERT INTO $T VALUES (10, 0)`)
		waitFor(t, 30*time.Second, "the insert", func() bool { return count(rec2, events.Insert) == 1 })
		if err := stop2(); err != nil {
			t.Fatal(err)
		}
		if !caughtUp(h, h.name, rec2.snapshot()) {
			t.Fatal("the events do not end at the table's rows")
		}
		if len(logs.warnings("invalidated")) == 0 || len(logs.warnings("taking a new snapshot")) == 0 {
			t.Fatalf("the snapshot was started over without a warning; log:\n%s", logs)
		}
	})
}

func mustPos(t *testing.T, s string) *position {
	t.Helper()
	p, err := parsePosition([]byte(s))
	if err != nil || p == nil {
		t.Fatalf("position %q: %v", s, err)
	}
	return p
}
