package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/spec"
)

// anyCatalog accepts every component (the tests build them by hand).
type anyCatalog struct{}

func (anyCatalog) CheckConfig(string, string, *yaml.Node, string) ([]spec.Problem, bool) {
	return nil, true
}
func (anyCatalog) Names(string) []string { return nil }

// keyedSource emits events for 10 keys with a per-key sequence, forever
// (the emulator's budget or duration stops it), resuming after a position.
type keyedSource struct{}

func (keyedSource) Read(ctx context.Context, resume []byte, emit Emitter) error {
	seq := 0
	if resume != nil {
		seq, _ = strconv.Atoi(string(resume))
		seq++
	}
	for ctx.Err() == nil {
		batch := make([]*events.Event, 0, 7)
		for range 7 {
			k := seq % 10
			e := events.New(events.Insert, "keyed", events.RawPayload(fmt.Appendf(nil, `{"k":%d,"seq":%d}`, k, seq)))
			e.Key = fmt.Appendf(nil, `{"k":%d}`, k)
			e.Metadata.Position = strconv.Itoa(seq)
			batch = append(batch, e)
			seq++
		}
		if err := emit.Emit(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

type fakeFactory struct {
	sink Sink
}

func (fakeFactory) NewSource(context.Context, string, *yaml.Node, string) (Source, error) {
	return keyedSource{}, nil
}
func (f fakeFactory) NewSink(context.Context, string, *yaml.Node, string) (Sink, error) {
	return f.sink, nil
}
func (fakeFactory) NewTransform(context.Context, string, *yaml.Node, string) (Transform, error) {
	return exploder, nil
}

func load(t *testing.T, doc string) *config.Pipeline {
	t.Helper()
	p, err := config.Parse([]byte(doc), anyCatalog{}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const keyedPipeline = `
settings:
  topic: {default_partitions: 4}
sources:
  keyed: {connector: keyed, topic: t}
sinks:
  out: {connector: rec, topics: [t]}
`

func TestLocalDeliversExactlyMaxEventsInKeyOrder(t *testing.T) {
	sink := &countingSink{}
	l, err := NewLocal(context.Background(), load(t, keyedPipeline), fakeFactory{sink}, LocalOptions{
		MaxEvents: 5003, Store: embedded(t), Log: quiet, BatchSize: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 5003 {
		t.Fatalf("sink got %d events, want exactly 5003", len(sink.got))
	}
	last := map[float64]float64{}
	for _, e := range sink.got {
		row, err := e.Row()
		if err != nil {
			t.Fatal(err)
		}
		k, _ := row["k"].(json.Number).Float64()
		seq, _ := row["seq"].(json.Number).Float64()
		if prev, ok := last[k]; ok && seq <= prev {
			t.Fatalf("key %v: seq %v arrived after %v", k, seq, prev)
		}
		last[k] = seq
	}
	if n, _ := l.Broker.Partitions("t"); n != 4 {
		t.Fatalf("topic has %d partitions, want 4 (settings.topic.default_partitions)", n)
	}
	// What every group committed is released: offset 0 is gone.
	fctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if msgs, err := l.Broker.Fetch(fctx, "t", 0, 0, 1); err == nil && msgs[0].Offset == 0 {
		t.Fatal("consumed messages were kept in memory")
	}
	for _, st := range l.Statuses() {
		if st.State() != Stopped {
			t.Errorf("%s %s ended %v", st.Kind, st.Name, st.State())
		}
	}
}

func TestLocalRedeliversFailedRecords(t *testing.T) {
	var mu sync.Mutex
	failedOnce := map[string]bool{}
	sink := &countingSink{fail: func(_ int, batch []*events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		we := &WriteError{Failed: map[int]error{}}
		for i, e := range batch {
			if d, _ := e.Data.JSON(); !failedOnce[string(d)] && i%5 == 2 {
				failedOnce[string(d)] = true
				we.Failed[i] = errors.New("throttled")
			}
		}
		if len(we.Failed) == 0 {
			return nil
		}
		return we
	}}
	p := load(t, keyedPipeline)
	p.Settings.Retry.InitialBackoffMs, p.Settings.Retry.MaxBackoffMs = 1, 2
	l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{MaxEvents: 700, Store: embedded(t), Log: quiet, BatchSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range sink.got {
		d, _ := e.Data.JSON()
		seen[string(d)] = true
	}
	if len(seen) != 700 {
		t.Fatalf("%d distinct events reached the sink, want all 700 (failed ones redelivered)", len(seen))
	}
	if len(failedOnce) == 0 {
		t.Fatal("the test sink never failed")
	}
}

func TestLocalFailedSinkEndsRunWithError(t *testing.T) {
	sink := &countingSink{fail: func(int, []*events.Event) error { return errors.New("down") }}
	p := load(t, keyedPipeline)
	p.Settings.Retry.InitialBackoffMs, p.Settings.Retry.MaxBackoffMs = 1, 1
	l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{MaxEvents: 100, Store: embedded(t), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("run succeeded although the sink Failed")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not end after the sink Failed")
	}
}

func TestLocalRequireTopicExists(t *testing.T) {
	p := load(t, `
settings:
  topic: {auto_create: false, require_topic_exists: true}
sources:
  keyed: {connector: keyed, topic: missing}
`)
	_, err := NewLocal(context.Background(), p, fakeFactory{}, LocalOptions{Store: embedded(t), Log: quiet})
	if err == nil || !contains(err.Error(), `sources.keyed.topic: topic "missing" does not exist`) {
		t.Fatalf("err = %v", err)
	}
}

func TestLocalCtrlCStopsGracefully(t *testing.T) {
	sink := &countingSink{}
	l, err := NewLocal(context.Background(), load(t, keyedPipeline), fakeFactory{sink}, LocalOptions{Store: embedded(t), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	for {
		sink.mu.Lock()
		n := len(sink.got)
		sink.mu.Unlock()
		if n > 100 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Everything acknowledged was committed: the group's committed offsets
	// account for exactly what the sink got.
	var committed int64
	for p := range int32(4) {
		c, _ := l.Broker.Committed("out", "t", p)
		committed += c
	}
	if committed != int64(len(sink.got)) {
		t.Fatalf("committed %d, sink got %d", committed, len(sink.got))
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// A rate limit smaller than the batches still lets everything through
// (the reference implementation deadlocked here).
func TestLocalRateLimitsNeverDeadlock(t *testing.T) {
	sink := &countingSink{}
	p := load(t, keyedPipeline)
	p.Sources["keyed"].RateLimit = &config.RateLimit{EventsPerSecond: 2000, BurstSize: 10}
	p.Sinks["out"].RateLimit = &config.RateLimit{EventsPerSecond: 1000, BurstCapacity: 10} // 1010 < the 1024 batches
	l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{MaxEvents: 2500, Store: embedded(t), Log: quiet, BatchSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if l.sinks[0].handler.Limiter == nil || l.sources[0].Limiter == nil {
		t.Fatal("rate limits not wired")
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 2500 {
		t.Fatalf("sink got %d of 2500", len(sink.got))
	}
}

// The emulator's topic holds no more than its bound whatever the event
// count: the source waits for the sink, and what the sink committed is
// released. Every event still arrives once, in key order.
func TestLocalTopicStaysBounded(t *testing.T) {
	const bound = 32
	var l *Local
	most := 0
	sink := &countingSink{fail: func(int, []*events.Event) error {
		for p := range int32(4) {
			n, _ := l.Broker.Held("t", p)
			most = max(most, n)
		}
		return nil
	}}
	var err error
	l, err = NewLocal(context.Background(), load(t, keyedPipeline), fakeFactory{sink}, LocalOptions{
		MaxEvents: 5003, Store: embedded(t), Log: quiet, BatchSize: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Broker.MaxMessages = bound
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkKeyOrder(t, sink, 5003)
	// A produce that finds room appends its whole batch (7 events here).
	if most > bound+7 || most == 0 {
		t.Fatalf("a partition held %d messages, bound %d", most, bound)
	}
	for p := range int32(4) {
		if n, _ := l.Broker.Held("t", p); n != 0 {
			t.Errorf("partition %d still holds %d consumed messages", p, n)
		}
	}
}

// A sink that Failed stops holding its topic: a source blocked on the
// full topic goes on, and the run ends with the failure.
func TestLocalFailedSinkReleasesBoundedTopic(t *testing.T) {
	sink := &countingSink{fail: func(int, []*events.Event) error { return errors.New("down") }}
	p := load(t, `
settings:
  topic: {default_partitions: 4}
  max_consecutive_errors: 2
  retry: {initial_backoff_ms: 1, max_backoff_ms: 1}
sources:
  keyed: {connector: keyed, topic: t}
sinks:
  out: {connector: rec, topics: [t], circuit_breaker: {enabled: false}}
`)
	l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{MaxEvents: 5003, Store: embedded(t), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l.Broker.MaxMessages = 16
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "sink out") {
			t.Fatalf("run ended with %v, want the sink's failure", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not end after the sink Failed")
	}
}
