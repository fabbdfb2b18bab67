package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.UnixMilli(1_750_000_000_000)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// switchSink fails every write while down, and records what it took;
// when poison is set, records whose ID ends in it always fail.
type switchSink struct {
	poison   string
	down     atomic.Bool
	mu       sync.Mutex
	got      []string
	writes   int
	failures int
}

func (s *switchSink) Write(_ context.Context, b []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.down.Load() {
		s.failures++
		return resilience.FromHTTP(503, "", time.Now(), nil)
	}
	we := &WriteError{Failed: map[int]error{}}
	for i, e := range b {
		d, _ := e.Data.JSON()
		if s.poison != "" && strings.HasSuffix(string(d), s.poison+`"}`) {
			we.Failed[i] = errors.New("value out of range for column total")
			continue
		}
		s.got = append(s.got, string(d))
	}
	if len(we.Failed) > 0 {
		return we
	}
	return nil
}

func (s *switchSink) counts() (writes, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.failures
}

func idRec(topicName string, id string, attempt int) Record {
	e := events.New(events.Insert, "s", events.RawPayload(fmt.Appendf(nil, `{"id":%q}`, id)))
	return Record{ID: id, Topic: topicName, Attempt: attempt, Event: e}
}

func ledgerFor(t *testing.T, c redis.UniversalClient, name string, cfg resilience.LedgerConfig) *resilience.Ledger {
	t.Helper()
	cfg.Connector = SinkStateName(name)
	l, err := resilience.NewLedger(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBreakerOpensForTheWholeFleet runs 4 handlers (4 Lambda instances of
// one sink) against a sink that fails every write. The breaker's count is
// shared: it opens after failure_threshold failures in total, then refuses
// every instance; after reset_timeout one probe goes through; it closes
// after success_threshold successful probes. Failed records come back
// (SQS-style, attempt+1) and are dead-lettered after max attempts, so
// every event ends written or dead-lettered, exactly once.
func TestBreakerOpensForTheWholeFleet(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name := uniqueName(t, c, "snk")
		clk := newTestClock()
		cfg := resilience.BreakerConfig{FailureThreshold: 5, ResetTimeout: 30 * time.Second, SuccessThreshold: 2}
		dlq := topic.NewMemory()
		dlq.AutoCreate = true
		const handlers, perHandler, maxAttempts = 4, 10, 8
		sinks := make([]*switchSink, handlers)
		hs := make([]*Handler, handlers)
		queues := make([][]Record, handlers)
		for i := range hs {
			sinks[i] = &switchSink{poison: "-9"} // e<i>-9 can never be written
			sinks[i].down.Store(true)
			hs[i] = &Handler{Name: name, Sink: sinks[i], Log: quiet, DeadLetters: dlq, MaxAttempts: maxAttempts,
				MaxConsecutiveErrors: 1000, Clock: clk,
				Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Breaker: &cfg, Dedup: resilience.DedupIDs, Now: clk.Now})}
			for j := range perHandler {
				queues[i] = append(queues[i], idRec("q", fmt.Sprintf("e%d-%d", i, j), 1))
			}
		}
		breaker := hs[0].Ledger
		// deliver hands handler i its queue (the trigger's redelivery) and
		// puts back what failed, one attempt later.
		deliver := func(i int) {
			recs := queues[i]
			if len(recs) == 0 {
				return
			}
			res, err := hs[i].Handle(ctx, recs)
			if err != nil {
				t.Errorf("handler %d: %v", i, err)
			}
			var next []Record
			for _, idx := range res.FailedIdx {
				r := recs[idx]
				r.Attempt++
				next = append(next, r)
			}
			queues[i] = next
		}
		round := func() {
			var wg sync.WaitGroup
			for i := range hs {
				wg.Add(1)
				go func() { defer wg.Done(); deliver(i) }()
			}
			wg.Wait()
		}
		totals := func() (writes, failures int) {
			for _, s := range sinks {
				w, f := s.counts()
				writes, failures = writes+w, failures+f
			}
			return
		}

		// Phase 1: all four fail concurrently until the circuit is open.
		for range 3 {
			round()
		}
		snap, _ := breaker.BreakerSnapshot(ctx)
		_, failures := totals()
		if snap.State != resilience.Open || snap.Failures != cfg.FailureThreshold {
			t.Fatalf("after %d failed writes: %+v", failures, snap)
		}
		// At most the threshold, plus writes already in flight on the
		// other instances when it opened.
		if failures < cfg.FailureThreshold || failures > cfg.FailureThreshold+handlers-1 {
			t.Fatalf("%d failed writes before the fleet stopped writing (threshold %d, %d instances)", failures, cfg.FailureThreshold, handlers)
		}
		// Open: every instance is refused, nothing reaches the sink.
		round()
		if w, _ := totals(); w != failures {
			t.Fatalf("the sink was written while open (%d writes, %d before)", w, failures)
		}
		for i, h := range hs {
			if h.Status.Rejected.Load() == 0 {
				t.Fatalf("instance %d was never refused", i)
			}
		}

		// Phase 2: after reset_timeout exactly one instance probes; the
		// sink is still down, so the circuit re-opens.
		clk.Advance(cfg.ResetTimeout)
		round()
		if w, _ := totals(); w != failures+1 {
			t.Fatalf("%d writes after the reset, want exactly one probe", w-failures)
		}
		if s, _ := breaker.BreakerSnapshot(ctx); s.State != resilience.Open {
			t.Fatalf("failed probe left the circuit %v", s.State)
		}

		// Phase 3: the sink recovers; success_threshold probes close it.
		for _, s := range sinks {
			s.down.Store(false)
		}
		clk.Advance(cfg.ResetTimeout)
		deliver(0)
		if s, _ := breaker.BreakerSnapshot(ctx); s.State != resilience.HalfOpen {
			t.Fatalf("after 1 successful probe: %v", s.State)
		}
		deliver(1)
		if s, _ := breaker.BreakerSnapshot(ctx); s.State != resilience.Closed {
			t.Fatalf("after %d successful probes: %v", cfg.SuccessThreshold, s.State)
		}
		for range 2 * maxAttempts {
			round()
		}
		for i, q := range queues {
			if len(q) != 0 {
				t.Fatalf("instance %d still has %d records to deliver", i, len(q))
			}
		}

		// Nothing lost, nothing twice: every event is written or
		// dead-lettered, and dead letters only after max attempts.
		seen := map[string]string{}
		for _, s := range sinks {
			for _, d := range s.got {
				var v struct{ ID string }
				json.Unmarshal([]byte(d), &v)
				if seen[v.ID] != "" {
					t.Fatalf("%s delivered twice", v.ID)
				}
				seen[v.ID] = "written"
			}
		}
		msgs, _ := dlq.Fetch(ctx, "q.dlq", 0, 0, 1000)
		for _, m := range msgs {
			var dl struct {
				Payload    []byte `json:"payload_b64"`
				RetryCount int    `json:"retry_count"`
			}
			json.Unmarshal(m.Value, &dl)
			ev, _ := events.DecodeAny(dl.Payload)
			row, _ := ev.Row()
			id := fmt.Sprint(row["id"])
			if seen[id] != "" {
				t.Fatalf("%s is both %s and dead-lettered", id, seen[id])
			}
			if dl.RetryCount != maxAttempts-1 {
				t.Fatalf("%s dead-lettered after %d retries, want %d", id, dl.RetryCount, maxAttempts-1)
			}
			seen[id] = "dead"
		}
		if len(msgs) != handlers {
			t.Fatalf("%d dead letters, want the %d poison records", len(msgs), handlers)
		}
		if len(seen) != handlers*perHandler {
			var missing []string
			for i := range handlers {
				for j := range perHandler {
					if id := fmt.Sprintf("e%d-%d", i, j); seen[id] == "" {
						missing = append(missing, id)
					}
				}
			}
			sort.Strings(missing)
			t.Fatalf("%d events accounted for, missing %v", len(seen), missing)
		}
	})
}

