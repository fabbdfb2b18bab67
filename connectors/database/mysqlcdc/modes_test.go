package mysqlcdc

import (
	"context"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/testenv"
)

func types(evs []*events.Event) map[events.Type]int {
	m := map[events.Type]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

func TestSnapshotModes(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "modes")
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (1, 1), (2, 2), (3, 3)")

	t.Run("initial_only", func(t *testing.T) {
		cfg := testConfig(tbl)
		cfg.Snapshot.Mode = "initial_only"
		cfg.Snapshot.BatchSize = 2
		em := newRecorder()
		if err := newSource(t, cfg).Read(context.Background(), nil, em); err != nil {
			t.Fatal(err)
		}
		ev, resume := em.snapshot()
		if got := types(ev); got[events.SnapshotRead] != 3 || len(ev) != 3 {
			t.Fatalf("events %v", got)
		}
		em2 := newRecorder()
		if err := newSource(t, cfg).Read(context.Background(), resume, em2); err != nil {
			t.Fatal(err)
		}
		if ev, _ := em2.snapshot(); len(ev) != 0 {
			t.Fatalf("a finished initial_only snapshot emitted %d more events", len(ev))
		}
	})

	t.Run("no_data", func(t *testing.T) {
		cfg := testConfig(tbl)
		cfg.Snapshot.Mode = "no_data"
		em := newRecorder()
		_, stop := runRead(t, newSource(t, cfg), nil, em)
		defer stop()
		waitFor(t, 30*time.Second, "schema event", func() bool { ev, _ := em.snapshot(); return len(ev) >= 1 })
		mustExec(t, c, "INSERT INTO "+tbl+" VALUES (4, 4)")
		waitFor(t, 30*time.Second, "insert", func() bool { ev, _ := em.snapshot(); return len(ev) >= 2 })
		_ = stop()
		ev, _ := em.snapshot()
		if ev[0].Type != events.Schema || ev[1].Type != events.Insert || len(ev) != 2 {
			t.Fatalf("events %v", types(ev))
		}
		mustExec(t, c, "DELETE FROM "+tbl+" WHERE id = 4")
	})

	t.Run("never_from_configured_position", func(t *testing.T) {
		file, pos := masterPos(t, c)
		mustExec(t, c, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 1")
		cfg := testConfig(tbl)
		cfg.Snapshot.Mode = "never"
		cfg.BinlogFilename, cfg.BinlogPosition = file, pos
		em := newRecorder()
		_, stop := runRead(t, newSource(t, cfg), nil, em)
		defer stop()
		waitFor(t, 30*time.Second, "update", func() bool { ev, _ := em.snapshot(); return len(ev) >= 1 })
		_ = stop()
		if ev, _ := em.snapshot(); len(ev) != 1 || ev[0].Type != events.Update {
			t.Fatalf("events %v", types(ev))
		}
	})

	t.Run("when_needed_after_purged_position", func(t *testing.T) {
		cfg := testConfig(tbl)
		cfg.Snapshot.Mode = "when_needed"
		em := newRecorder()
		gone := []byte(`{"file":"mariadb-bin.999999","pos":4}`)
		_, stop := runRead(t, newSource(t, cfg), gone, em)
		defer stop()
		waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 3 })
		_ = stop()
		if got := types(em.events); got[events.SnapshotRead] != 3 {
			t.Fatalf("events %v", got)
		}
	})

	t.Run("always_snapshots_again", func(t *testing.T) {
		cfg := testConfig(tbl)
		cfg.Snapshot.Mode = "always"
		file, pos := masterPos(t, c)
		resume := []byte((&position{File: file, Pos: pos}).encode())
		em := newRecorder()
		_, stop := runRead(t, newSource(t, cfg), resume, em)
		defer stop()
		waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 3 })
		_ = stop()
		if got := types(em.events); got[events.SnapshotRead] != 3 {
			t.Fatalf("events %v", got)
		}
	})

	t.Run("corrupt_position_is_fatal", func(t *testing.T) {
		err := newSource(t, testConfig(tbl)).Read(context.Background(), []byte("garbage"), newRecorder())
		if err == nil {
			t.Fatal("garbage position accepted")
		}
	})
}

// TestWhenNeededPurgedGTID: a stored position whose GTID state the server
// purged (FLUSH + PURGE BINARY LOGS after a later transaction) is answered
// with a new snapshot under when_needed, for a GTID-only position (which
// the server refuses only when the dump starts) as for one with a file;
// under initial it still stops the source, naming the purge.
func TestWhenNeededPurgedGTID(t *testing.T) {
	c := testDB(t)
	if !c.isMariaDB() {
		testenv.Unavailable(t, "the purge below is written for MariaDB's GTID state; the server is %s", c.serverVersion)
	}
	tbl := versionedTable(t, c, "purged")
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (1, 1), (2, 2), (3, 3)")
	saved, err := currentPosition(c)
	if err != nil {
		t.Fatal(err)
	}
	if saved.GTID == "" {
		testenv.Unavailable(t, "the server has no GTID state (log_bin with GTIDs is what .ci/services.sh sets up)")
	}
	// A transaction after the saved state, then a new binlog file: once
	// the older files are gone, no remaining file starts at or before the
	// saved state. Only files older than the current one are purged, so
	// other readers of the current binlog are not disturbed.
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (4, 4)", "FLUSH BINARY LOGS")
	cur, err := currentPosition(c)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "purge of the binlogs before "+cur.File, func() bool {
		// PURGE skips (with a warning) files a replica still reads.
		// PURGE takes a plain literal; binlog names are [\w.-].
		mustExec(t, c, "PURGE BINARY LOGS TO '"+cur.File+"'")
		res, err := c.query("SHOW BINARY LOGS")
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Rows) > 0 && string(res.Rows[0][0]) == cur.File
	})

	for _, tc := range []struct{ name, pos string }{
		{"gtid_only", (&position{GTID: saved.GTID}).encode()},
		{"file_and_gtid", saved.encode()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tbl)
			cfg.Snapshot.Mode = "when_needed"
			em := newRecorder()
			_, stop := runRead(t, newSource(t, cfg), []byte(tc.pos), em)
			defer stop()
			waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 4 })
			mustExec(t, c, "UPDATE "+tbl+" SET v = v + 1 WHERE id = 4")
			waitFor(t, 30*time.Second, "streamed update after the snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 5 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			ev, _ := em.snapshot()
			if got := types(ev); got[events.SnapshotRead] != 4 || got[events.Update] != 1 || len(ev) != 5 {
				t.Fatalf("events %v", got)
			}
		})
	}

	t.Run("initial_stops", func(t *testing.T) {
		cfg := testConfig(tbl)
		err := newSource(t, cfg).Read(context.Background(), []byte((&position{GTID: saved.GTID}).encode()), newRecorder())
		if !positionGone(err) {
			t.Fatalf("Read = %v, want the server's purged-position error", err)
		}
	})
}
