package pipeline

import (
	"context"
	"fmt"
	"testing"

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
