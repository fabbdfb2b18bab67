package postgrescdc

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/jackc/pglogrepl"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// history checks a table of (id int primary key, v int) where inserts
// start at v = 0 and every update adds 1: per id the emitted states must
// be consecutive (no loss, no duplicate, in order) and end at the
// database's state.
func checkHistory(t *testing.T, h *harness, table string, evs []*events.Event) {
	t.Helper()
	seen := map[int64][]int64{}
	deleted := map[int64]bool{}
	for _, e := range dataEvents(evs, table) {
		switch e.Type {
		case events.SnapshotRead, events.Insert:
			r := rowOf(t, e)
			id := num(r["id"])
			if len(seen[id]) > 0 && !deleted[id] {
				t.Fatalf("%s: id %d read/inserted twice (states so far %v)", table, id, seen[id])
			}
			deleted[id] = false
			seen[id] = append(seen[id], num(r["v"]))
		case events.Update:
			r := rowOf(t, e)
			id := num(r["id"])
			vs := seen[id]
			v := num(r["v"])
			if len(vs) == 0 {
				t.Fatalf("%s: update of id %d before its insert", table, id)
			}
			if v != vs[len(vs)-1]+1 {
				t.Fatalf("%s: id %d went from v=%d to v=%d (lost or duplicated update)", table, id, vs[len(vs)-1], v)
			}
			seen[id] = append(vs, v)
		case events.Delete:
			r := rowOf(t, e)
			id := num(r["id"])
			if deleted[id] || len(seen[id]) == 0 {
				t.Fatalf("%s: delete of id %d that is not there", table, id)
			}
			deleted[id] = true
		}
	}
	rows, err := h.db.Query(context.Background(), "SELECT id, v FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	inDB := map[int64]int64{}
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		inDB[id] = v
	}
	for id, v := range inDB {
		vs := seen[id]
		if len(vs) == 0 || deleted[id] {
			t.Fatalf("%s: id %d (v=%d) is in the database but was never emitted (or emitted as deleted)", table, id, v)
		}
		if vs[len(vs)-1] != v {
			t.Fatalf("%s: id %d ends at v=%d, database has v=%d", table, id, vs[len(vs)-1], v)
		}
	}
	for id := range seen {
		if _, ok := inDB[id]; !ok && !deleted[id] {
			t.Fatalf("%s: id %d emitted but not in the database and no delete seen", table, id)
		}
	}
}

// caughtUp reports whether the events reflect the database's state.
func caughtUp(h *harness, table string, evs []*events.Event) bool {
	last := map[int64]int64{}
	for _, e := range dataEvents(evs, table) {
		r, err := e.Row()
		if err != nil || r == nil {
			continue
		}
		if e.Type == events.Delete {
			delete(last, num(r["id"]))
			continue
		}
		last[num(r["id"])] = num(r["v"])
	}
	var n int
	var sum int64
	if err := h.db.QueryRow(context.Background(), "SELECT count(*), COALESCE(sum(v), 0) FROM "+table).Scan(&n, &sum); err != nil {
		return false
	}
	var s int64
	for _, v := range last {
		s += v
	}
	return len(last) == n && s == sum
}

// writer keeps changing a table: inserts, updates (v+1) and deletes, some
// in multi-statement transactions.
func writer(t *testing.T, table string, nextID int64, ops int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	db, err := pgx.Connect(ctx, "postgres://postgres@"+pgAddr+"/test?sslmode=disable")
	if err != nil {
		t.Errorf("writer: %v", err)
		return
	}
	defer db.Close(ctx)
	for i := 0; i < ops; i++ {
		var q string
		switch k := rng.IntN(10); {
		case k < 3:
			q = fmt.Sprintf("INSERT INTO %s (id, v) VALUES (%d, 0)", table, nextID)
			nextID++
		case k < 9:
			q = fmt.Sprintf("UPDATE %s SET v = v + 1 WHERE id = %d", table, 1+rng.Int64N(nextID-1))
		default:
			q = fmt.Sprintf("DELETE FROM %s WHERE id = %d", table, 1+rng.Int64N(nextID-1))
		}
		if rng.IntN(5) == 0 { // a transaction of several changes
			q = fmt.Sprintf("BEGIN; %s; UPDATE %s SET v = v + 1 WHERE id = %d; COMMIT", q, table, 1+rng.Int64N(nextID-1))
		}
		if _, err := db.Exec(ctx, q); err != nil {
			t.Errorf("writer: %s: %v", q, err)
			return
		}
	}
}

