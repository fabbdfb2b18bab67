package databricks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// BenchmarkIngest writes batches of 500 order rows (the default
// batch_size) through the real gRPC stack to the in-process Zerobus fake,
// waiting for each batch's acknowledgement, as JSON and as protobuf
// records, and reports rows/s and the record bytes per row. The fake
// decodes every record (JSON, or protobuf through dynamicpb), so its cost
// is in the numbers.
func BenchmarkIngest(b *testing.B) {
	for _, rt := range []string{"json", "proto"} {
		b.Run(rt, func(b *testing.B) {
			f := newFakeDatabricks(b)
			ordersTable(f, false)
			s := newSink(b, f, f.config(table, "record_type: "+rt+"\n"))
			const batch = 500
			var batches [][]*events.Event
			for i := 0; i < b.N; i += batch {
				evs := make([]*events.Event, min(batch, b.N-i))
				for j := range evs {
					id := i + j
					evs[j] = ev(events.Insert, fmt.Sprintf(`{"id":%d,"customer":"customer-%d","amount":"%d.%02d","qty":%d,"paid":true,"created":"2024-05-01T12:%02d:%02dZ","day":"2024-05-01"}`,
						id, id%1000, id%10000, id%100, id%7, id%60, id%60))
				}
				batches = append(batches, evs)
			}
			if err := s.Write(context.Background(), batches[0][:1]); err != nil { // open the stream
				b.Fatal(err)
			}
			before := s.m.bytes.Value()
			b.ResetTimer()
			start := time.Now()
			for _, evs := range batches {
				if err := s.Write(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
			b.ReportMetric(float64(s.m.bytes.Value()-before)/float64(b.N), "bytes/row")
		})
	}
}
