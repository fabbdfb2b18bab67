package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/topic"
)

// heldTransport is the Redis transport with a switch that keeps the
// sink's fetches waiting, as a sink waits out a Redis that is restarting,
// so that a test can change the topic behind its back first.
type heldTransport struct {
	*topic.Redis
	mu   sync.Mutex
	gate chan struct{} // nil = pass; else fetches wait until it is closed
}

func (h *heldTransport) hold() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

func (h *heldTransport) release() {
	h.mu.Lock()
	close(h.gate)
	h.gate = nil
	h.mu.Unlock()
}

func (h *heldTransport) Fetch(ctx context.Context, t string, p int32, from int64, limit int, wait time.Duration) ([]topic.Message, error) {
	h.mu.Lock()
	g := h.gate
	h.mu.Unlock()
	if g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return nil, nil
		}
	}
	return h.Redis.Fetch(ctx, t, p, from, limit, wait)
}

// lockedBuffer is a log destination the test reads while the runner
// writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// genEvents are events "<gen>-0" ... "<gen>-<n-1>" on one partition.
func genEvents(gen string, n int) []topic.Message {
	var out []topic.Message
	for i := range n {
		e := events.New(events.Insert, "seq", events.RawPayload(fmt.Appendf(nil, `{"id":"%s-%d"}`, gen, i)))
		b, err := events.Marshal(e)
		if err != nil {
			panic(err)
		}
		out = append(out, topic.Message{Value: b})
	}
	return out
}

// ids lists the "id" of every event the sink got, in order.
func ids(t *testing.T, s *countingSink) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.got {
		row, err := e.Row()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(row["id"]))
	}
	return out
}

func countPrefix(xs []string, prefix string) int {
	n := 0
	for _, x := range xs {
		if strings.HasPrefix(x, prefix) {
			n++
		}
	}
	return n
}

