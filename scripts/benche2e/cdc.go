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
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(context.Background())
	cfg := conn.Config()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "benche2e_" + hex.EncodeToString(b[:])
	slotCLI, slotRecv := name+"_cli", name+"_recv"
	defer func() {
		for _, s := range []string{slotCLI, slotRecv} {
			// A slot stays active for a moment after its client exits.
			for range 50 {
				if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, s); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		_, _ = conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+name)
		_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+name)
	}()
	for _, q := range []string{
		"CREATE TABLE " + name + " (id bigint PRIMARY KEY, v int NOT NULL, payload text)",
		"CREATE PUBLICATION " + name + " FOR TABLE " + name,
		"SELECT pg_create_logical_replication_slot('" + slotCLI + "', 'pgoutput')",
		"SELECT pg_create_logical_replication_slot('" + slotRecv + "', 'pgoutput')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT g, 0, md5(g::text) FROM generate_series(1, %d) g", name, n)); err != nil {
		return nil, nil, err
	}
	var endpos string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endpos); err != nil {
		return nil, nil, err
	}
	// A later transaction gives pg_recvlogical a record past endpos.
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 0, 'end')", name, n+1)); err != nil {
		return nil, nil, err
	}

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
    config:
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
sinks:
  drop:
    connector: drop
    topics: [bench.cdc]
`, cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.Password, slotCLI, name)
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
