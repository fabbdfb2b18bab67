package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// commitWatchSink records, at each Write, the offset the emulator has
// committed for the sink's group on partition 0 of topic t.
type commitWatchSink struct {
	countingSink
	l    *Local
	seen []int64
}

func (s *commitWatchSink) Write(ctx context.Context, batch []*events.Event) error {
	c, _ := s.l.Broker.Committed("out", "t", 0)
	s.mu.Lock()
	s.seen = append(s.seen, c)
	s.mu.Unlock()
	return s.countingSink.Write(ctx, batch)
}

// offset_commit_interval sets how often local commits a partition's
// offset, as in `run sink`: once 250 records were consumed since the last
// commit, and when it caught up with the end. A sink seeing every batch
// commit (the interval ignored) sees the committed offset move by 100.
func TestLocalCommitsEveryOffsetCommitInterval(t *testing.T) {
	p := load(t, `
sinks:
  out: {connector: rec, topics: [t], offset_commit_interval: 250}
`)
	sink := &commitWatchSink{}
	l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{Store: embedded(t), Log: quiet, BatchSize: 100, Duration: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sink.l = l
	// All of it is there before the sink starts, so every batch is full.
	if err := l.Broker.Produce(context.Background(), "t", genEvents("e", 1000)); err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Batches start at 0, 100, …, 900; commits at 300, 600, 900 and 1000.
	if got, want := fmt.Sprint(sink.seen), "[0 0 0 300 300 300 600 600 600 900]"; got != want {
		t.Fatalf("committed offset at each write %s, want %s (batches of 100, interval 250)", got, want)
	}
	if c, _ := l.Broker.Committed("out", "t", 0); c != 1000 {
		t.Fatalf("committed %d at the end, want 1000", c)
	}
	if n := len(ids(t, &sink.countingSink)); n != 1000 {
		t.Fatalf("sink got %d events", n)
	}
}

// inFlightSink declares concurrent writes (so that the handler does not
// serialise them) and records how many of its writes ran at once. The
// first writes wait until two are in flight, then stay a while, so that
// any further partition the emulator let through would show.
type inFlightSink struct {
	countingSink
	now, most atomic.Int32
	two       chan struct{}
	twoOnce   sync.Once
	held      atomic.Int32
}

func (*inFlightSink) ConcurrentWrites() bool { return true }

func (s *inFlightSink) Write(ctx context.Context, batch []*events.Event) error {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	if n >= 2 {
		s.twoOnce.Do(func() { close(s.two) })
	}
	if s.held.Add(1) <= 2 {
		select {
		case <-s.two:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Unbounded, the other two partitions' batches arrive at once;
		// this gives them every chance to.
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) && s.most.Load() <= 2 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	return s.countingSink.Write(ctx, batch)
}

// rate_limit.max_in_flight bounds the batches local has at the sink at
// once across partitions: with 2 and four busy partitions, two batches
// are written in parallel and never a third.
func TestLocalMaxInFlight(t *testing.T) {
	p := load(t, `
settings:
  topic: {default_partitions: 4}
sinks:
  out: {connector: rec, topics: [t], rate_limit: {events_per_second: 0, max_in_flight: 2}}
`)
	sink := &inFlightSink{two: make(chan struct{})}
	l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{Store: embedded(t), Log: quiet, BatchSize: 5, Duration: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Broker.Produce(context.Background(), "t", genEvents("e", 40)); err != nil { // round robin: 10 per partition
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if m := sink.most.Load(); m != 2 {
		t.Fatalf("at most %d batches were written at once, want 2 (max_in_flight)", m)
	}
	if n := len(ids(t, &sink.countingSink)); n != 40 {
		t.Fatalf("sink got %d events", n)
	}
}
