package objectstorage

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/rivven/rivven-connect/connectors/utility/datagen"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
)

// TestPipelineEndToEnd runs a whole pipeline in the local emulator —
// datagen orders → topic → object-storage with the local provider, built
// from YAML through the catalog — and counts the rows in the objects.
func TestPipelineEndToEnd(t *testing.T) {
	root := t.TempDir()
	doc := `
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders, events_per_second: 0, max_events: 500, seed: 7, stream_name: orders}
sinks:
  lake:
    connector: object-storage
    topics: [orders]
    consumer_group: lake
    config:
      provider: local
      bucket: lake
      prefix: orders
      format: csv
      compression: gzip
      partitioning: day
      batch_size: 100
      local: {root: ` + root + `}
`
	l := newLocal(t, context.Background(), doc, pipeline.LocalOptions{MaxEvents: 500, BatchSize: 64})
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	objs := listLocal(t, filepath.Join(root, "lake"))
	if len(objs) == 0 {
		t.Fatal("no objects")
	}
	rows := 0
	for _, o := range objs {
		if !strings.HasPrefix(o.key, "orders/year=") || !strings.HasSuffix(o.key, ".csv.gz") {
			t.Errorf("key %s", o.key)
		}
		rows += countRows(t, o.key, o.body)
	}
	if rows != 500 {
		t.Fatalf("%d rows in %d objects, want 500", rows, len(objs))
	}
}

// The engine gathers batch_size events per object; when the sources are
// done the partial rest is written at once, not after flush_interval_secs.
func TestBatchSizeAndDrain(t *testing.T) {
	root := t.TempDir()
	doc := `
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders, events_per_second: 0, max_events: 250, seed: 7}
sinks:
  lake:
    connector: object-storage
    topics: [orders]
    config:
      provider: local
      bucket: lake
      format: jsonl
      batch_size: 100
      flush_interval_secs: 3600
      local: {root: ` + root + `}
`
	// The emulator's own batches are smaller than batch_size: the sink's
	// policy decides.
	l := newLocal(t, context.Background(), doc, pipeline.LocalOptions{MaxEvents: 250, BatchSize: 16})
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, o := range listLocal(t, filepath.Join(root, "lake")) {
		sizes = append(sizes, countRows(t, o.key, o.body))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{50, 100, 100}) {
		t.Fatalf("objects of %v rows, want [50 100 100]", sizes)
	}
}

// While a source still runs, a partial batch is written once its first
// event waited flush_interval_secs, although batch_size is far off.
func TestFlushIntervalWritesPartialBatch(t *testing.T) {
	root := t.TempDir()
	doc := `
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders, events_per_second: 20}
sinks:
  lake:
    connector: object-storage
    topics: [orders]
    config:
      provider: local
      bucket: lake
      format: jsonl
      batch_size: 100000
      flush_interval_secs: 1
      local: {root: ` + root + `}
`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := newLocal(t, ctx, doc, pipeline.LocalOptions{})
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	// Poll without listLocal: a temporary file may be there mid-upload.
	written := func() bool {
		found := false
		_ = filepath.WalkDir(filepath.Join(root, "lake"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
				found = true
			}
			return nil
		})
		return found
	}
	for !written() {
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before any object was written", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no object within 30 s although flush_interval_secs is 1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// newLocal builds the local emulator for a pipeline document, with an
// embedded state store and logs discarded.
func newLocal(t *testing.T, ctx context.Context, doc string, opts pipeline.LocalOptions) *pipeline.Local {
	t.Helper()
	p, err := config.Parse([]byte(doc), catalog.Default, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Store, opts.Log = st, slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := pipeline.NewLocal(ctx, p, catalog.Builder{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
