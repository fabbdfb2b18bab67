package deltalake

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format/formattest"
	"github.com/rivven/rivven-connect/shared/objstore"
)

// TestProtocolExamplesFollowSchema: the JSON Schema the log is checked
// against accepts the protocol document's own example actions, so it is
// no stricter than the document.
func TestProtocolExamplesFollowSchema(t *testing.T) {
	b, err := os.ReadFile("testdata/protocol-examples.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		validate(t, "#", []byte(line), "example "+line[:20])
		n++
	}
	if n != 7 {
		t.Fatalf("%d examples, want 7", n)
	}
	// And refuses what the protocol forbids: an add without its size.
	bad := `{"add":{"path":"a.parquet","partitionValues":{},"modificationTime":1,"dataChange":true}}`
	sch, _ := compiled.Compile("delta-log.schema.json#")
	var v any
	_ = json.Unmarshal([]byte(bad), &v)
	if sch.Validate(v) == nil {
		t.Fatal("the schema accepts an add without size")
	}
}

// TestCreateAppendReadBack: the first batch creates the table (protocol,
// metaData with the inferred schema, txn, add with stats, commitInfo first);
// every batch is one version; hyparquet reads exactly the rows written.
func TestCreateAppendReadBack(t *testing.T) {
	dir := t.TempDir()
	s := newTestSink(t, testConfig(dir, nil))
	ctx := context.Background()
	for _, b := range [][]*events.Event{orders(0, 100, 0), orders(100, 50, 0), orders(150, 25, 1)} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := objstore.NewLocal(dir)
	log := readLog(t, st)
	if len(log) != 3 {
		t.Fatalf("%d versions, want 3", len(log))
	}
	if got := actionsOf(log[0]); !slices.Equal(got, []string{"commitInfo", "protocol", "metaData", "txn", "add"}) {
		t.Errorf("version 0 holds %v", got)
	}
	if got := actionsOf(log[1]); !slices.Equal(got, []string{"commitInfo", "txn", "add"}) {
		t.Errorf("version 1 holds %v", got)
	}
	p := log[0][1]["protocol"]
	if p["minReaderVersion"] != json.Number("1") || p["minWriterVersion"] != json.Number("2") {
		t.Errorf("protocol %v", p)
	}
	var schema structType
	if err := json.Unmarshal([]byte(log[0][2]["metaData"]["schemaString"].(string)), &schema); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, f := range schema.Fields {
		types[f.Name] = f.primitive()
	}
	want := map[string]string{"order_id": "long", "customer": "string", "amount": "double", "paid": "boolean", "region": "string"}
	for k, v := range want {
		if types[k] != v {
			t.Errorf("column %s has type %q, want %q (schema %v)", k, types[k], v, types)
		}
	}
	tx := log[2][1]["txn"]
	if tx["appId"] != "delta-lake:cdc.orders:1" || tx["version"] != json.Number("174") {
		t.Errorf("txn of version 2: %v", tx)
	}
	var stats map[string]any
	_ = json.Unmarshal([]byte(log[0][4]["add"]["stats"].(string)), &stats)
	if stats["numRecords"] != float64(100) || stats["minValues"].(map[string]any)["order_id"] != float64(0) || stats["maxValues"].(map[string]any)["order_id"] != float64(99) {
		t.Errorf("stats %v", stats)
	}
	rows := tableRows(t, dir, log)
	if got := orderIDs(t, rows); !slices.Equal(got, seq(0, 175)) {
		t.Fatalf("read %d ids, want 0..174", len(got))
	}
	for _, r := range rows {
		if r["order_id"] == "7" && (r["customer"] != "c0" || r["paid"] != false || r["amount"] != json.Number("7.5")) {
			t.Errorf("row 7 read back as %v", r)
		}
	}
}

