// Package connector is the contract between a connector and the engine:
// the Source, Sink and Transform interfaces, the errors that say what
// failed, and the Runtime (logger, metrics, progress) a running connector
// gets. It is a leaf: a connector importing it links no engine, state store
// or metrics exporter, so a pure-Go transform stays small. The engine that
// runs connectors is shared/pipeline.
package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rivven/rivven-connect/events"
)

// Source reads from an external system.
//
// Read emits batches until ctx is done or the source is exhausted (then it
// returns nil). resume is the last position the engine committed for this
// source (nil on first start); the source continues after it. Each event's
// Metadata.Position should say where it came from; the position committed
// after a batch is the one of its last event.
type Source interface {
	Read(ctx context.Context, resume []byte, emit Emitter) error
}

// Emitter takes a source's batches. Emit returns once the batch is durably
// published (so the source may acknowledge upstream), or with an error; it
// blocks to apply back-pressure. The batch slice may be reused by the source
// after Emit returns; the events may not.
type Emitter interface {
	Emit(ctx context.Context, batch []*events.Event) error
}

// EmitterFunc adapts a function to Emitter.
type EmitterFunc func(ctx context.Context, batch []*events.Event) error

func (f EmitterFunc) Emit(ctx context.Context, b []*events.Event) error { return f(ctx, b) }

// Sink writes to an external system. Write returns nil when every event was
// written, a *WriteError naming the events that failed, or any other error
// when the whole batch failed. The engine calls Write for one batch at a
// time unless the sink is a ConcurrentWriter.
type Sink interface {
	Write(ctx context.Context, batch []*events.Event) error
}

// ConcurrentWriter is implemented by sinks whose Write may run for several
// batches at once (each call owns its batch), such as one whose client is
// safe for concurrent use and keeps no state between calls. A function
// host taking concurrent requests (Cloud Run) then writes them in parallel
// instead of one after the other.
type ConcurrentWriter interface {
	ConcurrentWrites() bool
}

// Transform changes, drops, multiplies or routes events. It returns the
// events to pass on. An error of type *TransformError names input events
// that could not be transformed (they go to the dead-letter topic, the rest
// go on); any other error fails the whole batch. Apply may run for several
// batches at once: a transform keeps no state between calls that is not
// safe for concurrent use.
type Transform interface {
	Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error)
}

// Checker is implemented by connectors that can test their connectivity.
// The engine runs Check before a connector is Running.
type Checker interface {
	Check(ctx context.Context) error
}

// Closer is implemented by connectors holding resources. Close flushes.
type Closer interface {
	Close(ctx context.Context) error
}

// WriteError reports per-event failures of a Sink.Write: Failed maps the
// index in the batch to its error.
type WriteError struct {
	Failed map[int]error
}

func (e *WriteError) Error() string {
	var first error
	for _, err := range e.Failed {
		first = err
		break
	}
	return fmt.Sprintf("%d event(s) failed, e.g.: %v", len(e.Failed), first)
}

// TransformError reports events a Transform could not handle.
type TransformError struct {
	Failed []EventError
}

// EventError pairs an input event with why it failed.
type EventError struct {
	Event *events.Event
	Err   error
}

func (e *TransformError) Error() string {
	msgs := make([]string, 0, len(e.Failed))
	for _, f := range e.Failed {
		msgs = append(msgs, f.Err.Error())
		if len(msgs) == 3 {
			break
		}
	}
	return fmt.Sprintf("%d event(s) failed to transform: %s", len(e.Failed), strings.Join(msgs, "; "))
}

// PerEvent adapts a per-event function to Transform: it returns the events
// to emit for one input (none drops it); an error dead-letters that event.
type PerEvent func(ctx context.Context, e *events.Event) ([]*events.Event, error)

func (f PerEvent) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	out := batch[:0:0]
	var failed []EventError
	for _, e := range batch {
		res, err := f(ctx, e)
		if err != nil {
			failed = append(failed, EventError{Event: e, Err: err})
			continue
		}
		out = append(out, res...)
	}
	if failed != nil {
		return out, &TransformError{Failed: failed}
	}
	return out, nil
}

// KeepOrDrop adapts a function that changes one event in place and says
// whether to pass it on (false drops it) to Transform; an error
// dead-letters that event. Unlike PerEvent it allocates nothing per event:
// when every event is kept, the input slice itself is returned.
type KeepOrDrop func(ctx context.Context, e *events.Event) (keep bool, err error)

func (f KeepOrDrop) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	var out []*events.Event // nil while every event so far is kept
	var failed []EventError
	for i, e := range batch {
		keep, err := f(ctx, e)
		if err != nil {
			failed = append(failed, EventError{Event: e, Err: err})
		}
		if keep && err == nil {
			if out != nil {
				out = append(out, e)
			}
			continue
		}
		if out == nil {
			out = append(make([]*events.Event, 0, len(batch)), batch[:i]...)
		}
	}
	if out == nil {
		out = batch
	}
	if failed != nil {
		return out, &TransformError{Failed: failed}
	}
	return out, nil
}

// InPlace is implemented by transforms whose Apply returns, of the events
// it was given, exactly those that did not fail: the same pointers, changed
// in place, none added. The sink handler, which must trace every output to
// its input record, then hands such a transform the whole batch at once,
// so a step that calls a remote service (an LLM) sends one batched,
// concurrent round per batch instead of one request per record.
type InPlace interface {
	Transform
	InPlace()
}

// Chain applies transforms in order.
type Chain []Transform

func (c Chain) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	var failed []EventError
	for _, t := range c {
		out, err := t.Apply(ctx, batch)
		var te *TransformError
		switch {
		case errors.As(err, &te):
			failed = append(failed, te.Failed...)
		case err != nil:
			return nil, err
		}
		batch = out
		if len(batch) == 0 {
			break
		}
	}
	if failed != nil {
		return batch, &TransformError{Failed: failed}
	}
	return batch, nil
}

// ErrFatal marks errors after which restarting cannot help (bad
// configuration, fencing). Runners stop instead of retrying.
var ErrFatal = errors.New("fatal")

// Fatal wraps err so that errors.Is(err, ErrFatal) holds.
func Fatal(err error) error { return fmt.Errorf("%w: %w", ErrFatal, err) }

// SnapshotRequester is implemented by sources that can snapshot a table
// again while they stream, for `rivven-connect snapshot`: the request is
// a signal written where the running source reads it (its database's
// log), so it needs no connection to the running process and is picked
// up at the next start when the source is down.
type SnapshotRequester interface {
	RequestSnapshot(ctx context.Context, tables []string) error
}

// Discoverer is implemented by sources that can list what they could
// read (tables of a database, say), for `rivven-connect discover`.
type Discoverer interface {
	Discover(ctx context.Context) ([]Stream, error)
}

// Stream is one readable thing a Discoverer found.
type Stream struct {
	Namespace  string   `json:"namespace,omitempty"` // schema or database
	Name       string   `json:"name"`
	PrimaryKey []string `json:"primary_key,omitempty"`
	Columns    []Column `json:"columns,omitempty"`
	// RowEstimate is the server's estimate of the row count (-1 unknown).
	RowEstimate int64 `json:"row_estimate"`
	// Note says why the stream cannot be read as configured (no primary
	// key and no replica identity, excluded by a filter, ...), if so.
	Note string `json:"note,omitempty"`
}

// Column is one column of a Stream.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}
