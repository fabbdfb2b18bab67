package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeClock records sleeps and returns at once (or when ctx is done).
type fakeClock struct {
	mu     sync.Mutex
	sleeps []time.Duration
	onNth  map[int]func() // called on the n-th sleep (1-based)
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, 0) }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	fn := c.onNth[len(c.sleeps)]
	c.mu.Unlock()
	if fn != nil {
		fn()
	}
	return ctx.Err()
}

func embedded(t *testing.T) state.Store {
	t.Helper()
	s, err := state.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBackoffDelays(t *testing.T) {
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		if got := RestartBackoff.Delay(i + 1); got != w*time.Second {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w*time.Second)
		}
	}
}

// flakySource fails a number of times before emitting and finishing.
type flakySource struct {
	failures int
	calls    int
	resumes  [][]byte
	fatal    bool
}

func (s *flakySource) Read(ctx context.Context, resume []byte, emit Emitter) error {
	s.calls++
	s.resumes = append(s.resumes, resume)
	if s.fatal {
		return Fatal(errors.New("bad credentials"))
	}
	if s.calls <= s.failures {
		return fmt.Errorf("connection refused (%d)", s.calls)
	}
	e := events.New(events.Record, "s", events.RawPayload([]byte(`{"n":1}`)))
	e.Metadata.Position = "p" + strconv.Itoa(s.calls)
	return emit.Emit(ctx, []*events.Event{e})
}

func newRunner(t *testing.T, src Source, clk Clock) (*SourceRunner, *topic.Memory) {
	m := topic.NewMemory()
	m.AutoCreate = true
	return &SourceRunner{
		Name: "src", Source: src, Topic: "t", Producer: m, Store: embedded(t),
		Status: NewStatus("src", "fake", "source"), Log: quiet, Clock: clk,
	}, m
}

func TestSourceRunnerRestartsWithBackoff(t *testing.T) {
	clk := &fakeClock{}
	src := &flakySource{failures: 8}
	r, m := newRunner(t, src, clk)
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	if len(clk.sleeps) != len(want) {
		t.Fatalf("sleeps %v, want %v s", clk.sleeps, want)
	}
	for i := range want {
		if clk.sleeps[i] != want[i]*time.Second {
			t.Fatalf("sleeps %v, want %v s", clk.sleeps, want)
		}
	}
	if got := r.Status.Restarts.Load(); got != 8 {
		t.Errorf("restarts = %d", got)
	}
	if r.Status.State() != Stopped || r.Status.Errors.Load() != 8 {
		t.Errorf("state %v errors %d", r.Status.State(), r.Status.Errors.Load())
	}
	if m.HighWatermark("t", 0) != 1 {
		t.Error("event not published after recovery")
	}
	pos, _ := r.Store.Offset(context.Background(), "src", positionKey)
	if string(pos) != "p9" {
		t.Errorf("committed position %q", pos)
	}
}

func TestSourceRunnerShutdownStopsRestarting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := &fakeClock{onNth: map[int]func(){3: cancel}}
	src := &flakySource{failures: 100}
	r, _ := newRunner(t, src, clk)
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if src.calls != 3 || len(clk.sleeps) != 3 {
		t.Fatalf("calls %d sleeps %d: restarted during shutdown", src.calls, len(clk.sleeps))
	}
	if r.Status.State() != Stopped {
		t.Errorf("state %v", r.Status.State())
	}
}

func TestSourceRunnerFatalDoesNotRestart(t *testing.T) {
	clk := &fakeClock{}
	src := &flakySource{fatal: true}
	r, _ := newRunner(t, src, clk)
	if err := r.Run(context.Background()); !errors.Is(err, ErrFatal) {
		t.Fatalf("err = %v", err)
	}
	if src.calls != 1 || len(clk.sleeps) != 0 || r.Status.State() != Failed {
		t.Fatalf("calls %d sleeps %d state %v", src.calls, len(clk.sleeps), r.Status.State())
	}
}

func TestSourceRunnerResumesFromCommittedPosition(t *testing.T) {
	clk := &fakeClock{}
	src := &flakySource{failures: 0}
	r, _ := newRunner(t, src, clk)
	r.Store.CommitOffset(context.Background(), "src", positionKey, []byte("p41"))
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if string(src.resumes[0]) != "p41" {
		t.Fatalf("resume = %q", src.resumes[0])
	}
}

