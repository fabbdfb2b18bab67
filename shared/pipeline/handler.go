package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/ratelimit"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Record is one delivered message as every host sees it: an SQS message, a
// Kafka record, a Pub/Sub push, a local topic entry.
type Record struct {
	ID    string // what the trigger wants back for a partial failure
	Topic string
	// TopicID names the life of the topic the offset belongs to, when the
	// transport tells one from the next (Redis Streams): a topic created
	// again starts over at offset 0, and the ledger must not take its
	// records for the old topic's.
	TopicID   string
	Partition int32
	Offset    int64
	// Attempt is the delivery attempt (1 on first delivery), when the
	// trigger knows it; records past the retry limit are dead-lettered.
	Attempt int
	// Group is the ordering scope the trigger promises: the SQS FIFO
	// MessageGroupId, the Kafka topic-partition, the Kinesis shard, a
	// Redis Streams partition; "" when records are unordered. Once a
	// record of a group fails, the later records of that group in the
	// batch are held back: not written, reported failed.
	Group string
	// HasOffset says Partition and Offset are a log's (Kafka, MSK, Redis
	// Streams), which sinks may name what they write after (see
	// events.Position).
	HasOffset bool
	// Event is the decoded event; nil when decoding failed (then Raw and
	// DecodeErr say why, and the record is dead-lettered).
	Event     *events.Event
	Raw       []byte
	DecodeErr error

	pos events.Position // what the record's events carry during Write
}

// Result says what a host must report back to its trigger.
type Result struct {
	// Failed lists IDs of records to redeliver, in input order.
	Failed []string
	// FailedIdx lists the same records by index into the input.
	FailedIdx []int
	// DeadLettered counts records sent to the dead-letter topic (these are
	// done: a host acknowledges them).
	DeadLettered int
	// Held counts the failed records that were not tried at all because
	// an earlier record of their ordering group failed.
	Held int
	// ProbeIn, while the circuit breaker is open after this batch, is how
	// long until it admits its next probe: a runner redelivering failed
	// records waits that long rather than its retry backoff, so that the
	// probe goes out when reset_timeout_secs says and not seconds later.
	ProbeIn time.Duration

	deadReasons []string // the first few dead-lettered records, for the log
}

// ErrSinkFailed is returned once a sink has moved to Failed.
var ErrSinkFailed = errors.New("sink is Failed after too many consecutive errors")

// ErrStateUnavailable is returned (classified resilience.Connection) when
// the shared state (Redis) cannot be asked whether a batch may be written:
// then nothing is written, every record is reported failed, and the
// trigger's redelivery retries it once Redis is back.
var ErrStateUnavailable = errors.New("shared state (redis) unavailable; batch not written")

// Handler is the sink side of a pipeline, the one code path every host
// calls with a batch: sink transforms → Write → per-record result.
type Handler struct {
	Name       string // pipeline name of the sink
	Sink       Sink
	Transforms Transform // may be nil
	// DeadLetters takes events that cannot be decoded, transformed or, after
	// MaxAttempts deliveries, written. Required for dead-lettering; without
	// it such records are reported as failed (never dropped).
	DeadLetters     topic.Producer
	DeadLetterTopic string // "" = <record topic>.dlq
	Status          *Status
	Log             *slog.Logger
	// MaxConsecutiveErrors moves the sink to Failed (default 10).
	MaxConsecutiveErrors int
	// MaxAttempts: a record that failed this many deliveries is
	// dead-lettered instead of being retried again (0 = retry forever).
	MaxAttempts int
	Clock       Clock
	// Latency, when set, observes each Write's duration in seconds (a
	// Prometheus histogram fits).
	Latency interface{ Observe(float64) }
	// Ledger, when set, is the sink's shared reliability state in Redis:
	// the fencing check, the fleet-wide circuit breaker and the delivery
	// ledger that recognises redeliveries. It costs at most two round
	// trips per batch (Begin before the write, End after).
	Ledger *resilience.Ledger
	// Limiter, when set, holds the sink's rate_limit before each Write.
	Limiter ratelimit.Limiter
	// Retry (settings.retry) is how often a Write that failed as a whole
	// with a Retry-After (a 429, or a 503 that said when to come back) is
	// tried again within the same batch, after the wait the target asked
	// for, by resilience.Do: a wait that would pass the context's
	// deadline (a Lambda invocation's end) is not started, the batch
	// fails back at once. Other failures go back to the trigger, whose
	// redelivery is the retry. The zero value retries nothing.
	Retry resilience.Policy
	// Rejections, when set, counts batches the open breaker refused
	// (the <connector>.circuit_breaker.rejected metric).
	Rejections interface{ Inc() }
	// Metrics, when set, receives the sink's own metrics (Runtime).
	Metrics *telemetry.Registry

	once sync.Once
	// life lets batches run at once (read side) and Close wait for them.
	life sync.RWMutex
	// mu guards the health check and the consecutive-error count.
	mu          sync.Mutex
	checked     atomic.Bool // the health check passed (set under mu)
	consecutive int
	// writeMu serialises Write unless the sink is a ConcurrentWriter:
	// sinks need not be safe for concurrent use. Only the write waits;
	// ledger round trips and transforms of concurrent batches overlap.
	writeMu    sync.Mutex
	concurrent bool
	// steps is the transform chain when a step is InPlace (see
	// transformBatch); nil otherwise.
	steps []Transform
	// scratch is the buffers of one batch, reused by the next when no
	// other batch holds them (scratchMu); a concurrent batch makes its own.
	scratchMu sync.Mutex
	scratch   passScratch
	rt        *Runtime
	// probeAt is when the open breaker admits its next probe, as the last
	// batch learned it (unix ns; 0 while it is closed).
	probeAt atomic.Int64
}

