package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// State is a connector's lifecycle state.
type State int32

const (
	Starting State = iota
	Running
	Failed
	Stopped
)

func (s State) String() string {
	switch s {
	case Starting:
		return "Starting"
	case Running:
		return "Running"
	case Failed:
		return "Failed"
	case Stopped:
		return "Stopped"
	}
	return "Unknown"
}

// Status is the observable state of one running connector. Counters are
// atomics so the hot path pays one add per batch.
type Status struct {
	Name      string
	Connector string
	Kind      string

	state        atomic.Int32
	EventsIn     atomic.Uint64
	EventsOut    atomic.Uint64
	Errors       atomic.Uint64
	Dropped      atomic.Uint64
	DeadLettered atomic.Uint64
	Restarts     atomic.Uint64
	Lag          atomic.Int64
	// Duplicates counts redelivered records the ledger recognised as
	// already written and skipped.
	Duplicates atomic.Uint64
	// Rejected counts batches the open circuit breaker refused.
	Rejected atomic.Uint64
	// Epoch is the fencing token this instance holds (0 = none).
	Epoch atomic.Int64
	// Breaker is the last circuit state seen (a resilience.BreakerState),
	// -1 without a breaker.
	Breaker atomic.Int32
	// ProbeAt is when the open breaker admits its next probe, as the last
	// batch learned it (unix ns; 0 while it is closed).
	ProbeAt atomic.Int64
	// Batches and BatchNanos add up the batches handled (a sink's writes,
	// a source's publishes) and the time they took, so a reader that
	// samples both gets the mean batch latency of any interval.
	Batches    atomic.Uint64
	BatchNanos atomic.Uint64

	mu       sync.Mutex
	lastErr  string
	errAt    time.Time
	recent   []Problem // newest last, at most recentProblems
	progress map[string]TaskProgress
}

// Problem is one recent error or dead-lettering with its reason.
type Problem struct {
	At time.Time `json:"at"`
	// Kind is "error" or "dead_letter".
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// recentProblems is how many problems a status keeps for the dashboard.
const recentProblems = 8

// ObserveBatch adds one batch that took d.
func (s *Status) ObserveBatch(d time.Duration) {
	s.Batches.Add(1)
	s.BatchNanos.Add(uint64(max(d, 0)))
}

// NoteDeadLetters records n events sent to the dead-letter topic and why
// (the first reason, when a batch had several).
func (s *Status) NoteDeadLetters(n int, reason string) {
	s.DeadLettered.Add(uint64(n))
	s.mu.Lock()
	s.note(Problem{At: time.Now(), Kind: "dead_letter", Reason: reason})
	s.mu.Unlock()
}

// note keeps p among the recent problems; s.mu is held.
func (s *Status) note(p Problem) {
	if len(s.recent) == recentProblems {
		copy(s.recent, s.recent[1:])
		s.recent = s.recent[:recentProblems-1]
	}
	s.recent = append(s.recent, p)
}

// RecentProblems returns the last errors and dead-letterings, newest
// first.
func (s *Status) RecentProblems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Problem, len(s.recent))
	for i, p := range s.recent {
		out[len(out)-1-i] = p
	}
	return out
}

// NewStatus returns a status in state Starting.
func NewStatus(name, connector, kind string) *Status {
	s := &Status{Name: name, Connector: connector, Kind: kind}
	s.Lag.Store(-1)
	s.Breaker.Store(-1)
	return s
}

// State returns the current state.
func (s *Status) State() State { return State(s.state.Load()) }

// SetState changes the state.
func (s *Status) SetState(st State) { s.state.Store(int32(st)) }

// Fail records an error without changing the state.
func (s *Status) Fail(err error) {
	s.Errors.Add(1)
	s.mu.Lock()
	s.lastErr, s.errAt = err.Error(), time.Now()
	s.note(Problem{At: s.errAt, Kind: "error", Reason: s.lastErr})
	s.mu.Unlock()
}

// LastError returns the last recorded error text.
func (s *Status) LastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Stats returns a snapshot for telemetry.
func (s *Status) Stats() telemetry.ConnectorStats {
	return telemetry.ConnectorStats{
		Name: s.Name, Connector: s.Connector, Kind: s.Kind, State: s.State().String(),
		EventsIn: s.EventsIn.Load(), EventsOut: s.EventsOut.Load(), Errors: s.Errors.Load(),
		Dropped: s.Dropped.Load(), DeadLettered: s.DeadLettered.Load(), Lag: s.Lag.Load(),
		Restarts: s.Restarts.Load(), LastError: s.LastError(),
	}
}

// Detail is a connector's status as health endpoints show it.
type Detail struct {
	Name         string `json:"name"`
	Connector    string `json:"connector"`
	Kind         string `json:"kind"`
	State        string `json:"state"`
	EventsIn     uint64 `json:"events_in"`
	EventsOut    uint64 `json:"events_out"`
	Errors       uint64 `json:"errors"`
	Dropped      uint64 `json:"dropped"`
	DeadLettered uint64 `json:"dead_lettered"`
	Duplicates   uint64 `json:"duplicates_skipped"`
	Rejected     uint64 `json:"circuit_breaker_rejected"`
	Restarts     uint64 `json:"restarts"`
	Lag          *int64 `json:"lag,omitempty"`
	Epoch        int64  `json:"epoch,omitempty"`
	Breaker      string `json:"circuit_breaker,omitempty"`
	LastError    string `json:"last_error,omitempty"`
	LastErrorAt  string `json:"last_error_at,omitempty"`
	// Progress lists long tasks under way (snapshots).
	Progress []TaskProgress `json:"progress,omitempty"`
}

// Detail returns the status for health output; redact (may be nil)
// scrubs secrets from the last error, which often quotes a DSN or URL.
func (s *Status) Detail(redact func(string) string) Detail {
	d := Detail{
		Name: s.Name, Connector: s.Connector, Kind: s.Kind, State: s.State().String(),
		EventsIn: s.EventsIn.Load(), EventsOut: s.EventsOut.Load(), Errors: s.Errors.Load(),
		Dropped: s.Dropped.Load(), DeadLettered: s.DeadLettered.Load(), Duplicates: s.Duplicates.Load(),
		Rejected: s.Rejected.Load(), Restarts: s.Restarts.Load(), Epoch: s.Epoch.Load(),
	}
	if lag := s.Lag.Load(); lag >= 0 {
		d.Lag = &lag
	}
	if b := s.Breaker.Load(); b >= 0 {
		d.Breaker = resilience.BreakerState(b).String()
	}
	s.mu.Lock()
	d.LastError = s.lastErr
	if !s.errAt.IsZero() {
		d.LastErrorAt = s.errAt.UTC().Format(time.RFC3339)
	}
	s.mu.Unlock()
	if p := s.Progress(); len(p) > 0 {
		d.Progress = p
	}
	if redact != nil {
		d.LastError = redact(d.LastError)
	}
	return d
}

// Statuses is a set of statuses; it implements telemetry.StatsSource.
type Statuses []*Status

// Stats implements telemetry.StatsSource.
func (ss Statuses) Stats() []telemetry.ConnectorStats {
	out := make([]telemetry.ConnectorStats, len(ss))
	for i, s := range ss {
		out[i] = s.Stats()
	}
	return out
}
