package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
)

type nopSink struct{ n int }

func (s *nopSink) Write(_ context.Context, b []*events.Event) error { s.n += len(b); return nil }

func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		e := events.New(events.Update, "orders", events.RawPayload(fmt.Appendf(nil,
			`{"before":{"order_id":%d,"status":"pending","total":12.50},"after":{"order_id":%d,"status":"shipped","total":12.50}}`, i, i)))
		e.Key = fmt.Appendf(nil, `{"order_id":%d}`, i)
		raw, _ := events.Marshal(e)
		recs[i] = Record{ID: fmt.Sprint(i), Topic: "orders", Offset: int64(i), Attempt: 1, Raw: raw}
	}
	return recs
}

// BenchmarkHandler measures the handler's own cost per event: the batch
// arrives decoded (as hosts hand it over) and the sink does nothing.
func BenchmarkHandler(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			recs := benchRecords(size)
			for i := range recs {
				recs[i].Event, _ = events.DecodeAny(recs[i].Raw)
			}
			h := &Handler{Name: "bench", Sink: &nopSink{}, Log: quiet}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := h.Handle(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			perEvent := b.Elapsed().Seconds() / float64(b.N*size)
			b.ReportMetric(perEvent*1e9, "ns/event")
			b.ReportMetric(1/perEvent, "events/s")
		})
	}
}

// BenchmarkHandlerWithDecode adds what a host does before Handle: decoding
// each record's bytes (Rivven JSON) into an event.
func BenchmarkHandlerWithDecode(b *testing.B) {
	const size = 1000
	recs := benchRecords(size)
	h := &Handler{Name: "bench", Sink: &nopSink{}, Log: quiet}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range recs {
			recs[i].Event, recs[i].DecodeErr = events.DecodeAny(recs[i].Raw)
		}
		if _, err := h.Handle(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	perEvent := b.Elapsed().Seconds() / float64(b.N*size)
	b.ReportMetric(perEvent*1e9, "ns/event")
	b.ReportMetric(1/perEvent, "events/s")
}

// remoteSink stands for a sink whose Write waits on a network round trip
// (an object store, an HTTP API): 2 ms per batch.
type remoteSink struct{}

func (remoteSink) Write(ctx context.Context, _ []*events.Event) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Millisecond):
		return nil
	}
}

// concurrentRemoteSink is a remoteSink that declares concurrent writes.
type concurrentRemoteSink struct{ remoteSink }

func (concurrentRemoteSink) ConcurrentWrites() bool { return true }

// BenchmarkHandlerConcurrentPushes is one Cloud Run instance taking
// `concurrency` pushes (one Pub/Sub message each) at once, as the GCP
// module's concurrency setting lets it. Concurrent calls of Handle run in
// parallel; only Write is serialised for a sink that does not declare
// concurrent writes. So for such a sink (sink=serial) more concurrent
// pushes wait behind one write, while a ConcurrentWriter (sink=concurrent)
// serves about concurrency times the events per instance.
//
// sink=serial+ledger adds what a deployed function has: the breaker and
// the delivery ledger in the local Redis (two round trips per push), which
// overlap other pushes' writes.
func BenchmarkHandlerConcurrentPushes(b *testing.B) {
	for _, kind := range []string{"serial", "serial+ledger", "concurrent"} {
		for _, conc := range []int{1, 20} {
			b.Run(fmt.Sprintf("sink=%s/concurrency=%d", kind, conc), func(b *testing.B) {
				var snk Sink = remoteSink{}
				if kind == "concurrent" {
					snk = concurrentRemoteSink{}
				}
				h := &Handler{Name: fmt.Sprintf("bench-push-%d-%d", conc, time.Now().UnixNano()), Sink: snk, Log: quiet}
				if kind == "serial+ledger" {
					testenv.RequireService(b, "redis", realRedisAddr)
					c := redis.NewClient(&redis.Options{Addr: realRedisAddr})
					b.Cleanup(func() {
						ctx := context.Background()
						for _, s := range []string{resilience.BreakerSuffix, resilience.LedgerSuffix, resilience.DedupSuffix, resilience.AttemptsSuffix} {
							c.Del(ctx, state.Key(SinkStateName(h.Name), s))
						}
						c.Close()
					})
					l, err := resilience.NewLedger(c, resilience.LedgerConfig{Connector: SinkStateName(h.Name), Dedup: resilience.DedupIDs, Breaker: &resilience.DefaultBreaker})
					if err != nil {
						b.Fatal(err)
					}
					h.Ledger = l
				}
				benchConcurrentPushes(b, h, conc)
			})
		}
	}
}

func benchConcurrentPushes(b *testing.B, h *Handler, conc int) {
	recs := benchRecords(conc)
	for i := range recs {
		recs[i].Event, _ = events.DecodeAny(recs[i].Raw)
	}
	ctx := context.Background()
	var wait atomic.Int64
	b.ResetTimer()
	for n := range b.N {
		var wg sync.WaitGroup
		for i := range conc {
			recs[i].ID = strconv.Itoa(n*conc + i) // each push a new message
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if _, err := h.Handle(ctx, recs[i:i+1]); err != nil {
					b.Error(err)
				}
				wait.Add(int64(time.Since(start)))
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*conc)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(wait.Load())/float64(b.N*conc)/1e6, "ms/request")
}
