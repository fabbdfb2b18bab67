package llmembedding

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/connectors/ai/llm/llmfake"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// flakySink fails the event with id 3 on its first write.
type flakySink struct {
	writes  int
	written map[string]bool
}

func (s *flakySink) Write(_ context.Context, batch []*events.Event) error {
	s.writes++
	we := &connector.WriteError{Failed: map[int]error{}}
	for i, e := range batch {
		row, _ := e.Row()
		id := fmt.Sprint(row["id"])
		if id == "3" && s.writes == 1 {
			we.Failed[i] = fmt.Errorf("row %v: deadlock, retry", id)
			continue
		}
		if row["embedding"] == nil {
			return fmt.Errorf("row %v reached the sink without its embedding", id)
		}
		s.written[id] = true
	}
	if len(we.Failed) > 0 {
		return we
	}
	return nil
}

// TestSinkHandlerEmbedsABatchOnceAndSkipsWhatWasWritten runs llm-embedding
// as a sink step, the way a function runs it: the handler gives the
// transform the whole batch, so 20 records cost one request, and after a
// partial failure the redelivered batch — handled by a fresh transform, as
// a cold function instance would, so nothing is cached in memory — asks
// the provider only for the record that was not written; the ledger knows
// the others.
func TestSinkHandlerEmbedsABatchOnceAndSkipsWhatWasWritten(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	f.APIKey = "sk-test"
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rc.Close()
	ledger, err := resilience.NewLedger(rc, resilience.LedgerConfig{Connector: pipeline.SinkStateName("vectors"), Dedup: resilience.DedupIDs})
	if err != nil {
		t.Fatal(err)
	}
	sink := &flakySink{written: map[string]bool{}}
	recs := make([]pipeline.Record, 20)
	for i, e := range events_(20, func(i int) string { return fmt.Sprintf("document %d", i) }) {
		recs[i] = pipeline.Record{ID: fmt.Sprint("m", i), Topic: "docs", Offset: int64(i), Attempt: 1, Event: e}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	handle := func(recs []pipeline.Record) pipeline.Result {
		t.Helper()
		tr, _ := build(t, openaiConfig(f, "dimensions: 8\nbatch_size: 100\n"))
		h := &pipeline.Handler{Name: "vectors", Sink: sink, Transforms: pipeline.Chain{tr}, Ledger: ledger, Log: quiet}
		res, err := h.Handle(context.Background(), recs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := handle(recs)
	if fmt.Sprint(res.Failed) != "[m3]" {
		t.Fatalf("first delivery failed %v, want [m3]", res.Failed)
	}
	if f.EmbedCalls.Load() != 1 || f.EmbedInputs.Load() != 20 {
		t.Fatalf("%d requests with %d inputs for a batch of 20; want 1 with 20", f.EmbedCalls.Load(), f.EmbedInputs.Load())
	}

	// The trigger redelivers the whole batch (a Kafka or Kinesis retry).
	for i := range recs {
		recs[i].Attempt = 2
		recs[i].Event = events_(20, func(i int) string { return fmt.Sprintf("document %d", i) })[i]
	}
	if res := handle(recs); len(res.Failed) != 0 {
		t.Fatalf("redelivery failed %v", res.Failed)
	}
	if f.EmbedCalls.Load() != 2 || f.EmbedInputs.Load() != 21 {
		t.Fatalf("after the redelivery: %d requests with %d inputs; want one more request with only the unwritten record", f.EmbedCalls.Load(), f.EmbedInputs.Load())
	}
	if len(sink.written) != 20 {
		t.Fatalf("%d distinct rows written, want 20", len(sink.written))
	}
}
