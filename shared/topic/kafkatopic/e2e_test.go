package kafkatopic

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	_ "github.com/rivven/rivven-connect/connectors/utility/datagen"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// anyCatalog accepts every component: the test sink is not registered.
type anyCatalog struct{}

func (anyCatalog) CheckConfig(string, string, *yaml.Node, string) ([]spec.Problem, bool) {
	return nil, true
}
func (anyCatalog) Names(string) []string { return nil }

// factory builds real connectors from the catalog (datagen) and hands out
// the recording sink.
type factory struct{ sink pipeline.Sink }

func (factory) NewSource(ctx context.Context, name string, node *yaml.Node, path string) (pipeline.Source, error) {
	return catalog.Builder{}.NewSource(ctx, name, node, path)
}
func (f factory) NewSink(context.Context, string, *yaml.Node, string) (pipeline.Sink, error) {
	return f.sink, nil
}
func (factory) NewTransform(ctx context.Context, name string, node *yaml.Node, path string) (pipeline.Transform, error) {
	return catalog.Builder{}.NewTransform(ctx, name, node, path)
}

// recordingSink counts deliveries per event position.
type recordingSink struct {
	mu   sync.Mutex
	seen map[string]int
	n    int
}

func (s *recordingSink) Write(_ context.Context, batch []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	for _, e := range batch {
		s.seen[e.Stream+"@"+e.Metadata.Position]++
		s.n++
	}
	return nil
}

func (s *recordingSink) snapshot() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		cp[k] = v
	}
	return cp, s.n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const e2ePipeline = `
settings:
  topic: {default_partitions: 4}
sources:
  gen:
    connector: datagen
    topic: seq
    config: {pattern: sequence, events_per_second: 0, max_events: %d, seed: 7}
sinks:
  rec:
    connector: rec
    topics: [seq]
`

// TestEndToEnd: datagen → SourceRunner → Kafka (transactions: the store
// fences) → SinkRunner → sink; every event exactly once, and a restarted
// sink on a new connection resumes after the offsets committed in Kafka.
func TestEndToEnd(t *testing.T) {
	const total = 3000
	ctx := ctxT(t)
	addrs := cluster(t)
	k := connect(t, broker(addrs...))
	p, err := config.Parse(fmt.Appendf(nil, e2ePipeline, total), anyCatalog{}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"seq", "seq.dlq"} {
		if err := pipeline.EnsureTopic(ctx, k, p.Settings.Topic, name, nil, "sources.gen.topic", quiet); err != nil {
			t.Fatal(err)
		}
	}
	store, err := state.NewEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sink := &recordingSink{}
	deps := pipeline.Deps{Store: store, Producer: k, Log: quiet}
	src, err := pipeline.NewSourceRunner(context.Background(), p, "gen", factory{sink}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if src.Status.Epoch.Load() == 0 {
		t.Fatal("the source ran unfenced; the transactional path was not exercised")
	}
	// The position went with the data, in the same transaction.
	stored, _ := store.Offset(ctx, "gen", "position")
	if pos, err := k.LastPosition(ctx, "seq", "gen"); err != nil || string(pos) != string(stored) || pos == nil {
		t.Fatalf("position with the data %q (%v), committed %q", pos, err, stored)
	}

	runSink := func(ctx context.Context, tr *Kafka, sink pipeline.Sink) (*pipeline.SinkRunner, chan error) {
		t.Helper()
		epoch, err := store.AcquireEpoch(ctx, pipeline.SinkStateName("rec"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		d := deps
		d.Producer, d.Delivery, d.Epoch = tr, pipeline.DeliveryOrdered, epoch
		r, err := pipeline.NewSinkRunner(context.Background(), p, "rec", factory{sink}, tr, d)
		if err != nil {
			t.Fatal(err)
		}
		r.Wait = 100 * time.Millisecond
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		return r, done
	}
	sctx, stop := context.WithCancel(ctx)
	r, done := runSink(sctx, k, sink)
	waitFor(t, "every event at the sink", func() bool { _, n := sink.snapshot(); return n >= total })
	waitFor(t, "the lag to reach zero", func() bool { return r.Handler.Status.Lag.Load() == 0 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	seen, n := sink.snapshot()
	if n != total || len(seen) != total {
		t.Fatalf("sink got %d deliveries of %d distinct events, want %d once each", n, len(seen), total)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s delivered %d times", id, c)
		}
	}

	// A new instance on a new connection: offsets come from Kafka, so it
	// sees only what is published after, here one marker per partition
	// (anything re-read would arrive before its partition's marker).
	k2 := connect(t, broker(addrs...))
	again := &recordingSink{}
	sctx, stop = context.WithCancel(ctx)
	defer stop()
	_, done = runSink(sctx, k2, again)
	markers := map[int32]bool{}
	var msgs []topic.Message
	for i := 0; len(markers) < 4; i++ {
		key := fmt.Appendf(nil, `{"marker":%d}`, i)
		if part := topic.Partition(key, 4, 0); !markers[part] {
			markers[part] = true
			e := events.New(events.Insert, "marker", events.RawPayload(key))
			e.Metadata.Position = fmt.Sprint(part)
			v, _ := events.Marshal(e)
			msgs = append(msgs, topic.Message{Key: key, Value: v})
		}
	}
	if err := k2.Produce(ctx, "seq", msgs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the markers", func() bool { _, n := again.snapshot(); return n >= 4 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if seen, n := again.snapshot(); n != 4 || len(seen) != 4 {
		t.Fatalf("the restarted sink got %d deliveries (%v), want the 4 markers only", n, seen)
	}
}