// TestHandlerSkipsRedeliveredRecordsOrdered: on an ordered transport, a
// redelivered batch is not written twice — neither the committed prefix
// nor the records that succeeded after a failed one.
func TestHandlerSkipsRedeliveredRecordsOrdered(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name := uniqueName(t, c, "snk")
		sink := &countingSink{fail: func(call int, batch []*events.Event) error {
			if call == 1 {
				return &WriteError{Failed: map[int]error{5: errors.New("throttled")}}
			}
			return nil
		}}
		h := &Handler{Name: name, Sink: sink, Log: quiet, Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Dedup: resilience.DedupOffsets})}
		batch := func(from, to int) []Record {
			var out []Record
			for i := from; i < to; i++ {
				r := rec(i, fmt.Sprintf(`{"n":%d}`, i))
				r.ID, r.Attempt, r.Partition = fmt.Sprint(i), 0, 3
				out = append(out, r)
			}
			return out
		}
		res, err := h.Handle(ctx, batch(0, 10))
		if err != nil || fmt.Sprint(res.FailedIdx) != "[5]" {
			t.Fatalf("first delivery: %+v %v", res, err)
		}
		// Kafka-style: redelivered from the failed offset on.
		if res, _ := h.Handle(ctx, batch(5, 10)); len(res.Failed) != 0 {
			t.Fatalf("redelivery: %+v", res)
		}
		// A consumer that crashed before committing redelivers it all.
		if res, _ := h.Handle(ctx, batch(0, 12)); len(res.Failed) != 0 {
			t.Fatalf("replay: %+v", res)
		}
		var ns []string
		for _, e := range sink.got {
			d, _ := e.Data.JSON()
			ns = append(ns, string(d))
		}
		if len(ns) != 12 {
			t.Fatalf("sink got %d events, want each of 12 exactly once: %v", len(ns), ns)
		}
		seen := map[string]bool{}
		for _, n := range ns {
			if seen[n] {
				t.Fatalf("%s written twice", n)
			}
			seen[n] = true
		}
		if d := h.Status.Duplicates.Load(); d != 4+10 {
			t.Fatalf("duplicates skipped %d, want 14", d)
		}
		if next, _ := h.Ledger.Committed(ctx, resilience.StreamOf("in", 3)); next != 12 {
			t.Fatalf("committed %d", next)
		}
	})
}