func (h *Handler) init() {
	h.once.Do(func() {
		if h.MaxConsecutiveErrors <= 0 {
			h.MaxConsecutiveErrors = 10
		}
		if h.Log == nil {
			h.Log = slog.Default()
		}
		if h.Clock == nil {
			h.Clock = RealClock{}
		}
		if h.Status == nil {
			h.Status = NewStatus(h.Name, "", "sink")
		}
		h.rt = &Runtime{Name: h.Name, Log: h.Log, Metrics: h.Metrics, Tasks: h.Status}
		cw, ok := h.Sink.(ConcurrentWriter)
		h.concurrent = ok && cw.ConcurrentWrites()
		h.steps = chainSteps(h.Transforms)
	})
}

// passScratch is what one Handle call reuses from earlier calls.
type passScratch struct {
	attempt []int
	failed  map[int]error
	one     [1]*events.Event
}

// Start runs the sink's health check and moves it to Running. Hosts call it
// once before the first batch; Handle calls it if they did not.
func (h *Handler) Start(ctx context.Context) error {
	h.init()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.startLocked(ctx)
}

func (h *Handler) startLocked(ctx context.Context) error {
	if h.checked.Load() {
		return nil
	}
	if c, ok := h.Sink.(Checker); ok {
		if err := c.Check(ctx); err != nil {
			h.Status.Fail(err)
			return fmt.Errorf("health check: %w", err)
		}
	}
	h.checked.Store(true)
	h.Status.SetState(Running)
	return nil
}

// Handle processes one batch. It returns an error only when nothing could
// be processed — the sink is Failed, its health check fails, the shared
// state is unreachable (ErrStateUnavailable), or a newer instance fenced
// this one (ErrFatal, state.ErrFenced) — and then every record is in
// Result.Failed; per-record outcomes are in the Result. A batch the open
// circuit breaker refuses is not an error: its records come back failed.
//
// Concurrent calls (a Cloud Run instance taking several pushes) run in
// parallel; only Write is serialised, unless the sink is a
// ConcurrentWriter.
func (h *Handler) Handle(ctx context.Context, recs []Record) (Result, error) {
	h.init()
	h.life.RLock()
	defer h.life.RUnlock()
	sc := &h.scratch
	if h.scratchMu.TryLock() {
		defer h.scratchMu.Unlock()
	} else {
		sc = &passScratch{}
	}
	if sc.failed == nil {
		sc.failed = make(map[int]error)
	}
	clear(sc.failed)
	p := &pass{recs: recs, failed: sc.failed, one: &sc.one}
	if h.Status.State() == Failed {
		p.failAll()
		return p.res, ErrSinkFailed
	}
	if !h.checked.Load() {
		if err := h.Start(ctx); err != nil {
			p.failAll()
			return p.res, err
		}
	}
	h.Status.EventsIn.Add(uint64(len(recs)))
	p.attempt = sc.attempt[:0]
	for i := range recs {
		p.attempt = append(p.attempt, recs[i].Attempt)
	}
	sc.attempt = p.attempt
	if h.Ledger != nil {
		if answered, res, err := h.admit(ctx, p); answered {
			return res, err
		}
	}
	h.transformAll(ctx, p)
	// Records that cannot be written are dead-lettered before the write,
	// so that when dead-lettering fails the later records of their
	// ordering groups can still be held back.
	if len(p.dead) > 0 {
		if h.deadLetterOrFail(ctx, recs, p.attempt, p.dead, p.failed, &p.res) == 0 {
			for _, d := range p.dead {
				p.ord.fail(recs, d.idx)
			}
		}
		p.dead = p.dead[:0]
		p.batch, p.origin = p.ord.filter(recs, p.batch, p.origin, p.failed)
	}
	outcome := h.writeBatch(ctx, p)
	h.expireAttempts(p)
	p.res.Held = len(p.ord.heldIdx)
	h.conclude(ctx, recs, p.attempt, p.dead, p.failed, &p.res)
	if h.Ledger != nil {
		err := h.settle(ctx, recs, p.adm, p.attempt, p.failed, p.ord.heldIdx, outcome, &p.res)
		h.noteProbe(&p.res)
		if err != nil {
			return p.res, err
		}
	}
	return p.res, nil
}

