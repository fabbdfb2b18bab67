package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/shared/testenv"
)

const discoverPipeline = `
sources:
  pg:
    connector: postgres-cdc
    topic: cdc
    config: {host: 127.0.0.1, port: 5432, database: test, user: postgres, password: "", tables: [public.%s], slot_name: discover_cli, publication_name: discover_cli, auto_create_publication: false, tls: {mode: disable}}
  gen:
    connector: datagen
    topic: g
    config: {pattern: orders}
`

// TestDiscoverSourceArgument checks the SOURCE argument the README and
// --help document, before or after the flags.
func TestDiscoverSourceArgument(t *testing.T) {
	file := writeFile(t, fmt.Sprintf(discoverPipeline, "nothing_here"))
	for _, args := range [][]string{
		{"discover", "-c", file, "gen"},
		{"discover", "gen", "-c", file},
		{"discover", "-c", file, "gen", "--columns"},
	} {
		code, out, errOut := cli(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "source gen (datagen) cannot list what it reads") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	code, _, errOut := cli(t, "discover", "-c", file, "nope")
	if code != exitUsage || !strings.Contains(errOut, `the pipeline has no source "nope" (sources: gen, pg)`) {
		t.Errorf("unknown source: exit %d: %s", code, errOut)
	}
	code, _, errOut = cli(t, "discover", "-c", file, "pg", "gen")
	if code != exitUsage || !strings.Contains(errOut, `unexpected argument "gen"`) {
		t.Errorf("two sources: exit %d: %s", code, errOut)
	}
}

// TestDiscoverOneSource asks the local PostgreSQL through the one source
// named on the command line.
func TestDiscoverOneSource(t *testing.T) {
	testenv.RequireService(t, "postgresql", "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: registered first, it runs after the cleanups
	// below that still need the connection.
	t.Cleanup(func() { conn.Close(context.Background()) })
	table := fmt.Sprintf("discover_cli_%d", time.Now().UnixNano()%1e9)
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (id int PRIMARY KEY, name text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
	file := writeFile(t, fmt.Sprintf(discoverPipeline, table))

	code, out, errOut := cli(t, "discover", "-c", file, "pg", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var got struct {
		Source  string `json:"source"`
		Streams []struct {
			Name       string   `json:"name"`
			PrimaryKey []string `json:"primary_key"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Source != "pg" || len(got.Streams) != 1 || got.Streams[0].Name != table {
		t.Fatalf("discover printed %s", out)
	}
	code, out, errOut = cli(t, "discover", "pg", "-c", file)
	if code != 0 || !strings.Contains(out, "source pg (postgres-cdc): 1 table(s)") || !strings.Contains(out, "public."+table) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// TestSnapshotCommand checks `snapshot`'s arguments and that it writes
// the signal a running postgres-cdc source reads (the source's reaction
// is tested with the source, TestSnapshotSignal).
func TestSnapshotCommand(t *testing.T) {
	file := writeFile(t, fmt.Sprintf(discoverPipeline, "nothing_here"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", "-c", file, "pg"}, "name the source and at least one table"},
		{[]string{"snapshot", "-c", file, "nope", "t"}, `the pipeline has no source "nope" (sources: gen, pg)`},
		{[]string{"snapshot", "gen", "t", "-c", file}, "source gen (datagen) cannot take a snapshot on request"},
	} {
		if code, out, errOut := cli(t, tc.args...); code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d\n%s%s", tc.args, code, out, errOut)
		}
	}

	testenv.RequireService(t, "postgresql", "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: registered first, it runs after the cleanups
	// below that still need the connection.
	t.Cleanup(func() { conn.Close(context.Background()) })
	table := fmt.Sprintf("snapshot_cli_%d", time.Now().UnixNano()%1e9)
	pub := table + "_pub"
	for _, q := range []string{"CREATE TABLE " + table + " (id int PRIMARY KEY)", "CREATE PUBLICATION " + pub + " FOR TABLE " + table} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP PUBLICATION IF EXISTS "+pub)
		conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table)
	})
	file = writeFile(t, strings.ReplaceAll(fmt.Sprintf(discoverPipeline, table), "publication_name: discover_cli", "publication_name: "+pub))
	// A temporary slot of this session shows what reaches the WAL after it.
	probe := table + "_probe"
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'test_decoding', true)", probe); err != nil {
		t.Skipf("no test_decoding to look at the WAL with: %v", err)
	}
	code, out, errOut := cli(t, "snapshot", "-c", file, "pg", table)
	if code != 0 || !strings.Contains(out, "requested a snapshot of "+table+" from source pg") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// The signal is in the WAL, for the slot the source's config names.
	var msg string
	err = conn.QueryRow(ctx, `SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL) WHERE data LIKE '%rivven_signal%'`, probe).Scan(&msg)
	if err != nil {
		t.Fatalf("no signal in the WAL: %v", err)
	}
	if !strings.Contains(msg, `{"slot":"discover_cli","snapshot":["public.`+table+`"]}`) {
		t.Fatalf("signal %s", msg)
	}
	code, _, errOut = cli(t, "snapshot", "-c", file, "pg", "not_captured")
	if code != exitFailed || !strings.Contains(errOut, `table "not_captured" is not captured`) {
		t.Fatalf("uncaptured table: exit %d: %s", code, errOut)
	}
}
