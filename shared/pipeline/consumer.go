package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

// StreamTransport is a durable, partitioned transport a long-lived sink
// consumes from: topic.Redis (Kafka later).
type StreamTransport interface {
	Partitions(ctx context.Context, topic string) (int, error)
	Fetch(ctx context.Context, topic string, partition int32, from int64, limit int, wait time.Duration) ([]topic.Message, error)
	Committed(ctx context.Context, group, topic string, partition int32) (next int64, ok bool, err error)
	Commit(ctx context.Context, group, topic string, partition int32, next int64) error
	HighWatermark(ctx context.Context, topic string, partition int32) (int64, error)
	OffsetForTime(ctx context.Context, topic string, partition int32, t time.Time) (int64, error)
}

var _ StreamTransport = (*topic.Redis)(nil)

// TopicIDs is a StreamTransport that tells one life of a topic from the
// next (topic.Redis): a topic deleted and created again, or lost with a
// Redis restarted empty and created again by the next publish, starts over
// at offset 0 under a new id. The runner remembers the id its offset was
// read on, so it notices the change even when the new topic has already
// grown past that offset.
type TopicIDs interface {
	// CommittedID is Committed plus the topic's id, read together; an
	// offset committed on an earlier life of the topic is not returned.
	CommittedID(ctx context.Context, group, topic string, partition int32) (next int64, ok bool, topicID string, err error)
	// HighWatermarkID is HighWatermark plus the topic's id, read together
	// ("" when the topic does not exist).
	HighWatermarkID(ctx context.Context, topic string, partition int32) (int64, string, error)
	// CommitOn commits unless the topic's id is no longer topicID
	// (then it fails with topic.ErrTopicRecreated).
	CommitOn(ctx context.Context, group, topic string, partition int32, next int64, topicID string) error
}

var _ TopicIDs = (*topic.Redis)(nil)

// noTopicIDs serves a transport without topic ids: every topic has the id
// "", so only an offset past the partition's end shows a reset.
type noTopicIDs struct{ StreamTransport }

func (n noTopicIDs) CommittedID(ctx context.Context, group, t string, p int32) (int64, bool, string, error) {
	next, ok, err := n.Committed(ctx, group, t, p)
	return next, ok, "", err
}

func (n noTopicIDs) HighWatermarkID(ctx context.Context, t string, p int32) (int64, string, error) {
	hw, err := n.HighWatermark(ctx, t, p)
	return hw, "", err
}

func (n noTopicIDs) CommitOn(ctx context.Context, group, t string, p int32, next int64, _ string) error {
	return n.Commit(ctx, group, t, p, next)
}

func (r *SinkRunner) topicIDs() TopicIDs {
	if ids, ok := r.Transport.(TopicIDs); ok {
		return ids
	}
	return noTopicIDs{r.Transport}
}

// SinkRunner is the long-lived host of one sink (`rivven-connect run
// sink`): one consumer per topic partition feeding the same Handler the
// serverless hosts call, committing the group's offset after each batch
// and redelivering failed records after a backoff. The handler's ledger
// (DeliveryOrdered) makes a redelivery after a crash a no-op.
type SinkRunner struct {
	Handler     *Handler
	Transport   StreamTransport
	Topics      []string
	Group       string
	StartOffset string // earliest | latest | RFC 3339 (default earliest)
	// Retry is the redelivery backoff of failed records (settings.retry).
	Retry resilience.Policy
	// Backoff is the restart backoff after transport or health check
	// errors (default RestartBackoff: 1 s ×2 up to 60 s).
	Backoff   Backoff
	BatchSize int           // default 1024, or the sink's Batcher policy
	Wait      time.Duration // how long a fetch blocks for new messages (default 1 s)
	// Linger is how long a partial batch may wait for more records (the
	// sink's Batcher policy; 0 = deliver what one fetch returns).
	Linger time.Duration
	Clock  Clock
	Log    *slog.Logger
	// Fencer, with an epoch in the handler's status, lets an idle
	// instance notice that a newer one took over (a busy one learns it
	// from its next batch) every FenceCheck (default 5 s).
	Fencer     state.Fencer
	FenceCheck time.Duration
	// CommitEvery is offset_commit_interval: a partition's offset is
	// committed once at least that many records were consumed since its
	// last commit, and besides whenever the consumer has caught up with
	// the partition's end, before it waits to redeliver a failed record,
	// and when it stops. Fewer commits cost fewer round trips; what a
	// crash makes it read again is recognised by the ledger. ≤ 1 commits
	// after every batch.
	CommitEvery int
	// MaxInFlight is rate_limit.max_in_flight: how many of the sink's
	// partitions may hold a batch at once, from reading it to the sink's
	// answer for it (0 = one per partition). A partition waits for data
	// without a slot, so an idle one holds none back.
	MaxInFlight int

	inflight chan struct{}
	lagMu    sync.Mutex
	lags     map[string]int64 // per "topic:partition"
}

