package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/rivven/rivven-connect/shared/topic"
)

// Batcher is implemented by sinks that write better in larger batches,
// such as object storage, where every Write makes one object: a long-lived
// runner (run sink, the local emulator) gathers up to maxEvents records,
// or what arrived within maxWait of the first one, before it calls Write.
// The gathered records stay uncommitted on the topic, so a crash loses
// none of them: they are read again. Serverless triggers batch by their own
// settings (SQS batch window, Pub/Sub push is one message).
type Batcher interface {
	BatchPolicy() (maxEvents int, maxWait time.Duration)
}

// fetchFunc reads up to limit messages from offset from; it may block
// until ctx is done and then returns what it has (or ctx's error). more
// says the fetch is for the rest of a partial batch: an error then only
// ends the gathering (errLingerOver when there is no point waiting).
type fetchFunc func(ctx context.Context, from int64, limit int, more bool) ([]topic.Message, error)

// errLingerOver ends the gathering of a partial batch early.
var errLingerOver = errors.New("linger over")

// gather collects up to max messages from offset from. Without linger it
// is a single fetch. With linger it fetches again until max messages
// arrived or linger has passed since the first one, so a partial batch
// goes out on time even when nothing more arrives. An error after the
// first fetch ends the gathering with what it has; the next fetch reports
// it again.
func gather(ctx context.Context, max int, linger time.Duration, from int64, fetch fetchFunc) ([]topic.Message, error) {
	msgs, err := fetch(ctx, from, max, false)
	if err != nil || len(msgs) == 0 || linger <= 0 || len(msgs) >= max {
		return msgs, err
	}
	deadline := time.Now().Add(linger)
	for len(msgs) < max {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		fctx, cancel := context.WithTimeout(ctx, left)
		more, err := fetch(fctx, msgs[len(msgs)-1].Offset+1, max-len(msgs), true)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err() // stopping: nothing was committed, it is read again
		}
		msgs = append(msgs, more...)
		if err != nil {
			break
		}
	}
	return msgs, nil
}

// batchPolicy is the sink's Batcher policy, else (def, 0).
func batchPolicy(s Sink, def int) (int, time.Duration) {
	if b, ok := s.(Batcher); ok {
		if n, wait := b.BatchPolicy(); n > 0 {
			return n, max(wait, 0)
		}
	}
	return def, 0
}
