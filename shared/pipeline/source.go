package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/ratelimit"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
)

// SourceRunner runs one source: it reads, applies source transforms,
// publishes to the topic (key-partitioned, order kept per key), commits the
// position once the publish is stored, and restarts the source with backoff
// when it fails.
type SourceRunner struct {
	Name            string // pipeline name of the source
	Source          Source
	Transforms      Transform // may be nil
	Topic           string
	DeadLetterTopic string // "" = <Topic>.dlq
	Producer        topic.Producer
	Store           state.Store
	Codec           events.Codec // nil = Rivven JSON
	Status          *Status
	Log             *slog.Logger
	// Metrics, when set, receives the source's own metrics (Runtime).
	Metrics *telemetry.Registry
	Backoff Backoff // zero = RestartBackoff
	Clock   Clock   // nil = RealClock
	// Budget, when set, is shared by all sources: each event published takes
	// one; the source stops once it is spent (local --max-events).
	Budget *Budget
	// CheckTimeout bounds the health check (default 30 s).
	CheckTimeout time.Duration
	// Fencer, when set, gives this instance an epoch when it starts and
	// fences every commit with it: once a newer instance of the same
	// source starts, this one's commits (and, on a FencedProducer, its
	// publishes) are refused and it stops with state.ErrFenced.
	// NewSourceRunner takes it from the store.
	Fencer state.Fencer
	// FenceCheck is how often a fenced runner checks for a newer instance
	// while its source is quiet (default 5 s); a busy source learns it at
	// its next publish anyway.
	FenceCheck time.Duration
	// ProgressEvery, when set, logs the progress of the source's long
	// tasks (a snapshot's tables) that often: rows done of the estimate,
	// percent, rate and time left. `run` sets it; `local` shows the same
	// in its status display instead.
	ProgressEvery time.Duration

	epoch int64
	// Limiter, when set, holds the source's rate_limit.
	Limiter ratelimit.Limiter
}

// FencedProducer is a transport that enforces fencing itself and keeps the
// source position with the data: topic.Redis. With one, a stale instance's
// publish is refused in the same atomic step that would store it, and a
// batch and its position are stored together, so a crash between publish
// and commit neither loses nor repeats the batch.
type FencedProducer interface {
	// Claim fences every older instance of producer out of topic.
	Claim(ctx context.Context, topic, producer string, epoch int64) error
	// ProduceFenced publishes under the fence, storing f.Position with it.
	ProduceFenced(ctx context.Context, topic string, msgs []topic.Message, f topic.Fence) error
	// LastPosition is the position stored with producer's last publish.
	LastPosition(ctx context.Context, topic, producer string) ([]byte, error)
}

// Budget is a shared count of events left to publish.
type Budget struct{ left atomic.Int64 }

// NewBudget returns a budget of n events.
func NewBudget(n int64) *Budget {
	b := &Budget{}
	b.left.Store(n)
	return b
}

// take reserves up to n events and returns how many were granted.
func (b *Budget) take(n int) int {
	for {
		left := b.left.Load()
		if left <= 0 {
			return 0
		}
		grant := min(int64(n), left)
		if b.left.CompareAndSwap(left, left-grant) {
			return int(grant)
		}
	}
}

// Left returns the events still allowed.
func (b *Budget) Left() int64 { return max(b.left.Load(), 0) }

// errBudgetSpent stops a source cleanly once the budget is used up.
var errBudgetSpent = errors.New("event budget spent")

// positionKey is the offset key a source's position is stored under.
const positionKey = "position"