// deleteKeys removes what Redis held for the test's sink and topic: what
// a Redis restarted empty loses, without touching anyone else's keys.
func deleteKeys(t *testing.T, c redis.UniversalClient, patterns ...string) {
	t.Helper()
	ctx := context.Background()
	for _, p := range patterns {
		keys, err := c.Keys(ctx, p).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestSinkRunnerTopicWentBackInTime: the topic a `run sink` consumes starts
// over at offset 0 under it — Redis restarted empty, or the topic deleted
// and created again while the sink's state stayed. The sink must notice
// (the offset it stands at is past the new end, or the topic has a new
// id although it already grew past that offset), log it at warn, and
// consume the new topic from start_offset (earliest): every new event
// arrives, once, in order. Before, it waited at its old offset and
// silently skipped everything below it (and the ledger, when it
// survived, skipped them as duplicates).
func TestSinkRunnerTopicWentBackInTime(t *testing.T) {
	type wipe struct {
		name string
		// lose removes what the reset loses; publish is what the source
		// publishes to the topic as it is created again.
		lose    func(t *testing.T, c redis.UniversalClient, sink, tp string)
		publish int
	}
	everything := func(t *testing.T, c redis.UniversalClient, sink, tp string) {
		deleteKeys(t, c, "rivven:topic:{"+tp+"}:*", "rivven:{sink:"+sink+"}:*")
	}
	topicOnly := func(t *testing.T, c redis.UniversalClient, _, tp string) {
		deleteKeys(t, c, "rivven:topic:{"+tp+"}:*")
	}
	wipes := []wipe{
		{"redis restarted empty, fewer events than before", everything, 3},
		{"redis restarted empty, more events than before", everything, 25},
		{"topic recreated, ledger kept", topicOnly, 25},
	}
	run := func(t *testing.T, c redis.UniversalClient, w wipe, restart func()) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		name, tp := uniqueName(t, c, "snk"), uniqueName(t, c, "topic")
		pub := topic.NewRedis(c)
		if err := pub.Create(ctx, tp, topic.Spec{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		if err := pub.Produce(ctx, tp, genEvents("old", 10)); err != nil {
			t.Fatal(err)
		}
		sink := &countingSink{}
		logs := &lockedBuffer{}
		log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		h := &Handler{Name: name, Sink: sink, Log: log, Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Dedup: resilience.DedupOffsets})}
		tr := &heldTransport{Redis: topic.NewRedis(c)}
		r := &SinkRunner{Handler: h, Transport: tr, Topics: []string{tp}, Group: name, Wait: 5 * time.Millisecond,
			Backoff: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}, Log: log}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, "the old events", func() bool { return len(ids(t, sink)) == 10 })
		waitFor(t, "the commit", func() bool { n, ok, _ := tr.Committed(ctx, name, tp, 0); return ok && n == 10 })

		// The sink waits on its next fetch while the topic goes back in
		// time and the source publishes again.
		tr.hold()
		w.lose(t, c, name, tp)
		if restart != nil {
			restart()
		}
		if err := pub.Create(ctx, tp, topic.Spec{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		if err := pub.Produce(ctx, tp, genEvents("new", w.publish)); err != nil {
			t.Fatal(err)
		}
		tr.release()
		waitFor(t, "the new events", func() bool { return countPrefix(ids(t, sink), "new-") >= w.publish })
		waitFor(t, "the commit on the new topic", func() bool {
			n, ok, _ := tr.Committed(ctx, name, tp, 0)
			return ok && n == int64(w.publish)
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := ids(t, sink)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("old-%d", i))
		}
		for i := range w.publish {
			want = append(want, fmt.Sprintf("new-%d", i))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("sink got\n%v\nwant\n%v", got, want)
		}
		if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "topic went back in time") || !strings.Contains(l, "resume_at=0") {
			t.Fatalf("the reset was not logged at warn:\n%s", l)
		}
	}
	for _, w := range wipes {
		t.Run(w.name, func(t *testing.T) {
			redisBackends(t, func(t *testing.T, b storeBackend) {
				run(t, b.store.Client(), w, nil)
			})
			// A Redis that really restarts empty: the server goes away with
			// its connections and data, a new one listens on the same
			// address, and the clients reconnect. (A new miniredis rather
			// than Restart: miniredis v2.40 never answers a blocking read
			// after Restart, as Close cancels the context those wait on.)
			if w.name == "topic recreated, ledger kept" {
				return
			}
			t.Run("miniredis restart", func(t *testing.T) {
				srv := miniredis.RunT(t)
				c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
				t.Cleanup(func() { c.Close() })
				run(t, c, wipe{w.name, func(*testing.T, redis.UniversalClient, string, string) {}, w.publish}, func() {
					addr := srv.Addr()
					srv.Close()
					fresh := miniredis.NewMiniRedis()
					if err := fresh.StartAddr(addr); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(fresh.Close)
				})
			})
		})
	}
}

// A sink that starts on a topic whose committed offset is past its end
// (the state survived, the topic's messages did not) starts per
// start_offset instead of waiting there.
func TestSinkRunnerStartsPastTheEnd(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := b.store.Client()
		name, tp := uniqueName(t, c, "snk"), uniqueName(t, c, "topic")
		tr := topic.NewRedis(c)
		tr.Create(ctx, tp, topic.Spec{Partitions: 1})
		// A transport without topic ids sees only the offsets.
		if err := tr.Commit(ctx, name, tp, 0, 50); err != nil {
			t.Fatal(err)
		}
		tr.Produce(ctx, tp, genEvents("new", 5))
		sink := &countingSink{}
		logs := &lockedBuffer{}
		log := slog.New(slog.NewTextHandler(logs, nil))
		h := &Handler{Name: name, Sink: sink, Log: log}
		r := &SinkRunner{Handler: h, Transport: offsetsOnly{tr}, Topics: []string{tp}, Group: name, Wait: 5 * time.Millisecond, Log: log}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, "the events", func() bool { return len(ids(t, sink)) == 5 })
		cancel()
		<-done
		if !strings.Contains(logs.String(), "the committed offset is past the end of the partition") {
			t.Fatalf("not logged:\n%s", logs.String())
		}
	})
}

// offsetsOnly hides the transport's topic ids.
type offsetsOnly struct{ StreamTransport }