// pass is the work of one Handle call: what became of each record and why.
type pass struct {
	recs []Record
	// attempt[i] is the delivery attempt of recs[i]: the trigger's count
	// when it has one, else the ledger's.
	attempt []int
	adm     resilience.Admission
	batch   []*events.Event // what goes to the sink
	origin  []int           // origin[k] is the record batch[k] came from
	dead    []deadRecord    // to dead-letter
	failed  map[int]error   // to report failed, by record
	ord     ordering
	res     Result
	one     *[1]*events.Event // a record's event, as a batch of one for the transforms
}

func (p *pass) failAll() {
	for i, r := range p.recs {
		p.res.Failed, p.res.FailedIdx = append(p.res.Failed, r.ID), append(p.res.FailedIdx, i)
	}
}

// admit asks the ledger about the batch: which records were written
// before, their attempts, and whether the circuit breaker lets a write
// through. When the state store fails or the breaker refuses, the batch
// is answered here (answered is true) and res and err are Handle's.
func (h *Handler) admit(ctx context.Context, p *pass) (answered bool, res Result, err error) {
	adm, err := h.Ledger.Begin(ctx, h.items(p.recs))
	if err != nil {
		p.failAll()
		return true, p.res, h.stateError(err)
	}
	p.adm = adm
	for i := range p.recs {
		if p.attempt[i] == 0 && adm.Attempts != nil {
			p.attempt[i] = adm.Attempts[i] + 1
		}
	}
	if h.Ledger.Config().Breaker != nil {
		h.noteBreaker(adm.State, adm.Probe, adm.ProbeIn)
	}
	if !adm.Allowed {
		res, err := h.reject(ctx, p.recs, adm, p.attempt)
		return true, res, err
	}
	return false, Result{}, nil
}

// transformAll transforms record by record, so that every output traces
// back to its input (needed to report exactly which records failed), and
// sorts out what cannot be written: redeliveries already written, records
// held back behind a failure of their ordering group, and records that do
// not decode or transform.
func (h *Handler) transformAll(ctx context.Context, p *pass) {
	p.batch = make([]*events.Event, 0, len(p.recs))
	p.origin = make([]int, 0, len(p.recs))
	duplicates := 0
	var whole []int // records for transformBatch, when a step is InPlace
	for i := range p.recs {
		r := &p.recs[i]
		if p.adm.Done != nil && p.adm.Done[i] {
			duplicates++ // a redelivery of a record already written
			continue
		}
		if err := p.ord.held(r); err != nil {
			p.failed[i] = err
			p.ord.hold(i)
			continue
		}
		if r.Event == nil {
			err := r.DecodeErr
			if err == nil {
				err = errors.New("record has no event")
			}
			h.unusable(p, i, "decode", err)
			continue
		}
		if h.Transforms == nil {
			p.batch, p.origin = append(p.batch, r.Event), append(p.origin, i)
			continue
		}
		if h.steps != nil {
			whole = append(whole, i)
			continue
		}
		p.one[0] = r.Event
		out, err := h.Transforms.Apply(ctx, p.one[:])
		var te *TransformError
		switch {
		case errors.As(err, &te):
			h.unusable(p, i, "transform", te.Failed[0].Err)
			continue
		case err != nil:
			h.unusable(p, i, "transform", err)
			continue
		}
		if len(out) == 0 {
			h.Status.Dropped.Add(1)
		}
		for _, e := range out {
			p.batch, p.origin = append(p.batch, e), append(p.origin, i)
		}
	}
	if duplicates > 0 {
		h.Status.Duplicates.Add(uint64(duplicates))
	}
	if len(whole) > 0 {
		h.transformBatch(ctx, p, whole)
	}
}

// chainSteps returns the steps of t when one of them is InPlace (then the
// handler applies the chain step by step to the whole batch), else nil.
func chainSteps(t Transform) []Transform {
	steps, ok := t.(Chain)
	if !ok {
		if t == nil {
			return nil
		}
		steps = Chain{t}
	}
	for _, s := range steps {
		if _, ok := s.(InPlace); ok {
			return steps
		}
	}
	return nil
}

