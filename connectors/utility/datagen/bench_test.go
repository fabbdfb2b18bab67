package datagen

import (
	"context"
	"testing"

	"github.com/rivven/rivven-connect/connectors/utility/drop"
	"github.com/rivven/rivven-connect/shared/pipeline"
)

// BenchmarkDatagenToDrop measures the generator alone: events go straight
// into the drop sink. One op is one event, so allocs/op is per event.
func BenchmarkDatagenToDrop(b *testing.B) {
	for _, bc := range []struct {
		name string
		cdc  bool
	}{{"orders", false}, {"orders+cdc_mode", true}} {
		b.Run(bc.name, func(b *testing.B) {
			seed := uint64(42)
			src, err := New(&Config{Pattern: "orders", MaxEvents: uint64(b.N), StreamName: "bench", Seed: &seed, CDCMode: bc.cdc})
			if err != nil {
				b.Fatal(err)
			}
			snk, err := drop.New(&drop.Config{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			if err := src.Read(ctx, nil, pipeline.EmitterFunc(snk.Write)); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			n := snk.(*drop.Sink).Count()
			if n != uint64(b.N) {
				b.Fatalf("dropped %d events, want %d", n, b.N)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
