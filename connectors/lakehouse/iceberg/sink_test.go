package iceberg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	ice "github.com/apache/iceberg-go"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format/formattest"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const (
	pgAddr = "127.0.0.1:5432"
	pgURL  = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// env is one test's catalog: a catalog name of its own in the real
// PostgreSQL (its rows are deleted afterwards) and a warehouse directory.
type env struct {
	t         *testing.T
	name      string
	warehouse string
	db        *sql.DB
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireService(t, "postgres", pgAddr)
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &env{t: t, name: "rivven_test_" + hex.EncodeToString(b[:]), warehouse: t.TempDir()}
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	t.Cleanup(func() {
		// The catalog's tables are shared by every catalog name in the
		// database; only this test's rows go.
		_, _ = db.Exec("DELETE FROM iceberg_tables WHERE catalog_name = $1", e.name)
		_, _ = db.Exec("DELETE FROM iceberg_namespace_properties WHERE catalog_name = $1", e.name)
		db.Close()
	})
	return e
}

func (e *env) config(extra func(*Config)) *Config {
	c := &Config{
		Catalog: CatalogConfig{Type: CatalogSQL, SQL: &SQLOptions{
			URI: pgURL, Warehouse: "file://" + e.warehouse, Name: e.name,
		}},
		Namespace: "analytics", Table: "orders",
		BatchSize: 10000, FlushIntervalSecs: 60, TargetFileSizeMB: 128,
		Compression: "snappy", Partitioning: PartitionNone, PartitionBuckets: 16, PartitionTimeUnit: "day",
		CommitMode: CommitAppend, SchemaEvolution: EvolveAddColumns, MaxCommitRetries: 10,
	}
	if extra != nil {
		extra(c)
	}
	if ps := c.Validate(); len(ps) > 0 {
		e.t.Fatalf("config: %v", ps)
	}
	return c
}