// Run runs the source until it finishes, ctx is done, or it fails with a
// fatal error. It returns nil on a clean stop.
func (r *SourceRunner) Run(ctx context.Context) error {
	r.defaults()
	if r.ProgressEvery > 0 {
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		secrets.Go(func() { r.logProgress(pctx, r.ProgressEvery) })
	}
	attempt := 0
	for {
		published, err := r.runOnce(ctx)
		switch {
		case err == nil || errors.Is(err, errBudgetSpent):
			r.Status.SetState(Stopped)
			return nil
		case ctx.Err() != nil:
			r.Status.SetState(Stopped)
			return nil
		case errors.Is(err, state.ErrFenced):
			r.Status.Fail(err)
			r.Status.SetState(Failed)
			r.Log.Error("source fenced: a newer instance took over; this one stops", "source", r.Name, "epoch", r.epoch, "error", err)
			return Fatal(err)
		case errors.Is(err, ErrFatal):
			r.Status.Fail(err)
			r.Status.SetState(Failed)
			r.Log.Error("source failed; not restarting", "source", r.Name, "error", err)
			return err
		}
		r.Status.Fail(err)
		if published {
			attempt = 0 // it ran healthily since the last restart
		}
		attempt++
		delay := r.Backoff.Delay(attempt)
		r.Status.SetState(Starting)
		r.Log.Warn("source failed; restarting", "source", r.Name, "error", err, "attempt", attempt, "in", delay)
		if r.Clock.Sleep(ctx, delay) != nil {
			r.Status.SetState(Stopped)
			return nil
		}
		r.Status.Restarts.Add(1)
	}
}

func (r *SourceRunner) defaults() {
	if r.Backoff == (Backoff{}) {
		r.Backoff = RestartBackoff
	}
	if r.Clock == nil {
		r.Clock = RealClock{}
	}
	if r.Codec == nil {
		r.Codec = events.Rivven
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	if r.DeadLetterTopic == "" {
		r.DeadLetterTopic = r.Topic + ".dlq"
	}
	if r.CheckTimeout == 0 {
		r.CheckTimeout = 30 * time.Second
	}
	if r.FenceCheck == 0 {
		r.FenceCheck = 5 * time.Second
	}
}

// fenced reports whether publishes and commits carry an epoch.
func (r *SourceRunner) fenced() bool { return r.epoch > 0 }

// takeEpoch gives the instance its epoch on first start (a restart of the
// same instance keeps it: if someone took over meanwhile, the next commit
// says so) and claims its topics before anything is read, so that from
// this moment no older instance can publish to them.
func (r *SourceRunner) takeEpoch(ctx context.Context) error {
	if r.Fencer == nil || r.epoch != 0 {
		return nil
	}
	e, err := r.Fencer.AcquireEpoch(ctx, r.Name, r.Clock.Now())
	if err != nil {
		return fmt.Errorf("acquire epoch: %w", err)
	}
	if fp, ok := r.Producer.(FencedProducer); ok {
		for _, t := range []string{r.Topic, r.DeadLetterTopic} {
			if err := fp.Claim(ctx, t, r.Name, e); err != nil {
				return err
			}
		}
	}
	r.epoch = e
	r.Status.Epoch.Store(e)
	r.Log.Info("source instance holds its epoch; older instances are fenced", "source", r.Name, "epoch", e)
	return nil
}

// resumePosition is where the source continues: the position stored with
// the last publish when the transport keeps one (it is never behind the
// committed one), else the committed position.
func (r *SourceRunner) resumePosition(ctx context.Context) ([]byte, error) {
	if fp, ok := r.Producer.(FencedProducer); ok && r.fenced() {
		pos, err := fp.LastPosition(ctx, r.Topic, r.Name)
		if err != nil || pos != nil {
			return pos, err
		}
	}
	return r.Store.Offset(ctx, r.Name, positionKey)
}

// watchEpoch stops the run with the fencing error once a newer instance
// holds the source, so an idle instance does not linger after a takeover.
func (r *SourceRunner) watchEpoch(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(r.FenceCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := r.Fencer.Epoch(ctx, r.Name)
		if err == nil && cur > r.epoch {
			stop(&state.FencedError{Connector: r.Name, Epoch: r.epoch, Current: cur})
			return
		}
	}
}

// runOnce runs the source once; published says whether any batch went out.
func (r *SourceRunner) runOnce(ctx context.Context) (published bool, err error) {
	r.Status.SetState(Starting)
	if c, ok := r.Source.(Checker); ok {
		cctx, cancel := context.WithTimeout(ctx, r.CheckTimeout)
		err := c.Check(cctx)
		cancel()
		if err != nil {
			return false, fmt.Errorf("health check: %w", err)
		}
	}
	if err := r.takeEpoch(ctx); err != nil {
		return false, err
	}
	resume, err := r.resumePosition(ctx)
	if err != nil {
		return false, fmt.Errorf("read position: %w", err)
	}
	if r.Budget != nil && r.Budget.Left() == 0 {
		return false, errBudgetSpent
	}
	r.Status.SetState(Running)
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if r.fenced() {
		watched := make(chan struct{})
		wctx, stopWatch := context.WithCancel(rctx)
		go func() {
			defer close(watched)
			defer secrets.Crash()
			r.watchEpoch(wctx, cancel)
		}()
		defer func() { stopWatch(); <-watched }()
	}
	em := &sourceEmitter{r: r, cancel: cancel}
	err = r.Source.Read(WithRuntime(rctx, &Runtime{Name: r.Name, Log: r.Log, Metrics: r.Metrics, Tasks: r.Status}), resume, em)
	switch cause := context.Cause(rctx); {
	case errors.Is(cause, errBudgetSpent):
		err = errBudgetSpent
	case errors.Is(cause, state.ErrFenced) && (err == nil || !errors.Is(err, state.ErrFenced)):
		err = cause
	}
	if c, ok := r.Source.(Closer); ok {
		if cerr := c.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = cerr
		}
	}
	return em.published, err
}

