package bigquery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
)

// TestPipelineRedeliveryAfterCrash runs the sink in the engine's sink
// handler, as a function host does, with the state store (Redis,
// embedded here) shared by two handler instances: the first writes a
// Kafka batch, then "dies" after the append but before its delivery
// ledger recorded the records done (the ledger's entries are removed);
// the second gets the same records again, and more: the table holds
// each record once, because the sink's record in the state store names
// the redelivered ones.
func TestPipelineRedeliveryAfterCrash(t *testing.T) {
	f := newFake(t)
	f.addTable("orders", simple)
	doc := fmt.Sprintf(`
sinks:
  warehouse:
    connector: bigquery
    topics: [cdc.orders]
    config:
      project_id: test-project
      dataset: ds
      table: orders
      delivery: exactly_once
      api_endpoint: %s/bigquery/v2/
      storage_endpoint: %s
`, f.rest.URL, f.addr)
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
		h, err := pipeline.NewSinkHandler(context.Background(), p, "warehouse", catalog.Builder{},
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
	recs := func(from, to int64) []pipeline.Record {
		var out []pipeline.Record
		for _, e := range batchOf(from, to) {
			d := e.Delivered
			e.Delivered = nil
			out = append(out, pipeline.Record{ID: fmt.Sprint(d.Offset), Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, HasOffset: true, Event: e})
		}
		return out
	}

	h1 := handler()
	if res, err := h1.Handle(context.Background(), recs(0, 6)); err != nil || len(res.Failed) != 0 {
		t.Fatalf("first handler: %+v, %v", res, err)
	}
	// The crash: the ledger never learnt the records were done.
	cp := store.(state.ClientProvider)
	if err := cp.Client().Del(context.Background(), state.Key(pipeline.SinkStateName("warehouse"), resilience.LedgerSuffix)).Err(); err != nil {
		t.Fatal(err)
	}
	h2 := handler()
	if res, err := h2.Handle(context.Background(), recs(0, 10)); err != nil || len(res.Failed) != 0 {
		t.Fatalf("second handler: %+v, %v", res, err)
	}
	if got := ids(f.rows("orders")); !reflect.DeepEqual(got, seq(0, 10)) {
		t.Errorf("rows %v, want 0..9 once each", got)
	}
	if n := h2.Sink.(*Sink).dups.Value(); n != 6 {
		t.Errorf("the sink recognised %d redelivered records, want 6 (the ledger did not know them)", n)
	}
	// The position is in the store under the sink's state name.
	pos, err := store.Offset(context.Background(), pipeline.SinkStateName("warehouse"), "state:bigquery:test-project.ds.orders")
	if err != nil || len(pos) == 0 {
		t.Errorf("no record in the state store: %v", err)
	}
}
