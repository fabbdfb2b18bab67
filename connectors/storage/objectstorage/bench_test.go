package objectstorage

import (
	"context"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/utility/datagen"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// datagenOrders returns n events of the datagen source's orders pattern
// (seeded, so every run benchmarks the same data).
func datagenOrders(b *testing.B, n int) []*events.Event {
	b.Helper()
	seed := uint64(42)
	src, err := datagen.New(context.Background(), &datagen.Config{Pattern: "orders", EventsPerSecond: 0, MaxEvents: uint64(n), StreamName: "orders", Seed: &seed})
	if err != nil {
		b.Fatal(err)
	}
	var out []*events.Event
	err = src.Read(context.Background(), nil, connector.EmitterFunc(func(_ context.Context, batch []*events.Event) error {
		out = append(out, batch...)
		return nil
	}))
	if err != nil || len(out) != n {
		b.Fatalf("datagen: %d events, %v", len(out), err)
	}
	return out
}

// BenchmarkObjectStorageLocal writes batches of 1000 datagen orders (one
// object per batch) to the local provider: encoding, batch id and an
// fsync'ed atomic file write per object. It reports events/s, MB/s of
// object bytes and the object size.
func BenchmarkObjectStorageLocal(b *testing.B) {
	const batch = 1000
	evs := datagenOrders(b, batch)
	for _, c := range []struct{ name, yaml string }{
		{"json", "format: json\n"},
		{"jsonl", "format: jsonl\n"},
		{"jsonl_gzip", "format: jsonl\ncompression: gzip\n"},
		{"jsonl_zstd", "format: jsonl\ncompression: zstd\n"},
		{"csv", "format: csv\n"},
		{"csv_gzip", "format: csv\ncompression: gzip\n"},
		{"avro", "format: avro\n"},
		{"avro_deflate", "format: avro\navro: {compression: deflate}\n"},
		{"parquet_snappy", "format: parquet\n"},
		{"parquet_zstd", "format: parquet\nparquet: {compression: zstd}\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustSink(b, "provider: local\nbucket: lake\nbatch_size: 1000\nlocal:\n  root: "+b.TempDir()+"\n"+c.yaml)
			ctx := metricsCtx(telemetry.NewRegistry())
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := s.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start).Seconds()
			bytes := float64(counter(ctx, metricBytes))
			objects := float64(counter(ctx, metricObjects))
			events := float64(counter(ctx, metricEvents))
			b.ReportMetric(events/elapsed, "events/s")
			b.ReportMetric(bytes/elapsed/1e6, "MB/s")
			b.ReportMetric(bytes/objects, "B/object")
		})
	}
}