func (e *env) sink(cfg *Config) *Sink {
	e.t.Helper()
	s, err := newSink(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// load opens the table through a catalog of its own, as another engine
// would: the sink's state is not involved.
func (e *env) load(ns, tbl string) *table.Table {
	e.t.Helper()
	return e.loadWith(ns, tbl, nil)
}

// loadWith is load with file IO properties (s3.*).
func (e *env) loadWith(ns, tbl string, io map[string]string) *table.Table {
	e.t.Helper()
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	props := ice.Properties{"warehouse": "file://" + e.warehouse}
	for k, v := range io {
		props[k] = v
	}
	cat, err := icesql.NewCatalog(e.name, db, icesql.Postgres, props)
	if err != nil {
		e.t.Fatal(err)
	}
	t, err := cat.LoadTable(context.Background(), append(strings.Split(ns, "."), tbl))
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// scan reads the table with iceberg-go's scan (manifests, delete files,
// projection to the current schema) and returns its rows as JSON-ish maps.
func scan(t *testing.T, tbl *table.Table) []map[string]any {
	t.Helper()
	at, err := tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	var rows []map[string]any
	tr := array.NewTableReader(at, 1024)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			m := map[string]any{}
			for c := 0; c < int(rec.NumCols()); c++ {
				col := rec.Column(c)
				if col.IsNull(i) {
					continue
				}
				m[rec.ColumnName(c)] = col.GetOneForMarshal(i)
			}
			rows = append(rows, m)
		}
	}
	return rows
}

// order is one insert event, delivered from topic orders partition p at offset off
// (off < 0: not delivered by a trigger).
func order(id int, p int32, off int64) *events.Event {
	data := fmt.Sprintf(`{"order_id":%d,"customer":"c%d","amount":%d.5,"paid":%t}`, id, id%7, id, id%2 == 0)
	e := events.New(events.Insert, "orders", events.RawPayload([]byte(data)))
	if off >= 0 {
		e.Delivered = &events.Position{Topic: "cdc.orders", Partition: p, Offset: off, HasOffset: true, ID: fmt.Sprintf("cdc.orders-%d-%d", p, off)}
	}
	return e
}

func orders(from, n int, p int32) []*events.Event {
	out := make([]*events.Event, n)
	for i := range out {
		out[i] = order(from+i, p, int64(from+i))
	}
	return out
}

func ids(t *testing.T, rows []map[string]any) []int64 {
	t.Helper()
	var out []int64
	for _, r := range rows {
		v, ok := r["order_id"].(int64)
		if !ok {
			t.Fatalf("order_id %#v (%T)", r["order_id"], r["order_id"])
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func seq(from, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(from + i)
	}
	return out
}

// TestAppendCreatesTableAndReadsBack: the first batch creates namespace and
// table (columns inferred from the rows), every batch is one snapshot, and
// iceberg-go's scan through a separate catalog reads exactly the rows
// written, with their values.
func TestAppendCreatesTableAndReadsBack(t *testing.T) {
	e := newEnv(t)
	s := e.sink(e.config(nil))
	ctx := context.Background()
	for _, b := range [][]*events.Event{orders(0, 100, 0), orders(100, 50, 0), orders(150, 25, 1)} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	tbl := e.load("analytics", "orders")
	if got := len(tbl.Metadata().Snapshots()); got != 3 {
		t.Errorf("%d snapshots, want one per batch: 3", got)
	}
	sc := tbl.Schema()
	for name, typ := range map[string]ice.Type{"order_id": ice.PrimitiveTypes.Int64, "customer": ice.PrimitiveTypes.String, "amount": ice.PrimitiveTypes.Float64, "paid": ice.PrimitiveTypes.Bool} {
		f, ok := sc.FindFieldByName(name)
		if !ok || !f.Type.Equals(typ) || f.Required {
			t.Errorf("column %s: %v (found %v), want optional %s", name, f, ok, typ)
		}
	}
	if got := tbl.Properties()[table.ParquetCompressionKey]; got != "snappy" {
		t.Errorf("compression property %q", got)
	}
	rows := scan(t, tbl)
	if got := ids(t, rows); !slices.Equal(got, seq(0, 175)) {
		t.Fatalf("scan read order ids %v, want 0..174 once each", got)
	}
	for _, r := range rows {
		id := r["order_id"].(int64)
		if r["customer"] != fmt.Sprintf("c%d", id%7) || r["amount"] != float64(id)+0.5 || r["paid"] != (id%2 == 0) {
			t.Fatalf("row %v differs from what was written", r)
		}
	}
	cur := tbl.CurrentSnapshot().Summary.Properties
	if got := cur[offsetsKeyPrefix+"iceberg"]; got != `{"cdc.orders":{"0":149,"1":174}}` {
		t.Errorf("summary offsets %q", got)
	}
}

// TestRedeliveryIsSkipped: a batch redelivered after its commit (grouped
// differently, overlapping new records) adds only the records not yet
// committed; a redelivered batch of events without offsets is skipped by
// its batch id.
func TestRedeliveryIsSkipped(t *testing.T) {
	e := newEnv(t)
	s := e.sink(e.config(nil))
	ctx := context.Background()
	if err := s.Write(ctx, orders(0, 100, 0)); err != nil {
		t.Fatal(err)
	}
	// The same 100 again: nothing new, no snapshot.
	if err := s.Write(ctx, orders(0, 100, 0)); err != nil {
		t.Fatal(err)
	}
	// Redelivered from offset 50 with 50 new ones.
	if err := s.Write(ctx, orders(50, 100, 0)); err != nil {
		t.Fatal(err)
	}
	tbl := e.load("analytics", "orders")
	if got := len(tbl.Metadata().Snapshots()); got != 2 {
		t.Errorf("%d snapshots, want 2 (the full redelivery committed nothing)", got)
	}
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, seq(0, 150)) {
		t.Fatalf("read %d ids %v, want 0..149 once each", len(got), got)
	}

	// Events no trigger delivered: the same batch twice is written once,
	// a different batch is written.
	direct := func(from int) []*events.Event {
		out := make([]*events.Event, 10)
		for i := range out {
			out[i] = order(1000+from+i, 0, -1)
			out[i].Metadata.Position = fmt.Sprintf("lsn-%d", from+i)
		}
		return out
	}
	first := direct(0)
	for _, b := range [][]*events.Event{first, first, direct(10)} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	tbl = e.load("analytics", "orders")
	want := append(seq(0, 150), seq(1000, 20)...)
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, want) {
		t.Fatalf("read %d ids, want %d: %v", len(got), len(want), got)
	}

	// A new sink instance (a restart) sees the committed state too.
	s2 := e.sink(e.config(nil))
	if err := s2.Write(ctx, orders(100, 60, 0)); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, scan(t, e.load("analytics", "orders"))); len(got) != len(want)+10 {
		t.Fatalf("after restart: %d rows, want %d", len(got), len(want)+10)
	}
}

