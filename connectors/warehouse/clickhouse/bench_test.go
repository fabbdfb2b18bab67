package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// BenchmarkInsert writes batches of 10,000 order rows to the real server
// with each compression and reports rows/s and RowBinary bytes per row.
func BenchmarkInsert(b *testing.B) {
	for _, comp := range []string{"lz4", "zstd", "none"} {
		b.Run(comp, func(b *testing.B) {
			table := chTableB(b, `CREATE TABLE $T (id UInt64, customer String, amount Decimal(12, 2), status Enum8('new' = 1, 'shipped' = 2), created DateTime, tags Array(String)) ENGINE = MergeTree() ORDER BY id`)
			s := newSinkB(b, "url: http://"+chAddr+"\ntable: "+table+"\ncompression: "+comp+"\n")
			const batch = 10000
			var batches [][]*events.Event
			for i := 0; i < b.N; i += batch {
				evs := make([]*events.Event, min(batch, b.N-i))
				for j := range evs {
					id := i + j
					evs[j] = ev(events.Insert, fmt.Sprintf(`{"id":%d,"customer":"customer-%d","amount":%d.%02d,"status":"shipped","created":"2024-05-01T12:%02d:%02dZ","tags":["a","b"]}`, id, id%1000, id%10000, id%100, id%60, id%60))
				}
				batches = append(batches, evs)
			}
			sc, err := s.loadSchema(context.Background(), false)
			if err != nil {
				b.Fatal(err)
			}
			enc := &encoder{}
			for _, e := range batches[0] {
				if _, err := s.appendEvent(enc, sc, e, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			for _, evs := range batches {
				if err := s.Write(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(len(enc.buf))/float64(len(batches[0])), "rowbinary-bytes/row")
		})
	}
}
