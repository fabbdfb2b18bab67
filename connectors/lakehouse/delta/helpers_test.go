package deltalake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/format/formattest"
	"github.com/rivven/rivven-connect/shared/objstore"
)

// order is one insert event, delivered from topic cdc.orders partition p
// at offset off (off < 0: not delivered from a log).
func order(id int, p int32, off int64) *events.Event {
	data := fmt.Sprintf(`{"order_id":%d,"customer":"c%d","amount":%d.5,"paid":%t,"region":"r%d"}`, id, id%7, id, id%2 == 0, id%3)
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

func seq(from, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(from + i)
	}
	return out
}

func testConfig(uri string, extra func(*Config)) *Config {
	c := &Config{TableURI: uri, AutoCreateTable: true, BatchSize: 10000, FlushIntervalSecs: 60, Compression: "snappy", MaxCommitRetries: 3}
	if extra != nil {
		extra(c)
	}
	return c
}

func newTestSink(t *testing.T, cfg *Config) *Sink {
	t.Helper()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	s, err := newSink(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = 0
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// logEntry is one line of a commit file as an independent reader sees it:
// plain maps, no types of the sink.
type logEntry map[string]map[string]any

// readLog reads every commit file of a table in a store with a plain JSON
// decoder, checking each line against the JSON Schema written from
// PROTOCOL.md, and each schemaString and stats inside against theirs.
func readLog(t *testing.T, st objstore.Store) [][]logEntry {
	t.Helper()
	ctx := context.Background()
	keys, err := st.List(ctx, "_delta_log/", "")
	if err != nil {
		t.Fatal(err)
	}
	var commits []string
	for _, k := range keys {
		name := strings.TrimPrefix(k, "_delta_log/")
		if len(name) == 25 && strings.HasSuffix(name, ".json") {
			commits = append(commits, k)
		}
	}
	sort.Strings(commits)
	var out [][]logEntry
	for v, k := range commits {
		if want := fmt.Sprintf("_delta_log/%020d.json", v); k != want {
			t.Fatalf("commit %d is %s, want %s (versions are contiguous from 0)", v, k, want)
		}
		b, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var entries []logEntry
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			validate(t, "#", sc.Bytes(), k)
			d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			d.UseNumber()
			var e logEntry
			if err := d.Decode(&e); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			if md := e["metaData"]; md != nil {
				validate(t, "#/$defs/schema", []byte(md["schemaString"].(string)), k+" schemaString")
			}
			if add := e["add"]; add != nil && add["stats"] != nil {
				validate(t, "#/$defs/stats", []byte(add["stats"].(string)), k+" stats")
			}
			entries = append(entries, e)
		}
		out = append(out, entries)
	}
	if b, err := st.Get(ctx, "_delta_log/_last_checkpoint"); err == nil {
		validate(t, "#/$defs/lastCheckpoint", b, "_last_checkpoint")
	}
	return out
}

var (
	schemaOnce sync.Once
	compiled   *jsonschema.Compiler
	schemaErr  error
)

// validate checks a JSON document against a definition of
// testdata/delta-log.schema.json.
func validate(t *testing.T, ref string, doc []byte, what string) {
	t.Helper()
	schemaOnce.Do(func() {
		abs, _ := filepath.Abs("testdata/delta-log.schema.json")
		f, err := os.Open(abs)
		if err != nil {
			schemaErr = err
			return
		}
		defer f.Close()
		v, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			schemaErr = err
			return
		}
		compiled = jsonschema.NewCompiler()
		schemaErr = compiled.AddResource("delta-log.schema.json", v)
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	sch, err := compiled.Compile("delta-log.schema.json" + ref)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("%s does not follow the protocol's schema: %v\n%s", what, err, doc)
	}
}

// liveFiles replays the log the simple way (adds minus removes, in version
// order) and returns the live adds by path.
func liveFiles(log [][]logEntry) map[string]map[string]any {
	live := map[string]map[string]any{}
	for _, commit := range log {
		for _, e := range commit {
			if a := e["add"]; a != nil {
				live[a["path"].(string)] = a
			}
			if r := e["remove"]; r != nil {
				delete(live, r["path"].(string))
			}
		}
	}
	return live
}

// tableRows reads every live data file of a local table with hyparquet (a
// reader independent of the writer), adding each file's partition values
// from its add action, as a Delta reader does.
func tableRows(t *testing.T, dir string, log [][]logEntry) []map[string]any {
	t.Helper()
	live := liveFiles(log)
	var paths []string
	var adds []map[string]any
	for p, a := range live {
		rel, err := url.PathUnescape(p)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Join(dir, filepath.FromSlash(rel)))
		adds = append(adds, a)
	}
	if len(paths) == 0 {
		return nil
	}
	var rows []map[string]any
	for i, f := range formattest.ReadParquet(t, paths...) {
		if f.Error != "" {
			t.Fatalf("hyparquet: %s: %s", f.File, f.Error)
		}
		stats := map[string]any{}
		_ = json.Unmarshal([]byte(adds[i]["stats"].(string)), &stats)
		if n, _ := stats["numRecords"].(float64); int(n) != len(f.Rows) {
			t.Errorf("%s: stats say %v records, the file has %d", f.File, stats["numRecords"], len(f.Rows))
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

func orderIDs(t *testing.T, rows []map[string]any) []int64 {
	t.Helper()
	var out []int64
	for _, r := range rows {
		var n int64
		var err error
		switch v := r["order_id"].(type) {
		case string:
			n, err = strconv.ParseInt(v, 10, 64)
		case json.Number:
			n, err = v.Int64()
		default:
			err = fmt.Errorf("%T", v)
		}
		if err != nil {
			t.Fatalf("order_id %#v: %v", r["order_id"], err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// actionsOf lists the action names of one commit, in order.
func actionsOf(commit []logEntry) []string {
	var names []string
	for _, e := range commit {
		for k := range e {
			names = append(names, k)
		}
	}
	return names
}
