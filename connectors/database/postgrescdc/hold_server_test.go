package postgrescdc

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// TestSnapshotHoldReleased: a snapshot read alongside the stream holds
// the slot at its start, and when the WAL kept for it nears
// max_slot_wal_keep_size the source lets the hold go, with a warning,
// before PostgreSQL would invalidate the slot. The snapshot is held open
// (its reader waits before its first chunk) while WAL is written in 1 MB
// steps; after each step the test waits until the source has sampled
// the slot's lag (the slot_lag_bytes gauge), so nothing depends on how
// fast the machine is. Until the warning the slot stays at the
// snapshot's start; after it, the slot follows the stream, and enough
// WAL to invalidate a slot still held there (with checkpoints) leaves it
// usable. A restart during the snapshot then says that rows may be read again, and
// the snapshot finishes.
func TestSnapshotHoldReleased(t *testing.T) {
	const keep = 8 << 20
	h := newPrivateHarness(t, "max_slot_wal_keep_size=8MB")
	h.exec(`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`,
		`CREATE TABLE $T_other (id bigint PRIMARY KEY)`,
		`INSERT INTO $T SELECT g, 0 FROM generate_series(1, 100) g`)
	cfg := h.config([]string{"$T", "$T_other"}, "heartbeat_interval_secs: 1\nsnapshot:\n  mode: never\n")

	logs := &logCapture{}
	rt := &connector.Runtime{Name: "pg", Metrics: telemetry.NewRegistry(),
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	ctx := connector.WithRuntime(context.Background(), rt)
	lagGauge := rt.Gauge(metricSlotLag, "Bytes of WAL between the server's current position and the slot's confirmed position.")
	s := h.source(cfg)
	streaming, gated, gate := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once, gateOnce sync.Once
	s.streaming = func() { once.Do(func() { close(streaming) }) }
	s.chunkGate = func(ctx context.Context) {
		gateOnce.Do(func() { close(gated) })
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	openGate := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate)
	rec := &recorder{}
	stop, done := run(ctx, s, "", rec)
	t.Cleanup(func() { _ = stop() })
	awaitSignal(t, streaming, done, "Read returned before streaming", "Read did not start streaming within 60s")

	// A snapshot on request: the stream takes the signal and the reader
	// stops at the gate. An insert into the other table shows the stream
	// going on, and its position the snapshot's start.
	if err := h.source(cfg).RequestSnapshot(context.Background(), []string{h.name}); err != nil {
		t.Fatal(err)
	}
	awaitSignal(t, gated, done, "Read returned", "the snapshot did not start within 60s")
	h.exec(`INSERT INTO $T_other VALUES (1)`)
	other := h.name + "_other"
	waitFor(t, 30*time.Second, "the insert streamed while the snapshot is held", func() bool { return len(dataEvents(rec.snapshot(), other)) == 1 })
	p := mustPos(t, dataEvents(rec.snapshot(), other)[0].Metadata.Position)
	if p.Inc == nil || p.Inc.Since["public."+h.name] == "" {
		t.Fatalf("position %s names no snapshot under way", dataEvents(rec.snapshot(), other)[0].Metadata.Position)
	}
	since, err := pglogrepl.ParseLSN(p.Inc.Since["public."+h.name])
	if err != nil {
		t.Fatal(err)
	}
	lsn := func(q string) pglogrepl.LSN {
		t.Helper()
		var s string
		if err := h.db.QueryRow(context.Background(), q, h.name).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		l, err := pglogrepl.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	confirmed := func() pglogrepl.LSN {
		return lsn(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`)
	}
	current := func() pglogrepl.LSN { return lsn(`SELECT pg_current_wal_lsn()::text WHERE $1 <> ''`) }
	const warning = "near max_slot_wal_keep_size"

	// Held: 1 MB steps until the source lets go.
	var steps int
	for ; ; steps++ {
		conf := confirmed()
		released := len(logs.warnings(warning)) > 0
		if conf > since && !released {
			// The warning follows the release at once; the slot must
			// not have moved without it.
			waitFor(t, 10*time.Second, "the warning of a slot moved past the snapshot's start "+lsnString(since)+" to "+lsnString(conf), func() bool { return len(logs.warnings(warning)) > 0 })
			released = true
		}
		if released {
			break
		}
		if st := h.walStatus(); st == "lost" || st == "" {
			t.Fatalf("the slot is %q while the snapshot holds it (step %d)", st, steps)
		}
		if steps == 12 {
			t.Fatalf("no release after %d MB of WAL past the snapshot's start; slot at %s, lag gauge %.0f", steps, lsnString(conf), lagGauge.Value())
		}
		h.writeWAL()
		want := float64(current() - conf)
		waitFor(t, 30*time.Second, "the source to sample the slot's lag", func() bool { return lagGauge.Value() >= want })
	}
	t.Logf("released after %d steps of 1 MB: %s", steps, strings.Join(logs.warnings(warning), "\n"))
	if steps < 3 {
		t.Fatalf("the hold was let go after %d MB of WAL, long before max_slot_wal_keep_size (%d MB)", steps, keep>>20)
	}

	// Released: the slot follows the stream, also past WAL that would
	// have invalidated it at the snapshot's start.
	for range 12 {
		h.writeWAL()
		cur := current()
		waitFor(t, 30*time.Second, "the slot to follow the stream", func() bool { return confirmed() >= cur })
		h.exec(`CHECKPOINT`)
	}
	if cur := current(); cur-since <= keep+(2<<20) {
		t.Fatalf("only %d bytes of WAL written past the snapshot's start", cur-since)
	}
	if st := h.walStatus(); st == "lost" || st == "" {
		t.Fatalf("after the release the slot is %q", st)
	}
	if !strings.Contains(logs.String(), "letting it advance") {
		t.Fatalf("log:\n%s", logs)
	}

	// A restart during the snapshot, after the release: the slot no
	// longer has the WAL since the snapshot began, which the source says
	// (the rows the stream delivered may be read again), and the snapshot
	// finishes.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pos := rec.position()
	if !strings.Contains(pos, `"inc"`) {
		t.Fatalf("position %s has no snapshot under way", pos)
	}
	logs2 := &logCapture{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the restarted source:\n%s", logs2)
		}
	})
	rec, stop = &recorder{}, nil
	stop, _ = run(logs2.context(), h.source(cfg), pos, rec)
	t.Cleanup(func() { _ = stop() })
	waitFor(t, 30*time.Second, "the snapshot", func() bool { return len(eventsOf(rec, h.name, events.SnapshotRead)) == 100 })
	if w := logs2.warnings("no longer has the WAL since the snapshot began"); len(w) == 0 {
		t.Fatalf("a restart after the release did not warn that rows may be read again; log:\n%s", logs2)
	}
	h.exec(`INSERT INTO $T_other VALUES (2)`)
	waitFor(t, 30*time.Second, "the second insert", func() bool { return len(dataEvents(rec.snapshot(), other)) >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Only the table asked for is read again: the other one arrives
	// through its change alone.
	if evs := dataEvents(rec.snapshot(), other); len(evs) != 1 || evs[0].Type != events.Insert {
		t.Fatalf("the other table after the restart: %d events (%v), want its one insert", len(evs), evs)
	}
	if pos := rec.position(); strings.Contains(pos, `"inc"`) {
		t.Fatalf("final position %s still has a snapshot under way", pos)
	}
}