// TestHandlerLedgerCountsAttempts: a trigger that does not count
// deliveries (Kafka, Redis Streams) gets its attempt count from the
// ledger, so a record that keeps failing is dead-lettered.
func TestHandlerLedgerCountsAttempts(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name := uniqueName(t, c, "snk")
		dlq := topic.NewMemory()
		dlq.AutoCreate = true
		sink := &countingSink{fail: func(int, []*events.Event) error { return errors.New("constraint violation") }}
		h := &Handler{Name: name, Sink: sink, Log: quiet, DeadLetters: dlq, MaxAttempts: 3, MaxConsecutiveErrors: 100,
			Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Dedup: resilience.DedupIDs})}
		r := idRec("q", "m1", 0)
		for attempt := 1; attempt <= 3; attempt++ {
			res, err := h.Handle(ctx, []Record{r})
			if err != nil {
				t.Fatal(err)
			}
			if attempt < 3 && len(res.Failed) != 1 || attempt == 3 && res.DeadLettered != 1 {
				t.Fatalf("attempt %d: %+v", attempt, res)
			}
		}
		// Dead-lettered is done: a late redelivery is skipped.
		if res, _ := h.Handle(ctx, []Record{r}); len(res.Failed) != 0 || sink.writes != 3 {
			t.Fatalf("redelivery after dead-lettering: %+v, %d writes", res, sink.writes)
		}
	})
}