// transformBatch applies the chain step by step to the events of the
// records recs: an InPlace step gets all of them in one call, any other
// step one record's events at a time as in transformAll. Each output keeps
// the index of its record, and a record with an event that failed any step
// is set aside as a whole, as transformAll does.
func (h *Handler) transformBatch(ctx context.Context, p *pass, recs []int) {
	cur := make([]*events.Event, len(recs))
	org := make([]int, len(recs))
	for k, i := range recs {
		cur[k], org[k] = p.recs[i].Event, i
	}
	bad := map[int]bool{}
	setAside := func(i int, err error) {
		if !bad[i] {
			bad[i] = true
			h.unusable(p, i, "transform", err)
		}
	}
	for _, t := range h.steps {
		var nextE []*events.Event
		var nextO []int
		if _, ok := t.(InPlace); ok {
			at := make(map[*events.Event]int, len(cur))
			for k, e := range cur {
				at[e] = k
			}
			// The transform may reuse its input slice: give it a copy.
			out, err := t.Apply(ctx, append([]*events.Event(nil), cur...))
			var te *TransformError
			switch {
			case errors.As(err, &te):
				for _, f := range te.Failed {
					if k, ok := at[f.Event]; ok {
						setAside(org[k], f.Err)
					}
				}
			case err != nil:
				// Not about one event (a cancelled context, say): the
				// records are failed back to the trigger, which retries.
				for _, i := range org {
					if !bad[i] {
						bad[i] = true
						p.failed[i] = fmt.Errorf("transform: %w", err)
						p.ord.fail(p.recs, i)
					}
				}
			}
			for _, e := range out {
				k, ok := at[e]
				if !ok {
					setAside(org[0], fmt.Errorf("transform %T returned an event it was not given, breaking its in-place promise", t))
					continue
				}
				nextE, nextO = append(nextE, e), append(nextO, org[k])
			}
		} else {
			for k, e := range cur {
				if bad[org[k]] {
					continue
				}
				p.one[0] = e
				out, err := t.Apply(ctx, p.one[:])
				var te *TransformError
				switch {
				case errors.As(err, &te):
					setAside(org[k], te.Failed[0].Err)
					continue
				case err != nil:
					setAside(org[k], err)
					continue
				}
				for _, o := range out {
					nextE, nextO = append(nextE, o), append(nextO, org[k])
				}
			}
		}
		cur, org = cur[:0], org[:0]
		for k, e := range nextE {
			if !bad[nextO[k]] {
				cur, org = append(cur, e), append(org, nextO[k])
			}
		}
		if len(cur) == 0 {
			break
		}
	}
	// Steps keep the batch order, but a predicate's runs or a transform
	// may not: outputs go on in record order, as transformAll's do.
	idx := make([]int, len(cur))
	for k := range idx {
		idx[k] = k
	}
	sort.SliceStable(idx, func(a, b int) bool { return org[idx[a]] < org[idx[b]] })
	produced := map[int]bool{}
	for _, k := range idx {
		p.batch, p.origin = append(p.batch, cur[k]), append(p.origin, org[k])
		produced[org[k]] = true
	}
	for _, i := range recs {
		if !bad[i] && !produced[i] {
			h.Status.Dropped.Add(1)
		}
	}
	// Records failed here came after others of their ordering group had
	// already passed the held check.
	p.batch, p.origin = p.ord.filter(p.recs, p.batch, p.origin, p.failed)
}

// unusable sets aside a record that can never be written: to the
// dead-letter topic, or, without one, failed back to the trigger, whose
// redrive policy or on-failure destination takes it.
func (h *Handler) unusable(p *pass, i int, stage string, err error) {
	if h.DeadLetters == nil {
		p.failed[i] = fmt.Errorf("%s: %w (no dead-letter topic, so it is reported failed)", stage, err)
		p.ord.fail(p.recs, i)
		return
	}
	p.dead = append(p.dead, deadRecord{i, stage, err})
}

// writeBatch writes what the records became (rate-limited), records which
// records failed, and says whether the write got anything through.
func (h *Handler) writeBatch(ctx context.Context, p *pass) resilience.Outcome {
	if len(p.batch) == 0 {
		return resilience.NoWrite
	}
	var err error
	if h.Limiter != nil {
		// A cancelled wait fails the batch back to the trigger.
		err = h.Limiter.Wait(ctx, len(p.batch))
	}
	if err == nil {
		// The sink sees where each event was delivered (a sink may name
		// objects after it), for the length of the Write only: the
		// records are the caller's and are reused.
		for k, e := range p.batch {
			r := &p.recs[p.origin[k]]
			r.pos = events.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, HasOffset: r.HasOffset, ID: r.ID, TopicID: r.TopicID}
			e.Delivered = &r.pos
		}
		spans := sinkSpans(ctx, h.Name, p.batch)
		err = h.write(ctx, p.batch)
		if spans != nil {
			var we *WriteError
			errors.As(err, &we)
			endSpans(spans, func(k int) error {
				if we != nil {
					return we.Failed[k]
				}
				return err
			})
		}
		for _, e := range p.batch {
			e.Delivered = nil
		}
	}
	var we *WriteError
	switch {
	case err == nil:
	case errors.As(err, &we):
		for j, ferr := range we.Failed {
			if j >= 0 && j < len(p.origin) {
				p.failed[p.origin[j]] = ferr
			}
		}
	default:
		for _, o := range p.origin {
			p.failed[o] = err
		}
	}
	written := len(p.batch) - countOutputs(p.origin, p.failed)
	if err != nil {
		h.Status.Fail(err)
	}
	h.Status.EventsOut.Add(uint64(written))
	// Only a write where nothing got through counts toward Failed: a
	// partly written batch shows the downstream is alive, and its bad
	// records are retried and then dead-lettered on their own.
	if written == 0 {
		h.failedWrite(err)
		return resilience.WriteFailed
	}
	h.mu.Lock()
	h.consecutive = 0
	h.mu.Unlock()
	return resilience.WriteOK
}

