package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
)

// TestHandlerTriggerSizedBatch hands the handler the largest batch a
// trigger sends (10,000 records: SQS and Kafka on Lambda), as message IDs
// (SQS) and as partition offsets (Kafka), with the breaker on, on the
// embedded store and on Redis: every record is written once, and the same
// batch redelivered is skipped whole.
func TestHandlerTriggerSizedBatch(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		for _, mode := range []resilience.DedupMode{resilience.DedupIDs, resilience.DedupOffsets} {
			t.Run(fmt.Sprint("mode=", mode), func(t *testing.T) {
				name := uniqueName(t, c, "snk")
				cfg := resilience.DefaultBreaker
				sink := &countingSink{}
				h := &Handler{Name: name, Sink: sink, Log: quiet,
					Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Breaker: &cfg, Dedup: mode})}
				recs := make([]Record, 10000)
				for i := range recs {
					recs[i] = idRec("big", fmt.Sprintf("m-%d", i), 1)
					recs[i].Offset, recs[i].Partition = int64(i), 2
				}
				res, err := h.Handle(ctx, recs)
				if err != nil || len(res.Failed) != 0 || len(sink.got) != len(recs) {
					t.Fatalf("10,000 records: %d failed, %d written, %v", len(res.Failed), len(sink.got), err)
				}
				res, err = h.Handle(ctx, recs)
				if err != nil || len(res.Failed) != 0 || len(sink.got) != len(recs) || h.Status.Duplicates.Load() != uint64(len(recs)) {
					t.Fatalf("redelivery: %d failed, %d written, %d skipped, %v", len(res.Failed), len(sink.got), h.Status.Duplicates.Load(), err)
				}
			})
		}
	})
}

// TestHandlerStateRefusedIsNotConnection: when Redis answers but refuses
// the ledger's call (here its key holds a value of the wrong type, which no
// retry changes), the batch fails with that error's class, not as
// "unavailable" (Connection), which would be retried forever.
func TestHandlerStateRefusedIsNotConnection(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name := uniqueName(t, c, "snk")
		if err := c.Set(ctx, state.Key(SinkStateName(name), resilience.LedgerSuffix), "not a hash", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		sink := &countingSink{}
		h := &Handler{Name: name, Sink: sink, Log: quiet,
			Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Dedup: resilience.DedupOffsets})}
		r := idRec("in", "m1", 0)
		res, err := h.Handle(ctx, []Record{r})
		if err == nil || len(res.Failed) != 1 || sink.writes != 0 {
			t.Fatalf("%+v %v, %d writes", res, err, sink.writes)
		}
		if errors.Is(err, ErrStateUnavailable) || resilience.ClassOf(err) != resilience.Fatal {
			t.Fatalf("class %v, unavailable %v: %v", resilience.ClassOf(err), errors.Is(err, ErrStateUnavailable), err)
		}
	})
}