type sourceEmitter struct {
	r         *SourceRunner
	cancel    context.CancelCauseFunc
	published bool
	buf       []byte
	bufHint   int
	msgs      []topic.Message
}

// Emit transforms, publishes and commits one batch.
func (em *sourceEmitter) Emit(ctx context.Context, batch []*events.Event) error {
	r := em.r
	if len(batch) == 0 {
		return nil
	}
	spent := false
	if r.Budget != nil {
		n := r.Budget.take(len(batch))
		if n < len(batch) {
			batch, spent = batch[:n], true
		}
		if n == 0 {
			em.cancel(errBudgetSpent)
			return errBudgetSpent
		}
	}
	if r.Limiter != nil {
		if err := r.Limiter.Wait(ctx, len(batch)); err != nil {
			return err
		}
	}
	position := batch[len(batch)-1].Metadata.Position
	r.Status.EventsIn.Add(uint64(len(batch)))
	out := batch
	if r.Transforms != nil {
		var err error
		out, err = r.Transforms.Apply(ctx, batch)
		var te *TransformError
		if errors.As(err, &te) {
			if err := em.deadLetter(ctx, te); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("transforms: %w", err)
		}
		if dropped := len(batch) - len(out) - failedCount(te); dropped > 0 {
			r.Status.Dropped.Add(uint64(dropped))
		}
	}
	spans := sourceSpans(ctx, r.Name, out)
	start := r.Clock.Now()
	err := em.publish(ctx, out, position)
	r.Status.ObserveBatch(r.Clock.Now().Sub(start))
	endSpans(spans, func(int) error { return err })
	if err != nil {
		if errors.Is(err, state.ErrFenced) {
			em.cancel(err)
		}
		return err
	}
	if position != "" {
		var err error
		if r.fenced() {
			err = r.Fencer.CommitOffsetFenced(ctx, r.Name, r.epoch, positionKey, []byte(position))
		} else {
			err = r.Store.CommitOffset(ctx, r.Name, positionKey, []byte(position))
		}
		if err != nil {
			if errors.Is(err, state.ErrFenced) {
				em.cancel(err)
			}
			return fmt.Errorf("commit position: %w", err)
		}
	}
	r.Status.EventsOut.Add(uint64(len(out)))
	em.published = true
	if spent {
		em.cancel(errBudgetSpent)
		return errBudgetSpent
	}
	return nil
}

func failedCount(te *TransformError) int {
	if te == nil {
		return 0
	}
	return len(te.Failed)
}

