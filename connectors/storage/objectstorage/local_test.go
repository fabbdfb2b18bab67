package objectstorage

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// listLocal reads every object under root/bucket (temporary files of a
// write in progress start with a dot and are not objects).
func listLocal(t *testing.T, dir string) []object {
	t.Helper()
	var out []object
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file left behind: %s", p)
			return nil
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, object{key: filepath.ToSlash(rel), body: body})
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return objectsByKey(out)
}

func localConfig(root, extra string) string {
	return "provider: local\nbucket: lake\nprefix: /events/\nbatch_size: 40\nlocal:\n  root: " + root + "\n" + extra
}

// TestLocalFormats writes 100 events in every format × compression and
// reads each object back with an independent reader: three objects (the
// batch is cut at batch_size 40) with the format's extension, holding 40,
// 40 and 20 rows.
func TestLocalFormats(t *testing.T) {
	start := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	batch := orders(100, start, time.Second)
	for _, fc := range formatCases() {
		t.Run(fc.name, func(t *testing.T) {
			root := t.TempDir()
			s := mustSink(t, localConfig(root, fc.yaml))
			ctx := metricsCtx(telemetry.NewRegistry())
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
			objs := listLocal(t, filepath.Join(root, "lake"))
			if len(objs) != 3 {
				t.Fatalf("want 3 objects, got %d: %v", len(objs), objs)
			}
			ext := s.enc.Extension()
			total, bytes := 0, 0
			// Each object is named after its first event: +0s, +40s, +80s.
			for i, o := range objs {
				want := "events/20240115_" + []string{"103000", "103040", "103120"}[i] + "_"
				if !strings.HasPrefix(o.key, want) || !strings.HasSuffix(o.key, ext) || len(o.key) != len(want)+idHexDigits+len(ext) {
					t.Errorf("key %s: want %s<id>%s", o.key, want, ext)
				}
				n := countRows(t, o.key, o.body)
				if n != 40 && n != 20 {
					t.Errorf("%s: %d rows, want 40 or 20", o.key, n)
				}
				total += n
				bytes += len(o.body)
			}
			if total != 100 {
				t.Errorf("%d rows in all, want 100", total)
			}
			for name, want := range map[string]uint64{metricObjects: 3, metricEvents: 100, metricBytes: uint64(bytes)} {
				if got := counter(ctx, name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

// TestContentTypes checks what each encoder tells the providers to store.
func TestContentTypes(t *testing.T) {
	for _, c := range []struct{ yaml, ext, contentType, encoding string }{
		{"format: json\n", ".json", "application/json", ""},
		{"format: jsonl\ncompression: gzip\n", ".jsonl.gz", "application/x-ndjson", "gzip"},
		{"format: csv\ncompression: zstd\n", ".csv.zst", "text/csv", "zstd"},
		{"format: avro\n", ".avro", "application/avro", ""},
		{"format: parquet\n", ".parquet", "application/vnd.apache.parquet", ""},
	} {
		s := mustSink(t, localConfig(t.TempDir(), c.yaml))
		if s.enc.Extension() != c.ext || !strings.HasPrefix(s.enc.ContentType(), c.contentType) || s.enc.ContentEncoding() != c.encoding {
			t.Errorf("%q: got %s %s %q, want %s %s %q", c.yaml, s.enc.Extension(), s.enc.ContentType(), s.enc.ContentEncoding(), c.ext, c.contentType, c.encoding)
		}
	}
}

// TestPartitioningAcrossBoundaries: a batch spanning midnight is split
// into one object per hour (and day) partition, each named after its own
// first event.
func TestPartitioningAcrossBoundaries(t *testing.T) {
	start := time.Date(2024, 1, 15, 23, 59, 58, 0, time.UTC)
	batch := orders(5, start, time.Second) // 23:59:58, :59, 00:00:00, :01, :02
	for _, c := range []struct {
		mode string
		want map[string]int // key prefix → rows
	}{
		{"hour", map[string]int{
			"events/year=2024/month=01/day=15/hour=23/20240115_235958_": 2,
			"events/year=2024/month=01/day=16/hour=00/20240116_000000_": 3,
		}},
		{"day", map[string]int{
			"events/year=2024/month=01/day=15/20240115_235958_": 2,
			"events/year=2024/month=01/day=16/20240116_000000_": 3,
		}},
		{"none", map[string]int{"events/20240115_235958_": 5}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			root := t.TempDir()
			s := mustSink(t, localConfig(root, "format: jsonl\npartitioning: "+c.mode+"\n"))
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			objs := listLocal(t, filepath.Join(root, "lake"))
			if len(objs) != len(c.want) {
				t.Fatalf("want %d objects, got %v", len(c.want), objs)
			}
			for _, o := range objs {
				found := false
				for p, rows := range c.want {
					if strings.HasPrefix(o.key, p) && strings.HasSuffix(o.key, ".jsonl") {
						found = true
						if n := countRows(t, o.key, o.body); n != rows {
							t.Errorf("%s: %d rows, want %d", o.key, n, rows)
						}
					}
				}
				if !found {
					t.Errorf("unexpected key %s", o.key)
				}
			}
		})
	}
}

// TestRedeliveryOverwrites: writing the same batch again (a redelivery)
// lands on the same keys, so the bucket holds each object once; a
// different batch gets different keys.
func TestRedeliveryOverwrites(t *testing.T) {
	root := t.TempDir()
	s := mustSink(t, localConfig(root, "format: parquet\npartitioning: hour\n"))
	batch := orders(100, time.Date(2024, 3, 1, 9, 59, 0, 0, time.UTC), time.Second)
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	first := listLocal(t, filepath.Join(root, "lake"))
	if len(first) != 3 { // 60 events in hour 09 (40+20), 40 in hour 10
		t.Fatalf("want 3 objects, got %d", len(first))
	}
	// A new sink, as after a restart, with copies of the events as a
	// transport would decode them.
	again := make([]*events.Event, len(batch))
	for i, e := range batch {
		b, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if again[i], err = events.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	}
	s2 := mustSink(t, localConfig(root, "format: parquet\npartitioning: hour\n"))
	for range 2 {
		if err := s2.Write(context.Background(), again); err != nil {
			t.Fatal(err)
		}
	}
	second := listLocal(t, filepath.Join(root, "lake"))
	if len(second) != len(first) {
		t.Fatalf("redelivery added objects: %d before, %d after", len(first), len(second))
	}
	for i := range first {
		if first[i].key != second[i].key {
			t.Errorf("key %d changed: %s → %s", i, first[i].key, second[i].key)
		}
	}
	// Different events (one field changed) are a different object.
	batch[0].Data = events.ValuePayload(map[string]any{"order_id": 1})
	if err := s.Write(context.Background(), batch[:40]); err != nil {
		t.Fatal(err)
	}
	if n := len(listLocal(t, filepath.Join(root, "lake"))); n != 4 {
		t.Errorf("a changed batch should add one object: %d objects, want 4", n)
	}
}

// TestRowsOnlySkipsNonData: formats that write rows skip schema and
// truncate events; a batch of only those writes nothing.
func TestRowsOnlySkipsNonData(t *testing.T) {
	root := t.TempDir()
	s := mustSink(t, localConfig(root, "format: csv\n"))
	ev := &events.Event{Type: events.Truncate, Stream: "orders", Timestamp: time.Now()}
	if err := s.Write(context.Background(), []*events.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if objs := listLocal(t, filepath.Join(root, "lake")); len(objs) != 0 {
		t.Fatalf("want no objects, got %v", objs)
	}
	mixed := append(orders(3, time.Now(), time.Second), ev)
	if err := s.Write(context.Background(), mixed); err != nil {
		t.Fatal(err)
	}
	objs := listLocal(t, filepath.Join(root, "lake"))
	if len(objs) != 1 || countRows(t, objs[0].key, objs[0].body) != 3 {
		t.Fatalf("want one object of 3 rows, got %v", objs)
	}
}

// TestLocalCheck: the probe is written and removed; a root that cannot be
// created fails the check and writes.
func TestLocalCheck(t *testing.T) {
	root := t.TempDir()
	s := mustSink(t, localConfig(root, ""))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if objs := listLocal(t, filepath.Join(root, "lake")); len(objs) != 0 {
		t.Errorf("the probe was not deleted: %v", objs)
	}

	// A root that cannot be created (a file stands in its way) fails the
	// check, and a write fails as a whole with that one error. (A root
	// that is merely missing is created: TestLocalCreatesRootAndBucket.)
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	blocked := mustSink(t, localConfig(filepath.Join(file, "root"), ""))
	if err := blocked.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("check under a file: got %v", err)
	}
	// Three objects' worth: one failed upload fails the whole batch with
	// that one error.
	err := blocked.Write(context.Background(), orders(100, time.Now(), time.Second))
	var we *connector.WriteError
	if err == nil || errors.As(err, &we) {
		t.Fatalf("write under a file: got %v, want one error", err)
	}
}

// TestLocalPermissionDenied: a permission error is a permanent Auth
// error. The real unwritable directory is only possible when not running
// as root (root ignores directory permissions); the classification of the
// error the OS gives then is checked either way.
func TestLocalPermissionDenied(t *testing.T) {
	denied := classifyLocal(&fs.PathError{Op: "open", Path: "/x", Err: syscall.EACCES})
	if resilience.ClassOf(denied) != resilience.Auth || resilience.Retryable(denied) {
		t.Fatalf("EACCES: class %v, want a permanent Auth error", resilience.ClassOf(denied))
	}
	if os.Geteuid() == 0 {
		return
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(root, 0o755) })
	s := mustSink(t, localConfig(root, ""))
	err := s.Write(context.Background(), orders(2, time.Now(), time.Second))
	if resilience.ClassOf(err) != resilience.Auth || resilience.Retryable(err) {
		t.Fatalf("got %v (class %v), want a permanent Auth error", err, resilience.ClassOf(err))
	}
}

// TestPartialFailure: one event the format cannot encode fails alone with a
// permanent Schema error; the others are written.
func TestPartialFailure(t *testing.T) {
	root := t.TempDir()
	s := mustSink(t, localConfig(root, "format: jsonl\n"))
	checkLastOffset(t, s)
	batch := orders(3, time.Now(), time.Second)
	batch[1].Data = events.ValuePayload(map[string]any{"f": make(chan int)}) // no JSON for a channel
	err := s.Write(context.Background(), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil {
		t.Fatalf("want a WriteError for event 1 only, got %v", err)
	}
	if resilience.ClassOf(we.Failed[1]) != resilience.Schema {
		t.Errorf("class %v, want schema", resilience.ClassOf(we.Failed[1]))
	}
	objs := listLocal(t, filepath.Join(root, "lake"))
	if len(objs) != 1 || countRows(t, objs[0].key, objs[0].body) != 2 {
		t.Fatalf("want one object with the 2 good events, got %v", objs)
	}
}

// TestThroughHandler runs the sink behind the engine's Handler, the code
// path every host calls: the health check runs first, the metrics land in
// the handler's registry under the sink's name, and a failed upload comes
// back as failed records for the trigger to redeliver.
func TestThroughHandler(t *testing.T) {
	root := t.TempDir()
	reg := telemetry.NewRegistry()
	h := &pipeline.Handler{Name: "lake", Sink: mustSink(t, localConfig(root, "format: jsonl\n")), Metrics: reg}
	batch := orders(50, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
	recs := make([]pipeline.Record, len(batch))
	for i, e := range batch {
		recs[i] = pipeline.Record{ID: strconv.Itoa(i), Topic: "orders", Offset: int64(i), Event: e}
	}
	res, err := h.Handle(context.Background(), recs)
	if err != nil || len(res.Failed) != 0 {
		t.Fatalf("handle: %v, failed %v", err, res.Failed)
	}
	rt := &connector.Runtime{Name: "lake", Metrics: reg}
	if n := rt.Counter(metricEvents, "").Value(); n != 50 {
		t.Errorf("%s = %d, want 50", metricEvents, n)
	}
	if n := rt.Counter(metricObjects, "").Value(); n != 2 {
		t.Errorf("%s = %d, want 2", metricObjects, n)
	}
	if objs := listLocal(t, filepath.Join(root, "lake")); len(objs) != 2 {
		t.Fatalf("want 2 objects, got %d", len(objs))
	}

	// Put a file where the bucket was (a missing one would be created):
	// every record fails and is handed back.
	if err := os.RemoveAll(filepath.Join(root, "lake")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lake"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = h.Handle(context.Background(), recs)
	if err != nil || len(res.Failed) != len(recs) {
		t.Fatalf("want every record failed, got %d (%v)", len(res.Failed), err)
	}
}

// TestLocalCreatesRootAndBucket: the local provider exists for testing,
// and the reference's example names a root (/tmp/test-storage) that
// need not exist: root and bucket are created by the health check's
// probe and the first write. Before, a missing root failed both.
func TestLocalCreatesRootAndBucket(t *testing.T) {
	root := filepath.Join(t.TempDir(), "missing", "test-storage")
	s := mustSink(t, localConfig(root, "format: jsonl\n"))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), orders(4, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	if objs := listLocal(t, filepath.Join(root, "lake")); len(objs) != 1 {
		t.Fatalf("objects %v", objs)
	}
}

// TestProviderDefaultsToS3: the reference's table gives provider the
// default s3; a config without it is an S3 sink. Before, it was required.
func TestProviderDefaultsToS3(t *testing.T) {
	if cfg := decodeConfig(t, "bucket: b\ns3: {region: us-east-1}\n"); cfg.Provider != ProviderS3 {
		t.Fatalf("provider %q", cfg.Provider)
	}
}