func TestSnapshotStreamHandoff(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TABLE $T_a (id bigint PRIMARY KEY, v int NOT NULL, pad text)`,
		`CREATE TABLE $T_b (id bigint PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO $T_a SELECT g, 0, repeat('x', 50) FROM generate_series(1, 3000) g`,
		`INSERT INTO $T_b SELECT g, 0 FROM generate_series(1, 2000) g`,
		`ANALYZE $T_a`, `ANALYZE $T_b`,
	)
	cfg := h.config([]string{"$T_a", "$T_b"}, "snapshot:\n  batch_size: 200\n  parallel_tables: 2\n")
	s := h.source(cfg)
	rec := &recorder{}
	rt := &pipeline.Runtime{Name: "pg", Metrics: telemetry.NewRegistry()}
	ctx := pipeline.WithRuntime(context.Background(), rt)
	stop, _ := run(ctx, s, "", rec)
	defer stop()
	// The snapshot is the slot's exported snapshot: once the source emits
	// its first event the slot is made and its snapshot taken, so every
	// row inserted above is in it whatever the writers do next.
	waitFor(t, 30*time.Second, "the snapshot to start", func() bool { return len(rec.snapshot()) > 0 })
	// Writers run while the snapshot is read and keep going after.
	var wg sync.WaitGroup
	for i, tbl := range []string{h.name + "_a", h.name + "_b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			writer(t, tbl, map[int]int64{0: 3001, 1: 2001}[i], 600, uint64(i+7))
		}()
	}
	wg.Wait()
	for _, tbl := range []string{h.name + "_a", h.name + "_b"} {
		waitFor(t, 60*time.Second, tbl+" caught up", func() bool { return caughtUp(h, tbl, rec.snapshot()) })
	}
	if err := stop(); err != nil {
		t.Fatalf("Read: %v", err)
	}
	evs := rec.snapshot()
	for _, tbl := range []string{h.name + "_a", h.name + "_b"} {
		checkHistory(t, h, tbl, evs)
	}
	var snaps, schemas int
	for _, e := range evs {
		switch e.Type {
		case events.SnapshotRead:
			snaps++
			if e.Source == nil || !e.Source.Snapshot || e.Source.Database != "test" || e.Source.Schema != "public" {
				t.Fatalf("snapshot event source block: %+v", e.Source)
			}
		case events.Schema:
			schemas++
		}
		if e.Metadata.Position == "" {
			t.Fatalf("%s event without position", e.Type)
		}
	}
	// Rows the writers inserted before the snapshot was taken are in it.
	if snaps < 5000 {
		t.Fatalf("snapshot rows = %d, want at least 5000", snaps)
	}
	if schemas < 2 {
		t.Fatalf("schema events = %d, want at least one per table", schemas)
	}
	if got := rt.Counter(metricSnapshotRows, "Rows read by snapshots.").Value(); got != uint64(snaps) {
		t.Fatalf("%s = %d, want %d", metricSnapshotRows, got, snaps)
	}
	if rt.Counter(metricEvents, "Change events emitted (snapshot rows excluded).").Value() == 0 {
		t.Fatalf("%s stayed 0", metricEvents)
	}
	// The slot was confirmed up to what was acknowledged.
	waitFor(t, 15*time.Second, "slot confirmed past the snapshot", func() bool { return h.slotConfirmed() != "" })
}

// TestCrashResume cancels Read at random batches, mid-snapshot and
// mid-transaction, and restarts from the last acknowledged position:
// without concurrent writes during the crashes nothing may be lost or
// duplicated.
func TestCrashResume(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO $T SELECT g, 0 FROM generate_series(1, 3000) g`,
	)
	table := h.name
	cfg := h.config([]string{"$T"}, "snapshot:\n  batch_size: 250\n  parallel_tables: 1\n")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	var all []*events.Event
	pos := ""
	crashes := 0
	// runUntil runs with crashes until the events catch up with the
	// database, with a last run without crash.
	runUntil := func(phase string, maxCrashes int) {
		for i := 0; ; i++ {
			s := h.source(cfg)
			s.maxBatch = 100 // split big transactions into many batches
			rec := &recorder{}
			if i < maxCrashes {
				rec.crashAt = 1 + rng.IntN(4)
			}
			t.Logf("%s run %d from %s (crash at %d)", phase, i, pos, rec.crashAt)
			stop, done := run(context.Background(), s, pos, rec)
			crashed := false
			waitFor(t, 60*time.Second, phase+" caught up or crashed", func() bool {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("%s: Read after crash: %v", phase, err)
					}
					crashed = true
					return true
				default:
				}
				return caughtUp(h, table, append(append([]*events.Event(nil), all...), rec.snapshot()...))
			})
			if !crashed {
				if err := stop(); err != nil {
					t.Fatalf("%s: Read: %v", phase, err)
				}
			}
			all = append(all, rec.snapshot()...)
			if p := rec.position(); p != "" {
				pos = p
			}
			if !crashed {
				return
			}
			crashes++
		}
	}
	runUntil("snapshot", 5)
	if !strings.Contains(pos, `"lsn"`) {
		t.Fatalf("position %q", pos)
	}
	// Stream phase: one big transaction (spooled, split into batches)
	// and many small ones, written while the source is down.
	h.exec(
		`INSERT INTO $T SELECT g, 0 FROM generate_series(3001, 6000) g`,
		`UPDATE $T SET v = v + 1 WHERE id % 7 = 0`,
	)
	for i := 0; i < 50; i++ {
		h.exec(fmt.Sprintf(`UPDATE $T SET v = v + 1 WHERE id = %d`, 1+i*97))
	}
	runUntil("stream", 6)
	checkHistory(t, h, table, all)
	t.Logf("%d crashes, %d events", crashes, len(all))
}

