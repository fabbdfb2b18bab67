package pipeline

import (
	"context"
	"errors"

	"github.com/rivven/rivven-connect/events"
)

// Only applies t to the events match selects and passes the others on
// untouched, keeping the batch order: runs of selected events go to t
// together so batch-minded transforms still see batches.
func Only(t Transform, match func(*events.Event) bool) Transform {
	o := &only{t: t, match: match}
	if _, ok := t.(InPlace); ok {
		// Events the predicate passes by are returned as given, so
		// the predicated step keeps the in-place promise.
		return onlyInPlace{o}
	}
	return o
}

type onlyInPlace struct{ *only }

func (onlyInPlace) InPlace() {}

type only struct {
	t     Transform
	match func(*events.Event) bool
}

func (o *only) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	out := make([]*events.Event, 0, len(batch))
	var failed []EventError
	for i := 0; i < len(batch); {
		j := i
		sel := o.match(batch[i])
		for j < len(batch) && o.match(batch[j]) == sel {
			j++
		}
		if !sel {
			out = append(out, batch[i:j]...)
			i = j
			continue
		}
		// The transform may reuse its input slice: give it a copy.
		res, err := o.t.Apply(ctx, append([]*events.Event(nil), batch[i:j]...))
		var te *TransformError
		switch {
		case errors.As(err, &te):
			failed = append(failed, te.Failed...)
		case err != nil:
			return nil, err
		}
		out = append(out, res...)
		i = j
	}
	if failed != nil {
		return out, &TransformError{Failed: failed}
	}
	return out, nil
}
