package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Fencing on Kafka is Kafka's own: every fenced source publishes through a
// transactional producer with transactional.id TransactionalIDPrefix +
// source name. Claim initialises it, which bumps the producer epoch of
// that id at the transaction coordinator: an older instance's open
// transaction is aborted and everything it sends afterwards is refused
// (PRODUCER_FENCED). A batch and the source position it ends at are one
// transaction: the messages plus a record keyed topic+"/"+source on the
// compacted PositionsTopic, so they are stored together or not at all.
const (
	TransactionalIDPrefix = "rivven-source-"
	PositionsTopic        = "__rivven_positions"
	// positionsPartitions spreads sources over partitions of the
	// positions topic, so reading one source's position scans less of the
	// others' (the count of an existing topic is used as it is).
	positionsPartitions = 8
)

// FencedError is a publish Kafka refused because a newer instance
// initialised the same transactional id. It matches state.ErrFenced.
type FencedError struct {
	Producer        string
	TransactionalID string
	Epoch           int64 // the refused instance's epoch
	Err             error
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("fenced: %s epoch %d: a newer instance took over Kafka transactional id %q (%v)", e.Producer, e.Epoch, e.TransactionalID, e.Err)
}

// Is makes errors.Is(err, state.ErrFenced) hold.
func (e *FencedError) Is(target error) bool { return target == state.ErrFenced }

func (e *FencedError) Unwrap() error { return e.Err }

// txnProducer is one source instance's transactional client.
type txnProducer struct {
	mu     sync.Mutex // transactions of one client run one at a time
	cl     *kgo.Client
	id     string
	epoch  int64
	fenced error // set once refused: the client is done
	broken bool  // a transaction ended in doubt: claim again before the next
	closed bool
}

func (t *txnProducer) close(fenced error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fenced == nil {
		t.fenced = fenced
	}
	if !t.closed {
		t.closed = true
		t.cl.Close()
	}
}

// state says whether the producer was fenced (for good) or ended a
// transaction in doubt (claim again).
func (t *txnProducer) state() (fenced error, broken bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fenced, t.broken
}

func positionKey(name, producer string) string { return name + "/" + producer }

// isFencedErr tells whether the coordinator refused this producer's
// transaction because another init bumped its epoch. INVALID_TXN_STATE
// counts too: with transactions v2 (KIP-890) a commit from the epoch just
// below the current one is answered so when the newer instance's init
// aborted the transaction. It can also mean the transaction timed out and
// was aborted; treating that as fenced stops the instance (a restart
// resumes from the stored position), which is safe, whereas re-claiming
// could fence a newer instance.
func isFencedErr(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState)
}

// Claim fences every older instance of producer: it initialises the
// source's transactional producer, bumping the Kafka producer epoch. The
// transactional id is per source, not per topic, so claiming a second
// topic (the dead-letter topic) with the same epoch is a no-op. A claim
// with an epoch below one this process already holds fails with a
// *state.FencedError.
func (k *Kafka) Claim(ctx context.Context, name, producer string, epoch int64) error {
	if err := ValidateTopic(name); err != nil {
		return err
	}
	_, err := k.txnFor(ctx, producer, epoch)
	return err
}

// txnFor returns the producer's transactional client for epoch, claiming
// it when this process has none for that epoch (or the one it has ended a
// transaction in doubt).
func (k *Kafka) txnFor(ctx context.Context, producer string, epoch int64) (*txnProducer, error) {
	k.mu.Lock()
	cur := k.txns[producer]
	k.mu.Unlock()
	if cur != nil {
		fenced, broken := cur.state()
		switch {
		case cur.epoch > epoch:
			return nil, &state.FencedError{Connector: producer, Epoch: epoch, Current: cur.epoch}
		case cur.epoch == epoch && fenced != nil:
			// Kafka fenced this instance: claiming again would fence
			// the newer one in turn.
			return nil, fenced
		case cur.epoch == epoch && !broken:
			return cur, nil
		}
	}
	if err := k.ensurePositions(ctx); err != nil {
		return nil, err
	}
	id := TransactionalIDPrefix + producer
	cl, err := kgo.NewClient(append(slices.Clone(k.base), append(producerOpts(k.timeout),
		kgo.TransactionalID(id),
		// A crashed instance's open transaction holds back every
		// read_committed consumer until it times out (or the next
		// instance claims): long enough for a batch, no longer.
		kgo.TransactionTimeout(max(40*time.Second, 2*k.timeout)),
	)...)...)
	if err != nil {
		return nil, fmt.Errorf("transactional producer %q: %w", id, err)
	}
	// InitProducerID now, not at the first publish: from here on no older
	// instance can commit a transaction.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		if isFencedErr(err) {
			return nil, &FencedError{Producer: producer, TransactionalID: id, Epoch: epoch, Err: err}
		}
		return nil, fmt.Errorf("claim transactional id %q: %w", id, err)
	}
	tp := &txnProducer{cl: cl, id: id, epoch: epoch}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		cl.Close()
		return nil, kgo.ErrClientClosed
	}
	old := k.txns[producer]
	if old != nil && old != cur && old.epoch >= epoch {
		// A concurrent claim won; ours was the extra bump.
		k.mu.Unlock()
		cl.Close()
		if old.epoch > epoch {
			return nil, &state.FencedError{Connector: producer, Epoch: epoch, Current: old.epoch}
		}
		return old, nil
	}
	k.txns[producer] = tp
	k.mu.Unlock()
	switch {
	case old != nil && old.epoch < epoch:
		// Kafka fenced the old client already; this only tells its
		// caller, without a round trip, and frees it.
		old.close(&state.FencedError{Connector: producer, Epoch: old.epoch, Current: epoch})
	case old != nil:
		old.close(nil) // the same instance's client that ended in doubt
	}
	return tp, nil
}