// NewSinkRunner builds the runner for sinks.<name> on a durable transport;
// the handler comes from NewSinkHandler with d (set d.Delivery to
// DeliveryOrdered and d.Epoch to the instance's epoch).
func NewSinkRunner(ctx context.Context, p *config.Pipeline, name string, f Factory, tr StreamTransport, d Deps) (*SinkRunner, error) {
	h, err := NewSinkHandler(ctx, p, name, f, d)
	if err != nil {
		return nil, err
	}
	s := p.Sinks[name]
	r := &SinkRunner{
		Handler: h, Transport: tr, Topics: s.Topics, Group: ConsumerGroup(p, name), StartOffset: s.StartOffset,
		Retry: RetryPolicy(p), Log: d.log(), CommitEvery: s.OffsetCommitInterval,
	}
	if s.RateLimit != nil {
		r.MaxInFlight = s.RateLimit.MaxInFlight
	}
	if _, ok := h.Sink.(Batcher); ok {
		r.BatchSize, r.Linger = batchPolicy(h.Sink, 0)
	}
	if f, ok := d.Store.(state.Fencer); ok && d.Epoch > 0 {
		r.Fencer = f
	}
	return r, nil
}

func (r *SinkRunner) defaults() {
	if r.Backoff == (Backoff{}) {
		r.Backoff = RestartBackoff
	}
	if r.Clock == nil {
		r.Clock = RealClock{}
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	if r.BatchSize <= 0 {
		r.BatchSize = 1024
	}
	if r.Wait <= 0 {
		r.Wait = time.Second
	}
	if r.FenceCheck <= 0 {
		r.FenceCheck = 5 * time.Second
	}
	if r.Retry.Initial <= 0 {
		r.Retry = resilience.Policy{Initial: 100 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.1}
	}
	if r.MaxInFlight > 0 && r.inflight == nil {
		r.inflight = make(chan struct{}, r.MaxInFlight)
	}
}

// acquire takes an in-flight slot (MaxInFlight); false when ctx ended
// first.
func (r *SinkRunner) acquire(ctx context.Context) bool {
	if r.inflight == nil {
		return true
	}
	select {
	case r.inflight <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *SinkRunner) release() {
	if r.inflight != nil {
		<-r.inflight
	}
}

// Run consumes until ctx is done (then it returns nil after in-flight
// batches), the sink goes Failed (ErrSinkFailed), or a newer instance
// fences this one (an error matching state.ErrFenced).
func (r *SinkRunner) Run(ctx context.Context) error {
	r.defaults()
	r.Handler.init()
	st := r.Handler.Status
	defer func() {
		if err := r.Handler.Close(context.WithoutCancel(ctx)); err != nil {
			r.Log.Error("sink close failed", "sink", r.Handler.Name, "error", err)
		}
	}()
	// Health check before Running, retried with the restart backoff: a
	// target that is down at startup is waited for, not given up on.
	for attempt := 1; ; attempt++ {
		err := r.Handler.Start(ctx)
		if err == nil {
			break
		}
		st.SetState(Starting)
		delay := r.Backoff.Delay(attempt)
		r.Log.Warn("sink health check failed; retrying", "sink", r.Handler.Name, "error", err, "attempt", attempt, "in", delay)
		if r.Clock.Sleep(ctx, delay) != nil {
			return nil
		}
		st.Restarts.Add(1)
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if epoch := st.Epoch.Load(); r.Fencer != nil && epoch > 0 {
		wctx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			defer secrets.Crash()
			r.watchEpoch(wctx, epoch, stop)
		}()
		defer func() { stopWatch(); <-watched }()
	}
	var wg sync.WaitGroup
	for _, t := range r.Topics {
		var n int
		err := r.retry(ctx, "look up topic "+t, func() (err error) { n, err = r.Transport.Partitions(ctx, t); return })
		if err != nil {
			break // ctx done
		}
		for p := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer secrets.Crash()
				if err := r.consume(ctx, t, int32(p)); err != nil {
					stop(err)
				}
			}()
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		st.Fail(err)
		st.SetState(Failed)
		return err
	}
	if st.State() != Failed {
		st.SetState(Stopped)
	}
	return nil
}

// watchEpoch stops the run with the fencing error once a newer instance
// of the sink holds its epoch.
func (r *SinkRunner) watchEpoch(ctx context.Context, epoch int64, stop context.CancelCauseFunc) {
	t := time.NewTicker(r.FenceCheck)
	defer t.Stop()
	name := SinkStateName(r.Handler.Name)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if cur, err := r.Fencer.Epoch(ctx, name); err == nil && cur > epoch {
			stop(&state.FencedError{Connector: name, Epoch: epoch, Current: cur})
			return
		}
	}
}