// send publishes to one topic: fenced (with the position, when given) on a
// FencedProducer, plainly otherwise.
func (em *sourceEmitter) send(ctx context.Context, t string, msgs []topic.Message, position []byte) error {
	r := em.r
	if fp, ok := r.Producer.(FencedProducer); ok && r.fenced() {
		return fp.ProduceFenced(ctx, t, msgs, topic.Fence{Producer: r.Name, Epoch: r.epoch, Position: position})
	}
	if len(msgs) == 0 {
		return nil
	}
	return r.Producer.Produce(ctx, t, msgs)
}

// publish encodes into one buffer and produces per destination topic,
// keeping the batch order within each. The source's own topic goes last
// and carries the position: should the process die between topics, the
// batch is replayed (routed topics may see it twice) rather than skipped.
func (em *sourceEmitter) publish(ctx context.Context, out []*events.Event, position string) error {
	r := em.r
	// The transport keeps the bytes, so each batch gets a fresh buffer,
	// sized from the last one to avoid regrowing.
	em.buf = make([]byte, 0, em.bufHint)
	em.msgs = em.msgs[:0]
	routed := false
	for _, e := range out {
		start := len(em.buf)
		var err error
		em.buf, err = r.Codec.Append(em.buf, e)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		em.msgs = append(em.msgs, topic.Message{Topic: e.Route, Key: e.Key, Value: em.buf[start:len(em.buf):len(em.buf)]})
		routed = routed || e.Route != ""
	}
	em.bufHint = cap(em.buf)
	var pos []byte
	if position != "" {
		pos = []byte(position)
	}
	if !routed {
		return em.send(ctx, r.Topic, em.msgs, pos)
	}
	byTopic := map[string][]topic.Message{}
	var order []string
	for _, m := range em.msgs {
		t := m.Topic
		if t == "" {
			t = r.Topic
		}
		if _, ok := byTopic[t]; !ok {
			order = append(order, t)
		}
		byTopic[t] = append(byTopic[t], m)
	}
	for _, t := range order {
		if t == r.Topic {
			continue
		}
		if err := em.send(ctx, t, byTopic[t], nil); err != nil {
			return err
		}
	}
	return em.send(ctx, r.Topic, byTopic[r.Topic], pos)
}

func (em *sourceEmitter) deadLetter(ctx context.Context, te *TransformError) error {
	r := em.r
	msgs := make([]topic.Message, 0, len(te.Failed))
	for _, f := range te.Failed {
		payload, _ := r.Codec.Append(nil, f.Event)
		dl := events.DeadLetter{
			OriginalTopic: r.Topic, ConnectorName: r.Name, PayloadB64: payload,
			Error: f.Err.Error(), Timestamp: r.Clock.Now().UTC(), Stage: "transform",
		}
		b, err := dl.Marshal()
		if err != nil {
			return err
		}
		msgs = append(msgs, topic.Message{Key: f.Event.Key, Value: b})
	}
	if err := em.send(ctx, r.DeadLetterTopic, msgs, nil); err != nil {
		return fmt.Errorf("dead-letter %d event(s): %w", len(msgs), err)
	}
	r.Status.NoteDeadLetters(len(msgs), "transform: "+te.Failed[0].Err.Error())
	r.Log.Warn("events dead-lettered", "source", r.Name, "count", len(msgs), "topic", r.DeadLetterTopic, "first_error", te.Failed[0].Err)
	return nil
}

// logProgress logs one line per long task every interval while it is in
// progress, with the rate over the last interval and, when the total is
// known, the percent done and the time left at that rate.
func (r *SourceRunner) logProgress(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var m ProgressMeter
	m.Measure(time.Now(), r.Status.Progress())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range m.Measure(time.Now(), r.Status.Progress()) {
			attrs := []any{"source", r.Name, "task", p.Task, "done", p.Done, "rate_per_sec", int64(p.Rate)}
			if p.Total > 0 {
				attrs = append(attrs, "total", p.Total, "percent", p.Percent)
			}
			if p.ETA > 0 {
				attrs = append(attrs, "eta", p.ETA.String())
			}
			r.Log.Info("progress", attrs...)
		}
	}
}