// ensurePositions creates the compacted positions topic when missing.
func (k *Kafka) ensurePositions(ctx context.Context) error {
	if _, err := k.describe(ctx, PositionsTopic); !errors.Is(err, topic.ErrUnknownTopic) {
		return err
	}
	compact := "compact"
	spec := topic.Spec{Partitions: positionsPartitions, ReplicationFactor: k.Default.ReplicationFactor}
	if err := k.create(ctx, PositionsTopic, spec, map[string]*string{"cleanup.policy": &compact}); err != nil {
		return err
	}
	_, err := k.describeFresh(ctx, PositionsTopic)
	return err
}

// ProduceFenced publishes msgs and, with f.Position set, the position in
// one Kafka transaction of f.Producer's transactional producer: a fenced
// instance gets an error matching state.ErrFenced and stores nothing.
// Without f.Producer it is Produce.
func (k *Kafka) ProduceFenced(ctx context.Context, name string, msgs []topic.Message, f topic.Fence) error {
	if f.Producer == "" {
		return k.Produce(ctx, name, msgs)
	}
	if err := ValidateTopic(name); err != nil {
		return err
	}
	tp, err := k.txnFor(ctx, f.Producer, f.Epoch)
	if err != nil || (len(msgs) == 0 && f.Position == nil) {
		return err
	}
	if len(msgs) > 0 {
		if _, err := k.Partitions(ctx, name); err != nil {
			return err
		}
	}
	// Every record names the epoch that wrote it (as topic.Redis does), so
	// consumers and audits can tell the instances apart.
	epoch := kgo.RecordHeader{Key: topic.EpochHeader, Value: strconv.AppendInt(nil, f.Epoch, 10)}
	recs := make([]*kgo.Record, 0, len(msgs)+1)
	for _, m := range msgs {
		r := record(name, m)
		r.Headers = append(r.Headers, epoch)
		recs = append(recs, r)
	}
	if f.Position != nil {
		recs = append(recs, &kgo.Record{
			Topic: PositionsTopic, Key: []byte(positionKey(name, f.Producer)), Value: f.Position,
			Headers: []kgo.RecordHeader{epoch},
		})
	}
	return k.transact(ctx, tp, name, f, recs)
}

// transact runs recs as one transaction of tp.
func (k *Kafka) transact(ctx context.Context, tp *txnProducer, name string, f topic.Fence, recs []*kgo.Record) error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if err := tp.begin(name, f); err != nil {
		return err
	}
	perr := produceAll(ctx, tp.cl, name, recs, k.timeout)
	if perr != nil && isFencedErr(perr) {
		return tp.fail("produce", name, f, perr)
	}
	eerr := tp.end(ctx, perr == nil, k.timeout, name, f)
	if perr != nil {
		if eerr != nil && !errors.Is(eerr, state.ErrFenced) {
			perr = errors.Join(perr, eerr)
		}
		return tp.fail("produce", name, f, perr)
	}
	return eerr
}

// begin starts a transaction; tp.mu is held.
func (tp *txnProducer) begin(name string, f topic.Fence) error {
	if tp.fenced != nil {
		return tp.fenced
	}
	if err := tp.cl.BeginTransaction(); err != nil {
		tp.broken = true
		return tp.fail("begin", name, f, err)
	}
	return nil
}

