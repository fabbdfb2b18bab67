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

	lagMu sync.Mutex
	lags  map[string]int64 // per "topic:partition"
}

// NewSinkRunner builds the runner for sinks.<name> on a durable transport;
// the handler comes from NewSinkHandler with d (set d.Delivery to
// DeliveryOrdered and d.Epoch to the instance's epoch).
func NewSinkRunner(p *config.Pipeline, name string, f Factory, tr StreamTransport, d Deps) (*SinkRunner, error) {
	h, err := NewSinkHandler(p, name, f, d)
	if err != nil {
		return nil, err
	}
	s := p.Sinks[name]
	r := &SinkRunner{
		Handler: h, Transport: tr, Topics: s.Topics, Group: ConsumerGroup(p, name), StartOffset: s.StartOffset,
		Retry: RetryPolicy(p), Log: d.log(),
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

// consume feeds one partition to the handler. It returns an error only
// when the sink can go on no more (Failed, fenced).
func (r *SinkRunner) consume(ctx context.Context, t string, p int32) error {
	h := r.Handler
	var offset int64
	err := r.retry(ctx, "read committed offset", func() error {
		next, ok, err := r.Transport.Committed(ctx, r.Group, t, p)
		if err != nil || ok {
			offset = next
			return err
		}
		offset, err = r.startOffset(ctx, t, p)
		return err
	})
	if err != nil {
		return nil
	}
	failures := 0
	recs := make([]Record, 0, r.BatchSize)
	// The partition is consumed in order: a failed record holds back the
	// rest of its batch, which is fetched again from it.
	group := resilience.StreamOf(t, p)
	fetch := func(fctx context.Context, from int64, limit int, _ bool) ([]topic.Message, error) {
		wait := r.Wait
		if d, ok := fctx.Deadline(); ok {
			if wait = min(wait, time.Until(d)); wait <= 0 {
				return nil, nil
			}
		}
		return r.Transport.Fetch(fctx, t, p, from, limit, wait)
	}
	for ctx.Err() == nil {
		var msgs []topic.Message
		if err := r.retry(ctx, "fetch", func() (err error) {
			msgs, err = gather(ctx, r.BatchSize, r.Linger, offset, fetch)
			return
		}); err != nil || len(msgs) == 0 {
			continue
		}
		recs = recs[:0]
		for _, m := range msgs {
			rec := Record{ID: strconv.FormatInt(m.Offset, 10), Topic: t, Partition: p, Offset: m.Offset, Raw: m.Value, Group: group}
			rec.Event, rec.DecodeErr = events.DecodeAny(m.Value)
			recs = append(recs, rec)
		}
		res, err := h.Handle(ctx, recs)
		switch {
		case errors.Is(err, ErrSinkFailed):
			return err
		case errors.Is(err, state.ErrFenced):
			return err
		case err != nil && len(res.FailedIdx) == 0:
			return err // not a per-batch failure the trigger could retry
		}
		next := msgs[len(msgs)-1].Offset + 1
		if len(res.FailedIdx) > 0 {
			next = recs[res.FailedIdx[0]].Offset
		}
		if next > offset {
			if cerr := r.Transport.Commit(ctx, r.Group, t, p, next); cerr != nil {
				// The ledger already knows what was written; the commit
				// only saves re-reading it.
				r.Log.Warn("offset commit failed", "sink", h.Name, "topic", t, "partition", p, "error", cerr)
			}
			offset = next
		}
		if hw, herr := r.Transport.HighWatermark(ctx, t, p); herr == nil {
			r.setLag(resilience.StreamOf(t, p), hw-offset)
		}
		if len(res.FailedIdx) == 0 {
			failures = 0
			continue
		}
		failures++
		if r.Clock.Sleep(ctx, r.Retry.Delay(failures, rand.Float64())) != nil {
			return nil
		}
	}
	return nil
}
