package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/topic"
)

// tagger is an InPlace transform that records the size of every batch it
// is given, sets row["tag"] and rejects rows whose k is "reject".
type tagger struct{ calls []int }

func (*tagger) InPlace() {}

func (t *tagger) Apply(_ context.Context, batch []*events.Event) ([]*events.Event, error) {
	t.calls = append(t.calls, len(batch))
	out := batch[:0]
	te := &TransformError{}
	for _, e := range batch {
		row, _ := e.Row()
		if row["k"] == "reject" {
			te.Failed = append(te.Failed, EventError{Event: e, Err: errors.New("provider refused it")})
			continue
		}
		row["tag"] = "seen"
		out = append(out, e)
	}
	if len(te.Failed) > 0 {
		return out, te
	}
	return out, nil
}

func TestHandlerGivesInPlaceStepsTheWholeBatch(t *testing.T) {
	dlq := topic.NewMemory()
	dlq.AutoCreate = true
	sink := &countingSink{}
	tg := &tagger{}
	// exploder before the in-place step: per record; the tagger then sees
	// every surviving event of the batch in one call.
	h := &Handler{Name: "x", Sink: sink, Transforms: Chain{exploder, tg}, DeadLetters: dlq, Log: quiet}
	recs := []Record{
		rec(0, `{"k":"split"}`), rec(1, `{"k":"bad"}`), rec(2, `{"k":"drop"}`),
		rec(3, `{"k":"reject"}`), rec(4, `{"k":"x"}`),
	}
	res, err := h.Handle(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tg.calls) != "[4]" {
		t.Errorf("in-place step called with batches %v, want one call with the 4 events left", tg.calls)
	}
	if len(res.Failed) != 0 || res.DeadLettered != 2 {
		t.Fatalf("result %+v, want records 1 and 3 dead-lettered", res)
	}
	if len(sink.got) != 3 || h.Status.Dropped.Load() != 1 {
		t.Fatalf("sink got %d events, dropped %d; want 3 and 1", len(sink.got), h.Status.Dropped.Load())
	}
	for _, e := range sink.got {
		if row, _ := e.Row(); row["tag"] != "seen" {
			t.Errorf("event %v reached the sink without the in-place step", row)
		}
	}
	msgs, _ := dlq.Fetch(context.Background(), "in.dlq", 0, 0, 10)
	if len(msgs) != 2 {
		t.Fatalf("dlq has %d messages", len(msgs))
	}
}

func TestHandlerInPlaceStepWithoutDeadLettersHoldsTheGroup(t *testing.T) {
	sink := &countingSink{}
	h := &Handler{Name: "x", Sink: sink, Transforms: Only(&tagger{}, func(*events.Event) bool { return true }), Log: quiet}
	recs := []Record{rec(0, `{"k":"a"}`), rec(1, `{"k":"reject"}`), rec(2, `{"k":"c"}`), rec(3, `{"k":"d"}`)}
	for i := range recs {
		recs[i].Group = "g"
	}
	recs[3].Group = "other"
	res, err := h.Handle(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	// Record 1 failed; record 2 of its group must not be written after it.
	if fmt.Sprint(res.FailedIdx) != "[1 2]" {
		t.Fatalf("failed %v, want [1 2]", res.FailedIdx)
	}
	if len(sink.got) != 2 {
		t.Fatalf("sink got %d events, want records 0 and 3", len(sink.got))
	}
}
