package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// overlapSink records how many of its Writes ran at once.
type overlapSink struct {
	inFlight, most atomic.Int32
	// gather, when set, holds each Write until that many are in flight
	// (or the test's deadline passes): only parallel writes get there.
	gather int32
	ready  chan struct{}
	once   sync.Once
}

func (s *overlapSink) Write(ctx context.Context, _ []*events.Event) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	if s.gather > 0 {
		if n >= s.gather {
			s.once.Do(func() { close(s.ready) })
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type concurrentOverlapSink struct{ overlapSink }

func (*concurrentOverlapSink) ConcurrentWrites() bool { return true }

func handleConcurrently(t *testing.T, h *Handler, calls int) []Result {
	t.Helper()
	recs := benchRecords(calls)
	for i := range recs {
		recs[i].Event, _ = events.DecodeAny(recs[i].Raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := make([]Result, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if res[i], err = h.Handle(ctx, recs[i:i+1]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	return res
}

// A sink that declares concurrent writes gets concurrent requests' batches
// written in parallel: its writes wait for each other, which completes
// only when they all run at once.
func TestHandlerWritesConcurrentlyWhenTheSinkAllows(t *testing.T) {
	s := &concurrentOverlapSink{overlapSink{gather: 8, ready: make(chan struct{})}}
	h := &Handler{Name: "conc", Sink: s, Log: quiet}
	for i, r := range handleConcurrently(t, h, 8) {
		if len(r.Failed) > 0 {
			t.Fatalf("request %d failed: %v (writes were not run in parallel)", i, r.Failed)
		}
	}
	if s.most.Load() != 8 {
		t.Fatalf("at most %d writes ran at once, want 8", s.most.Load())
	}
}

// Any other sink gets one Write at a time, however many requests run.
func TestHandlerSerialisesWritesOtherwise(t *testing.T) {
	s := &overlapSink{}
	h := &Handler{Name: "serial", Sink: s, Log: quiet}
	for range 20 {
		handleConcurrently(t, h, 16)
	}
	if s.most.Load() != 1 {
		t.Fatalf("%d writes ran at once on a sink that did not declare concurrent writes", s.most.Load())
	}
	if got := h.Status.EventsOut.Load(); got != 320 {
		t.Fatalf("wrote %d events, want 320", got)
	}
}