// expireAttempts sends records whose delivery attempts are used up to the
// dead-letter topic instead of having them retried again.
func (h *Handler) expireAttempts(p *pass) {
	if h.MaxAttempts <= 0 || h.DeadLetters == nil {
		return
	}
	for i := range p.recs {
		err, ok := p.failed[i]
		if !ok || p.ord.isHeld(i) {
			continue
		}
		if p.attempt[i] >= h.MaxAttempts {
			p.dead = append(p.dead, deadRecord{i, "write", fmt.Errorf("after %d attempts: %w", p.attempt[i], err)})
			delete(p.failed, i)
		}
	}
}

// write hands the batch to the sink, retrying a whole-batch failure that
// carries a Retry-After as Retry allows (see Handler.Retry). A partly
// written batch (*WriteError) is not retried here: writing it again would
// repeat the records that got through.
func (h *Handler) write(ctx context.Context, batch []*events.Event) error {
	if !h.concurrent {
		h.writeMu.Lock()
		defer h.writeMu.Unlock()
	}
	wctx := WithRuntime(resilience.WithEpoch(ctx, h.Status.Epoch.Load()), h.rt)
	return resilience.Do(wctx, h.Retry, func(ctx context.Context) error {
		start := h.Clock.Now()
		err := h.Sink.Write(ctx, batch)
		took := h.Clock.Now().Sub(start)
		h.Status.ObserveBatch(took)
		if h.Latency != nil {
			h.Latency.Observe(took.Seconds())
		}
		return err
	},
		resilience.WithClock(h.Clock),
		resilience.RetryIf(func(err error) bool {
			var we *WriteError
			return resilience.HasRetryAfter(err) && !errors.As(err, &we)
		}),
		resilience.OnRetry(func(attempt int, err error, wait time.Duration) {
			h.Log.Warn("sink write refused with a Retry-After; retrying the batch after it", "sink", h.Name,
				"attempt", attempt, "retry_after", wait.String(), "events", len(batch), "error", err)
		}))
}

// ProbeIn is how long until the circuit breaker, open after the last
// batch, admits its next probe; 0 when it is closed or has no breaker. A
// runner that redelivers failed records waits that long instead of its
// retry backoff, which would otherwise send the probe seconds after
// reset_timeout_secs.
func (h *Handler) ProbeIn() time.Duration {
	h.init()
	at := h.probeAt.Load()
	if at == 0 {
		return 0
	}
	return max(time.Duration(at-h.Clock.Now().UnixNano()), 0)
}

// noteProbe remembers when the next probe goes, from a batch's result.
func (h *Handler) noteProbe(res *Result) {
	var at int64
	if res.ProbeIn > 0 {
		at = h.Clock.Now().Add(res.ProbeIn).UnixNano()
	}
	h.probeAt.Store(at)
	h.Status.ProbeAt.Store(at)
}

// noteBreaker records the breaker's state as this instance last saw it
// and logs its transitions, so that an operator reading the logs of any
// host sees the circuit open, each probe go out, and the circuit close.
// The state is shared by the fleet: an instance logs what it observes.
func (h *Handler) noteBreaker(st resilience.BreakerState, probe bool, probeIn time.Duration) {
	prev := resilience.BreakerState(h.Status.Breaker.Swap(int32(st)))
	switch {
	case probe:
		h.Log.Info("circuit breaker half-open: this batch is the probe", "sink", h.Name)
	case st == prev:
	case st == resilience.Open:
		h.Log.Warn("circuit breaker open: batches are refused until a probe succeeds", "sink", h.Name,
			"was", prev.String(), "probe_in", probeIn.String())
	case st == resilience.Closed:
		h.Log.Info("circuit breaker closed: writes go through again", "sink", h.Name, "was", prev.String())
	}
}

// failedWrite counts a write where nothing got through toward the
// consecutive-error threshold.
func (h *Handler) failedWrite(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.consecutive++
	if h.consecutive >= h.MaxConsecutiveErrors && h.Status.State() != Failed {
		h.Status.SetState(Failed)
		h.Log.Error("sink failed: too many consecutive write errors; it stops consuming",
			"sink", h.Name, "consecutive", h.consecutive, "error", err)
	}
}