// retry runs fn until it succeeds or ctx is done, waiting the restart
// backoff between attempts: transport errors (Redis restarting, a network
// blip) are outlived, never fatal.
func (r *SinkRunner) retry(ctx context.Context, what string, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		r.Handler.Status.Fail(err)
		delay := r.Backoff.Delay(attempt)
		r.Log.Warn("sink transport error; retrying", "sink", r.Handler.Name, "op", what, "error", err, "in", delay)
		if r.Clock.Sleep(ctx, delay) != nil {
			return ctx.Err()
		}
		r.Handler.Status.Restarts.Add(1)
	}
}

// setLag records one partition's lag and publishes the sum.
func (r *SinkRunner) setLag(stream string, lag int64) {
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	if r.lags == nil {
		r.lags = map[string]int64{}
	}
	r.lags[stream] = lag
	var sum int64
	for _, l := range r.lags {
		sum += l
	}
	r.Handler.Status.Lag.Store(sum)
}

func (r *SinkRunner) startOffset(ctx context.Context, t string, p int32) (int64, error) {
	switch so := r.StartOffset; so {
	case "", "earliest":
		return 0, nil
	case "latest":
		return r.Transport.HighWatermark(ctx, t, p)
	default:
		ts, err := time.Parse(time.RFC3339, so)
		if err != nil {
			return 0, resilience.New(resilience.Fatal, fmt.Errorf("start_offset %q: %w", so, err))
		}
		return r.Transport.OffsetForTime(ctx, t, p, ts)
	}
}

// cursor is where a partition's consumer stands: the next offset, and the
// id of the topic that offset belongs to.
type cursor struct {
	offset int64
	id     string
}

// resume is where a partition's consumer starts: the group's committed
// offset, or start_offset without one. A committed offset past the end
// of the partition means the topic went back in time (Redis restarted
// empty, the topic deleted and created again): it is logged and the
// consumer starts per start_offset.
func (r *SinkRunner) resume(ctx context.Context, ids TopicIDs, t string, p int32) (cursor, error) {
	next, ok, id, err := ids.CommittedID(ctx, r.Group, t, p)
	if err != nil {
		return cursor{}, err
	}
	if !ok {
		off, err := r.startOffset(ctx, t, p)
		return cursor{off, id}, err
	}
	hw, hwID, err := ids.HighWatermarkID(ctx, t, p)
	if err != nil {
		return cursor{}, err
	}
	switch {
	case hwID != id:
		return r.restart(ctx, ids, t, p, cursor{next, id}, hw, hwID, "the topic was recreated")
	case next > hw:
		return r.restart(ctx, ids, t, p, cursor{next, id}, hw, hwID, "the committed offset is past the end of the partition")
	}
	return cursor{next, id}, nil
}

