package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// cdc loads n rows in one transaction into a new table and decodes them
// from the WAL twice: with the CLI (postgres-cdc → drop, snapshot never)
// and with pg_recvlogical, each on a slot created before the load.
func cdc(bin, recv, pgURL string, n int, extra []string) ([]string, []result, error) {
	ctx := context.Background()
	l, err := loadCDC(ctx, pgURL, n, "_cli", "_recv")
	if err != nil {
		return nil, nil, err
	}
	defer l.drop()
	cfg, name, slotCLI, slotRecv, endpos := l.cfg, l.name, l.slots[0], l.slots[1], l.endpos
	dir, err := os.MkdirTemp("", "benche2e")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "cdc.yaml")
	y := fmt.Sprintf(`version: "1.0"
sources:
  pg:
    connector: postgres-cdc
    topic: bench.cdc
%ssinks:
  drop:
    connector: drop
    topics: [bench.cdc]
`, l.sourceConfig(slotCLI))
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		return nil, nil, err
	}
	cli, err := local(bin, file, n, extra)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(recv, "--start", "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-d", cfg.Database, "-U", cfg.User,
		"-S", slotRecv, "-P", "pgoutput", "-o", "publication_names="+name, "-o", "proto_version=2", "-o", "streaming=on",
		"-E", endpos, "-f", "/dev/null", "--no-loop")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password)
	rl, err := measure(cmd, n)
	if err != nil {
		return nil, nil, err
	}
	return []string{"rivven-connect local", "pg_recvlogical"}, []result{cli, rl}, nil
}

// cdcLoad is a table of n rows inserted in one transaction, its
// publication, and logical slots (pgoutput) created before the insert, so
// each slot decodes the same WAL.
type cdcLoad struct {
	conn   *pgx.Conn
	cfg    *pgx.ConnConfig
	name   string   // the table's and the publication's
	slots  []string // name + each suffix asked for
	endpos string   // the WAL position right after the insert
}

// loadCDC creates the table, publication and slots and inserts the rows;
// drop undoes it all.
func loadCDC(ctx context.Context, pgURL string, n int, slotSuffixes ...string) (*cdcLoad, error) {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	l := &cdcLoad{conn: conn, cfg: conn.Config(), name: "benche2e_" + hex.EncodeToString(b[:])}
	for _, s := range slotSuffixes {
		l.slots = append(l.slots, l.name+s)
	}
	qs := []string{
		"CREATE TABLE " + l.name + " (id bigint PRIMARY KEY, v int NOT NULL, payload text)",
		"CREATE PUBLICATION " + l.name + " FOR TABLE " + l.name,
	}
	for _, s := range l.slots {
		qs = append(qs, "SELECT pg_create_logical_replication_slot('"+s+"', 'pgoutput')")
	}
	qs = append(qs, fmt.Sprintf("INSERT INTO %s SELECT g, 0, md5(g::text) FROM generate_series(1, %d) g", l.name, n))
	for _, q := range qs {
		if _, err := conn.Exec(ctx, q); err != nil {
			l.drop()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&l.endpos); err != nil {
		l.drop()
		return nil, err
	}
	// A later transaction gives pg_recvlogical a record past endpos.
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 0, 'end')", l.name, n+1)); err != nil {
		l.drop()
		return nil, err
	}
	return l, nil
}

// sourceConfig is the body of a postgres-cdc source entry (indented four
// spaces, without its topic) reading slot.
func (l *cdcLoad) sourceConfig(slot string) string {
	return fmt.Sprintf(`    config:
      host: %s
      port: %d
      database: %s
      user: %s
      password: %q
      slot_name: %s
      publication_name: %s
      auto_create_slot: false
      auto_create_publication: false
      heartbeat_interval_secs: 0
      tls: {mode: disable}
      snapshot: {mode: never}
`, l.cfg.Host, l.cfg.Port, l.cfg.Database, l.cfg.User, l.cfg.Password, slot, l.name)
}

// drop removes the slots, the publication and the table.
func (l *cdcLoad) drop() {
	ctx := context.Background()
	defer l.conn.Close(ctx)
	for _, s := range l.slots {
		// A slot stays active for a moment after its client exits.
		for range 50 {
			if _, err := l.conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, s); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	_, _ = l.conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+l.name)
	_, _ = l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+l.name)
}

// redisCDC is redisRun with postgres-cdc as the source: n rows inserted in
// one transaction before `run source` starts on a slot created before the
// insert (snapshot never), through Redis Streams to `run sink` (drop).
func redisCDC(bin, addr, pgURL string, n int) ([]string, []result, error) {
	return redisPipeline(bin, addr, n, func(_, topic string) (string, func(), error) {
		l, err := loadCDC(context.Background(), pgURL, n, "_run")
		if err != nil {
			return "", nil, err
		}
		return "    connector: postgres-cdc\n    topic: " + topic + "\n" + l.sourceConfig(l.slots[0]), l.drop, nil
	})
}
