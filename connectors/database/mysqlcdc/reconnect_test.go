package mysqlcdc

import (
	"context"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// TestReconnectAfterKilledStream: the server kills the binlog dump
// connection several times while writers run; the source reconnects from
// its last emitted position and the result is exactly once. It also checks
// the metrics it reports.
func TestReconnectAfterKilledStream(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "reconnect")
	w := newWorkload(t, tbl, 5)
	w.load(200)
	cfg := testConfig(tbl)
	cfg.MaxBatchSize = 5
	src := newSource(t, cfg)
	em := newRecorder()
	rt := &pipeline.Runtime{Name: "mysql", Metrics: telemetry.NewRegistry()}
	ctx, cancel := context.WithCancel(pipeline.WithRuntime(context.Background(), rt))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Read(ctx, nil, em) }()
	waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 200 })
	stopW := make(chan struct{})
	wdone := w.runConcurrently(stopW, 20)
	reconnects := rt.Counter(metricReconnects, "")
	for i := range 3 {
		before, _ := em.snapshot()
		waitFor(t, 30*time.Second, "progress", func() bool { ev, _ := em.snapshot(); return len(ev) > len(before)+20 })
		res, err := c.query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Rows {
			_ = c.exec("KILL CONNECTION " + string(r[0]))
		}
		waitFor(t, 30*time.Second, "reconnect", func() bool { return reconnects.Value() >= uint64(i+1) })
	}
	close(stopW)
	<-wdone
	want := w.state()
	waitFor(t, 30*time.Second, "catch up", func() bool {
		ev, _ := em.snapshot()
		return sameRows(apply(t, ev, false).rows, want)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev, _ := em.snapshot()
	apply(t, ev, true)
	if n := rt.Counter(metricEvents, "").Value(); n == 0 {
		t.Error("events counter not counted")
	}
	if n := rt.Counter(metricTransactions, "").Value(); n == 0 {
		t.Error("transactions counter not counted")
	}
	if n := rt.Counter(metricSnapshotRows, "").Value(); n != 200 {
		t.Errorf("snapshot rows counter %d", n)
	}
}

// TestIdleStreamStaysConnected: with heartbeats every second an idle
// server is told apart from a dead link: past the 5 s read timeout the
// stream has not reconnected and still delivers.
func TestIdleStreamStaysConnected(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "idle")
	cfg := testConfig(tbl)
	cfg.HeartbeatIntervalSecs = 1
	rt := &pipeline.Runtime{Name: "mysql", Metrics: telemetry.NewRegistry()}
	ctx, cancel := context.WithCancel(pipeline.WithRuntime(context.Background(), rt))
	defer cancel()
	em := newRecorder()
	done := make(chan error, 1)
	go func() { done <- newSource(t, cfg).Read(ctx, nil, em) }()
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (1, 1)")
	waitFor(t, 30*time.Second, "first event", func() bool { ev, _ := em.snapshot(); return len(ev) >= 1 })
	// Without heartbeats the 5 s read deadline would expire in this pause
	// and the stream would reconnect.
	idle := time.NewTimer(6 * time.Second)
	<-idle.C
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (2, 2)")
	waitFor(t, 30*time.Second, "event after idle", func() bool { ev, _ := em.snapshot(); return len(ev) >= 2 })
	if n := rt.Counter(metricReconnects, "").Value(); n != 0 {
		t.Fatalf("%d reconnects on an idle but healthy stream", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