// stateError turns a failed ledger call into what Handle returns: fencing
// is fatal (this instance must stop); Redis refusing the call (an error
// reply no retry changes, such as a key of the wrong type) keeps its
// class and is logged; anything else means Redis is unreachable, which is
// a Connection error the trigger retries. None counts toward the sink's
// consecutive write errors: the sink was never asked.
func (h *Handler) stateError(err error) error {
	if errors.Is(err, state.ErrFenced) {
		h.Status.Fail(err)
		h.Status.SetState(Failed)
		h.Log.Error("sink fenced: a newer instance took over; this one stops", "sink", h.Name, "error", err)
		return Fatal(err)
	}
	if c := resilience.ClassOf(err); !c.Retryable() {
		err = resilience.New(c, fmt.Errorf("shared state (redis) refused the batch; batch not written: %w", err))
		h.Status.Fail(err)
		h.Log.Error("sink state error; batch not written", "sink", h.Name, "error", err)
		return err
	}
	err = resilience.New(resilience.Connection, fmt.Errorf("%w: %w", ErrStateUnavailable, err))
	h.Status.Fail(err)
	h.Log.Warn("shared state unavailable; batch not written, its records come back", "sink", h.Name, "error", err)
	return err
}

// settleTimeout bounds recording a finished batch in the ledger once the
// caller's context is gone.
const settleTimeout = 5 * time.Second

// member is a record's identity in the ledger: unique within the sink
// whatever the transport (an SQS message ID is unique per queue, a Kafka
// offset per partition).
func member(r *Record) string {
	id := r.ID
	if id == "" {
		id = "@" + strconv.FormatInt(r.Offset, 10)
	}
	return ledgerStream(r) + ":" + id
}

// ledgerStream is a record's partition in the ledger: "<topic>:<partition>",
// with "@<topic id>" when the transport names the topic's life, so that
// offsets of a topic created again are not taken for the old topic's.
func ledgerStream(r *Record) string {
	s := resilience.StreamOf(r.Topic, r.Partition)
	if r.TopicID != "" {
		s += "@" + r.TopicID
	}
	return s
}

// items names the records to the ledger. A record whose ID is its
// offset gets no Member (the ledger derives the same name), so that a
// batch of a log partition goes to Redis as one range; the stream name is
// built once per run of records of the same partition.
func (h *Handler) items(recs []Record) []resilience.Item {
	out := make([]resilience.Item, len(recs))
	var streams streamNames
	for i := range recs {
		r := &recs[i]
		stream := streams.of(r)
		m := ""
		if !idIsOffset(r) {
			m = stream + ":" + r.ID
			if r.ID == "" {
				m = stream + ":@" + strconv.FormatInt(r.Offset, 10)
			}
		}
		out[i] = resilience.Item{Stream: stream, Offset: r.Offset, Member: m}
	}
	return out
}

// idIsOffset reports whether r's ID is the decimal form of its offset,
// so that member(r) is resilience.MemberOf(ledgerStream(r), r.Offset).
func idIsOffset(r *Record) bool {
	var b [20]byte
	return r.ID != "" && string(strconv.AppendInt(b[:0], r.Offset, 10)) == r.ID
}

// streamNames is ledgerStream with the last answer kept: the records of a
// batch come a partition at a time.
type streamNames struct {
	topic, id string
	part      int32
	name      string
}

func (s *streamNames) of(r *Record) string {
	if s.name == "" || r.Topic != s.topic || r.Partition != s.part || r.TopicID != s.id {
		s.topic, s.part, s.id, s.name = r.Topic, r.Partition, r.TopicID, ledgerStream(r)
	}
	return s.name
}

// reject answers a batch the open breaker refused: nothing is
// written; every record not already done is failed back to the trigger
// (which redelivers it later), except those whose attempts are used up,
// which are dead-lettered so nothing blocks forever. A rejection counts
// as a failed write toward the consecutive-error threshold, as the
// reference's "fail fast with an error" implies.
func (h *Handler) reject(ctx context.Context, recs []Record, adm resilience.Admission, attempt []int) (Result, error) {
	res := Result{ProbeIn: adm.ProbeIn}
	h.Status.Rejected.Add(1)
	if h.Rejections != nil {
		h.Rejections.Inc()
	}
	err := fmt.Errorf("%w (%s)", resilience.ErrOpen, adm.State)
	h.Status.Fail(err)
	h.failedWrite(err)
	failed := make(map[int]error)
	var dead []deadRecord
	for i := range recs {
		if adm.Done != nil && adm.Done[i] {
			h.Status.Duplicates.Add(1)
			continue
		}
		if h.MaxAttempts > 0 && attempt[i] >= h.MaxAttempts && h.DeadLetters != nil {
			dead = append(dead, deadRecord{i, "write", fmt.Errorf("after %d attempts: %w", attempt[i], err)})
			continue
		}
		failed[i] = err
	}
	h.conclude(ctx, recs, attempt, dead, failed, &res)
	serr := h.settle(ctx, recs, adm, attempt, failed, nil, resilience.WriteSkipped, &res)
	h.noteProbe(&res)
	if serr != nil {
		return res, serr
	}
	return res, nil
}

