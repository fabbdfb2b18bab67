package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/shared/topic"
)

// ProduceError reports the messages of one Produce that Kafka did not
// acknowledge, by their index in the call; the others are stored.
type ProduceError struct {
	Topic  string
	Total  int
	Failed map[int]error
}

func (e *ProduceError) Error() string {
	first := e.firstIndex()
	return fmt.Sprintf("produce to %q: %d of %d messages failed (message %d: %v)", e.Topic, len(e.Failed), e.Total, first, e.Failed[first])
}

func (e *ProduceError) firstIndex() int {
	idx := make([]int, 0, len(e.Failed))
	for i := range e.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx[0]
}

// Unwrap exposes the distinct causes, so errors.Is(err, kerr.X) and
// errors.Is(err, context.Canceled) work on the whole error.
func (e *ProduceError) Unwrap() []error {
	var out []error
	seen := map[string]bool{}
	for _, err := range e.Failed {
		if s := err.Error(); !seen[s] {
			seen[s] = true
			out = append(out, err)
		}
	}
	return out
}

// Produce implements topic.Producer: it returns once every message is
// acknowledged by all in-sync replicas, or with a *ProduceError naming the
// ones that were not.
func (k *Kafka) Produce(ctx context.Context, name string, msgs []topic.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if _, err := k.Partitions(ctx, name); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = record(name, m)
	}
	err := produceAll(ctx, k.cl, name, recs, k.timeout)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		k.forget(name) // deleted meanwhile: the next call looks again
	}
	return err
}

// record converts a message; a zero Time lets the client stamp it.
func record(name string, m topic.Message) *kgo.Record {
	r := &kgo.Record{Topic: name, Key: m.Key, Value: m.Value, Timestamp: m.Time}
	if len(m.Headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// produceAll produces recs and waits for every acknowledgement, for at
// most timeout; the error is a *ProduceError indexed like recs. The bound
// is a context rather than franz-go's record delivery timeout, which
// counts from each record's timestamp and so would fail messages that
// carry an older event time at once.
func produceAll(ctx context.Context, cl *kgo.Client, name string, recs []*kgo.Record, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed map[int]error
	)
	wg.Add(len(recs))
	for i, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if failed == nil {
					failed = map[int]error{}
				}
				failed[i] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		return &ProduceError{Topic: name, Total: len(recs), Failed: failed}
	}
	return nil
}
