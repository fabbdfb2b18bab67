package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/format/formattest"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// TestDeltaSample runs samples/pipelines/postgres-to-delta.yaml in `local`
// against the local PostgreSQL and a table directory of the test's own,
// and reads the Delta table back without the sink's code: the commit files
// replayed with a JSON decoder, the live data files with hyparquet, the
// partition values from the log. A second run, after an insert and an
// update, appends their rows and repeats none of the first run's.
func TestDeltaSample(t *testing.T) {
	testenv.RequireService(t, "postgresql", "127.0.0.1:5432")
	// The source's position is kept in Redis between the two runs, as in
	// production; without it each local run would snapshot the table again.
	testenv.RequireService(t, "redis", "127.0.0.1:6379")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the slot, publication and table go before
	// the connection closes.
	t.Cleanup(func() { conn.Close(context.Background()) })
	name := fmt.Sprintf("delta_orders_%d", time.Now().UnixNano()%1e9)
	if _, err := conn.Exec(ctx, "CREATE TABLE "+name+" (id int PRIMARY KEY, customer text, amount int, status text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		conn.Exec(c, "DROP PUBLICATION IF EXISTS "+name)
		conn.Exec(c, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", name)
		conn.Exec(c, "DROP TABLE IF EXISTS "+name)
	})
	for id := 1; id <= 20; id++ {
		status := []string{"new", "paid", "shipped"}[id%3]
		if _, err := conn.Exec(ctx, "INSERT INTO "+name+" VALUES ($1, $2, $3, $4)", id, fmt.Sprintf("c%d", id%4), id*10, status); err != nil {
			t.Fatal(err)
		}
	}
	// The source's state keys (source delta_shop) start empty and go.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	dropState := func() { rdb.Del(context.Background(), "rivven:{delta_shop}:offsets", "rivven:{delta_shop}:epoch") }
	dropState()
	t.Cleanup(func() { dropState(); rdb.Close() })
	dir := filepath.Join(t.TempDir(), "orders")
	for k, v := range map[string]string{
		"PG_HOST": "127.0.0.1", "PG_PORT": "5432", "PG_DATABASE": "test", "PG_USER": "postgres", "PG_PASSWORD": "",
		"DELTA_SLOT": name, "DELTA_PUBLICATION": name, "DELTA_SOURCE_TABLE": "public." + name, "DELTA_TABLE_URI": dir,
		"REDIS_URL": "redis://127.0.0.1:6379/0",
	} {
		t.Setenv(k, v)
	}
	const sample = "../../samples/pipelines/postgres-to-delta.yaml"
	run := func() {
		t.Helper()
		code, out, errOut := cli(t, "local", "-c", sample, "--duration", "10s", "--json")
		if code != 0 {
			t.Fatalf("local: exit %d\n%s%s", code, out, errOut)
		}
	}
	run()
	rows := readDelta(t, dir)
	if got := deltaIDs(t, rows); !slices.Equal(got, seqInts(1, 20)) {
		t.Fatalf("first run: ids %v, want 1..20 once each", got)
	}
	for _, r := range rows {
		id, _ := strconv.Atoi(fmt.Sprint(r["id"]))
		if r["status"] != []string{"new", "paid", "shipped"}[id%3] || r["customer"] != fmt.Sprintf("c%d", id%4) {
			t.Fatalf("row %v", r)
		}
	}
	if _, err := conn.Exec(ctx, "INSERT INTO "+name+" VALUES (21, 'c1', 210, 'new')"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "UPDATE "+name+" SET status = 'paid' WHERE id = 3"); err != nil {
		t.Fatal(err)
	}
	run()
	// The table is append-only: the update adds the row's new state.
	want := append(seqInts(1, 21), 3)
	slices.Sort(want)
	if got := deltaIDs(t, readDelta(t, dir)); !slices.Equal(got, want) {
		t.Fatalf("second run: ids %v, want %v", got, want)
	}
}

// readDelta replays a local table's log (adds minus removes) and reads the
// live files with hyparquet, adding each file's partition values.
func readDelta(t *testing.T, dir string) []map[string]any {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "_delta_log"))
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]map[string]any{}
	for _, e := range entries {
		if len(e.Name()) != 25 || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, "_delta_log", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var a map[string]map[string]any
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				t.Fatal(err)
			}
			if add := a["add"]; add != nil {
				live[add["path"].(string)] = add
			}
			if rm := a["remove"]; rm != nil {
				delete(live, rm["path"].(string))
			}
		}
		f.Close()
	}
	var files []string
	var adds []map[string]any
	for p, a := range live {
		rel, err := url.PathUnescape(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.Join(dir, filepath.FromSlash(rel)))
		adds = append(adds, a)
	}
	if len(files) == 0 {
		t.Fatal("the table has no live files")
	}
	var rows []map[string]any
	for i, f := range formattest.ReadParquet(t, files...) {
		if f.Error != "" {
			t.Fatalf("%s: %s", f.File, f.Error)
		}
		for _, r := range f.Rows {
			for k, v := range adds[i]["partitionValues"].(map[string]any) {
				r[k] = v
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func deltaIDs(t *testing.T, rows []map[string]any) []int {
	t.Helper()
	var ids []int
	for _, r := range rows {
		id, err := strconv.Atoi(fmt.Sprint(r["id"]))
		if err != nil {
			t.Fatalf("id %#v", r["id"])
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func seqInts(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
