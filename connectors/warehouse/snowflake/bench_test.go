package snowflake

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// BenchmarkWrite streams batches of 1,000 order rows through the fake
// (in-process, over loopback HTTP) with and without gzip, each Write
// waiting for its commit, and reports rows/s, the NDJSON bytes per row
// and the bytes per row on the wire.
func BenchmarkWrite(b *testing.B) {
	for _, gz := range []bool{true, false} {
		name := "gzip"
		if !gz {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			f := newFake(b)
			extra := ""
			if !gz {
				extra = "compression_enabled: false\n"
			}
			s := newSink(b, sinkYAML(f, extra))
			const batch = 1000
			var batches [][]*events.Event
			for i := 0; i < b.N; i += batch {
				batches = append(batches, orders(int64(i), int64(min(i+batch, b.N))))
			}
			table, err := s.tableFor(context.Background(), nil)
			if err != nil {
				b.Fatal(err)
			}
			ndjson := 0
			for _, evs := range batches {
				for _, e := range evs {
					row, err := s.encodeRow(e, table)
					if err != nil {
						b.Fatal(err)
					}
					ndjson += len(row) + 1
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
			b.StopTimer()
			wire := 0
			for _, r := range f.Requests() {
				if strings.HasSuffix(r.Path, "/rows") {
					wire += r.WireBytes
				}
			}
			b.ReportMetric(float64(ndjson)/float64(b.N), "ndjson-bytes/row")
			b.ReportMetric(float64(wire)/float64(b.N), "wire-bytes/row")
		})
	}
}