// TestRedeliverySkipped: a batch redelivered after its commit, regrouped
// and partly new, adds only its new records (the offsets above the txn
// version of their partition); a batch without offsets is known by its
// delivery ids; nothing is committed for a batch that is all old.
func TestRedeliverySkipped(t *testing.T) {
	dir := t.TempDir()
	s := newTestSink(t, testConfig(dir, nil))
	ctx := context.Background()
	if err := s.Write(ctx, orders(0, 60, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, orders(40, 40, 0)); err != nil { // 40..59 again, 60..79 new
		t.Fatal(err)
	}
	// A fresh sink (a restarted process) reads the txns from the log.
	s2 := newTestSink(t, testConfig(dir, nil))
	if err := s2.Write(ctx, orders(0, 80, 0)); err != nil {
		t.Fatal(err)
	}
	noOffsets := func() []*events.Event {
		var b []*events.Event
		for i := range 5 {
			e := order(1000+i, 0, -1)
			e.Delivered = &events.Position{Topic: "queue", ID: "msg-" + string(rune('a'+i))}
			b = append(b, e)
		}
		return b
	}
	for range 2 {
		if err := s2.Write(ctx, noOffsets()); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := objstore.NewLocal(dir)
	log := readLog(t, st)
	if len(log) != 3 {
		t.Fatalf("%d versions, want 3 (two batches of offsets, one without)", len(log))
	}
	want := append(seq(0, 80), seq(1000, 5)...)
	if got := orderIDs(t, tableRows(t, dir, log)); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}

// TestCheckpoints: every 10th version gets a Parquet checkpoint and
// _last_checkpoint points at it; hyparquet reads the checkpoint's actions;
// a sink started on a log whose commits up to the checkpoint are gone
// (metadata cleanup) reads its state from it and still skips a redelivery.
func TestCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s := newTestSink(t, testConfig(dir, func(c *Config) { c.Compression = "zstd" }))
	ctx := context.Background()
	for i := range 12 {
		if err := s.Write(ctx, orders(i*10, 10, 0)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := objstore.NewLocal(dir)
	readLog(t, st) // validates _last_checkpoint too
	b, err := os.ReadFile(filepath.Join(dir, "_delta_log", "_last_checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	var lc map[string]any
	_ = json.Unmarshal(b, &lc)
	if lc["version"] != float64(10) || lc["numOfAddFiles"] != float64(11) || lc["size"] != float64(1+1+1+11) {
		t.Errorf("_last_checkpoint %s", b)
	}
	cp := filepath.Join(dir, "_delta_log", "00000000000000000010.checkpoint.parquet")
	f := formattest.ReadParquet(t, cp)[0]
	if f.Error != "" {
		t.Fatal(f.Error)
	}
	var adds, meta, proto, txns int
	for _, r := range f.Rows {
		switch {
		case r["add"] != nil:
			adds++
			a := r["add"].(map[string]any)
			if !strings.HasSuffix(a["path"].(string), ".zstd.parquet") || a["stats"] == nil {
				t.Errorf("checkpoint add %v", a)
			}
		case r["metaData"] != nil:
			meta++
			validate(t, "#/$defs/schema", []byte(r["metaData"].(map[string]any)["schemaString"].(string)), "checkpoint schemaString")
		case r["protocol"] != nil:
			proto++
		case r["txn"] != nil:
			txns++
			if v := r["txn"].(map[string]any)["version"]; v != "109" {
				t.Errorf("checkpoint txn version %v, want 109", v)
			}
		}
	}
	if adds != 11 || meta != 1 || proto != 1 || txns != 1 {
		t.Errorf("checkpoint holds %d adds, %d metaData, %d protocol, %d txn; want 11, 1, 1, 1", adds, meta, proto, txns)
	}
	for v := range 10 {
		if err := os.Remove(filepath.Join(dir, "_delta_log", commitName(v))); err != nil {
			t.Fatal(err)
		}
	}
	s2 := newTestSink(t, testConfig(dir, nil))
	if err := s2.Write(ctx, orders(100, 30, 0)); err != nil { // 100..119 old, 120..129 new
		t.Fatal(err)
	}
	snap, err := loadSnapshot(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.version != 12 || len(snap.files) != 13 || snap.txns["delta-lake:cdc.orders:0"].Version != 129 {
		t.Fatalf("after the restart: version %d, %d files, txn %v", snap.version, len(snap.files), snap.txns)
	}
}

func commitName(v int) string { return strings.TrimPrefix(commitKey(int64(v)), logDir) }

// TestGoldenTableFromSpark: the log of a table Spark and Delta Lake 3.0
// wrote (a checkpoint at 10, commits to 14, each removing the file the
// one before added) is read from its checkpoint to the same state a plain
// replay of every commit gives; then this sink appends version 15 to it.
func TestGoldenTableFromSpark(t *testing.T) {
	dir := t.TempDir()
	src := "testdata/golden/checkpoint/_delta_log"
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "_delta_log"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "_delta_log", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := objstore.NewLocal(dir)
	ctx := context.Background()
	fromCheckpoint, err := loadSnapshot(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	replay := liveFiles(readLog(t, st))
	var want, got []string
	for p := range replay {
		want = append(want, p)
	}
	for p := range fromCheckpoint.files {
		got = append(got, p)
	}
	slices.Sort(want)
	slices.Sort(got)
	if fromCheckpoint.version != 14 || !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("from the checkpoint: version %d, files %v; a replay of every commit: %v", fromCheckpoint.version, got, want)
	}
	if fromCheckpoint.meta.ID != "testId" || len(fromCheckpoint.schema.Fields) != 1 {
		t.Fatalf("metaData %+v", fromCheckpoint.meta)
	}
	// The table's one column is intCol (integer); this sink adds its rows'
	// columns beside it.
	s := newTestSink(t, testConfig(dir, nil))
	if err := s.Write(ctx, []*events.Event{events.New(events.Insert, "t", events.RawPayload([]byte(`{"intCol":7,"name":"x"}`)))}); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, st)
	if len(log) != 16 {
		t.Fatalf("%d versions, want 16", len(log))
	}
	if got := actionsOf(log[15]); !slices.Equal(got, []string{"commitInfo", "metaData", "txn", "add"}) {
		t.Errorf("version 15 holds %v", got)
	}
	md := log[15][1]["metaData"]
	if md["id"] != "testId" || !strings.Contains(md["schemaString"].(string), `"name":"intCol","type":"integer"`) {
		t.Errorf("metaData of version 15: %v", md)
	}
}

// TestPartitionsAndSchemaEvolution: partition_columns put each file in
// Hive-style folders (escaped values, null as __HIVE_DEFAULT_PARTITION__)
// with its values in partitionValues and not in the file; a new field
// becomes a nullable column through a new metaData action; a value that
// does not fit its column dead-letters the event, naming the column.
func TestPartitionsAndSchemaEvolution(t *testing.T) {
	dir := t.TempDir()
	s := newTestSink(t, testConfig(dir, func(c *Config) { c.PartitionColumns = []string{"region"}; c.Compression = "gzip" }))
	ctx := context.Background()
	ev := func(js string) *events.Event { return events.New(events.Insert, "t", events.RawPayload([]byte(js))) }
	if err := s.Write(ctx, []*events.Event{
		ev(`{"id":1,"region":"eu/west:1"}`), ev(`{"id":2,"region":"us"}`), ev(`{"id":3,"region":null}`), ev(`{"id":4,"region":"us"}`),
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, []*events.Event{ev(`{"id":5,"region":"us","note":"new"}`), ev(`{"id":"six","region":"us"}`)})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil || !strings.Contains(we.Failed[1].Error(), `column "id"`) {
		t.Fatalf("want event 1 dead-lettered naming column id, got %v", err)
	}
	st, _ := objstore.NewLocal(dir)
	log := readLog(t, st)
	if len(log) != 2 {
		t.Fatalf("%d versions", len(log))
	}
	if pc := log[0][2]["metaData"]["partitionColumns"].([]any); len(pc) != 1 || pc[0] != "region" {
		t.Errorf("partitionColumns %v", pc)
	}
	dirs := map[string]bool{}
	for p, a := range liveFiles(log) {
		dirs[p[:strings.LastIndexByte(p, '/')]] = true
		if a["partitionValues"].(map[string]any)["region"] == nil && !strings.HasPrefix(p, "region=__HIVE_DEFAULT_PARTITION__/") {
			t.Errorf("null partition in %s", p)
		}
	}
	for _, d := range []string{"region=eu%252Fwest%253A1", "region=us", "region=__HIVE_DEFAULT_PARTITION__"} {
		if !dirs[d] {
			t.Errorf("no file under %s (have %v)", d, dirs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "region=eu%2Fwest%3A1")); err != nil {
		t.Errorf("the escaped folder is not on disk: %v", err)
	}
	if got := actionsOf(log[1]); !slices.Equal(got, []string{"commitInfo", "metaData", "txn", "add"}) {
		t.Errorf("version 1 holds %v", got)
	}
	if !strings.Contains(log[1][1]["metaData"]["schemaString"].(string), `{"name":"note","type":"string","nullable":true,"metadata":{}}`) {
		t.Errorf("schema of version 1: %s", log[1][1]["metaData"]["schemaString"])
	}
	rows := tableRows(t, dir, log)
	byID := map[string]map[string]any{}
	for _, r := range rows {
		byID[r["id"].(string)] = r
	}
	if len(rows) != 5 || byID["1"]["region"] != "eu/west:1" || byID["3"]["region"] != nil || byID["5"]["note"] != "new" {
		t.Fatalf("rows %v", rows)
	}
	if _, inFile := byID["2"]["note"]; inFile {
		t.Errorf("a file of version 0 has the column added later: %v", byID["2"])
	}
}

// TestConcurrentWritersRaceLocal: two sinks read the same version and race
// to commit the next; exactly one wins it, the other finds the name taken,
// re-reads the log and commits the version after.
func TestConcurrentWritersRaceLocal(t *testing.T) {
	dir := t.TempDir()
	raceWriters(t, testConfig(dir, nil), func() objstore.Store { st, _ := objstore.NewLocal(dir); return st })
}

func raceWriters(t *testing.T, cfg *Config, open func() objstore.Store) {
	t.Helper()
	ctx := context.Background()
	a, b := newTestSink(t, cfg), newTestSink(t, cfg)
	if err := a.Write(ctx, orders(0, 10, 0)); err != nil { // version 0
		t.Fatal(err)
	}
	var ready sync.WaitGroup
	ready.Add(2)
	var retries atomic.Int32
	hook := func(attempt int) {
		if attempt == 0 {
			ready.Done()
			ready.Wait() // both have read version 0 and written their files
		} else {
			retries.Add(1)
		}
	}
	a.beforeCommit, b.beforeCommit = hook, hook
	errs := make(chan error, 2)
	go func() { errs <- a.Write(ctx, orders(100, 10, 1)) }()
	go func() { errs <- b.Write(ctx, orders(200, 10, 2)) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := retries.Load(); n != 1 {
		t.Fatalf("%d retried commits, want exactly 1 (one winner, one loser)", n)
	}
	log := readLog(t, open())
	if len(log) != 3 {
		t.Fatalf("%d versions, want 3", len(log))
	}
	apps := map[string]bool{}
	for _, c := range log[1:] {
		var n int
		for _, e := range c {
			if e["add"] != nil {
				n++
			}
			if e["txn"] != nil {
				apps[e["txn"]["appId"].(string)] = true
			}
		}
		if n != 1 {
			t.Errorf("a version holds %d adds, want 1", n)
		}
	}
	if !apps["delta-lake:cdc.orders:1"] || !apps["delta-lake:cdc.orders:2"] {
		t.Errorf("txns %v", apps)
	}
	// The loser's first data file was reused, not rewritten: the table
	// folder holds exactly the three committed files.
	st := open()
	keys, _ := st.List(ctx, "", "")
	var data int
	for _, k := range keys {
		if strings.HasSuffix(k, ".parquet") && !strings.HasPrefix(k, "_delta_log/") {
			data++
		}
	}
	if data != 3 {
		t.Errorf("%d data files under the table, want 3", data)
	}
}

// TestConfigRefusals: config errors name their keys.
func TestConfigRefusals(t *testing.T) {
	cases := []struct {
		cfg  Config
		path string
	}{
		{Config{TableURI: "ftp://x/y"}, "table_uri"},
		{Config{TableURI: "s3://"}, "table_uri"},
		{Config{TableURI: "/tmp/t", S3: &objstore.S3Options{}}, "s3"},
		{Config{TableURI: "az://c/t"}, "azure"},
		{Config{TableURI: "az://c/t", Azure: &objstore.AzureOptions{}}, "azure.account"},
		{Config{TableURI: "/tmp/t", PartitionColumns: []string{"a", "A"}}, "partition_columns[1]"},
	}
	for _, c := range cases {
		ps := c.cfg.Validate()
		found := false
		for _, p := range ps {
			found = found || p.Path == c.path
		}
		if !found {
			t.Errorf("%+v: problems %v, want one at %s", c.cfg, ps, c.path)
		}
	}
	if ps := (&Config{TableURI: "s3://b/t", S3: &objstore.S3Options{Region: "x"}}).Validate(); len(ps) != 0 {
		t.Errorf("valid config refused: %v", ps)
	}
}

// TestNoAutoCreate: without auto_create_table a missing table fails the
// batch and writes nothing.
func TestNoAutoCreate(t *testing.T) {
	dir := t.TempDir()
	s := newTestSink(t, testConfig(dir, func(c *Config) { c.AutoCreateTable = false }))
	if err := s.Write(context.Background(), orders(0, 3, 0)); err == nil || !strings.Contains(err.Error(), "auto_create_table") {
		t.Fatalf("got %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("wrote %d entries", len(entries))
	}
}
