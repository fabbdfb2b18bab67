package iceberg

import (
	"context"
	"strconv"
	"testing"

	"github.com/rivven/rivven-connect/events"
)

// BenchmarkWriteLocal commits batches of the default batch_size (10,000
// order rows of four columns) as snapshots of a local table through the
// memory catalog, at the default settings (snappy, 128 MB target files,
// unpartitioned, append): rows/s, and data files and commits per minute.
// Building the events is not timed. The memory catalog keeps a catalog
// service out of the numbers; with the SQL catalog each commit adds a
// PostgreSQL round trip or two.
func BenchmarkWriteLocal(b *testing.B) {
	const batch = 10000
	ctx := context.Background()
	s, err := newSink(ctx, memConfig("file://"+b.TempDir(), nil))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	var files int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := make([]*events.Event, batch)
		for j := range evs {
			evs[j] = order(i*batch+j, 0, int64(i*batch+j))
		}
		b.StartTimer()
		if err := s.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		tbl, err := s.loadTable(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := strconv.Atoi(tbl.CurrentSnapshot().Summary.Properties["added-data-files"])
		files += n
		b.StartTimer()
	}
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*batch)/el, "rows/s")
	b.ReportMetric(float64(b.N)/el*60, "commits/min")
	b.ReportMetric(float64(files)/el*60, "files/min")
}
