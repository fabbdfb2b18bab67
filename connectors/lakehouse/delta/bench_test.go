package deltalake

import (
	"context"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// BenchmarkWriteLocal commits batches of the default batch_size (10,000
// order rows) to a local table, snappy: rows/s, and data files and commits
// per minute (one file and one commit per batch, unpartitioned; a
// checkpoint every 10th).
func BenchmarkWriteLocal(b *testing.B) {
	const batch = 10000
	s, err := newSink(context.Background(), testConfig(b.TempDir(), nil))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batches := make([][]*events.Event, 4)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batches[i%4] = orders(i*batch, batch, 0)
		b.StartTimer()
		if err := s.Write(ctx, batches[i%4]); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*batch)/el, "rows/s")
	b.ReportMetric(float64(b.N)/el*60, "commits/min")
	b.ReportMetric(float64(b.N)/el*60, "files/min")
}
