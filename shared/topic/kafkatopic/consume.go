package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/shared/topic"
)

// partConsumer is the consuming client of one partition. It stays
// positioned after what it last returned, so the runner's next Fetch from
// there is served from franz-go's prefetched buffer; any other offset
// repositions it.
type partConsumer struct {
	mu sync.Mutex
	cl *kgo.Client
	// Offsets in [data, next) hold nothing a read_committed reader sees
	// (transaction markers, aborted batches): a Fetch from anywhere in
	// there continues where the client is. data is one past the last
	// message returned, next is where the client fetches from. Written
	// under mu, read without it by HighWatermark.
	data, next atomic.Int64
	closed     bool // under mu
}

func (c *partConsumer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

func (c *partConsumer) closeLocked() {
	if !c.closed {
		c.closed = true
		c.cl.Close()
	}
}

// consumer returns the partition's client, creating it at from.
func (k *Kafka) consumer(name string, p int32, from int64) (*partConsumer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, kgo.ErrClientClosed
	}
	key := partition{name, p}
	if c, ok := k.consumers[key]; ok {
		return c, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(k.base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{name: {p: kgo.NewOffset().At(from)}}),
		// Aborted transactions (a fenced source's batch) stay invisible.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// An offset that no longer exists (retention) restarts at the
		// oldest one kept rather than skipping to the end.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Markers are returned (and dropped in Fetch) so that the
		// position is known to move past them.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("consume %s[%d]: %w", name, p, err)
	}
	c := &partConsumer{cl: cl}
	c.data.Store(from)
	c.next.Store(from)
	k.consumers[key] = c
	return c, nil
}

// dropConsumer closes a partition's client (c.mu held) after an error it
// may not recover from; the next Fetch starts a fresh one.
func (k *Kafka) dropConsumer(name string, p int32, c *partConsumer) {
	k.mu.Lock()
	if k.consumers[partition{name, p}] == c {
		delete(k.consumers, partition{name, p})
	}
	k.mu.Unlock()
	c.closeLocked()
}

// Fetch returns up to limit committed messages of a partition from offset
// from on (read_committed: records of aborted transactions and control
// records never appear, so offsets may have gaps). With wait > 0 it blocks
// up to wait for the first one and returns no messages and no error when
// none came; with wait <= 0 it returns what is stored up to the end offset
// (HighWatermark) without waiting for more.
func (k *Kafka) Fetch(ctx context.Context, name string, p int32, from int64, limit int, wait time.Duration) ([]topic.Message, error) {
	end := int64(-1)
	if wait <= 0 {
		var err error
		if end, err = k.HighWatermark(ctx, name, p); err != nil || from >= end {
			return nil, err
		}
		wait = k.timeout // what is stored arrives within a request
	}
	var c *partConsumer
	for {
		var err error
		if c, err = k.consumer(name, p, from); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if !c.closed {
			break
		}
		c.mu.Unlock() // dropped by a concurrent Fetch: take the new one
	}
	defer c.mu.Unlock()
	if from < c.data.Load() || from > c.next.Load() {
		// Stopping the fetch session drops what was buffered for the old
		// position, so nothing from there is returned after this.
		c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{name: {p: {Epoch: -1, Offset: from}}})
		c.next.Store(from)
	}
	c.data.Store(from)
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		fs := c.cl.PollRecords(pctx, max(limit, 1))
		var (
			out  []topic.Message
			ferr error
		)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = err
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != name || r.Partition != p || r.Offset < c.next.Load() {
				return
			}
			c.next.Store(r.Offset + 1)
			if !r.Attrs.IsControl() {
				out = append(out, message(r))
				c.data.Store(r.Offset + 1)
			}
		})
		switch {
		case len(out) > 0:
			return out, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case ferr != nil:
			k.dropConsumer(name, p, c)
			return nil, fmt.Errorf("fetch %s[%d]: %w", name, p, ferr)
		case pctx.Err() != nil || (end >= 0 && c.next.Load() >= end):
			return nil, nil
		}
		// Only markers so far: keep waiting for messages.
	}
}

