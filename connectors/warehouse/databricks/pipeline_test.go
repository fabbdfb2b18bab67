package databricks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
)

// pipelineFake is the fake the "databricks-on-fake" connector reaches:
// the engine builds sinks from the catalog, which cannot pass the test's
// dial options, so a test registration adds them.
var (
	pipelineFakeMu sync.Mutex
	pipelineFake   *fakeDatabricks
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{Name: "databricks-on-fake", Category: catalog.Warehouse, Description: "the databricks sink dialling the test's fake"},
		func(ctx context.Context, c *Config) (connector.Sink, error) {
			pipelineFakeMu.Lock()
			f := pipelineFake
			pipelineFakeMu.Unlock()
			return New(ctx, c, f.options()...)
		})
}

// TestPipelineLedgerSkipsAcknowledgedRedeliveries runs the sink in the
// engine's sink handler with the delivery ledger (the state store,
// embedded Redis): a batch redelivered after Zerobus acknowledged it and
// the ledger recorded it is not sent again. Zerobus itself has no
// idempotency key, so the one window the ledger cannot close shows too:
// a process that dies after the acknowledgement and before the ledger
// recorded the batch has it written twice.
func TestPipelineLedgerSkipsAcknowledgedRedeliveries(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	pipelineFakeMu.Lock()
	pipelineFake = f
	pipelineFakeMu.Unlock()
	doc := "sinks:\n  lakehouse:\n    connector: databricks-on-fake\n    topics: [cdc.orders]\n    config:\n"
	for _, l := range strings.Split(strings.TrimRight(f.config(table, ""), "\n"), "\n") {
		doc += "      " + l + "\n"
	}
	p, err := config.Parse([]byte(doc), catalog.Default, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	handler := func() *pipeline.Handler {
		h, err := pipeline.NewSinkHandler(context.Background(), p, "lakehouse", catalog.Builder{},
			pipeline.Deps{Store: store, Log: quiet, Delivery: pipeline.DeliveryOrdered})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(context.Background()) })
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return h
	}
	recs := func(from, to int) []pipeline.Record {
		var out []pipeline.Record
		for i, e := range ids(from, to-from) {
			o := int64(from + i)
			out = append(out, pipeline.Record{ID: fmt.Sprint(o), Topic: "cdc.orders", Partition: 0, Offset: o, HasOffset: true, Event: e})
		}
		return out
	}
	ctx := context.Background()
	h1 := handler()
	if res, err := h1.Handle(ctx, recs(0, 4)); err != nil || len(res.Failed) != 0 {
		t.Fatalf("first batch: %+v, %v", res, err)
	}
	// The trigger redelivers the acknowledged batch with two new records
	// (its acknowledgement was lost): the ledger skips 0..3.
	if res, err := h1.Handle(ctx, recs(0, 6)); err != nil || len(res.Failed) != 0 {
		t.Fatalf("redelivery: %+v, %v", res, err)
	}
	if got := tableIDs(f); !slices.Equal(got, wantIDs(6)) {
		t.Fatalf("table ids %v, want 0..5 once each", got)
	}
	// A restart with the same store knows them too.
	h2 := handler()
	if res, err := h2.Handle(ctx, recs(2, 6)); err != nil || len(res.Failed) != 0 {
		t.Fatalf("redelivery after a restart: %+v, %v", res, err)
	}
	if got := tableIDs(f); !slices.Equal(got, wantIDs(6)) {
		t.Fatalf("after a restart: table ids %v, want 0..5 once each", got)
	}
	// The crash window: the ledger never learnt of 4 and 5 (its entries
	// are gone), so their redelivery is written again.
	cp := store.(state.ClientProvider)
	if err := cp.Client().Del(ctx, state.Key(pipeline.SinkStateName("lakehouse"), resilience.LedgerSuffix)).Err(); err != nil {
		t.Fatal(err)
	}
	h3 := handler()
	if res, err := h3.Handle(ctx, recs(4, 6)); err != nil || len(res.Failed) != 0 {
		t.Fatalf("redelivery unknown to the ledger: %+v, %v", res, err)
	}
	if got, want := tableIDs(f), []string{"0", "1", "2", "3", "4", "4", "5", "5"}; !slices.Equal(got, want) {
		t.Errorf("table ids %v, want %v (4 and 5 twice: Zerobus has no idempotency key)", got, want)
	}
}
