package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// roundTrips counts the commands (and pipelines) a client sends.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkHandlerLedger measures what the shared reliability state costs
// a batch of 100 records: Redis round trips per batch (rtt/batch, target
// ≤ 2) and the time per batch, to compare with "none" (no Redis at all).
// The happy path: every batch is new and written.
func BenchmarkHandlerLedger(b *testing.B) {
	const size = 100
	backends := []struct {
		name string
		open func(b *testing.B) redis.UniversalClient
	}{
		{"redis", func(b *testing.B) redis.UniversalClient {
			testenv.RequireService(b, "redis", realRedisAddr)
			return redis.NewClient(&redis.Options{Addr: realRedisAddr})
		}},
		{"embedded", func(b *testing.B) redis.UniversalClient {
			e, err := state.NewEmbedded()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { e.Close() })
			return redis.NewClient(&redis.Options{Addr: e.Addr()})
		}},
	}
	modes := []struct {
		name    string
		breaker bool
		dedup   resilience.DedupMode
	}{
		{"none", false, resilience.DedupNone},
		{"breaker", true, resilience.DedupNone},
		{"breaker+offsets", true, resilience.DedupOffsets},
		{"breaker+ids", true, resilience.DedupIDs},
	}
	payload := events.RawPayload([]byte(`{"order_id":1,"status":"shipped","total":12.5}`))
	for _, be := range backends {
		for _, m := range modes {
			b.Run(be.name+"/"+m.name, func(b *testing.B) {
				c := be.open(b)
				rt := &roundTrips{}
				c.AddHook(rt)
				name := fmt.Sprintf("bench-%d", b.N)
				b.Cleanup(func() {
					ctx := context.Background()
					for _, s := range []string{resilience.BreakerSuffix, resilience.LedgerSuffix, resilience.DedupSuffix, resilience.AttemptsSuffix} {
						c.Del(ctx, state.Key(SinkStateName(name), s))
					}
					c.Close()
				})
				h := &Handler{Name: name, Sink: &nopSink{}, Log: quiet}
				if m.breaker || m.dedup != resilience.DedupNone {
					cfg := resilience.LedgerConfig{Connector: SinkStateName(name), Dedup: m.dedup}
					if m.breaker {
						cfg.Breaker = &resilience.DefaultBreaker
					}
					l, err := resilience.NewLedger(c, cfg)
					if err != nil {
						b.Fatal(err)
					}
					h.Ledger = l
				}
				recs := make([]Record, size)
				for i := range recs {
					recs[i] = Record{Topic: "orders", Partition: 0, Attempt: 1, Event: events.New(events.Insert, "orders", payload)}
				}
				ctx := context.Background()
				if _, err := h.Handle(ctx, recs); err != nil { // load the scripts
					b.Fatal(err)
				}
				rt.n.Store(0)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					base := int64(i+1) * size
					for j := range recs {
						recs[j].Offset = base + int64(j)
						recs[j].ID = strconv.FormatInt(base+int64(j), 10)
					}
					res, err := h.Handle(ctx, recs)
					if err != nil || len(res.Failed) != 0 {
						b.Fatalf("%v %+v", err, res)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rt.n.Load())/float64(b.N), "rtt/batch")
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6, "µs/batch")
			})
		}
	}
}
