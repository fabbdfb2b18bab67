package rdbc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/database/postgrescdc"
)

// TestReplicaFromPostgresCDC runs postgres-cdc into the rdbc sink (upsert
// with deletes, the table created by the sink in MariaDB) and checks that
// the replica equals its source after a snapshot, inserts, updates, an
// update of the key and deletes.
func TestReplicaFromPostgresCDC(t *testing.T) {
	h := newDBs(t, true)
	h.exec(h.pg, `CREATE TABLE $T_src (id integer PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamptz, tags jsonb)`,
		`INSERT INTO $T_src VALUES (1, 'one', 1.10, '2024-01-01 10:00:00+00', '{"a":1}'), (2, 'two', 2.20, NULL, NULL)`)
	slot := h.name
	t.Cleanup(func() {
		for range 100 {
			_, _ = h.pg.Exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
			if _, err := h.pg.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, _ = h.pg.Exec(`DROP PUBLICATION IF EXISTS ` + slot)
	})
	cfg := decode[postgrescdc.Config](t, strings.ReplaceAll("host: 127.0.0.1\nport: 5432\ndatabase: test\nuser: postgres\npassword: \"\"\nslot_name: $T\npublication_name: $T\ntls:\n  mode: disable\npublication_tables: [public.$T_src]\nheartbeat_interval_secs: 0\n", "$T", h.name))
	src, err := postgrescdc.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := h.sink("url: " + myURL + "\ntable: $T_replica\nmode: upsert\ndelete:\n  enabled: true\nauto_create: true\n")
	c := &collector{t: t, sink: sink}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Read(ctx, nil, c) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("source did not stop")
		}
	}()

	pgRows := func() []string {
		return h.rows(h.pg, `SELECT id, name, amount, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), tags::text FROM $T_src ORDER BY id`)
	}
	myRows := func() []string {
		rs, err := h.tryRows(h.my, `SELECT id, name, amount, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), JSON_COMPACT(tags) FROM $T_replica ORDER BY id`)
		if err != nil {
			return []string{err.Error()}
		}
		return rs
	}
	// jsonb::text writes {"a": 1, "b": 2} with spaces; MariaDB's
	// JSON_COMPACT none.
	norm := func(rs []string) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = strings.NewReplacer(": ", ":", ", ", ",").Replace(r)
		}
		return out
	}
	equal := func(what string) {
		t.Helper()
		var p, m []string
		waitFor(t, 30*time.Second, "the replica to equal the source after "+what, func() bool {
			select {
			case err := <-done:
				t.Fatalf("source stopped: %v", err)
			default:
			}
			p, m = norm(pgRows()), norm(myRows())
			return slices.Equal(p, m)
		})
		t.Logf("after %s: %q", what, p)
	}
	equal("the snapshot")
	h.exec(h.pg, `INSERT INTO $T_src VALUES (3, 'three', 3.33, '2024-03-03 03:03:03.333333+00', '[1,2]')`,
		`UPDATE $T_src SET name = 'TWO', amount = 22.22, at = now() WHERE id = 2`)
	equal("inserts and updates")
	h.exec(h.pg, `UPDATE $T_src SET id = 10 WHERE id = 1`,
		`DELETE FROM $T_src WHERE id = 3`,
		`BEGIN; INSERT INTO $T_src VALUES (4, 'four', NULL, NULL, NULL); UPDATE $T_src SET name = 'FOUR' WHERE id = 4; DELETE FROM $T_src WHERE id = 2; COMMIT`)
	equal("a key change, deletes and a transaction")
	if got := pgRows(); len(got) != 2 {
		t.Errorf("source rows %q, want 2", got)
	}
}