func message(r *kgo.Record) topic.Message {
	m := topic.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Time: r.Timestamp}
	if len(r.Headers) > 0 {
		m.Headers = make([]topic.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = topic.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// Commit stores a consumer group's next offset of a partition in Kafka's
// group offsets (an admin-style commit: the runner assigns partitions
// itself, so the group has no members). A commit below one this process
// already made or read is skipped, so a late commit cannot rewind.
func (k *Kafka) Commit(ctx context.Context, group, name string, p int32, next int64) error {
	key := commitKey{group, partition{name, p}}
	k.mu.Lock()
	cur, ok := k.commits[key]
	k.mu.Unlock()
	if ok && next <= cur {
		return nil
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: name, Partition: p, At: next, LeaderEpoch: -1})
	resp, err := k.adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit %s %s[%d]: %w", group, name, p, err)
	}
	k.noteCommitted(key, next)
	return nil
}

func (k *Kafka) noteCommitted(key commitKey, next int64) {
	k.mu.Lock()
	if cur, ok := k.commits[key]; !ok || next > cur {
		k.commits[key] = next
	}
	k.mu.Unlock()
}

// Committed returns a group's committed next offset (ok false if none).
func (k *Kafka) Committed(ctx context.Context, group, name string, p int32) (int64, bool, error) {
	resp, err := k.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("committed %s %s[%d]: %w", group, name, p, err)
	}
	o, ok := resp.Lookup(name, p)
	if !ok {
		return 0, false, nil
	}
	if o.Err != nil {
		return 0, false, fmt.Errorf("committed %s %s[%d]: %w", group, name, p, o.Err)
	}
	if o.At < 0 {
		return 0, false, nil
	}
	k.noteCommitted(commitKey{group, partition{name, p}}, o.At)
	return o.At, true, nil
}

// HighWatermark returns the offset a read_committed consumer reaches at
// the end of the partition: the last stable offset, which is the high
// watermark unless a transaction is still open; that is where "latest"
// starts. When this process's consumer of the partition has read up to it
// and only transaction markers followed its last message, it is the offset
// after that message instead: what a consumer that is done commits, so
// the runner's lag (end - committed) is 0 rather than the marker count.
func (k *Kafka) HighWatermark(ctx context.Context, name string, p int32) (int64, error) {
	los, err := k.adm.ListCommittedOffsets(ctx, name)
	end, err := lookupOffset(los, err, "end offset", name, p)
	if err != nil {
		return 0, err
	}
	k.mu.Lock()
	c := k.consumers[partition{name, p}]
	k.mu.Unlock()
	if c != nil {
		if data := c.data.Load(); c.next.Load() == end && data < end {
			return data, nil
		}
	}
	return end, nil
}

func lookupOffset(los kadm.ListedOffsets, err error, what, name string, p int32) (int64, error) {
	if err != nil {
		return 0, fmt.Errorf("%s of %s[%d]: %w", what, name, p, err)
	}
	o, ok := los.Lookup(name, p)
	switch {
	case !ok || errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		return 0, fmt.Errorf("%s of %s[%d]: %w", what, name, p, topic.ErrUnknownTopic)
	case o.Err != nil:
		return 0, fmt.Errorf("%s of %s[%d]: %w", what, name, p, o.Err)
	}
	return o.Offset, nil
}

// OffsetForTime returns the first offset of a partition whose message is
// at or after t (the end offset when there is none).
func (k *Kafka) OffsetForTime(ctx context.Context, name string, p int32, t time.Time) (int64, error) {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++ // Kafka stamps whole milliseconds: 12.5 ms means from 13 on
	}
	los, err := k.adm.ListOffsetsAfterMilli(ctx, ms, name)
	off, err := lookupOffset(los, err, "offset for time", name, p)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return k.HighWatermark(ctx, name, p)
	}
	return off, nil
}
