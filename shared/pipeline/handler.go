package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Record is one delivered message as every host sees it: an SQS message, a
// Kafka record, a Pub/Sub push, a local topic entry.
type Record struct {
	ID        string // what the trigger wants back for a partial failure
	Topic     string
	Partition int32
	Offset    int64
	// Attempt is the delivery attempt (1 on first delivery), when the
	// trigger knows it; records past the retry limit are dead-lettered.
	Attempt int
	// Event is the decoded event; nil when decoding failed (then Raw and
	// DecodeErr say why, and the record is dead-lettered).
	Event     *events.Event
	Raw       []byte
	DecodeErr error
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
}

// ErrSinkFailed is returned once a sink has moved to Failed.
var ErrSinkFailed = errors.New("sink is Failed after too many consecutive errors")

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

	once        sync.Once
	checked     bool
	mu          sync.Mutex // serializes Write: sinks need not be concurrency-safe
	consecutive int
	one         [1]*events.Event
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
	})
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
	if h.checked {
		return nil
	}
	if c, ok := h.Sink.(Checker); ok {
		if err := c.Check(ctx); err != nil {
			h.Status.Fail(err)
			return fmt.Errorf("health check: %w", err)
		}
	}
	h.checked = true
	h.Status.SetState(Running)
	return nil
}

// Handle processes one batch. It returns an error only when nothing could
// be processed (the sink is Failed, or its health check fails); per-record
// outcomes are in the Result.
func (h *Handler) Handle(ctx context.Context, recs []Record) (Result, error) {
	h.init()
	h.mu.Lock()
	defer h.mu.Unlock()
	var res Result
	failAll := func() {
		for i, r := range recs {
			res.Failed, res.FailedIdx = append(res.Failed, r.ID), append(res.FailedIdx, i)
		}
	}
	if h.Status.State() == Failed {
		failAll()
		return res, ErrSinkFailed
	}
	if err := h.startLocked(ctx); err != nil {
		failAll()
		return res, err
	}
	h.Status.EventsIn.Add(uint64(len(recs)))

	// Transform record by record so every output traces back to its input
	// (needed to report exactly which records failed).
	batch := make([]*events.Event, 0, len(recs))
	origin := make([]int, 0, len(recs))
	var dead []deadRecord
	for i := range recs {
		r := &recs[i]
		if r.Event == nil {
			err := r.DecodeErr
			if err == nil {
				err = errors.New("record has no event")
			}
			dead = append(dead, deadRecord{i, "decode", err})
			continue
		}
		if h.Transforms == nil {
			batch, origin = append(batch, r.Event), append(origin, i)
			continue
		}
		h.one[0] = r.Event
		out, err := h.Transforms.Apply(ctx, h.one[:])
		var te *TransformError
		switch {
		case errors.As(err, &te):
			dead = append(dead, deadRecord{i, "transform", te.Failed[0].Err})
			continue
		case err != nil:
			dead = append(dead, deadRecord{i, "transform", err})
			continue
		}
		if len(out) == 0 {
			h.Status.Dropped.Add(1)
		}
		for _, e := range out {
			batch, origin = append(batch, e), append(origin, i)
		}
	}

	failed := make(map[int]error)
	if len(batch) > 0 {
		start := h.Clock.Now()
		err := h.Sink.Write(ctx, batch)
		if h.Latency != nil {
			h.Latency.Observe(h.Clock.Now().Sub(start).Seconds())
		}
		var we *WriteError
		switch {
		case err == nil:
		case errors.As(err, &we):
			for j, ferr := range we.Failed {
				if j >= 0 && j < len(origin) {
					failed[origin[j]] = ferr
				}
			}
		default:
			for _, o := range origin {
				failed[o] = err
			}
		}
		written := len(batch) - countOutputs(origin, failed)
		if err != nil {
			h.Status.Fail(err)
		}
		// Only a write where nothing got through counts toward Failed: a
		// partly written batch shows the downstream is alive, and its bad
		// records are retried and then dead-lettered on their own.
		if written == 0 {
			h.consecutive++
			if h.consecutive >= h.MaxConsecutiveErrors {
				h.Status.SetState(Failed)
				h.Log.Error("sink failed: too many consecutive write errors; it stops consuming",
					"sink", h.Name, "consecutive", h.consecutive, "error", err)
			}
		} else {
			h.consecutive = 0
		}
		h.Status.EventsOut.Add(uint64(written))
	}

	// Records whose delivery attempts are used up go to the dead-letter
	// topic instead of being retried again.
	for i := range recs {
		err, ok := failed[i]
		if !ok {
			continue
		}
		if h.MaxAttempts > 0 && recs[i].Attempt >= h.MaxAttempts && h.DeadLetters != nil {
			dead = append(dead, deadRecord{i, "write", fmt.Errorf("after %d attempts: %w", recs[i].Attempt, err)})
			delete(failed, i)
		}
	}
	if len(dead) > 0 {
		if err := h.deadLetter(ctx, recs, dead); err != nil {
			// Could not dead-letter: report them failed so nothing is lost.
			h.Status.Fail(err)
			for _, d := range dead {
				failed[d.idx] = err
			}
		} else {
			res.DeadLettered = len(dead)
		}
	}
	for i, r := range recs {
		if _, ok := failed[i]; ok {
			res.Failed, res.FailedIdx = append(res.Failed, r.ID), append(res.FailedIdx, i)
		}
	}
	return res, nil
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

func (h *Handler) deadLetter(ctx context.Context, recs []Record, dead []deadRecord) error {
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
			Error: reason, RetryCount: max(r.Attempt-1, 0), Timestamp: h.Clock.Now().UTC(),
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
	h.Status.DeadLettered.Add(uint64(len(dead)))
	h.Log.Warn("records dead-lettered", "sink", h.Name, "count", len(dead), "first_error", dead[0].err)
	return nil
}

// Close flushes and closes the sink.
func (h *Handler) Close(ctx context.Context) error {
	h.init()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Status.State() != Failed {
		h.Status.SetState(Stopped)
	}
	if c, ok := h.Sink.(Closer); ok {
		return c.Close(ctx)
	}
	return nil
}