// end commits or aborts the transaction; tp.mu is held. It runs even when
// ctx is done: left open, the transaction would hold back every
// read_committed consumer until it timed out.
func (tp *txnProducer) end(ctx context.Context, commit bool, timeout time.Duration, name string, f topic.Fence) error {
	how := kgo.TryAbort
	if commit {
		how = kgo.TryCommit
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := tp.cl.EndTransaction(ectx, how); err != nil {
		// Committed or not is unknown here: the next claim's epoch bump
		// settles it (an open transaction is aborted), and LastPosition
		// tells which.
		tp.broken = true
		return tp.fail("commit", name, f, err)
	}
	return nil
}

// fail maps a transaction error: a fencing one ends the producer for good.
func (tp *txnProducer) fail(what, name string, f topic.Fence, err error) error {
	if isFencedErr(err) {
		if tp.fenced == nil {
			tp.fenced = &FencedError{Producer: f.Producer, TransactionalID: tp.id, Epoch: f.Epoch, Err: err}
		}
		return tp.fenced
	}
	return fmt.Errorf("publish to %q in a transaction (%s): %w", name, what, err)
}

// LastPosition returns the position producer last published to topic
// with in a committed transaction (nil if none). It reads the positions
// topic backwards from its end, read_committed, after waiting for the
// transactions open at the call to be decided.
func (k *Kafka) LastPosition(ctx context.Context, name, producer string) ([]byte, error) {
	if err := k.settle(ctx, producer); err != nil {
		return nil, err
	}
	d, err := k.describe(ctx, PositionsTopic)
	if errors.Is(err, topic.ErrUnknownTopic) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	key := positionKey(name, producer)
	p := topic.Partition([]byte(key), len(d.leaders), 0)
	start, end, err := k.stableRange(ctx, p)
	if err != nil {
		return nil, err
	}
	for window := int64(256); ; window *= 4 {
		lo := max(start, end-window)
		val, found, err := k.scanPositions(ctx, d, p, lo, end, key)
		if err != nil || found {
			return val, err
		}
		if lo <= start {
			return nil, nil
		}
		end = lo
	}
}

// settle claims the producer again when its last transaction ended in
// doubt, which aborts that transaction if it is still open: a restarted
// source then reads where it really is instead of waiting for the
// transaction to time out.
func (k *Kafka) settle(ctx context.Context, producer string) error {
	k.mu.Lock()
	tp := k.txns[producer]
	k.mu.Unlock()
	if tp == nil {
		return nil
	}
	if fenced, broken := tp.state(); fenced != nil || !broken {
		return nil
	}
	_, err := k.txnFor(ctx, producer, tp.epoch)
	return err
}

// stableRange returns the partition's log start offset and its end, once
// every transaction open at the call has been decided (the last stable
// offset reached the high watermark seen first): a position committed
// after another source's still-open transaction is not missed.
func (k *Kafka) stableRange(ctx context.Context, p int32) (start, end int64, err error) {
	los, err := k.adm.ListEndOffsets(ctx, PositionsTopic)
	hw, err := lookupOffset(los, err, "end offset", PositionsTopic, p)
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(2 * k.timeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		los, err := k.adm.ListCommittedOffsets(ctx, PositionsTopic)
		lso, err := lookupOffset(los, err, "stable offset", PositionsTopic, p)
		if err != nil {
			return 0, 0, err
		}
		if lso >= hw {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("read position: %s[%d] has a transaction open for longer than %s", PositionsTopic, p, 2*k.timeout)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(delay):
		}
	}
	los, err = k.adm.ListStartOffsets(ctx, PositionsTopic)
	start, err = lookupOffset(los, err, "start offset", PositionsTopic, p)
	return start, hw, err
}

// scanPositions reads [lo, end) of a positions partition and returns the
// last committed value of key there. It fetches directly from the leader
// so that it knows where each response ends, control records and aborted
// batches included (a consumer client would hide those and never say it
// reached end).
func (k *Kafka) scanPositions(ctx context.Context, d topicInfo, p int32, lo, end int64, key string) ([]byte, bool, error) {
	leader := d.leaders[p]
	var (
		val   []byte
		found bool
	)
	for off := lo; off < end; {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 0
		req.MaxBytes = 8 << 20
		req.IsolationLevel = 1 // read_committed: aborted positions do not count
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = PositionsTopic, d.id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 4<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, k.cl.Broker(int(leader)))
		if err != nil {
			return nil, false, fmt.Errorf("read position from %s[%d]: %w", PositionsTopic, p, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, false, fmt.Errorf("read position from %s[%d]: %w", PositionsTopic, p, err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return nil, false, fmt.Errorf("read position from %s[%d]: unexpected fetch response", PositionsTopic, p)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: off, IsolationLevel: kgo.ReadCommitted(), Topic: PositionsTopic, Partition: p,
		}, &resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return nil, false, fmt.Errorf("read position from %s[%d]: %w", PositionsTopic, p, fp.Err)
		}
		for _, r := range fp.Records {
			if r.Offset < end && string(r.Key) == key {
				val, found = r.Value, true
			}
		}
		if next <= off {
			return nil, false, fmt.Errorf("read position from %s[%d]: no progress at offset %d", PositionsTopic, p, off)
		}
		off = next
	}
	return val, found, nil
}