// settle records the batch in the ledger (one round trip, skipped
// when there is nothing to record): the breaker outcome, per partition the
// committed offset (the prefix with no failure, for ordered transports),
// done IDs, and failure counts where the trigger keeps none.
func (h *Handler) settle(ctx context.Context, recs []Record, adm resilience.Admission, attempt []int, failed map[int]error, held map[int]bool, outcome resilience.Outcome, res *Result) error {
	mode := h.Ledger.Config().Dedup
	st := resilience.Settlement{Outcome: outcome, Probe: adm.Probe}
	if mode != resilience.DedupNone {
		type prefix struct {
			blocked bool
			next    int64
		}
		var streams map[string]*prefix
		var order []string
		var names streamNames
		for i := range recs {
			r := &recs[i]
			_, bad := failed[i]
			done := adm.Done != nil && adm.Done[i]
			m := ""
			if bad {
				// The trigger does not count: the ledger does. A held-back
				// record was not tried, so it did not fail.
				if r.Attempt == 0 && !held[i] {
					st.Failed = append(st.Failed, member(r))
				}
			} else if !done && adm.Attempts != nil && adm.Attempts[i] > 0 {
				m = member(r)
				st.Clear = append(st.Clear, m)
			}
			if mode == resilience.DedupIDs {
				if !bad && !done {
					if m == "" {
						m = member(r)
					}
					st.Done = append(st.Done, m)
				}
				continue
			}
			if streams == nil {
				streams = map[string]*prefix{}
			}
			key := names.of(r)
			p := streams[key]
			if p == nil {
				p = &prefix{next: -1}
				streams[key] = p
				order = append(order, key)
			}
			switch {
			case bad:
				p.blocked = true
			case !p.blocked:
				p.next = r.Offset + 1
			case !done:
				// Written after a failed record: the trigger redelivers
				// it with that one, so remember it by ID.
				if m == "" {
					m = member(r)
				}
				st.Done = append(st.Done, m)
			}
		}
		for _, key := range order {
			if p := streams[key]; p.next >= 0 {
				st.Commits = append(st.Commits, resilience.Commit{Stream: key, Next: p.next})
			}
		}
	}
	if !h.Ledger.NeedsEnd(adm, &st) {
		return nil
	}
	// What was written must be recorded even when the host is shutting
	// down (ctx cancelled): otherwise a graceful stop would leave records
	// written but not marked done, and the next instance would repeat them.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	bs, probeIn, err := h.Ledger.End(ectx, st)
	if err != nil {
		if errors.Is(err, state.ErrFenced) {
			return h.stateError(err)
		}
		// The write happened; only its record in the ledger is missing,
		// so a redelivery may write these records again (at-least-once).
		h.Status.Fail(err)
		h.Log.Warn("could not record the batch in the ledger; a redelivery may repeat it", "sink", h.Name, "error", err)
		return nil
	}
	if h.Ledger.Config().Breaker != nil {
		if bs != resilience.Closed {
			res.ProbeIn = probeIn
		}
		h.noteBreaker(bs, false, res.ProbeIn)
	}
	return nil
}

func countOutputs(origin []int, failed map[int]error) int {
	if len(failed) == 0 {
		return 0
	}
	n := 0
	for _, o := range origin {
		if _, ok := failed[o]; ok {
			n++
		}
	}
	return n
}

type deadRecord struct {
	idx   int
	stage string
	err   error
}

func (h *Handler) deadLetter(ctx context.Context, recs []Record, attempt []int, dead []deadRecord) error {
	if h.DeadLetters == nil {
		return errors.New("no dead-letter topic configured")
	}
	byTopic := map[string][]topic.Message{}
	for _, d := range dead {
		r := &recs[d.idx]
		payload, reason := r.Raw, d.err.Error()
		if payload == nil && r.Event != nil {
			var err error
			if payload, err = events.Marshal(r.Event); err != nil {
				reason += "; the event itself cannot be encoded: " + err.Error()
			}
		}
		part, off := r.Partition, r.Offset
		dl := events.DeadLetter{
			OriginalTopic: r.Topic, ConnectorName: h.Name, PayloadB64: payload,
			Error: reason, RetryCount: max(attempt[d.idx]-1, 0), Timestamp: h.Clock.Now().UTC(),
			Stage: d.stage, Partition: &part, Offset: &off,
		}
		b, err := dl.Marshal()
		if err != nil {
			return err
		}
		t := h.DeadLetterTopic
		if t == "" {
			t = r.Topic + ".dlq"
		}
		var key []byte
		if r.Event != nil {
			key = r.Event.Key
		}
		byTopic[t] = append(byTopic[t], topic.Message{Key: key, Value: b})
	}
	for t, msgs := range byTopic {
		if err := h.DeadLetters.Produce(ctx, t, msgs); err != nil {
			return fmt.Errorf("dead-letter to %s: %w", t, err)
		}
	}
	h.Status.NoteDeadLetters(len(dead), dead[0].stage+": "+dead[0].err.Error())
	return nil
}

// Close flushes and closes the sink.
func (h *Handler) Close(ctx context.Context) error {
	h.init()
	h.life.Lock() // after the batches in flight
	defer h.life.Unlock()
	if h.Status.State() != Failed {
		h.Status.SetState(Stopped)
	}
	if c, ok := h.Sink.(Closer); ok {
		return c.Close(ctx)
	}
	return nil
}

