package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

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

	mu      sync.Mutex
	lastErr string
	errAt   time.Time
}

// NewStatus returns a status in state Starting.
func NewStatus(name, connector, kind string) *Status {
	s := &Status{Name: name, Connector: connector, Kind: kind}
	s.Lag.Store(-1)
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