// TestConcurrentWritersConflictAndRetry: two sinks commit to one table at
// once; the loser's commit conflicts, is retried on the refreshed table,
// and every row is there once.
func TestConcurrentWritersConflictAndRetry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.sink(e.config(nil))
	if err := a.Write(ctx, orders(0, 10, 0)); err != nil { // create the table
		t.Fatal(err)
	}
	b := e.sink(e.config(nil))
	const rounds = 8
	errs := make(chan error, 2)
	go func() {
		for i := range rounds {
			if err := a.Write(ctx, orders(100+i*10, 10, 1)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := range rounds {
			if err := b.Write(ctx, orders(1000+i*10, 10, 2)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	tbl := e.load("analytics", "orders")
	got := ids(t, scan(t, tbl))
	want := append(append(seq(0, 10), seq(100, 80)...), seq(1000, 80)...)
	if !slices.Equal(got, want) {
		t.Fatalf("%d rows, want %d once each", len(got), len(want))
	}
	if n := len(tbl.Metadata().Snapshots()); n != 1+2*rounds {
		t.Errorf("%d snapshots, want %d", n, 1+2*rounds)
	}
}

// TestCommitConflictRetried: another writer commits between this sink's
// data files and its commit; the commit conflicts, is retried on the
// refreshed table, and both batches are there once. When the other writer
// is this very sink's batch committed meanwhile (a redelivery racing the
// original), the retry finds it committed and adds nothing.
func TestCommitConflictRetried(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.sink(e.config(nil))
	if err := a.Write(ctx, orders(0, 10, 0)); err != nil {
		t.Fatal(err)
	}
	b := e.sink(e.config(nil))
	conflicts := 0
	a.beforeCommit = func() {
		if conflicts == 0 {
			conflicts++
			if err := b.Write(ctx, orders(500, 10, 1)); err != nil {
				t.Error(err)
			}
		}
	}
	if err := a.Write(ctx, orders(10, 10, 0)); err != nil {
		t.Fatal(err)
	}
	tbl := e.load("analytics", "orders")
	if got, want := ids(t, scan(t, tbl)), append(seq(0, 20), seq(500, 10)...); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 3 {
		t.Errorf("%d snapshots, want 3", n)
	}

	// The same batch committed by b while a is about to commit it.
	conflicts = 0
	a.beforeCommit = func() {
		if conflicts == 0 {
			conflicts++
			if err := b.Write(ctx, orders(20, 10, 0)); err != nil {
				t.Error(err)
			}
		}
	}
	if err := a.Write(ctx, orders(20, 10, 0)); err != nil {
		t.Fatal(err)
	}
	tbl = e.load("analytics", "orders")
	if got, want := ids(t, scan(t, tbl)), append(seq(0, 30), seq(500, 10)...); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}

// TestParquetFilesReadByHyparquet: the data files the snapshots list are
// read by hyparquet, a JavaScript reader sharing no code with arrow-go
// (which wrote them), for each compression it can decode.
func TestParquetFilesReadByHyparquet(t *testing.T) {
	for _, codec := range []string{"snappy", "gzip", "none", "brotli"} {
		t.Run(codec, func(t *testing.T) {
			e := newEnv(t)
			s := e.sink(e.config(func(c *Config) { c.Compression = codec }))
			if err := s.Write(context.Background(), orders(0, 200, 0)); err != nil {
				t.Fatal(err)
			}
			tbl := e.load("analytics", "orders")
			files := dataFiles(t, tbl)
			if len(files) == 0 {
				t.Fatal("no data files")
			}
			var got []int64
			for _, f := range formattest.ReadParquet(t, files...) {
				if f.Error != "" {
					t.Fatalf("hyparquet: %s: %s", f.File, f.Error)
				}
				for _, r := range f.Rows {
					var id int64
					if _, err := fmt.Sscan(fmt.Sprint(r["order_id"]), &id); err != nil {
						t.Fatalf("order_id %v", r["order_id"])
					}
					got = append(got, id)
					if fmt.Sprint(r["customer"]) != fmt.Sprintf("c%d", id%7) {
						t.Fatalf("row %v", r)
					}
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, seq(0, 200)) {
				t.Fatalf("hyparquet read %d ids", len(got))
			}
		})
	}
}

// dataFiles lists the local paths of the current snapshot's data files.
func dataFiles(t *testing.T, tbl *table.Table) []string {
	t.Helper()
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		p := strings.TrimPrefix(task.File.FilePath(), "file://")
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
		out = append(out, filepath.Clean(p))
	}
	return out
}

// TestSchemaEvolution: add_columns adds a new field as an optional column
// (older rows read null); strict dead-letters the event naming the field;
// a value that does not fit its column is dead-lettered naming the column.
func TestSchemaEvolution(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.sink(e.config(nil))
	if err := s.Write(ctx, orders(0, 5, 0)); err != nil {
		t.Fatal(err)
	}
	ev := events.New(events.Insert, "orders", events.RawPayload([]byte(`{"order_id":5,"customer":"c5","amount":1,"coupon":"SAVE10"}`)))
	bad := events.New(events.Insert, "orders", events.RawPayload([]byte(`{"order_id":"six","customer":"c6"}`)))
	err := s.Write(ctx, []*events.Event{ev, bad})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil || !strings.Contains(we.Failed[1].Error(), `column "order_id"`) {
		t.Fatalf("want the second event failed naming order_id, got %v", err)
	}
	tbl := e.load("analytics", "orders")
	if f, ok := tbl.Schema().FindFieldByName("coupon"); !ok || f.Required || !f.Type.Equals(ice.PrimitiveTypes.String) {
		t.Fatalf("coupon column: %v %v", f, ok)
	}
	rows := scan(t, tbl)
	if len(rows) != 6 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if (r["order_id"] == int64(5)) != (r["coupon"] == "SAVE10") {
			t.Fatalf("row %v", r)
		}
	}

	strict := e.sink(e.config(func(c *Config) { c.SchemaEvolution = EvolveStrict }))
	ev = events.New(events.Insert, "orders", events.RawPayload([]byte(`{"order_id":7,"note":"x"}`)))
	err = strict.Write(ctx, []*events.Event{ev, order(8, 0, -1)})
	if !errors.As(err, &we) || len(we.Failed) != 1 || !strings.Contains(we.Failed[0].Error(), `"note"`) {
		t.Fatalf("strict: want the first event failed naming note, got %v", err)
	}
	if got := len(scan(t, e.load("analytics", "orders"))); got != 7 {
		t.Fatalf("%d rows after strict write, want 7", got)
	}
}

// TestConfigRefusals: settings not implemented are refused naming their key.
func TestConfigRefusals(t *testing.T) {
	base := func() Config {
		return Config{Catalog: CatalogConfig{Type: CatalogSQL, SQL: &SQLOptions{URI: pgURL, Warehouse: "file:///tmp/w"}},
			Namespace: "a", Table: "t", Partitioning: PartitionNone, CommitMode: CommitAppend}
	}
	cases := map[string]func(*Config){
		"catalog.memory": func(c *Config) { c.Catalog = CatalogConfig{Type: CatalogMemory} },
		"catalog.memory.warehouse": func(c *Config) {
			c.Catalog = CatalogConfig{Type: CatalogMemory, Memory: &MemoryOptions{Warehouse: "ftp://x/w"}}
		},
		"identifier_columns": func(c *Config) { c.IdentifierColumns = []string{"id"} },
		"partition_columns[0]": func(c *Config) {
			c.CommitMode, c.IdentifierColumns = CommitUpsert, []string{"id"}
			c.Partitioning, c.PartitionColumns = PartitionIdentity, []string{"region"}
		},
		"catalog.rest.uri":      func(c *Config) { c.Catalog = CatalogConfig{Type: CatalogREST, REST: &RESTOptions{URI: "ftp://x"}} },
		"catalog.rest":          func(c *Config) { c.Catalog.Type = CatalogREST },
		"catalog.sql.warehouse": func(c *Config) { c.Catalog.SQL.Warehouse = "az://container/w" },
		"catalog.sql.uri":       func(c *Config) { c.Catalog.SQL.URI = "mysql://root@x/db" },
		"partition_columns":     func(c *Config) { c.Partitioning = PartitionIdentity },
		"namespace":             func(c *Config) { c.Namespace = "a..b" },
	}
	for path, mod := range cases {
		c := base()
		mod(&c)
		found := false
		for _, p := range c.Validate() {
			if p.Path == path {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: not refused: %v", path, c.Validate())
		}
	}
	c := base()
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("valid config refused: %v", ps)
	}
}

// TestPartitioningAndOverwrite: tables created with each partitioning get
// the spec asked for, their data files carry the partition values (one
// file per partition), and the scan reads every row; commit_mode
// overwrite leaves only the last batch's rows.
func TestPartitioningAndOverwrite(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		mod       func(*Config)
		transform string
		files     int
	}{
		{"identity", func(c *Config) { c.Partitioning, c.PartitionColumns = PartitionIdentity, []string{"customer"} }, "identity", 7},
		{"bucket", func(c *Config) {
			c.Partitioning, c.PartitionColumns, c.PartitionBuckets = PartitionBucket, []string{"order_id"}, 4
		}, "bucket[4]", 4},
		{"time", func(c *Config) {
			c.Partitioning, c.PartitionColumns, c.PartitionTimeUnit = PartitionTime, []string{"created_at"}, "day"
		}, "day", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.sink(e.config(tc.mod))
			var batch []*events.Event
			for i := range 60 {
				data := fmt.Sprintf(`{"order_id":%d,"customer":"c%d","created_at":"2024-03-0%dT10:00:00Z"}`, i, i%7, 1+i%3)
				batch = append(batch, events.New(events.Insert, "orders", events.RawPayload([]byte(data))))
			}
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
			tbl := e.load("analytics", "orders")
			spec := tbl.Spec()
			if spec.NumFields() != 1 || spec.Field(0).Transform.String() != tc.transform {
				t.Fatalf("spec %v, want one %s field", spec, tc.transform)
			}
			if n := len(dataFiles(t, tbl)); n != tc.files {
				t.Errorf("%d data files, want one per partition: %d", n, tc.files)
			}
			if got := ids(t, scan(t, tbl)); !slices.Equal(got, seq(0, 60)) {
				t.Fatalf("read %v", got)
			}
		})
	}

	e := newEnv(t)
	s := e.sink(e.config(func(c *Config) { c.CommitMode = CommitOverwrite }))
	for _, b := range [][]*events.Event{orders(0, 50, 0), orders(50, 20, 0)} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	tbl := e.load("analytics", "orders")
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, seq(50, 20)) {
		t.Fatalf("overwrite: read %v, want the last batch only", got)
	}
	if op := tbl.CurrentSnapshot().Summary.Operation; op != table.OpOverwrite {
		t.Errorf("operation %s", op)
	}
}
