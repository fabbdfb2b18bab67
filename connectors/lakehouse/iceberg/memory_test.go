package iceberg

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format/formattest"
)

// memConfig is a memory-catalog config over warehouse (a URL).
func memConfig(warehouse string, extra func(*Config)) *Config {
	c := &Config{
		Catalog:   CatalogConfig{Type: CatalogMemory, Memory: &MemoryOptions{Warehouse: warehouse}},
		Namespace: "analytics", Table: "orders",
		BatchSize: 10000, FlushIntervalSecs: 60, TargetFileSizeMB: 128,
		Compression: "snappy", Partitioning: PartitionNone, PartitionBuckets: 16, PartitionTimeUnit: "day",
		CommitMode: CommitAppend, SchemaEvolution: EvolveAddColumns, MaxCommitRetries: 10,
	}
	if extra != nil {
		extra(c)
	}
	return c
}

func memSink(t *testing.T, cfg *Config) *Sink {
	t.Helper()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	s, err := newSink(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// fromStorage opens the table from its newest metadata file in the
// warehouse with no catalog at all, as an engine given the metadata
// location would: what it reads was written to storage, not kept in the
// sink's memory.
func fromStorage(t *testing.T, metaDir string, props iceberg.Properties) *table.Table {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(metaDir, "*.metadata.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no metadata files in %s: %v", metaDir, err)
	}
	newest, best := "", -1
	for _, f := range files {
		if v := metadataVersion(f); v > best {
			newest, best = f, v
		}
	}
	return openMetadata(t, "file://"+newest, props)
}

func openMetadata(t *testing.T, loc string, props iceberg.Properties) *table.Table {
	t.Helper()
	tbl, err := table.NewFromLocation(context.Background(), table.Identifier{"analytics", "orders"}, loc, iceio.LoadFSFunc(props, loc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// TestMemoryCatalog: with catalog memory, the sink creates and appends to
// a table whose metadata files land in the warehouse (version 0, 1, ...);
// two sinks of the process on the same warehouse share the catalog, so the
// second sees the first's commits and skips a batch it redelivers; the
// table opened from its newest metadata file without any catalog reads
// every row once.
func TestMemoryCatalog(t *testing.T) {
	dir := t.TempDir()
	wh := "file://" + dir
	ctx := context.Background()
	a := memSink(t, memConfig(wh, nil))
	b := memSink(t, memConfig(wh, nil))
	if a.cat != b.cat {
		t.Fatal("two sinks on one warehouse got different memory catalogs")
	}
	if err := a.Write(ctx, orders(0, 40, 0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, orders(40, 40, 0)); err != nil {
		t.Fatal(err)
	}
	// A redelivery to the other sink is recognised from the shared table.
	if err := a.Write(ctx, orders(20, 60, 0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}
	tbl := fromStorage(t, filepath.Join(dir, "analytics.db", "orders", "metadata"), nil)
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, seq(0, 80)) {
		t.Fatalf("read %d ids, want 0..79 once each", len(got))
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Errorf("%d snapshots, want 2 (the redelivery commits none)", n)
	}
	// The catalog answers as the interface says for a missing table.
	if _, err := a.cat.LoadTable(ctx, table.Identifier{"analytics", "nope"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing table: %v", err)
	}
	// Another warehouse is another catalog.
	if c := memSink(t, memConfig("file://"+t.TempDir(), nil)); c.cat == a.cat {
		t.Error("a second warehouse shares the first one's catalog")
	}
}

// TestMemoryCatalogRace: two sinks sharing the memory catalog commit
// while the other is between writing its files and committing; the loser
// fails the catalog's requirement, retries on the refreshed table, and
// both batches are in the table once.
func TestMemoryCatalogRace(t *testing.T) {
	dir := t.TempDir()
	wh := "file://" + dir
	ctx := context.Background()
	a := memSink(t, memConfig(wh, nil))
	b := memSink(t, memConfig(wh, nil))
	if err := a.Write(ctx, orders(0, 10, 0)); err != nil {
		t.Fatal(err)
	}
	raced := false
	a.beforeCommit = func() {
		if !raced {
			raced = true
			if err := b.Write(ctx, orders(100, 10, 1)); err != nil {
				t.Error(err)
			}
		}
	}
	if err := a.Write(ctx, orders(10, 10, 0)); err != nil {
		t.Fatal(err)
	}
	tbl := fromStorage(t, filepath.Join(dir, "analytics.db", "orders", "metadata"), nil)
	want := append(seq(0, 20), seq(100, 10)...)
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 3 {
		t.Errorf("%d snapshots, want 3", n)
	}
}

// cdc is a change event of order id: op insert, update or delete.
func cdc(op events.Type, id int, customer string, off int64) *events.Event {
	row := fmt.Sprintf(`{"order_id":%d,"customer":%q,"amount":%d.25}`, id, customer, id)
	data := row
	if op == events.Update {
		data = fmt.Sprintf(`{"before":{"order_id":%d},"after":%s}`, id, row)
	}
	e := events.New(op, "orders", events.RawPayload([]byte(data)))
	e.Delivered = &events.Position{Topic: "cdc.orders", Offset: off, HasOffset: true, ID: fmt.Sprintf("cdc.orders-0-%d", off)}
	return e
}

// TestUpsert: commit_mode upsert creates a format-version 2 table whose
// identifier field is identifier_columns; a batch of updates, deletes
// and inserts becomes one snapshot of an equality delete file (every key
// of the batch) and a data file (each key's last row that is not a
// delete). iceberg-go's scan applies the deletes: each key reads once, at
// its last value, deleted keys not at all. hyparquet reads the delete
// file's key column and the data file independently.
func TestUpsert(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := memSink(t, memConfig("file://"+dir, func(c *Config) {
		c.CommitMode, c.IdentifierColumns = CommitUpsert, []string{"order_id"}
	}))
	var first []*events.Event
	for i := range 10 {
		first = append(first, cdc(events.Insert, i, "a", int64(i)))
	}
	if err := s.Write(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := []*events.Event{
		cdc(events.Update, 3, "b", 10),
		cdc(events.Delete, 5, "a", 11),
		cdc(events.Insert, 10, "a", 12),
		cdc(events.Update, 3, "c", 13), // the last change of 3 wins
		cdc(events.Insert, 7, "b", 14), // an insert of an existing key replaces it
		cdc(events.Insert, 11, "a", 15),
		cdc(events.Delete, 11, "a", 16), // inserted and deleted in one batch
	}
	noKey := events.New(events.Insert, "orders", events.RawPayload([]byte(`{"customer":"x"}`)))
	noKey.Delivered = &events.Position{Topic: "cdc.orders", Offset: 17, HasOffset: true, ID: "cdc.orders-0-17"}
	second = append(second, noKey)
	err := s.Write(ctx, second)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[7] == nil {
		t.Fatalf("want only the keyless row (index 7) to fail, got %v", err)
	}
	// Redelivered, the batch commits nothing.
	if err := s.Write(ctx, second[:7]); err != nil {
		t.Fatal(err)
	}

	tbl := fromStorage(t, filepath.Join(dir, "analytics.db", "orders", "metadata"), nil)
	if v := tbl.Metadata().Version(); v < 2 {
		t.Fatalf("format version %d; equality deletes need 2", v)
	}
	if got := tbl.Schema().IdentifierFieldIDs; len(got) != 1 {
		t.Fatalf("identifier fields %v", got)
	} else if f, _ := tbl.Schema().FindFieldByID(got[0]); f.Name != "order_id" || !f.Required {
		t.Fatalf("identifier field %+v", f)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
	rows := scan(t, tbl)
	got := map[int64]string{}
	for _, r := range rows {
		id := r["order_id"].(int64)
		if _, dup := got[id]; dup {
			t.Fatalf("order %d read twice: %v", id, rows)
		}
		got[id] = r["customer"].(string)
	}
	want := map[int64]string{0: "a", 1: "a", 2: "a", 3: "c", 4: "a", 6: "a", 7: "b", 8: "a", 9: "a", 10: "a"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v\nwant %v", got, want)
	}

	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var eqFiles, dataPaths []string
	for _, task := range tasks {
		dataPaths = append(dataPaths, strings.TrimPrefix(task.File.FilePath(), "file://"))
		for _, d := range task.EqualityDeleteFiles {
			if d.ContentType() != iceberg.EntryContentEqDeletes {
				t.Errorf("delete file content %v", d.ContentType())
			}
			p := strings.TrimPrefix(d.FilePath(), "file://")
			if !slices.Contains(eqFiles, p) {
				eqFiles = append(eqFiles, p)
			}
		}
	}
	if len(eqFiles) != 1 {
		t.Fatalf("%d equality delete files, want 1", len(eqFiles))
	}
	var keys []string
	for _, f := range formattest.ReadParquet(t, eqFiles...) {
		if f.Error != "" {
			t.Fatalf("hyparquet: %s", f.Error)
		}
		for _, r := range f.Rows {
			if len(r) != 1 {
				t.Fatalf("delete row %v holds more than the key", r)
			}
			keys = append(keys, fmt.Sprint(r["order_id"]))
		}
	}
	slices.Sort(keys)
	if want := []string{"10", "11", "3", "5", "7"}; !slices.Equal(keys, want) {
		t.Errorf("delete keys %v, want %v", keys, want)
	}
	var live int
	for _, f := range formattest.ReadParquet(t, dataPaths...) {
		if f.Error != "" {
			t.Fatalf("hyparquet: %s", f.Error)
		}
		live += len(f.Rows)
	}
	// 10 first rows, then 3, 10 and 7 again: the scan hides the 3 stale.
	if live != 13 {
		t.Errorf("hyparquet read %d rows in the data files, want 13", live)
	}
}

// TestUpsertNeedsKeys: an existing table without identifier fields, or
// with other ones than identifier_columns, fails the batch as a fatal
// config error instead of appending.
func TestUpsertNeedsKeys(t *testing.T) {
	ctx := context.Background()
	wh := "file://" + t.TempDir()
	if err := memSink(t, memConfig(wh, nil)).Write(ctx, orders(0, 3, 0)); err != nil {
		t.Fatal(err)
	}
	err := memSink(t, memConfig(wh, func(c *Config) { c.CommitMode = CommitUpsert })).Write(ctx, orders(3, 3, 0))
	if err == nil || !strings.Contains(err.Error(), "no identifier fields") {
		t.Fatalf("want the missing identifier fields named, got %v", err)
	}
	wh2 := "file://" + t.TempDir()
	if err := memSink(t, memConfig(wh2, func(c *Config) {
		c.CommitMode, c.IdentifierColumns = CommitUpsert, []string{"order_id"}
	})).Write(ctx, orders(0, 3, 0)); err != nil {
		t.Fatal(err)
	}
	err = memSink(t, memConfig(wh2, func(c *Config) {
		c.CommitMode, c.IdentifierColumns = CommitUpsert, []string{"customer"}
	})).Write(ctx, orders(3, 3, 0))
	if err == nil || !strings.Contains(err.Error(), "differ") {
		t.Fatalf("want differing identifier fields named, got %v", err)
	}
}
