package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

// wallClock is the wall clock whose sleeps are recorded and skipped: the
// deadline check sees real time (a context deadline is wall time), the
// test does not wait.
type wallClock struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *wallClock) Now() time.Time { return time.Now() }

func (c *wallClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return ctx.Err()
}

// sqsBatch is a Lambda SQS event of n events of stream "s".
func sqsBatch(t *testing.T, n int) ([]events.Delivery, []byte) {
	t.Helper()
	var ds []events.Delivery
	for i := range n {
		b, err := events.Marshal(events.New(events.Insert, "s", events.RawPayload(fmt.Appendf(nil, `{"n":%d}`, i))))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, events.Delivery{ID: fmt.Sprintf("m-%d", i), Topic: "t", Offset: int64(i), Attempt: 1, Value: b, Time: time.Unix(1, 0)})
	}
	raw, err := json.Marshal(events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:local:000000000000:t", Region: "local"}, ds))
	if err != nil {
		t.Fatal(err)
	}
	return ds, raw
}

// A write the target refused with a Retry-After is tried again after the
// wait it asked for, within the invocation, when the invocation's deadline
// leaves time for it; when it does not, no wait is started and the records
// fail back at once. Before, the handler never waited: every such batch
// failed back to the trigger whatever the target said.
func TestSinkWriteHonoursRetryAfterAndDeadline(t *testing.T) {
	const pipe = `
settings:
  retry: {max_retries: 3}
sinks:
  out: {connector: rec, topics: [t]}
`
	run := func(t *testing.T, retryAfter, deadline time.Duration) (*countingSink, *wallClock, []int) {
		t.Helper()
		sink := &countingSink{fail: func(call int, _ []*events.Event) error {
			if call == 1 {
				return resilience.RateLimitedAfter(errors.New("HTTP 429 Too Many Requests"), retryAfter)
			}
			return nil
		}}
		h, err := NewSinkHandler(context.Background(), load(t, pipe), "out", fakeFactory{sink}, Deps{Store: embedded(t), Log: quiet, Delivery: DeliveryUnordered})
		if err != nil {
			t.Fatal(err)
		}
		clk := &wallClock{}
		h.Clock = clk
		ad := &Adapter{Handler: h, Topics: []string{"t"}}
		ds, raw := sqsBatch(t, 3)
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		resp, err := ad.InvokeLambda(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		failed, err := events.ReadLambdaResponse(events.TriggerSQS, ds, resp)
		if err != nil {
			t.Fatal(err)
		}
		return sink, clk, failed
	}

	t.Run("wait fits the deadline", func(t *testing.T) {
		sink, clk, failed := run(t, 2*time.Second, time.Minute)
		if len(failed) != 0 {
			t.Fatalf("records failed back: %v", failed)
		}
		if fmt.Sprint(clk.sleeps) != "[2s]" {
			t.Fatalf("waits %v, want the Retry-After [2s]", clk.sleeps)
		}
		if sink.writes != 2 || len(sink.got) != 3 {
			t.Fatalf("writes %d, events written %d; want 2 writes, 3 events", sink.writes, len(sink.got))
		}
	})
	t.Run("deadline wins", func(t *testing.T) {
		sink, clk, failed := run(t, time.Hour, time.Minute)
		if len(failed) != 3 {
			t.Fatalf("failed %v, want every record back", failed)
		}
		if len(clk.sleeps) != 0 || sink.writes != 1 {
			t.Fatalf("waited %v and wrote %d times; a wait past the deadline must not start", clk.sleeps, sink.writes)
		}
	})
}

// The reason a record comes back names the deadline, so the operator sees
// why the Retry-After was not waited out.
func TestSinkWriteDeadlineReasonIsLogged(t *testing.T) {
	logs := &lockedBuffer{}
	sink := &countingSink{fail: func(int, []*events.Event) error {
		return resilience.RateLimitedAfter(errors.New("HTTP 429"), time.Hour)
	}}
	h := &Handler{Name: "out", Sink: sink, Log: slog.New(slog.NewTextHandler(logs, nil)), Clock: &wallClock{}, Retry: resilience.Policy{MaxRetries: 3}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ds, _ := sqsBatch(t, 1)
	rec := Record{ID: ds[0].ID, Topic: "t", Raw: ds[0].Value}
	rec.Event, rec.DecodeErr = events.DecodeAny(ds[0].Value)
	res, err := h.Handle(ctx, []Record{rec})
	if err != nil || len(res.Failed) != 1 {
		t.Fatalf("res %+v err %v", res, err)
	}
	if !strings.Contains(logs.String(), "would pass the deadline") {
		t.Fatalf("the reason is not logged:\n%s", logs)
	}
}

// commitCounter is the Redis Streams transport recording every offset
// commit and counting the batches read and not yet answered.
type commitCounter struct {
	*topic.Redis
	mu      sync.Mutex
	commits []int64
	// fetched counts fetches of a whole batch that returned records (a
	// one-record fetch is the wait for data, which holds no slot).
	fetched int
}

func (c *commitCounter) CommitOn(ctx context.Context, group, t string, p int32, next int64, id string) error {
	c.mu.Lock()
	c.commits = append(c.commits, next)
	c.mu.Unlock()
	return c.Redis.CommitOn(ctx, group, t, p, next, id)
}

func (c *commitCounter) Fetch(ctx context.Context, t string, p int32, from int64, limit int, wait time.Duration) ([]topic.Message, error) {
	msgs, err := c.Redis.Fetch(ctx, t, p, from, limit, wait)
	if len(msgs) > 0 && limit > 1 {
		c.mu.Lock()
		c.fetched++
		c.mu.Unlock()
	}
	return msgs, err
}

func (c *commitCounter) state() ([]int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.commits), c.fetched
}

// runSinkOn starts the `run sink` runner of sinks.out, built from the
// pipeline as the command builds it, on an embedded store.
func runSinkOn(t *testing.T, pipe string, sink Sink, batch int) (*commitCounter, *topic.Redis, string, func()) {
	t.Helper()
	st, err := state.NewEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := st.Client()
	tp := uniqueName(t, c, "topic")
	tr := &commitCounter{Redis: topic.NewRedis(c)}
	p := load(t, strings.ReplaceAll(pipe, "TOPIC", tp))
	r, err := NewSinkRunner(context.Background(), p, "out", fakeFactory{sink}, tr, Deps{Store: st, Log: quiet, Delivery: DeliveryOrdered})
	if err != nil {
		t.Fatal(err)
	}
	r.BatchSize, r.Wait = batch, 5*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := func() { go func() { done <- r.Run(ctx) }() }
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return tr, topic.NewRedis(c), tp, start
}

// offset_commit_interval sets how often `run sink` commits a partition's
// offset: after 250 records consumed since the last commit, and once it
// caught up with the end. Before, it was validated and then ignored: the
// runner committed after every batch.
func TestRunSinkCommitsEveryOffsetCommitInterval(t *testing.T) {
	sink := &countingSink{}
	tr, pub, tp, start := runSinkOn(t, `
sinks:
  out: {connector: rec, topics: [TOPIC], offset_commit_interval: 250}
`, sink, 100)
	if err := pub.Create(context.Background(), tp, topic.Spec{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Produce(context.Background(), tp, genEvents("e", 1000)); err != nil {
		t.Fatal(err)
	}
	start()
	waitFor(t, "the last commit", func() bool { cs, _ := tr.state(); return len(cs) > 0 && cs[len(cs)-1] == 1000 })
	if cs, _ := tr.state(); fmt.Sprint(cs) != "[300 600 900 1000]" {
		t.Fatalf("commits at %v, want [300 600 900 1000] (batches of 100, interval 250, the end)", cs)
	}
	if n := len(ids(t, sink)); n != 1000 {
		t.Fatalf("sink got %d events", n)
	}
}

// gateSink blocks its first Write until released, so that the test sees
// what else the runner reads meanwhile.
type gateSink struct {
	countingSink
	first   sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateSink) Write(ctx context.Context, batch []*events.Event) error {
	g.first.Do(func() {
		close(g.entered)
		<-g.gate
	})
	return g.countingSink.Write(ctx, batch)
}

// rate_limit.max_in_flight bounds the batches `run sink` holds at once,
// read and not yet answered, across the sink's partitions: with 1, while
// one partition's batch is being written no other partition's batch is
// read. Before, it was validated and then ignored: every partition read
// its batch and waited with it.
func TestRunSinkMaxInFlight(t *testing.T) {
	sink := &gateSink{entered: make(chan struct{}), gate: make(chan struct{})}
	tr, pub, tp, start := runSinkOn(t, `
sinks:
  out: {connector: rec, topics: [TOPIC], rate_limit: {events_per_second: 0, max_in_flight: 1}}
`, sink, 100)
	if err := pub.Create(context.Background(), tp, topic.Spec{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Produce(context.Background(), tp, genEvents("e", 40)); err != nil { // round robin: 10 per partition
		t.Fatal(err)
	}
	start()
	<-sink.entered
	// Give the other partitions every chance to read while the first
	// batch is held (unbounded, they do so at once), then let it go.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, n := tr.state(); n > 1 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_, fetched := tr.state()
	close(sink.gate)
	if fetched != 1 {
		t.Fatalf("%d batches read while the first was being written; max_in_flight is 1", fetched)
	}
	waitFor(t, "every event", func() bool { return len(ids(t, &sink.countingSink)) == 40 })
}