// startStreaming starts Read and returns once it streams: changes made
// after that are streamed, whatever the snapshot mode.
func startStreaming(t *testing.T, h *harness, cfg *Config, ctx context.Context) (*recorder, func() error) {
	t.Helper()
	s := h.source(cfg)
	rec := &recorder{}
	streaming := make(chan struct{})
	var once sync.Once
	s.streaming = func() { once.Do(func() { close(streaming) }) }
	stop, done := run(ctx, s, "", rec)
	t.Cleanup(func() { _ = stop() })
	awaitSignal(t, streaming, done, "Read returned before streaming", "Read did not start streaming within 60s")
	return rec, stop
}

func eventsOf(rec *recorder, table string, typ events.Type) []*events.Event {
	var out []*events.Event
	for _, e := range rec.snapshot() {
		if e.Stream == table && e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func TestToastTruncateAddColumn(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TABLE $T (id int PRIMARY KEY, big text, n int)`,
		`ALTER TABLE $T ALTER COLUMN big SET STORAGE EXTERNAL`,
	)
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: never\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	var big string
	if err := h.db.QueryRow(context.Background(), `SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200) g`).Scan(&big); err != nil {
		t.Fatal(err)
	}
	h.exec(fmt.Sprintf(`INSERT INTO $T VALUES (1, '%s', 0)`, big))
	h.exec(`UPDATE $T SET n = 1 WHERE id = 1`)
	waitFor(t, 20*time.Second, "update event", func() bool { return len(eventsOf(rec, h.name, events.Update)) == 1 })
	u := eventsOf(rec, h.name, events.Update)[0]
	after, _ := u.After()
	if _, ok := after["big"]; ok {
		t.Fatalf("unchanged TOAST column present in after: %v", after["big"] != nil)
	}
	if num(after["n"]) != 1 {
		t.Fatalf("after = %v", after)
	}
	if raw, ok := u.Metadata.Get("unchanged_toast_columns"); !ok || string(raw) != `["big"]` {
		t.Fatalf("unchanged_toast_columns = %s, %v", raw, ok)
	}
	if string(u.Key) != `{"id":1}` {
		t.Fatalf("key = %s", u.Key)
	}
	// With REPLICA IDENTITY FULL the old row supplies the value.
	h.exec(`ALTER TABLE $T REPLICA IDENTITY FULL`, `UPDATE $T SET n = 2 WHERE id = 1`)
	waitFor(t, 20*time.Second, "second update", func() bool { return len(eventsOf(rec, h.name, events.Update)) == 2 })
	u = eventsOf(rec, h.name, events.Update)[1]
	after, _ = u.After()
	before, _ := u.Before()
	if after["big"] != big || num(after["n"]) != 2 || before["big"] != big || num(before["n"]) != 1 {
		t.Fatalf("FULL identity update: before n=%v big ok=%v, after n=%v big ok=%v", before["n"], before["big"] == big, after["n"], after["big"] == big)
	}
	if _, ok := u.Metadata.Get("unchanged_toast_columns"); ok {
		t.Fatal("unchanged_toast_columns set although the old row had the value")
	}
	// New column mid-stream: a schema event, and the next insert has it.
	h.exec(`ALTER TABLE $T ADD COLUMN extra text DEFAULT 'dflt'`, `INSERT INTO $T (id, n) VALUES (2, 5)`)
	waitFor(t, 20*time.Second, "insert after ADD COLUMN", func() bool { return len(eventsOf(rec, h.name, events.Insert)) == 2 })
	ins := eventsOf(rec, h.name, events.Insert)[1]
	if r := rowOf(t, ins); r["extra"] != "dflt" {
		t.Fatalf("insert after ADD COLUMN: %v", r)
	}
	schemas := eventsOf(rec, h.name, events.Schema)
	last, _ := schemas[len(schemas)-1].Data.Object()
	if cols := fmt.Sprint(last["columns"]); !strings.Contains(cols, "extra") || !strings.Contains(cols, "type:integer") {
		t.Fatalf("no schema event with the new column (types as format_type writes them): %v", last)
	}
	// Delete under FULL carries the whole old row; truncate is an event.
	h.exec(`DELETE FROM $T WHERE id = 2`, `TRUNCATE $T`)
	waitFor(t, 20*time.Second, "truncate", func() bool { return len(eventsOf(rec, h.name, events.Truncate)) == 1 })
	del := eventsOf(rec, h.name, events.Delete)
	if len(del) != 1 {
		t.Fatalf("%d delete events", len(del))
	}
	if r := rowOf(t, del[0]); num(r["n"]) != 5 || r["extra"] != "dflt" {
		t.Fatalf("delete row %v", r)
	}
	tr := eventsOf(rec, h.name, events.Truncate)[0]
	if tr.Source.Table != h.name || tr.Metadata.TransactionID == "" {
		t.Fatalf("truncate event: %+v %+v", tr.Source, tr.Metadata)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY)`)
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: never\nheartbeat_interval_secs: 1\n")
	rt := &pipeline.Runtime{Name: "pg", Metrics: telemetry.NewRegistry()}
	ctx := pipeline.WithRuntime(context.Background(), rt)
	_, stop := startStreaming(t, h, cfg, ctx)
	beats := rt.Counter(metricHeartbeats, "Heartbeat messages written on a quiet database.")
	waitFor(t, 30*time.Second, "a heartbeat", func() bool { return beats.Value() > 0 })
	first := h.slotConfirmed()
	var firstLag float64
	waitFor(t, 30*time.Second, "confirmed_flush_lsn to advance on an idle database", func() bool {
		return h.slotConfirmed() != first
	})
	firstLag = rt.Gauge(metricSlotLag, "Bytes of WAL between the server's current position and the slot's confirmed position.").Value()
	if firstLag < 0 {
		t.Fatalf("slot lag %v", firstLag)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTypeMapping checks every documented mapping, from the snapshot and
// from the stream (both go through the text format).
func TestTypeMapping(t *testing.T) {
	h := newHarness(t)
	h.exec(
		`CREATE TYPE $T_mood AS ENUM ('sad', 'happy')`,
		`CREATE TABLE $T (id int PRIMARY KEY, i2 smallint, i8 bigint, num numeric, num_nan numeric, f4 real, f8 double precision,
		  f_inf double precision, b bool, t text, vc varchar(10), ch char(3), u uuid, j json, jb jsonb, by bytea, d date,
		  tm time, ts timestamp, tstz timestamptz, iv interval, ai int[], at text[], a2 int[][], mood $T_mood, moods $T_mood[], nul text)`,
	)
	row := `(%d, -32768, 9223372036854775807, 12345678901234567890.123456789012345678, 'NaN', 1.5, 0.1, 'Infinity', true, 'he said "hi"' || E'\n',
	  'vc', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50]}', '{"b": {"c": null}}', '\xdeadbeef', '2024-02-29',
	  '13:14:15.5', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.5+02', '1 year 2 mons 3 days 04:05:06', '{1,NULL,3}',
	  '{"a b","c,d",NULL}', '{{1,2},{3,4}}', 'happy', '{sad,happy}', NULL)`
	h.exec(`INSERT INTO $T VALUES ` + fmt.Sprintf(row, 1))
	want := map[string]string{
		"i2": `-32768`, "i8": `9223372036854775807`, "num": `12345678901234567890.123456789012345678`, "num_nan": `"NaN"`,
		"f4": `1.5`, "f8": `0.1`, "f_inf": `"Infinity"`, "b": `true`, "t": `"he said \"hi\"\n"`, "vc": `"vc"`, "ch": `"ab "`,
		"u": `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "j": `{"a": [1, 2.50]}`, "jb": `{"b": {"c": null}}`, "by": `"3q2+7w=="`,
		"d": `"2024-02-29"`, "tm": `"13:14:15.5"`, "ts": `"2024-02-29T13:14:15.123456"`, "tstz": `"2024-02-29T11:14:15.5Z"`,
		"iv": `"P1Y2M3DT4H5M6S"`, "ai": `[1,null,3]`, "at": `["a b","c,d",null]`, "a2": `[[1,2],[3,4]]`, "mood": `"happy"`,
		"moods": `["sad","happy"]`, "nul": `null`,
	}
	cfg := h.config([]string{"$T"}, "")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	waitFor(t, 20*time.Second, "snapshot row", func() bool { return len(eventsOf(rec, h.name, events.SnapshotRead)) == 1 })
	h.exec(`INSERT INTO $T VALUES ` + fmt.Sprintf(row, 2))
	waitFor(t, 20*time.Second, "streamed row", func() bool { return len(eventsOf(rec, h.name, events.Insert)) == 1 })
	for _, e := range []*events.Event{eventsOf(rec, h.name, events.SnapshotRead)[0], eventsOf(rec, h.name, events.Insert)[0]} {
		raw, err := e.Data.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%s: %v: %s", e.Type, err, raw)
		}
		for col, w := range want {
			if string(got[col]) != w {
				t.Errorf("%s %s = %s, want %s", e.Type, col, got[col], w)
			}
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamedAborts: rolled-back streamed transactions and subtransactions
// never reach the emitter.
func TestStreamedAborts(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, v int NOT NULL)`)
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: never\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	h.exec(`BEGIN; INSERT INTO $T SELECT g, 0 FROM generate_series(1, 20000) g; ROLLBACK`)
	h.exec(`BEGIN; INSERT INTO $T SELECT g, 0 FROM generate_series(1, 1000) g; SAVEPOINT s1;
	        INSERT INTO $T SELECT g, 0 FROM generate_series(1001, 6000) g; ROLLBACK TO SAVEPOINT s1;
	        INSERT INTO $T SELECT g, 0 FROM generate_series(6001, 6010) g; COMMIT`)
	h.exec(`INSERT INTO $T VALUES (99999, 0)`)
	waitFor(t, 30*time.Second, "marker row", func() bool {
		for _, e := range eventsOf(rec, h.name, events.Insert) {
			if num(rowOf(t, e)["id"]) == 99999 {
				return true
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkHistory(t, h, h.name, rec.snapshot())
	if n := len(eventsOf(rec, h.name, events.Insert)); n != 1011 {
		t.Fatalf("%d inserts, want 1011", n)
	}
}

// countingEmitter keeps only counts, so that a large transaction's
// memory is the source's, not the test's.
type countingEmitter struct {
	mu       sync.Mutex
	n        int
	ids      map[int64]bool
	dups     int
	maxBatch int
}

func (c *countingEmitter) Emit(_ context.Context, batch []*events.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxBatch = max(c.maxBatch, len(batch))
	for _, e := range batch {
		if e.Type != events.Insert {
			continue
		}
		v, _, _ := e.Data.Field("id")
		id := num(v)
		if c.ids[id] {
			c.dups++
		}
		c.ids[id] = true
		c.n++
	}
	return nil
}

func (c *countingEmitter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestLargeTransaction(t *testing.T) {
	rows := envInt("PGCDC_LARGE_ROWS", 200000)
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL, payload text)`)
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: never\n")
	s := h.source(cfg)
	s.extraParams = map[string]string{"logical_decoding_work_mem": "1MB"}
	em := &countingEmitter{ids: map[int64]bool{}}
	streaming := make(chan struct{})
	s.streaming = func() { close(streaming) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Read(ctx, nil, em) }()
	defer func() { cancel(); <-done }()
	awaitSignal(t, streaming, done, "Read returned before streaming", "Read did not start streaming within 60s")
	before := h.slotConfirmed()
	h.exec(fmt.Sprintf(`INSERT INTO $T SELECT g, 0, md5(g::text) FROM generate_series(1, %d) g`, rows))
	waitFor(t, 90*time.Second, fmt.Sprintf("%d rows", rows), func() bool { return em.count() >= rows })
	waitFor(t, 15*time.Second, "slot confirmed past the transaction", func() bool { return h.slotConfirmed() != before })
	if em.count() != rows || em.dups != 0 {
		t.Fatalf("%d events, %d duplicates; want %d, 0", em.count(), em.dups, rows)
	}
	if em.maxBatch > s.maxBatch {
		t.Fatalf("a batch of %d events, more than %d", em.maxBatch, s.maxBatch)
	}
	t.Logf("large transaction: %d rows in one transaction, peak RSS (VmHWM) %s", rows, peakRSS())
}

func TestSnapshotModes(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T SELECT g, 0 FROM generate_series(1, 10) g`)
	ctx := context.Background()
	count := func(rec *recorder, typ events.Type) int { return len(eventsOf(rec, h.name, typ)) }

	// initial_only: a snapshot, then Read returns; a second Read with the
	// position does nothing.
	s := h.source(h.config([]string{"$T"}, "snapshot:\n  mode: initial_only\n"))
	rec := &recorder{}
	if err := s.Read(ctx, nil, rec); err != nil {
		t.Fatal(err)
	}
	if count(rec, events.SnapshotRead) != 10 {
		t.Fatalf("initial_only: %d rows", count(rec, events.SnapshotRead))
	}
	rec2 := &recorder{}
	if err := s.Read(ctx, []byte(rec.position()), rec2); err != nil || len(rec2.snapshot()) != 0 {
		t.Fatalf("initial_only again: %v, %d events", err, len(rec2.snapshot()))
	}

	// no_data: schema events only, then streaming.
	rec, stop := startStreaming(t, h, h.config([]string{"$T"}, "snapshot:\n  mode: no_data\n"), ctx)
	h.exec(`INSERT INTO $T VALUES (11, 0)`)
	waitFor(t, 20*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if count(rec, events.SnapshotRead) != 0 || count(rec, events.Schema) == 0 {
		t.Fatalf("no_data: %d snapshot rows, %d schema events", count(rec, events.SnapshotRead), count(rec, events.Schema))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pos := rec.position()

	// initial with a position of a finished snapshot: no re-snapshot.
	s = h.source(h.config([]string{"$T"}, ""))
	rec = &recorder{}
	stop, _ = run(ctx, s, pos, rec)
	h.exec(`INSERT INTO $T VALUES (12, 0)`)
	waitFor(t, 20*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if count(rec, events.SnapshotRead) != 0 {
		t.Fatalf("initial re-snapshotted on restart: %d rows", count(rec, events.SnapshotRead))
	}
	pos = rec.position()

	// always: snapshot on every start, even with a position.
	s = h.source(h.config([]string{"$T"}, "snapshot:\n  mode: always\n"))
	rec = &recorder{}
	stop, _ = run(ctx, s, pos, rec)
	waitFor(t, 20*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 12 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The slot is lost: initial refuses (changes are gone) ...
	h.dropSlot()
	s = h.source(h.config([]string{"$T"}, ""))
	err := s.Read(ctx, []byte(pos), &recorder{})
	if err == nil || !strings.Contains(err.Error(), "no longer exists") || !strings.Contains(err.Error(), "when_needed") {
		t.Fatalf("initial with a lost slot: %v", err)
	}
	// ... when_needed takes a new snapshot.
	s = h.source(h.config([]string{"$T"}, "snapshot:\n  mode: when_needed\n"))
	rec = &recorder{}
	stop, _ = run(ctx, s, pos, rec)
	waitFor(t, 20*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 12 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// never: no snapshot rows.
	s = h.source(h.config([]string{"$T"}, "snapshot:\n  mode: never\n"))
	rec = &recorder{}
	stop, _ = run(ctx, s, "", rec)
	h.exec(`UPDATE $T SET v = 1 WHERE id = 1`)
	waitFor(t, 20*time.Second, "update", func() bool { return count(rec, events.Update) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if count(rec, events.SnapshotRead) != 0 {
		t.Fatal("never took a snapshot")
	}
	// initial on first start with a slot that already exists: a snapshot
	// of its own, then streaming from the slot.
	s = h.source(h.config([]string{"$T"}, "snapshot:\n  parallel_tables: 2\n"))
	rec = &recorder{}
	stop, _ = run(ctx, s, "", rec)
	waitFor(t, 20*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 12 })
	h.exec(`INSERT INTO $T VALUES (13, 0)`)
	waitFor(t, 20*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestDebeziumRendering(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, name text)`)
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: never\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	var commitBefore time.Time
	_ = h.db.QueryRow(context.Background(), `SELECT now()`).Scan(&commitBefore)
	h.exec(`INSERT INTO $T VALUES (1, 'a')`, `UPDATE $T SET name = 'b' WHERE id = 1`)
	waitFor(t, 20*time.Second, "update", func() bool { return len(eventsOf(rec, h.name, events.Update)) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	u := eventsOf(rec, h.name, events.Update)[0]
	if u.Source.CommitTS == nil || !u.Timestamp.Equal(*u.Source.CommitTS) || u.Timestamp.Before(commitBefore.Add(-time.Second)) {
		t.Fatalf("timestamps: event %v, commit %v", u.Timestamp, u.Source.CommitTS)
	}
	b, err := events.Debezium.Append(nil, u)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Before, After map[string]any
		Op            string
		TsMs          int64 `json:"ts_ms"`
		Source        map[string]any
		Transaction   map[string]any
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	// Under REPLICA IDENTITY DEFAULT, before carries the key (as in
	// Debezium's update example; Flink's debezium-json rejects null).
	lsn, _ := pglogrepl.ParseLSN(u.Source.Position)
	if env.Op != "u" || env.After["name"] != "b" || fmt.Sprint(env.Before) != "map[id:1]" || env.Source["db"] != "test" || env.Source["schema"] != "public" ||
		env.Source["table"] != h.name || env.Source["connector"] != "postgresql" || fmt.Sprint(env.Source["txId"]) != u.Metadata.TransactionID ||
		int64(env.Source["ts_ms"].(float64)) != u.Source.CommitTS.UnixMilli() || uint64(env.Source["lsn"].(float64)) != uint64(lsn) || env.Transaction != nil {
		t.Fatalf("debezium envelope: %s", b)
	}
	// Decoding it back keeps the change.
	back, err := events.Debezium.Decode(b)
	if err != nil || back.Type != events.Update {
		t.Fatalf("decode: %v %v", back, err)
	}
}

func TestCheckAndDiscover(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T_pk (id int PRIMARY KEY, name text NOT NULL, secret text)`, `CREATE TABLE $T_nopk (x int)`, `ANALYZE $T_pk`)
	ctx := context.Background()
	cfg := h.config([]string{"$T_pk", "$T_nopk"}, "column_filters:\n  public.$T_pk: [name]\n")
	s := h.source(cfg)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := s.ensurePublication(ctx, h.db); err != nil {
		t.Fatal(err)
	}
	streams, err := s.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 2 {
		t.Fatalf("discovered %+v", streams)
	}
	for _, st := range streams {
		switch st.Name {
		case h.name + "_pk":
			var cols []string
			for _, c := range st.Columns {
				cols = append(cols, c.Name)
			}
			if !slices.Equal(st.PrimaryKey, []string{"id"}) || !slices.Equal(cols, []string{"id", "name"}) || st.Note != "" || st.Namespace != "public" {
				t.Fatalf("pk table: %+v", st)
			}
		case h.name + "_nopk":
			if len(st.PrimaryKey) != 0 || !strings.Contains(st.Note, "REPLICA IDENTITY FULL") {
				t.Fatalf("no-pk table: %+v", st)
			}
		}
	}
	// A missing publication that may not be created is explained.
	cfg2 := h.config([]string{"$T_pk"}, "auto_create_publication: false\n")
	cfg2.PublicationName = h.name + "_missing"
	s2 := h.source(cfg2)
	err = s2.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "CREATE PUBLICATION") {
		t.Fatalf("Check without publication: %v", err)
	}
	// Column filters apply to events too.
	rec, stop := startStreaming(t, h, cfg, ctx)
	h.exec(`INSERT INTO $T_pk VALUES (1, 'n', 's')`)
	waitFor(t, 20*time.Second, "insert", func() bool { return len(eventsOf(rec, h.name+"_pk", events.Insert)) == 1 })
	if r := rowOf(t, eventsOf(rec, h.name+"_pk", events.Insert)[0]); len(r) != 2 || r["name"] != "n" {
		t.Fatalf("column filter: %v", r)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestTLSModes(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var sslOn string
	_ = h.db.QueryRow(ctx, `SHOW ssl`).Scan(&sslOn)
	for _, c := range []struct {
		mode    string
		wantSSL bool
		wantErr string
	}{
		{"disable", false, ""},
		{"prefer", sslOn == "on", ""},
		{"require", true, ""},
		{"verify-full", true, "certificate"},
	} {
		if sslOn != "on" && c.mode != "disable" && c.mode != "prefer" {
			continue // the server offers no TLS: nothing to verify against
		}
		cfg := h.config([]string{"$T"}, "")
		cfg.TLS.Mode = c.mode
		s := h.source(cfg)
		conn, err := s.connect(ctx)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("%s: %v, want an error about %q", c.mode, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.mode, err)
		}
		var ssl bool
		if err := conn.QueryRow(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close(ctx)
		if ssl != c.wantSSL {
			t.Fatalf("tls.mode %s: ssl = %v, want %v", c.mode, ssl, c.wantSSL)
		}
	}
}

func TestDropSlotOnStopAndProgress(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T SELECT g, 0 FROM generate_series(1, 120) g`, `ANALYZE $T`)
	cfg := h.config([]string{"$T"}, "drop_slot_on_stop: true\nsnapshot:\n  batch_size: 50\n")
	status := &pipeline.Status{}
	rt := &pipeline.Runtime{Name: "pg", Metrics: telemetry.NewRegistry(), Tasks: status}
	rec, stop := startStreaming(t, h, cfg, pipeline.WithRuntime(context.Background(), rt))
	waitFor(t, 20*time.Second, "snapshot", func() bool { return len(eventsOf(rec, h.name, events.SnapshotRead)) == 120 })
	task := "public." + h.name
	waitFor(t, 10*time.Second, "progress gauge", func() bool {
		return rt.Metrics.Gauge("progress.done", "Units of a long task (e.g. snapshot rows) done.", "name", "pg", "task", task).Value() == 120
	})
	for _, p := range status.Progress() {
		if p.Task == task {
			t.Fatalf("snapshot task still in progress after Done: %+v", p)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, h.name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("slot still exists after a clean stop with drop_slot_on_stop (%d, %v)", n, err)
	}
}

// TestTableFilters: tables narrows what is captured, snapshot.exclude_tables
// what is snapshotted (those tables still stream).
func TestTableFilters(t *testing.T) {
	h := newHarness(t)
	for _, x := range []string{"a", "b", "c"} {
		h.exec(`CREATE TABLE $T_`+x+` (id int PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T_`+x+` SELECT g, 0 FROM generate_series(1, 5) g`)
	}
	cfg := h.config([]string{"$T_a", "$T_b", "$T_c"}, "tables: [$T_a, public.$T_b]\nschemas: [public]\nsnapshot:\n  exclude_tables: [$T_b]\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	for _, x := range []string{"a", "b", "c"} {
		h.exec(`INSERT INTO $T_` + x + ` VALUES (6, 0)`)
	}
	waitFor(t, 20*time.Second, "inserts of a and b", func() bool {
		return len(eventsOf(rec, h.name+"_a", events.Insert)) == 1 && len(eventsOf(rec, h.name+"_b", events.Insert)) == 1
	})
	h.exec(`INSERT INTO $T_a VALUES (7, 0)`)
	waitFor(t, 20*time.Second, "second insert of a", func() bool { return len(eventsOf(rec, h.name+"_a", events.Insert)) == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(eventsOf(rec, h.name+"_a", events.SnapshotRead)); n != 5 {
		t.Fatalf("a: %d snapshot rows, want 5", n)
	}
	if n := len(eventsOf(rec, h.name+"_b", events.SnapshotRead)); n != 0 {
		t.Fatalf("b is excluded from the snapshot but %d rows were read", n)
	}
	for _, e := range rec.snapshot() {
		if e.Stream == h.name+"_c" {
			t.Fatalf("c is not captured but produced a %s event", e.Type)
		}
	}
}

// Two slots that start streaming at different points see the same
// change with the same position and CloudEvents id (commit LSN and index
// in the transaction, not where streaming started); streamed schema
// events say which columns are nullable, as snapshot ones do.
func TestStableIdentityAcrossStartPoints(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, name text NOT NULL, note text)`)
	cfgA := h.config([]string{"$T"}, "snapshot:\n  mode: never\n")
	recA, stopA := startStreaming(t, h, cfgA, context.Background())
	h.exec(`INSERT INTO $T VALUES (0, 'zero', NULL)`)
	waitFor(t, 20*time.Second, "row 0 on slot A", func() bool { return len(eventsOf(recA, h.name, events.Insert)) == 1 })
	cfgB := h.config([]string{"$T"}, "snapshot:\n  mode: never\n")
	cfgB.SlotName = h.name + "_b"
	t.Cleanup(func() {
		_, _ = h.db.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, cfgB.SlotName)
	})
	recB, stopB := startStreaming(t, h, cfgB, context.Background())
	h.exec(`BEGIN`, `INSERT INTO $T VALUES (1, 'a', NULL)`, `INSERT INTO $T VALUES (2, 'b', 'x')`, `UPDATE $T SET note = 'y' WHERE id = 1`, `COMMIT`)
	for _, rec := range []*recorder{recA, recB} {
		waitFor(t, 20*time.Second, "the transaction", func() bool { return len(eventsOf(rec, h.name, events.Update)) == 1 })
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	changes := func(rec *recorder) []*events.Event {
		var out []*events.Event
		for _, e := range rec.snapshot() {
			if e.Stream == h.name && e.Type.IsData() && string(e.Key) != `{"id":0}` {
				out = append(out, e)
			}
		}
		return out
	}
	a, b := changes(recA), changes(recB)
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("changes: %d on A, %d on B", len(a), len(b))
	}
	for i := range a {
		ida, _ := events.CloudEvents.Append(nil, a[i])
		idb, _ := events.CloudEvents.Append(nil, b[i])
		var ca, cb struct{ ID string }
		_ = json.Unmarshal(ida, &ca)
		_ = json.Unmarshal(idb, &cb)
		if a[i].Metadata.Position != b[i].Metadata.Position || ca.ID != cb.ID || ca.ID == "" {
			t.Errorf("change %d: positions %s / %s, ids %s / %s", i, a[i].Metadata.Position, b[i].Metadata.Position, ca.ID, cb.ID)
		}
		if a[i].Source.Commit == "" || a[i].Source.Commit != b[i].Source.Commit {
			t.Errorf("change %d: commit %q / %q", i, a[i].Source.Commit, b[i].Source.Commit)
		}
	}
	// The schema event slot B streamed for the table has nullable.
	var schema map[string]any
	for _, e := range recB.snapshot() {
		if e.Type == events.Schema && e.Stream == h.name {
			var err error
			if schema, err = e.Data.Object(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if schema == nil {
		t.Fatal("no streamed schema event")
	}
	want := map[string]bool{"id": false, "name": false, "note": true}
	for _, c := range schema["columns"].([]any) {
		col := c.(map[string]any)
		if n, ok := col["nullable"].(bool); !ok || n != want[col["name"].(string)] {
			t.Errorf("column %v: nullable %v", col["name"], col["nullable"])
		}
	}
}

// TestSnapshotModeRecovery: recovery streams on from a usable slot after
// re-emitting every table's schema; when the slot is gone it re-snapshots
// (the changes made meanwhile arrive in the rows' current images), and
// without a stored position it rebuilds the slot so that the snapshot
// and the stream meet without duplicates.
func TestSnapshotModeRecovery(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T SELECT g, 0 FROM generate_series(1, 5) g`)
	ctx := context.Background()
	cfg := h.config([]string{"$T"}, "snapshot:\n  mode: recovery\n")
	count := func(rec *recorder, typ events.Type) int { return len(eventsOf(rec, h.name, typ)) }
	startFrom := func(pos string) (*recorder, func() error) {
		s := h.source(cfg)
		rec := &recorder{}
		stop, _ := run(ctx, s, pos, rec)
		t.Cleanup(func() { _ = stop() })
		return rec, stop
	}
	valueOf := func(rec *recorder, id int64) (int64, bool) {
		var v int64
		found := false
		for _, e := range dataEvents(rec.snapshot(), h.name) {
			if r := rowOf(t, e); num(r["id"]) == id {
				v, found = num(r["v"]), true
			}
		}
		return v, found
	}

	// First start: a snapshot, then streaming.
	rec, stop := startFrom("")
	waitFor(t, 20*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 5 })
	h.exec(`INSERT INTO $T VALUES (6, 0)`)
	waitFor(t, 20*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pos := rec.position()

	// A usable slot: the schema of the table again, then the change made
	// while the source was down, and no snapshot.
	h.exec(`UPDATE $T SET v = 1 WHERE id = 1`)
	rec, stop = startFrom(pos)
	waitFor(t, 20*time.Second, "update", func() bool { return count(rec, events.Update) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	evs := rec.snapshot()
	if evs[0].Type != events.Schema || evs[0].Stream != h.name || count(rec, events.SnapshotRead) != 0 {
		t.Fatalf("recovery on a usable slot: first event %s %s, %d snapshot rows", evs[0].Type, evs[0].Stream, count(rec, events.SnapshotRead))
	}
	pos = rec.position()

	// The slot is lost, and with it the change made meanwhile: a new
	// snapshot carries the row's current image, and streaming goes on.
	h.dropSlot()
	h.exec(`UPDATE $T SET v = 2 WHERE id = 2`)
	rec, stop = startFrom(pos)
	waitFor(t, 20*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 6 })
	if v, _ := valueOf(rec, 2); v != 2 {
		t.Fatalf("re-snapshot after a lost slot: row 2 has v = %d, want 2", v)
	}
	h.exec(`INSERT INTO $T VALUES (7, 0)`)
	waitFor(t, 20*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// No stored position, on a slot holding an unconfirmed change: the
	// slot is made anew, so the change arrives once, inside the snapshot,
	// and not again from the stream.
	h.exec(`UPDATE $T SET v = 3 WHERE id = 3`)
	rec, stop = startFrom("")
	waitFor(t, 20*time.Second, "snapshot", func() bool { return count(rec, events.SnapshotRead) == 7 })
	h.exec(`INSERT INTO $T VALUES (8, 0)`)
	waitFor(t, 20*time.Second, "insert", func() bool { return count(rec, events.Insert) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := count(rec, events.Update); n != 0 {
		t.Fatalf("recovery without a position delivered %d updates the snapshot already holds", n)
	}
	if v, _ := valueOf(rec, 3); v != 3 {
		t.Fatalf("row 3 has v = %d, want 3", v)
	}
}

// awaitSignal waits up to 60 s for ch to close while Read runs, failing
// with returned if Read returns first and with late if the time runs out.
func awaitSignal(t *testing.T, ch <-chan struct{}, done <-chan error, returned, late string) {
	t.Helper()
	select {
	case <-ch:
	case err := <-done:
		t.Fatalf("%s: %v", returned, err)
	case <-time.After(60 * time.Second):
		t.Fatal(late)
	}
}