// conclude dead-letters what must go there (or, when that fails, reports it
// failed so nothing is lost), lists the failed records in res and logs the
// batch's failures.
func (h *Handler) conclude(ctx context.Context, recs []Record, attempt []int, dead []deadRecord, failed map[int]error, res *Result) {
	if len(dead) > 0 {
		h.deadLetterOrFail(ctx, recs, attempt, dead, failed, res)
	}
	for i, r := range recs {
		if _, ok := failed[i]; ok {
			res.Failed, res.FailedIdx = append(res.Failed, r.ID), append(res.FailedIdx, i)
		}
	}
	h.logFailures(recs, failed, res)
}

// deadLetterOrFail dead-letters dead and returns how many went; when
// that fails, they are reported failed (nothing is lost) with both
// reasons, and the failure is logged with their ids.
func (h *Handler) deadLetterOrFail(ctx context.Context, recs []Record, attempt []int, dead []deadRecord, failed map[int]error, res *Result) int {
	err := h.deadLetter(ctx, recs, attempt, dead)
	if err == nil {
		res.DeadLettered += len(dead)
		for _, d := range dead {
			res.deadReasons = appendReason(res.deadReasons, recs[d.idx].ID, fmt.Errorf("dead-lettered: %s: %w", d.stage, d.err))
		}
		return len(dead)
	}
	h.Status.Fail(err)
	var ids []string
	for _, d := range dead {
		failed[d.idx] = fmt.Errorf("%s: %w; dead-lettering it failed: %w", d.stage, d.err, err)
		if len(ids) < maxLoggedReasons {
			ids = append(ids, recs[d.idx].ID)
		}
	}
	h.Log.Error("dead-lettering failed; the records are reported failed instead", "sink", h.Name,
		"count", len(dead), "ids", ids, "error", err, "first_reason", dead[0].err)
	return 0
}

// maxLoggedReasons bounds the per-record reasons one log line carries.
const maxLoggedReasons = 3

func appendReason(rs []string, id string, err error) []string {
	if len(rs) >= maxLoggedReasons {
		return rs
	}
	return append(rs, id+": "+err.Error())
}

// logFailures writes one line for a batch in which records failed or were
// dead-lettered: the counts and the first few ids with their reasons, so
// that why a record failed is visible on every host (Lambda, Cloud Run,
// run, local, invoke).
func (h *Handler) logFailures(recs []Record, failed map[int]error, res *Result) {
	if len(failed) == 0 && res.DeadLettered == 0 {
		return
	}
	var first []string
	for _, i := range res.FailedIdx {
		if len(first) >= maxLoggedReasons {
			break
		}
		first = appendReason(first, recs[i].ID, failed[i])
	}
	for _, r := range res.deadReasons {
		if len(first) >= maxLoggedReasons {
			break
		}
		first = append(first, r)
	}
	h.Log.Warn("records failed or dead-lettered", "sink", h.Name, "records", len(recs),
		"failed", len(res.FailedIdx), "held", res.Held, "dead_lettered", res.DeadLettered, "first", first)
}

// ordering holds back, within one batch, the records of an ordering group
// that come after a failed record of that group, so that the sink never
// sees a group's records out of order: written now, the later record
// would reach the sink before the failed one's redelivery.
type ordering struct {
	first   map[string]int // group → index of its first failed record
	heldIdx map[int]bool
}

// fail notes that record i failed before the write.
func (o *ordering) fail(recs []Record, i int) {
	g := recs[i].Group
	if g == "" {
		return
	}
	if o.first == nil {
		o.first = map[string]int{}
	}
	if j, ok := o.first[g]; !ok || i < j {
		o.first[g] = i
	}
}

// held returns the error of a record held back by an earlier failure of
// its group, nil when it may go on.
func (o *ordering) held(r *Record) error {
	if r.Group == "" || o.first == nil {
		return nil
	}
	return o.errFor(r)
}

func (o *ordering) errFor(r *Record) error {
	if _, ok := o.first[r.Group]; !ok {
		return nil
	}
	return fmt.Errorf("held back: an earlier record of ordering group %s failed in this batch", r.Group)
}

func (o *ordering) hold(i int) {
	if o.heldIdx == nil {
		o.heldIdx = map[int]bool{}
	}
	o.heldIdx[i] = true
}

func (o *ordering) isHeld(i int) bool { return o.heldIdx[i] }

// filter removes from the batch the outputs of records that come after a
// failure of their group, reporting those records failed.
func (o *ordering) filter(recs []Record, batch []*events.Event, origin []int, failed map[int]error) ([]*events.Event, []int) {
	if o.first == nil {
		return batch, origin
	}
	n := 0
	for k, i := range origin {
		r := &recs[i]
		if j, ok := o.first[r.Group]; ok && r.Group != "" && i > j {
			failed[i] = o.errFor(r)
			o.hold(i)
			continue
		}
		batch[n], origin[n] = batch[k], i
		n++
	}
	return batch[:n], origin[:n]
}