// restart moves a partition's consumer that found its topic gone back in
// time to start_offset on the topic as it is now, says so at warn, and
// commits the new position so that a restart of the sink does not
// compute it again (a "latest" would then skip what came meanwhile).
func (r *SinkRunner) restart(ctx context.Context, ids TopicIDs, t string, p int32, was cursor, hw int64, id, why string) (cursor, error) {
	off, err := r.startOffset(ctx, t, p)
	if err != nil {
		return cursor{}, err
	}
	so := r.StartOffset
	if so == "" {
		so = "earliest"
	}
	r.Log.Warn("topic went back in time; resuming per start_offset", "sink", r.Handler.Name, "topic", t, "partition", p,
		"reason", why, "offset", was.offset, "end", hw, "topic_id", was.id, "new_topic_id", id, "start_offset", so, "resume_at", off)
	if err := ids.CommitOn(ctx, r.Group, t, p, off, id); err != nil && !errors.Is(err, topic.ErrTopicRecreated) {
		r.Log.Warn("offset commit failed", "sink", r.Handler.Name, "topic", t, "partition", p, "error", err)
	}
	return cursor{off, id}, nil
}

// check compares the consumer's position with the partition as it is now
// (its end and the topic's id) and returns the end, and a new position
// when the topic went back in time. A consumer that has read nothing of a
// topic that did not exist yet (offset 0, no id) simply adopts its id.
func (r *SinkRunner) check(ctx context.Context, ids TopicIDs, t string, p int32, c cursor) (hw int64, next cursor, reset bool, err error) {
	hw, id, err := ids.HighWatermarkID(ctx, t, p)
	if err != nil {
		return 0, c, false, err
	}
	switch {
	case id != c.id && c.id == "" && c.offset == 0:
		c.id = id
	case id != c.id:
		next, err = r.restart(ctx, ids, t, p, c, hw, id, "the topic was recreated")
		return hw, next, true, err
	case c.offset > hw:
		next, err = r.restart(ctx, ids, t, p, c, hw, id, "the offset is past the end of the partition")
		return hw, next, true, err
	}
	return hw, c, false, nil
}