// countingSink records events; fail decides per call.
type countingSink struct {
	mu     sync.Mutex
	got    []*events.Event
	writes int
	fail   func(call int, batch []*events.Event) error
}

func (s *countingSink) Write(_ context.Context, batch []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail != nil {
		if err := s.fail(s.writes, batch); err != nil {
			var we *WriteError
			if errors.As(err, &we) {
				for i, e := range batch {
					if _, bad := we.Failed[i]; !bad {
						s.got = append(s.got, e)
					}
				}
			}
			return err
		}
	}
	s.got = append(s.got, batch...)
	return nil
}

func rec(i int, data string) Record {
	e := events.New(events.Insert, "s", events.RawPayload([]byte(data)))
	return Record{ID: fmt.Sprint("m", i), Topic: "in", Offset: int64(i), Attempt: 1, Event: e}
}

func TestHandlerConsecutiveFailureThreshold(t *testing.T) {
	sink := &countingSink{fail: func(int, []*events.Event) error { return errors.New("503 from warehouse") }}
	h := &Handler{Name: "wh", Sink: sink, Log: quiet, MaxConsecutiveErrors: 3}
	ctx := context.Background()
	for i := range 3 {
		res, err := h.Handle(ctx, []Record{rec(i, `{}`)})
		if err != nil || len(res.Failed) != 1 || res.Failed[0] != fmt.Sprint("m", i) {
			t.Fatalf("batch %d: %v %+v", i, err, res)
		}
	}
	if h.Status.State() != Failed {
		t.Fatalf("state %v after 3 consecutive failures", h.Status.State())
	}
	res, err := h.Handle(ctx, []Record{rec(9, `{}`)})
	if !errors.Is(err, ErrSinkFailed) || len(res.Failed) != 1 {
		t.Fatalf("Failed sink accepted a batch: %v %+v", err, res)
	}
	if sink.writes != 3 {
		t.Fatalf("Failed sink was written to (%d writes)", sink.writes)
	}
}

func TestHandlerSuccessResetsConsecutiveCount(t *testing.T) {
	sink := &countingSink{fail: func(call int, _ []*events.Event) error {
		if call%3 == 0 {
			return nil
		}
		return errors.New("flaky")
	}}
	h := &Handler{Name: "x", Sink: sink, Log: quiet, MaxConsecutiveErrors: 3}
	for i := range 12 {
		h.Handle(context.Background(), []Record{rec(i, `{}`)})
	}
	if h.Status.State() != Running {
		t.Fatalf("state %v: a success did not reset the count", h.Status.State())
	}
}

