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

// BenchmarkHandlerConcurrentPushes is one Cloud Run instance taking
// `concurrency` pushes (one Pub/Sub message each) at once, as the GCP
// module's concurrency setting lets it. Handle serialises Write (sinks
// need not be safe for concurrent use), so more concurrent requests wait
// behind one write instead of adding throughput: events/s per instance
// stays the same while each request's wait grows with the concurrency.
func BenchmarkHandlerConcurrentPushes(b *testing.B) {
	for _, conc := range []int{1, 20} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			h := &Handler{Name: "bench", Sink: remoteSink{}, Log: quiet}
			recs := benchRecords(conc)
			for i := range recs {
				recs[i].Event, _ = events.DecodeAny(recs[i].Raw)
			}
			ctx := context.Background()
			var wait atomic.Int64
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for i := range conc {
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
		})
	}
}
