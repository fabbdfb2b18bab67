package sqlservercdc

import (
	"context"
	"fmt"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

// BenchmarkStream measures the source's own work per change: reading a
// result of fn_cdc_get_all_changes_ (from the fake, so no network or
// server), rendering rows, pairing update images and building events.
func BenchmarkStream(b *testing.B) {
	const n = 10000
	f := newFake()
	f.addTable("orders", colsOrders, []string{"id"})
	f.enable("orders", "dbo_orders")
	for k := 0; k < 10; k++ {
		f.commit(func(x *tx) {
			for i := 0; i < n/20; i++ {
				id := int64(k*n + i)
				x.insert("orders", id, []byte(fmt.Sprintf("%d.2500", i)), "a note of some length")
				x.update("orders", id, []byte(fmt.Sprintf("%d.7500", i)), "changed")
			}
		})
	}
	cfg := "snapshot_mode: never\nmax_batch_size: 1000\n"
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := newSource(&testing.T{}, f, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		got := 0
		_ = s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, batch []*events.Event) error {
			got += len(batch)
			if got >= n {
				cancel()
			}
			return nil
		}))
		cancel()
		if got != n {
			b.Fatalf("%d events", got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