func TestHandlerReportsExactlyTheFailedRecords(t *testing.T) {
	sink := &countingSink{fail: func(_ int, batch []*events.Event) error {
		return &WriteError{Failed: map[int]error{1: errors.New("row too big"), 3: errors.New("row too big")}}
	}}
	h := &Handler{Name: "x", Sink: sink, Log: quiet}
	res, err := h.Handle(context.Background(), []Record{rec(0, `{}`), rec(1, `{}`), rec(2, `{}`), rec(3, `{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Failed) != "[m1 m3]" || fmt.Sprint(res.FailedIdx) != "[1 3]" {
		t.Fatalf("failed = %v %v", res.Failed, res.FailedIdx)
	}
	if h.Status.EventsOut.Load() != 2 {
		t.Errorf("events out = %d", h.Status.EventsOut.Load())
	}
}

// exploder duplicates "split" rows, drops "drop" rows and rejects "bad".
var exploder = PerEvent(func(_ context.Context, e *events.Event) ([]*events.Event, error) {
	row, _ := e.Row()
	switch row["k"] {
	case "drop":
		return nil, nil
	case "bad":
		return nil, errors.New("cannot parse k")
	case "split":
		return []*events.Event{e, e.Clone()}, nil
	}
	return []*events.Event{e}, nil
})

func TestHandlerDeadLettersUndecodableAndUntransformable(t *testing.T) {
	dlq := topic.NewMemory()
	dlq.AutoCreate = true
	sink := &countingSink{}
	h := &Handler{Name: "x", Sink: sink, Transforms: exploder, DeadLetters: dlq, Log: quiet}
	broken := Record{ID: "m9", Topic: "in", Offset: 9, Raw: []byte(`{"event_type":`), DecodeErr: errors.New("unexpected end")}
	res, err := h.Handle(context.Background(), []Record{rec(0, `{"k":"split"}`), rec(1, `{"k":"bad"}`), rec(2, `{"k":"drop"}`), broken})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 0 || res.DeadLettered != 2 {
		t.Fatalf("result %+v", res)
	}
	if len(sink.got) != 2 || h.Status.Dropped.Load() != 1 {
		t.Fatalf("sink got %d, dropped %d", len(sink.got), h.Status.Dropped.Load())
	}
	msgs, _ := dlq.Fetch(context.Background(), "in.dlq", 0, 0, 10)
	if len(msgs) != 2 {
		t.Fatalf("dlq has %d messages", len(msgs))
	}
	var dl map[string]any
	json.Unmarshal(msgs[1].Value, &dl)
	for _, k := range []string{"original_topic", "connector_name", "payload_b64", "error", "retry_count", "timestamp"} {
		if _, ok := dl[k]; !ok {
			t.Errorf("dead letter lacks %q: %s", k, msgs[1].Value)
		}
	}
	if dl["stage"] != "decode" || dl["original_topic"] != "in" || dl["payload_b64"] != "eyJldmVudF90eXBlIjo=" {
		t.Errorf("dead letter %s", msgs[1].Value)
	}
}

func TestHandlerDeadLettersAfterMaxAttempts(t *testing.T) {
	dlq := topic.NewMemory()
	dlq.AutoCreate = true
	sink := &countingSink{fail: func(int, []*events.Event) error { return errors.New("constraint violation") }}
	h := &Handler{Name: "x", Sink: sink, DeadLetters: dlq, DeadLetterTopic: "errors", Log: quiet, MaxAttempts: 3}
	r := rec(0, `{}`)
	for attempt := 1; attempt <= 3; attempt++ {
		r.Attempt = attempt
		res, _ := h.Handle(context.Background(), []Record{r})
		if attempt < 3 && len(res.Failed) != 1 {
			t.Fatalf("attempt %d not reported failed", attempt)
		}
		if attempt == 3 && (len(res.Failed) != 0 || res.DeadLettered != 1) {
			t.Fatalf("attempt 3: %+v", res)
		}
	}
	if dlq.HighWatermark("errors", 0) != 1 {
		t.Fatal("nothing on the dead-letter topic")
	}
}

func TestHandlerWithoutDeadLetterTopicNeverDrops(t *testing.T) {
	h := &Handler{Name: "x", Sink: &countingSink{}, Log: quiet}
	res, _ := h.Handle(context.Background(), []Record{{ID: "a", DecodeErr: errors.New("bad")}})
	if len(res.Failed) != 1 {
		t.Fatalf("undecodable record without a dead-letter topic must be reported failed: %+v", res)
	}
}

// checkSink fails its health check.
type checkSink struct{ countingSink }

func (*checkSink) Check(context.Context) error { return errors.New("bucket not found") }

func TestHandlerHealthCheckBeforeRunning(t *testing.T) {
	s := &checkSink{}
	h := &Handler{Name: "x", Sink: s, Log: quiet}
	res, err := h.Handle(context.Background(), []Record{rec(0, `{}`)})
	if err == nil || len(res.Failed) != 1 || s.writes != 0 {
		t.Fatalf("wrote before a passing health check: %v %+v", err, res)
	}
	if h.Status.State() == Running {
		t.Fatal("Running without a passing health check")
	}
}

func TestOnlyAppliesToSelectedEventsInOrder(t *testing.T) {
	var b []*events.Event
	for i, k := range []string{"split", "x", "split", "split", "bad", "x", "drop"} {
		e := events.New(events.Insert, "s", events.RawPayload(fmt.Appendf(nil, `{"k":%q,"i":%d}`, k, i)))
		if i%2 == 1 {
			e.Stream = "other"
		}
		b = append(b, e)
	}
	tr := Only(exploder, func(e *events.Event) bool { return e.Stream == "s" })
	out, err := tr.Apply(context.Background(), b)
	var te *TransformError
	if !errors.As(err, &te) || len(te.Failed) != 1 {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range out {
		r, _ := e.Row()
		got = append(got, fmt.Sprint(r["i"]))
	}
	// Odd i are on another stream and pass untouched; of the rest, 0 and
	// 2 split, 4 is bad (dead letter), 6 is dropped.
	if want := "0 0 1 2 2 3 5"; strings.Join(got, " ") != want {
		t.Fatalf("out %v, want %s", got, want)
	}
}