// TestHandlerRedisOutage puts a TCP proxy between the handler and Redis
// and cuts, resets and slows it: every batch in the outage fails back to
// the trigger with nothing written; once the proxy heals, the redelivered
// batches are written with no loss and no duplicate.
func TestHandlerRedisOutage(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		name := uniqueName(t, b.store.Client(), "snk")
		px := newProxy(t, b.addr)
		c := redis.NewClient(&redis.Options{Addr: px.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, PoolSize: 2})
		t.Cleanup(func() { c.Close() })
		cfg := resilience.DefaultBreaker
		sink := &switchSink{}
		h := &Handler{Name: name, Sink: sink, Log: quiet, MaxConsecutiveErrors: 3,
			Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Breaker: &cfg, Dedup: resilience.DedupIDs})}
		batch := func(prefix string) []Record {
			var out []Record
			for i := range 5 {
				out = append(out, idRec("q", fmt.Sprintf("%s%d", prefix, i), 1))
			}
			return out
		}
		if res, err := h.Handle(ctx, batch("a")); err != nil || len(res.Failed) != 0 {
			t.Fatalf("healthy: %+v %v", res, err)
		}
		outage := func(mode string) {
			t.Helper()
			px.set(mode, time.Second)
			cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			defer cancel()
			before, _ := sink.counts()
			res, err := h.Handle(cctx, batch("b"))
			if !errors.Is(err, ErrStateUnavailable) || resilience.ClassOf(err) != resilience.Connection || len(res.Failed) != 5 {
				t.Fatalf("%s: %+v %v", mode, res, err)
			}
			if after, _ := sink.counts(); after != before {
				t.Fatalf("%s: the sink was written while Redis was unreachable", mode)
			}
		}
		for _, mode := range []string{"cut", "reset", "delay", "cut", "reset"} {
			outage(mode)
		}
		// An outage is not the sink's failure: it is not Failed.
		if h.Status.State() == Failed {
			t.Fatal("a Redis outage moved the sink to Failed")
		}
		px.set("pass", 0)
		var res Result
		waitFor(t, "the client to reconnect", func() bool {
			var err error
			res, err = h.Handle(ctx, batch("b"))
			return err == nil
		})
		if len(res.Failed) != 0 {
			t.Fatalf("after healing: %+v", res)
		}
		// The healthy batch redelivered as well: skipped.
		h.Handle(ctx, batch("a"))
		seen := map[string]int{}
		for _, d := range sink.got {
			seen[d]++
		}
		if len(seen) != 10 || len(sink.got) != 10 {
			t.Fatalf("sink got %d writes of %d events: %v", len(sink.got), len(seen), sink.got)
		}
	})
}

// TestSourceRidesOutRedisOutage: a source publishing through a proxy that
// is cut restarts with backoff and, once it heals, goes on from its
// position: every event on the topic exactly once.
func TestSourceRidesOutRedisOutage(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		name := uniqueName(t, b.store.Client(), "src")
		tp := uniqueName(t, b.store.Client(), "topic")
		px := newProxy(t, b.addr)
		c := redis.NewClient(&redis.Options{Addr: px.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
		t.Cleanup(func() { c.Close() })
		store := state.NewRedisClient(c)
		tr := topic.NewRedis(c)
		tr.AutoCreate = true
		src := &cutSource{total: 50, cutAt: 20, cut: func() { px.set("cut", 0) }}
		clk := &fakeClock{onNth: map[int]func(){3: func() { px.set("pass", 0) }}}
		r := &SourceRunner{Name: name, Source: src, Topic: tp, Producer: tr, Store: store, Fencer: store,
			Status: NewStatus(name, "cut", "source"), Log: quiet, Clock: clk}
		if err := r.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if r.Status.Restarts.Load() == 0 {
			t.Fatal("the outage did not make the source restart")
		}
		direct := topic.NewRedis(b.store.Client())
		seen := map[string]int{}
		for _, m := range readAll(t, direct, tp) {
			e, err := events.DecodeAny(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			row, _ := e.Row()
			n := fmt.Sprint(row["n"])
			if seen[n]++; seen[n] > 1 {
				t.Fatalf("event %s published twice", n)
			}
		}
		if len(seen) != 50 {
			t.Fatalf("%d distinct events on the topic, want 50", len(seen))
		}
	})
}

// cutSource emits events one per batch from its resume point; before
// event cutAt (once) it calls cut.
type cutSource struct {
	total, cutAt int
	cut          func()
	didCut       bool
}

func (s *cutSource) Read(ctx context.Context, resume []byte, emit Emitter) error {
	n := 0
	if resume != nil {
		fmt.Sscan(string(resume), &n)
		n++
	}
	for ; n < s.total; n++ {
		if n == s.cutAt && !s.didCut {
			s.didCut = true
			s.cut()
		}
		e := events.New(events.Insert, "s", events.RawPayload(fmt.Appendf(nil, `{"n":%d}`, n)))
		e.Metadata.Position = fmt.Sprint(n)
		if err := emit.Emit(ctx, []*events.Event{e}); err != nil {
			return err
		}
	}
	return nil
}
