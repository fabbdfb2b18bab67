// Command benchcdc measures the postgres-cdc source against the ceiling
// of PostgreSQL's own logical decoding client: it loads N rows in one
// transaction, then decodes that committed transaction from WAL twice,
// once with postgres-cdc (events counted and acknowledged, then dropped)
// and once with pg_recvlogical (pgoutput, written to /dev/null), each on
// its own slot created before the load. It prints both rates, their ratio
// and this process's peak RSS.
//
//	go run ./connectors/database/postgrescdc/cmd/benchcdc -rows 1000000
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/connectors/database/postgrescdc"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func main() {
	rows := flag.Int("rows", 1000000, "rows loaded in the one transaction")
	host := flag.String("host", "127.0.0.1", "PostgreSQL host")
	port := flag.Int("port", 5432, "PostgreSQL port")
	db := flag.String("db", "test", "database")
	user := flag.String("user", "postgres", "user (trust or PGPASSWORD authentication)")
	recv := flag.String("pg_recvlogical", "/usr/lib/postgresql/15/bin/pg_recvlogical", "path of pg_recvlogical")
	flag.BoolVar(&streamed, "v2", false, "also time pg_recvlogical with proto_version=2 and streaming=on (postgres-cdc's protocol)")
	flag.Parse()
	if err := run(*rows, *host, *port, *db, *user, *recv); err != nil {
		log.Fatal(err)
	}
}

var streamed bool

func run(rows int, host string, port int, dbName, user, recv string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable", host, port, dbName, user))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "benchcdc_" + hex.EncodeToString(b[:])
	slotCDC, slotRecv, slotRecv2 := name+"_cdc", name+"_recv", name+"_recv2"
	cleanup := func() {
		cctx := context.Background()
		for _, s := range []string{slotCDC, slotRecv, slotRecv2} {
			for range 50 {
				if _, err := conn.Exec(cctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, s); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		_, _ = conn.Exec(cctx, "DROP PUBLICATION IF EXISTS "+name)
		_, _ = conn.Exec(cctx, "DROP TABLE IF EXISTS "+name)
	}
	defer cleanup()
	for _, q := range []string{
		"CREATE TABLE " + name + " (id bigint PRIMARY KEY, v int NOT NULL, payload text)",
		"CREATE PUBLICATION " + name + " FOR TABLE " + name,
		"SELECT pg_create_logical_replication_slot('" + slotCDC + "', 'pgoutput')",
		"SELECT pg_create_logical_replication_slot('" + slotRecv + "', 'pgoutput')",
		"SELECT pg_create_logical_replication_slot('" + slotRecv2 + "', 'pgoutput')",
	} {
		if strings.Contains(q, slotRecv2) && !streamed {
			continue
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	t0 := time.Now()
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT g, 0, md5(g::text) FROM generate_series(1, %d) g", name, rows)); err != nil {
		return err
	}
	var endpos string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endpos); err != nil {
		return err
	}
	// A later transaction gives pg_recvlogical a record past endpos.
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 0, 'end')", name, rows+1)); err != nil {
		return err
	}
	fmt.Printf("loaded %d rows in one transaction in %s\n", rows, time.Since(t0).Round(time.Millisecond))

	cdcRate, err := runCDC(ctx, rows, host, port, dbName, user, name, slotCDC)
	if err != nil {
		return err
	}
	recvRate, err := runRecvLogical(rows, host, port, dbName, user, name, slotRecv, endpos, recv, "-o", "proto_version=1")
	if err != nil {
		return err
	}
	fmt.Printf("postgres-cdc -> drop:         %.0f rows/s\n", cdcRate)
	fmt.Printf("pg_recvlogical -> /dev/null:  %.0f rows/s (ceiling, proto_version=1)\n", recvRate)
	fmt.Printf("ratio postgres-cdc / ceiling: %.2f\n", cdcRate/recvRate)
	if streamed {
		// The same protocol as postgres-cdc (v2, in-progress streaming),
		// read again from the same slot position by a third slot.
		r2, err := runRecvLogical(rows, host, port, dbName, user, name, slotRecv2, endpos, recv, "-o", "proto_version=2", "-o", "streaming=on")
		if err != nil {
			return err
		}
		fmt.Printf("pg_recvlogical v2 streaming:  %.0f rows/s (ratio postgres-cdc / it: %.2f)\n", r2, cdcRate/r2)
	}
	fmt.Printf("peak RSS (VmHWM) of this process: %s\n", peakRSS())
	return nil
}

// ackCounter is the drop sink: it counts inserted rows and acknowledges.
type ackCounter struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (a *ackCounter) Emit(_ context.Context, batch []*events.Event) error {
	var k int64
	for _, e := range batch {
		if e.Type == events.Insert {
			k++
		}
	}
	if a.n.Add(k) >= a.want && k > 0 {
		select {
		case <-a.done:
		default:
			close(a.done)
		}
	}
	return nil
}

func runCDC(ctx context.Context, rows int, host string, port int, dbName, user, name, slot string) (float64, error) {
	y := fmt.Sprintf("host: %s\nport: %d\ndatabase: %s\nuser: %s\npassword: %q\nslot_name: %s\npublication_name: %s\nauto_create_publication: false\nheartbeat_interval_secs: 0\ntls:\n  mode: disable\nsnapshot:\n  mode: never\n",
		host, port, dbName, user, os.Getenv("PGPASSWORD"), slot, name)
	cfg, ps := spec.DecodeString[postgrescdc.Config](y, "config")
	if len(ps) > 0 {
		return 0, spec.Problems(ps)
	}
	src, err := postgrescdc.New(ctx, cfg)
	if err != nil {
		return 0, err
	}
	em := &ackCounter{want: int64(rows), done: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- src.Read(rctx, nil, connector.EmitterFunc(em.Emit)) }()
	select {
	case <-em.done:
	case err := <-errc:
		cancel()
		return 0, fmt.Errorf("postgres-cdc stopped early: %v", err)
	case <-time.After(30 * time.Minute):
		cancel()
		return 0, fmt.Errorf("postgres-cdc: timed out after %d rows", em.n.Load())
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		return 0, err
	}
	fmt.Printf("postgres-cdc: %d rows in %s\n", em.n.Load(), elapsed.Round(time.Millisecond))
	return float64(rows) / elapsed.Seconds(), nil
}

func runRecvLogical(rows int, host string, port int, dbName, user, name, slot, endpos, bin string, opts ...string) (float64, error) {
	args := append([]string{"--start", "-h", host, "-p", fmt.Sprint(port), "-d", dbName, "-U", user, "-S", slot,
		"-o", "publication_names=" + name, "-P", "pgoutput", "-E", endpos, "-f", "/dev/null", "--no-loop"}, opts...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	elapsed := time.Since(start)
	fmt.Printf("pg_recvlogical %s: %d rows in %s\n", strings.Join(opts, " "), rows, elapsed.Round(time.Millisecond))
	return float64(rows) / elapsed.Seconds(), nil
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}
