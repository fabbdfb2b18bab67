package bigquery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rivven/rivven-connect/events"
)

// BenchmarkAppend writes batches of 1,000 order rows to the in-process
// fake over gRPC with each delivery and reports rows/s and the bytes of
// one serialized protobuf row. The fake decodes and checks every row, so
// its cost is in the figure.
func BenchmarkAppend(b *testing.B) {
	const fields = `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"customer","type":"STRING"},{"name":"amount","type":"NUMERIC"},
		{"name":"status","type":"STRING"},{"name":"created","type":"TIMESTAMP"},{"name":"tags","type":"STRING","mode":"REPEATED"}]`
	for _, delivery := range []string{"at_least_once", "exactly_once"} {
		b.Run(delivery, func(b *testing.B) {
			f := newFake(b)
			f.addTable("orders", fields)
			s := newSink(b, f.config("orders", "delivery: "+delivery+"\n"), &memState{})
			const batch = 1000
			var batches [][]*events.Event
			for i := 0; i < b.N; i += batch {
				evs := make([]*events.Event, min(batch, b.N-i))
				for j := range evs {
					id := i + j
					e := ev(events.Insert, fmt.Sprintf(`{"id":%d,"customer":"customer-%d","amount":"%d.%02d","status":"shipped","created":"2024-05-01T12:%02d:%02dZ","tags":["a","b"]}`, id, id%1000, id%10000, id%100, id%60, id%60))
					e.Delivered = &events.Position{Topic: "orders", Offset: int64(id), HasOffset: true}
					evs[j] = e
				}
				batches = append(batches, evs)
			}
			if err := s.Check(context.Background()); err != nil {
				b.Fatal(err)
			}
			ti := s.tbl
			row, _ := batches[0][0].After()
			msg, err := encodeRow(ti.md, ti.fields, row, "")
			if err != nil {
				b.Fatal(err)
			}
			enc, _ := proto.Marshal(msg)
			b.ResetTimer()
			start := time.Now()
			for _, evs := range batches {
				if err := s.Write(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(len(enc)), "proto-bytes/row")
			b.ReportMetric(float64(s.bytes.Value())/float64(max(s.written.Value(), 1)), "avg-bytes/row")
		})
	}
}