// consume feeds one partition to the handler. It returns an error only
// when the sink can go on no more (Failed, fenced).
func (r *SinkRunner) consume(ctx context.Context, t string, p int32) error {
	c := &partConsumer{r: r, ids: r.topicIDs(), t: t, p: p, group: resilience.StreamOf(t, p)}
	err := r.retry(ctx, "read committed offset", func() (err error) {
		c.cur, err = r.resume(ctx, c.ids, t, p)
		return err
	})
	if err != nil {
		return nil
	}
	c.committed = c.cur.offset
	c.recs = make([]Record, 0, r.BatchSize)
	// What was consumed is committed when the consumer stops, however it
	// stops, so that a restart does not read it again.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		c.commit(cctx)
	}()
	for ctx.Err() == nil {
		if r.inflight != nil {
			// Wait for data without a slot, so that an idle partition
			// holds none back from the busy ones.
			var peek []topic.Message
			if err := r.retry(ctx, "fetch", func() (err error) {
				peek, err = c.fetch(ctx, c.cur.offset, 1, false)
				return
			}); err != nil {
				continue
			}
			if len(peek) == 0 {
				// Nothing to read: still notice a topic that went back
				// in time (its offsets may never reach ours again).
				_, _ = c.checkEnd(ctx)
				continue
			}
		}
		if !r.acquire(ctx) {
			break
		}
		stop, err := c.batch(ctx)
		r.release()
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// partConsumer is the state of one partition's consumer.
type partConsumer struct {
	r     *SinkRunner
	ids   TopicIDs
	t     string
	p     int32
	group string // the partition's ordering group
	cur   cursor // where the next fetch starts
	// committed is the offset last committed; cur.offset runs ahead of
	// it by fewer than CommitEvery records between commits.
	committed int64
	recs      []Record
	failures  int // consecutive batches with failed records
}

func (c *partConsumer) fetch(ctx context.Context, from int64, limit int, _ bool) ([]topic.Message, error) {
	wait := c.r.Wait
	if d, ok := ctx.Deadline(); ok {
		if wait = min(wait, time.Until(d)); wait <= 0 {
			return nil, nil
		}
	}
	return c.r.Transport.Fetch(ctx, c.t, c.p, from, limit, wait)
}

// commit commits what was consumed since the last commit.
func (c *partConsumer) commit(ctx context.Context) {
	if c.cur.offset <= c.committed {
		return
	}
	// A topic recreated since the check is noticed by the next one.
	if err := c.ids.CommitOn(ctx, c.r.Group, c.t, c.p, c.cur.offset, c.cur.id); err != nil && !errors.Is(err, topic.ErrTopicRecreated) {
		// The ledger already knows what was written; the commit only
		// saves re-reading it.
		c.r.Log.Warn("offset commit failed", "sink", c.r.Handler.Name, "topic", c.t, "partition", c.p, "error", err)
	}
	c.committed = c.cur.offset
}

// checkEnd compares the position with the partition as it is now (see
// SinkRunner.check), moves it when the topic went back in time and
// records the lag; it returns the partition's end and whether it reset.
func (c *partConsumer) checkEnd(ctx context.Context) (hw int64, reset bool) {
	if err := c.r.retry(ctx, "read end offset", func() (err error) {
		hw, c.cur, reset, err = c.r.check(ctx, c.ids, c.t, c.p, c.cur)
		return err
	}); err != nil {
		return 0, true // ctx done
	}
	if reset {
		c.committed = c.cur.offset // restart committed it
	}
	c.r.setLag(c.group, max(hw-c.cur.offset, 0))
	return hw, reset
}

// batch reads one batch, hands it to the handler and commits as
// CommitEvery says. stop ends the partition's consumer (ctx done); err
// the whole sink (Failed, fenced).
func (c *partConsumer) batch(ctx context.Context) (stop bool, err error) {
	r, h := c.r, c.r.Handler
	var msgs []topic.Message
	if err := r.retry(ctx, "fetch", func() (err error) {
		msgs, err = gather(ctx, r.BatchSize, r.Linger, c.cur.offset, c.fetch)
		return
	}); err != nil {
		return false, nil
	}
	// What was fetched is only used once the topic is known to be the
	// one the offset belongs to: after a Redis restarted empty, a fetch
	// from the old offset returns the new topic's messages from there
	// on, and everything before them would be skipped.
	hw, reset := c.checkEnd(ctx)
	if reset || len(msgs) == 0 {
		return false, nil
	}
	recs := c.recs[:0]
	for _, m := range msgs {
		rec := Record{ID: strconv.FormatInt(m.Offset, 10), Topic: c.t, TopicID: c.cur.id, Partition: c.p, Offset: m.Offset, HasOffset: true, Raw: m.Value, Group: c.group}
		rec.Event, rec.DecodeErr = events.DecodeAny(m.Value)
		recs = append(recs, rec)
	}
	c.recs = recs
	res, err := h.Handle(ctx, recs)
	switch {
	case errors.Is(err, ErrSinkFailed):
		return true, err
	case errors.Is(err, state.ErrFenced):
		return true, err
	case err != nil && len(res.FailedIdx) == 0:
		return true, err // not a per-batch failure the trigger could retry
	}
	next := msgs[len(msgs)-1].Offset + 1
	if len(res.FailedIdx) > 0 {
		next = recs[res.FailedIdx[0]].Offset
	}
	c.cur.offset = max(c.cur.offset, next)
	// Commit every CommitEvery records, once caught up with the end
	// (nothing more to read now), and before waiting to redeliver.
	if len(res.FailedIdx) > 0 || c.cur.offset >= hw || c.cur.offset-c.committed >= int64(max(r.CommitEvery, 1)) {
		c.commit(ctx)
	}
	r.setLag(c.group, max(hw-c.cur.offset, 0))
	if len(res.FailedIdx) == 0 {
		c.failures = 0
		return false, nil
	}
	c.failures++
	delay := r.Retry.Delay(c.failures, rand.Float64())
	if res.ProbeIn > 0 {
		// The breaker is open: nothing is written before its next probe,
		// and a grown backoff would hold the probe back seconds past
		// reset_timeout_secs.
		delay = res.ProbeIn
	}
	// The slot is held through the wait: the batch is not answered yet.
	return r.Clock.Sleep(ctx, delay) != nil, nil
}
