package all

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/rivven/rivven-connect/connectors/utility/datagen"
	"github.com/rivven/rivven-connect/connectors/utility/drop"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/pipeline"
)

// The connector benchmarks live here because they join two connectors,
// which connector packages themselves never import.

func newDatagen(b *testing.B, cdc bool) connector.Source {
	seed := uint64(42)
	src, err := datagen.New(context.Background(), &datagen.Config{Pattern: "orders", MaxEvents: uint64(b.N), StreamName: "bench", Seed: &seed, CDCMode: cdc})
	if err != nil {
		b.Fatal(err)
	}
	return src
}

func newDrop(b *testing.B) *drop.Sink {
	snk, err := drop.New(context.Background(), &drop.Config{})
	if err != nil {
		b.Fatal(err)
	}
	return snk.(*drop.Sink)
}

func report(b *testing.B, snk *drop.Sink) {
	b.StopTimer()
	if n := snk.Count(); n != uint64(b.N) {
		b.Fatalf("dropped %d events, want %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

var modes = []struct {
	name string
	cdc  bool
}{{"orders", false}, {"orders+cdc_mode", true}}

// BenchmarkDatagenToDrop measures the generator alone: batches go straight
// into the drop sink. One op is one event, so allocs/op is per event.
func BenchmarkDatagenToDrop(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			src, snk := newDatagen(b, m.cdc), newDrop(b)
			b.ReportAllocs()
			b.ResetTimer()
			if err := src.Read(context.Background(), nil, connector.EmitterFunc(snk.Write)); err != nil {
				b.Fatal(err)
			}
			report(b, snk)
		})
	}
}

// BenchmarkDatagenHandlerDrop puts the sink Handler (the code path every
// host calls) between the generator and the drop sink: the difference to
// BenchmarkDatagenToDrop is the handler's cost per event.
func BenchmarkDatagenHandlerDrop(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			src, snk := newDatagen(b, m.cdc), newDrop(b)
			h := &pipeline.Handler{Name: "bench", Sink: snk, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			var recs []pipeline.Record
			var off int64
			emit := connector.EmitterFunc(func(ctx context.Context, batch []*events.Event) error {
				recs = recs[:0]
				for _, e := range batch {
					recs = append(recs, pipeline.Record{ID: strconv.FormatInt(off, 10), Topic: "bench", Offset: off, Attempt: 1, Event: e})
					off++
				}
				res, err := h.Handle(ctx, recs)
				if err == nil && len(res.Failed) > 0 {
					err = fmt.Errorf("%d records failed", len(res.Failed))
				}
				return err
			})
			b.ReportAllocs()
			b.ResetTimer()
			if err := src.Read(context.Background(), nil, emit); err != nil {
				b.Fatal(err)
			}
			report(b, snk)
		})
	}
}
