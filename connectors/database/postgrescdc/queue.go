package postgrescdc

import (
	"context"
	"sync/atomic"
	"time"
)

// queue hands items from the replication reader to the emitting
// goroutine. It is bounded by the events it holds, not only by items: a
// big transaction arrives as items of maxBatch events each, and sixteen
// of those waiting for a slow sink were tens of MB of decoded events,
// while sixteen items of a few events each (small transactions) are what
// lets the emitter merge them into one batch. So the channel keeps its
// depth in items, and put waits while the events queued reach the limit.
type queue struct {
	ch     chan item
	limit  int64        // events queued before put waits
	queued atomic.Int64 // events put and not taken yet
	// room gets a token whenever take lowers queued, so that a waiting
	// put looks again; one buffered token is never lost.
	room chan struct{}
}

func newQueue(items, events int) *queue {
	return &queue{ch: make(chan item, items), limit: int64(events), room: make(chan struct{}, 1)}
}

// put queues it once fewer than limit events are queued (so at most
// limit-1 events and one item of any size are), and items without
// events (acknowledgements) at once; while waiting it calls idle on every
// tick, so that the replication connection stays alive.
func (q *queue) put(ctx context.Context, it item, tick <-chan time.Time, idle func() error) error {
	n := int64(len(it.evs))
	for n > 0 && q.queued.Load() >= q.limit {
		select {
		case <-q.room:
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			if err := idle(); err != nil {
				return err
			}
		}
	}
	q.queued.Add(n)
	for {
		select {
		case q.ch <- it:
			return nil
		case <-ctx.Done():
			q.queued.Add(-n)
			return ctx.Err()
		case <-tick:
			if err := idle(); err != nil {
				q.queued.Add(-n)
				return err
			}
		}
	}
}

// take notes that the emitter took it off the channel.
func (q *queue) take(it item) item {
	if n := int64(len(it.evs)); n > 0 {
		q.queued.Add(-n)
		select {
		case q.room <- struct{}{}:
		default:
		}
	}
	return it
}

// close ends the stream of items: the emitter drains what is queued.
func (q *queue) close() { close(q.ch) }
