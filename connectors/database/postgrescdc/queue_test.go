package postgrescdc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/rivven/rivven-connect/events"
)

func evs(n int) []*events.Event {
	out := make([]*events.Event, n)
	for i := range out {
		out[i] = &events.Event{}
	}
	return out
}

// A big transaction comes as items of maxBatch events: the queue holds
// back the reader once limit events wait, whatever the item count, and
// lets it go on as soon as the emitter takes one; acknowledgements
// without events never wait.
func TestQueueBoundsEventsNotItems(t *testing.T) {
	q := newQueue(16, 100)
	ctx := context.Background()
	never := make(chan time.Time)
	idle := func() error { return nil }
	if err := q.put(ctx, item{evs: evs(60)}, never, idle); err != nil {
		t.Fatal(err)
	}
	if err := q.put(ctx, item{evs: evs(60)}, never, idle); err != nil {
		t.Fatal(err) // 60 < 100 queued: goes in, 120 now
	}
	if err := q.put(ctx, item{ack: 7}, never, idle); err != nil {
		t.Fatal(err) // no events: not held back
	}
	put := make(chan error, 1)
	go func() { put <- q.put(ctx, item{evs: evs(10), ack: 9}, never, idle) }()
	select {
	case err := <-put:
		t.Fatalf("put of a third batch returned (%v) while 120 events of a limit of 100 were queued", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got := len(q.take(<-q.ch).evs); got != 60 {
		t.Fatalf("took %d events, want the first item's 60", got)
	}
	select {
	case err := <-put:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("put still waits after the emitter took an item (60 events queued, limit 100)")
	}
	if n := q.queued.Load(); n != 70 {
		t.Fatalf("queued = %d events, want 70", n)
	}
	for _, want := range []pglogrepl.LSN{0, 7, 9} {
		if it := q.take(<-q.ch); it.ack != want {
			t.Fatalf("items out of order: ack %d, want %d", it.ack, want)
		}
	}
	if n := q.queued.Load(); n != 0 {
		t.Fatalf("queued = %d events after taking everything, want 0", n)
	}
}

// While the reader waits for room it keeps the replication connection
// alive on every tick, and a cancelled context or a failing status update
// ends the wait without leaving its events counted.
func TestQueueWaitKeepsAliveAndStops(t *testing.T) {
	q := newQueue(16, 10)
	never := make(chan time.Time)
	if err := q.put(context.Background(), item{evs: evs(10)}, never, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	idled := make(chan struct{}, 8)
	broken := errors.New("status update failed")
	fail := false
	done := make(chan error, 1)
	go func() {
		done <- q.put(context.Background(), item{evs: evs(5)}, tick, func() error {
			idled <- struct{}{}
			if fail {
				return broken
			}
			return nil
		})
	}()
	waiting := func() {
		t.Helper()
		select {
		case tick <- time.Time{}:
			<-idled
		case err := <-done:
			t.Fatalf("put returned (%v) while the queue held its limit of events", err)
		case <-time.After(5 * time.Second):
			t.Fatal("put neither waits on the tick nor returns")
		}
	}
	waiting()
	fail = true // read by the same goroutine after the next tick
	waiting()
	if err := <-done; !errors.Is(err, broken) {
		t.Fatalf("put = %v, want the status update's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.put(ctx, item{evs: evs(5)}, never, func() error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("put = %v, want context.Canceled", err)
	}
	if n := q.queued.Load(); n != 10 {
		t.Fatalf("queued = %d events, want the first item's 10 only", n)
	}
}
