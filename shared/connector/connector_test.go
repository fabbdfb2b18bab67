package connector

import (
	"context"
	"errors"
	"testing"

	"github.com/rivven/rivven-connect/events"
)

func TestKeepOrDrop(t *testing.T) {
	batch := make([]*events.Event, 5)
	for i := range batch {
		batch[i] = events.New(events.Record, string(rune('a'+i)), events.Payload{})
	}
	all := KeepOrDrop(func(context.Context, *events.Event) (bool, error) { return true, nil })
	out, err := all.Apply(context.Background(), batch)
	if err != nil || len(out) != 5 || &out[0] != &batch[0] {
		t.Fatalf("keeping all: %d events, err %v, same slice %v", len(out), err, len(out) > 0 && &out[0] == &batch[0])
	}

	bad := errors.New("bad")
	some := KeepOrDrop(func(_ context.Context, e *events.Event) (bool, error) {
		switch e.Stream {
		case "b":
			return false, nil
		case "d":
			return true, bad // an error dead-letters the event even when kept
		}
		return true, nil
	})
	out, err = some.Apply(context.Background(), batch)
	var got string
	for _, e := range out {
		got += e.Stream
	}
	var te *TransformError
	if got != "ace" || !errors.As(err, &te) || len(te.Failed) != 1 || te.Failed[0].Event != batch[3] {
		t.Fatalf("out %q, err %v", got, err)
	}
	for i, e := range batch {
		if e.Stream != string(rune('a'+i)) {
			t.Fatal("the input slice was changed")
		}
	}
}
