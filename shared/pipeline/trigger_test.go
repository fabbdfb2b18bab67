package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/topic"
)

// The emulator keeps key order and delivers everything exactly once
// through every trigger envelope.
func TestLocalEveryTriggerKeepsKeyOrder(t *testing.T) {
	for _, trig := range withDirect() {
		t.Run(cmp.Or(trig, "direct"), func(t *testing.T) {
			sink := &countingSink{}
			l, err := NewLocal(context.Background(), load(t, keyedPipeline), fakeFactory{sink}, LocalOptions{
				MaxEvents: 503, Store: embedded(t), Log: quiet, BatchSize: 32, Trigger: trig,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkKeyOrder(t, sink, 503)
		})
	}
	if _, err := NewLocal(context.Background(), load(t, keyedPipeline), fakeFactory{}, LocalOptions{Store: embedded(t), Trigger: "sns"}); err == nil ||
		!strings.Contains(err.Error(), `unknown trigger "sns"`) {
		t.Errorf("unknown trigger: %v", err)
	}
}

// withDirect is the envelope triggers and "", the emulator's default of
// no envelope at all.
func withDirect() []string { return append([]string{""}, LocalTriggers...) }

func checkKeyOrder(t *testing.T, sink *countingSink, n int) {
	t.Helper()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != n {
		t.Fatalf("sink got %d events, want %d", len(sink.got), n)
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
}

// Failed records come again, whatever the trigger's answer looks like:
// the emulator reads the response the adapter really produced.
func TestLocalEveryTriggerRedelivers(t *testing.T) {
	for _, trig := range withDirect() {
		t.Run(cmp.Or(trig, "direct"), func(t *testing.T) {
			var mu sync.Mutex
			failedOnce := map[string]bool{}
			sink := &countingSink{fail: func(_ int, batch []*events.Event) error {
				mu.Lock()
				defer mu.Unlock()
				we := &WriteError{Failed: map[int]error{}}
				for i, e := range batch {
					// Every third event fails once (by content, so that one-event
					// batches — Pub/Sub pushes — fail too).
					if d, _ := e.Data.JSON(); !failedOnce[string(d)] && crc32.ChecksumIEEE(d)%3 == 1 {
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
			l, err := NewLocal(context.Background(), p, fakeFactory{sink}, LocalOptions{MaxEvents: 200, Store: embedded(t), Log: quiet, BatchSize: 20, Trigger: trig})
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
			if len(seen) != 200 || len(failedOnce) == 0 {
				t.Fatalf("%d distinct events reached the sink (want 200), %d failed once", len(seen), len(failedOnce))
			}
		})
	}
}

func sqsEnvelope(t *testing.T, bodies ...string) []byte {
	t.Helper()
	ds := make([]events.Delivery, len(bodies))
	for i, b := range bodies {
		ds[i] = events.Delivery{ID: fmt.Sprintf("msg-%d", i), Value: []byte(b), Attempt: 1, Time: time.Unix(1700000000, 0)}
	}
	raw, err := json.Marshal(events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:1:orders-queue"}, ds))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const goodEvent = `{"event_type":"insert","stream":"orders","timestamp":"2025-01-01T00:00:00Z","data":{"id":1},"metadata":{}}`

func TestAdapterMalformedRecord(t *testing.T) {
	raw := sqsEnvelope(t, goodEvent, `{"event_type":`, goodEvent)

	// Without a dead-letter producer the malformed record is reported
	// failed (the queue's redrive policy dead-letters it); nothing else is.
	sink := &countingSink{}
	a := &Adapter{Handler: &Handler{Name: "out", Sink: sink, Log: quiet}, Topics: []string{"orders"}}
	resp, err := a.InvokeLambda(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != `{"batchItemFailures":[{"itemIdentifier":"msg-1"}]}` || len(sink.got) != 2 {
		t.Fatalf("response %s, %d written", resp, len(sink.got))
	}

	// With one it goes to <topic>.dlq — the pipeline topic, not the queue
	// name — and the batch succeeds.
	mem := topic.NewMemory()
	mem.AutoCreate = true
	a = &Adapter{Handler: &Handler{Name: "out", Sink: &countingSink{}, Log: quiet, DeadLetters: mem}, Topics: []string{"orders"}}
	resp, err = a.InvokeLambda(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != `{"batchItemFailures":[]}` || mem.HighWatermark("orders.dlq", 0) != 1 {
		t.Fatalf("response %s, dlq %d", resp, mem.HighWatermark("orders.dlq", 0))
	}
	msgs, _ := mem.Fetch(context.Background(), "orders.dlq", 0, 0, 1)
	var dl events.DeadLetter
	if err := json.Unmarshal(msgs[0].Value, &dl); err != nil || dl.Stage != "decode" || string(dl.PayloadB64) != `{"event_type":` {
		t.Fatalf("dead letter %s (%v)", msgs[0].Value, err)
	}
}

func TestAdapterPush(t *testing.T) {
	push := func(body string) []byte {
		b, _ := json.Marshal(events.NewPubSubPush("projects/p/subscriptions/s", events.Delivery{ID: "1", Value: []byte(body)}))
		return b
	}
	sink := &countingSink{}
	a := &Adapter{Handler: &Handler{Name: "out", Sink: sink, Log: quiet}, Topics: []string{"orders"}}
	if st, _, err := a.PushBody(context.Background(), push(goodEvent)); st != http.StatusNoContent || err != nil {
		t.Errorf("good: %d %v", st, err)
	}
	if st, _, _ := a.PushBody(context.Background(), push(`nope`)); st != http.StatusInternalServerError {
		t.Errorf("malformed without dead letters: %d, want 500 (nack)", st)
	}
	if st, _, _ := a.PushBody(context.Background(), []byte(`{"nope":1}`)); st != http.StatusBadRequest {
		t.Errorf("not a push body: %d", st)
	}
	a.Handler.Status.SetState(Failed)
	if st, _, err := a.PushBody(context.Background(), push(goodEvent)); st != http.StatusServiceUnavailable || !errors.Is(err, ErrSinkFailed) {
		t.Errorf("failed sink: %d %v", st, err)
	}
}

func TestPublisher(t *testing.T) {
	mem := topic.NewMemory()
	mem.AutoCreate = true
	p := &Publisher{Producer: mem, Topic: "next"}
	e1 := events.New(events.Insert, "s", events.RawPayload([]byte(`{"a":1}`)))
	e2 := events.New(events.Insert, "s", events.RawPayload([]byte(`{"a":2}`)))
	e2.Route = "elsewhere"
	bad := events.New(events.Type("bogus"), "s", events.RawPayload([]byte(`{}`)))
	err := p.Write(context.Background(), []*events.Event{e1, bad, e2})
	var we *WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil {
		t.Fatalf("err = %v", err)
	}
	if mem.HighWatermark("next", 0) != 1 || mem.HighWatermark("elsewhere", 0) != 1 {
		t.Fatalf("next %d, elsewhere %d", mem.HighWatermark("next", 0), mem.HighWatermark("elsewhere", 0))
	}
}

// BenchmarkAdapterSQS is the per-event cost of the Lambda adapter: parse
// an SQS event of 100 Rivven events, decode them, run the handler (no-op
// sink) and build the partial batch response.
func BenchmarkAdapterSQS(b *testing.B) {
	bodies := make([]events.Delivery, 100)
	for i := range bodies {
		bodies[i] = events.Delivery{ID: fmt.Sprintf("6a1f2c3d-0000-4000-8000-%012d", i), Value: []byte(goodEvent), Attempt: 1, Time: time.Now()}
	}
	raw, _ := json.Marshal(events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:1:orders"}, bodies))
	a := &Adapter{Handler: &Handler{Name: "out", Sink: &nopSink{}, Log: quiet}, Topics: []string{"orders"}}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		if _, err := a.InvokeLambda(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bodies)), "ns/event")
}
