package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/topic"
)

// downSink fails every write and notes the clock's time of each.
type downSink struct {
	clk *testClock
	mu  sync.Mutex
	at  []time.Time
}

func (s *downSink) Write(context.Context, []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, s.clk.Now())
	return errors.New("target unavailable")
}

func (s *downSink) writes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at...)
}

// TestSinkRunnerProbesOnTime: once the breaker opens, `run sink` sends its
// probe when reset_timeout says — not after a redelivery backoff that kept
// growing while the breaker refused batches (probes came 5.7–13.6 s apart
// with reset_timeout_secs 5). Time is a fake clock that moves only when the
// runner sleeps, so every write's time is exact: the first probe comes
// within the reset timeout plus one poll interval of the opening failure,
// and each later probe as long after the one before.
func TestSinkRunnerProbesOnTime(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := b.store.Client()
		name, tp := uniqueName(t, c, "snk"), uniqueName(t, c, "topic")
		tr := topic.NewRedis(c)
		if err := tr.Create(ctx, tp, topic.Spec{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		var msgs []topic.Message
		for i := range 5 {
			msgs = append(msgs, topic.Message{Value: fmt.Appendf(nil, `{"event_type":"insert","stream":"s","timestamp":"2025-01-01T00:00:00Z","data":{"n":%d}}`, i)})
		}
		if err := tr.Produce(ctx, tp, msgs); err != nil {
			t.Fatal(err)
		}
		clk := newTestClock()
		const threshold, reset, poll = 3, 5 * time.Second, 10 * time.Millisecond
		cfg := resilience.BreakerConfig{FailureThreshold: threshold, ResetTimeout: reset, SuccessThreshold: 1}
		sink := &downSink{clk: clk}
		h := &Handler{Name: name, Sink: sink, Log: quiet, Clock: clk, MaxConsecutiveErrors: 1000,
			Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Breaker: &cfg, Dedup: resilience.DedupOffsets, Now: clk.Now})}
		r := &SinkRunner{Handler: h, Transport: tr, Topics: []string{tp}, Group: name, Clock: clk, Wait: poll, Log: quiet,
			Retry: resilience.Policy{Initial: 100 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.1}}
		const probes = 4
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, "the breaker's probes", func() bool { return len(sink.writes()) >= threshold+probes })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		at := sink.writes()
		// at[threshold-1] is the failure that opened the circuit; every
		// write after it is a probe, which fails and opens it again.
		for i := threshold; i < threshold+probes; i++ {
			gap := at[i].Sub(at[i-1])
			if gap < reset || gap > reset+poll {
				t.Errorf("probe %d came %v after the failure before it (which opened the circuit), want %v to %v", i-threshold+1, gap, reset, reset+poll)
			}
		}
		if st := h.Status.Breaker.Load(); resilience.BreakerState(st) != resilience.Open {
			t.Errorf("breaker %v after failed probes", resilience.BreakerState(st))
		}
	})
}

// TestHandlerProbeIn: the handler tells its runner (run sink, local) when
// the open breaker admits the next probe, counting down with the clock.
func TestHandlerProbeIn(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name := uniqueName(t, c, "snk")
		clk := newTestClock()
		cfg := resilience.BreakerConfig{FailureThreshold: 2, ResetTimeout: 5 * time.Second, SuccessThreshold: 1}
		h := &Handler{Name: name, Sink: &downSink{clk: clk}, Log: quiet, Clock: clk, MaxConsecutiveErrors: 1000,
			Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Breaker: &cfg, Dedup: resilience.DedupIDs, Now: clk.Now})}
		res, _ := h.Handle(ctx, []Record{idRec("q", "a", 1)})
		if res.ProbeIn != 0 || h.ProbeIn() != 0 {
			t.Fatalf("closed breaker: probe in %v / %v", res.ProbeIn, h.ProbeIn())
		}
		res, _ = h.Handle(ctx, []Record{idRec("q", "a", 2)})
		if res.ProbeIn != 5*time.Second || h.ProbeIn() != 5*time.Second {
			t.Fatalf("just opened: probe in %v / %v", res.ProbeIn, h.ProbeIn())
		}
		clk.Advance(2 * time.Second)
		if d := h.ProbeIn(); d != 3*time.Second {
			t.Fatalf("2 s later: probe in %v", d)
		}
		res, _ = h.Handle(ctx, []Record{idRec("q", "a", 3)}) // refused
		if res.ProbeIn != 3*time.Second || len(res.Failed) != 1 {
			t.Fatalf("refused batch: %+v", res)
		}
	})
}
