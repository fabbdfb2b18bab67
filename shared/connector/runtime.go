package connector

import (
	"context"
	"io"
	"log/slog"

	"github.com/rivven/rivven-connect/shared/metric"
)

// Runtime is what the engine offers a running connector beyond its config:
// a logger, its metrics and a place to report progress of long work such
// as a snapshot. The source runner and the sink handler put it into the
// context they pass to Read and Write; connectors take it with
// RuntimeFrom, so constructors stay free of engine plumbing.
type Runtime struct {
	// Name is the component's name in the pipeline.
	Name string
	Log  *slog.Logger
	// Metrics may be nil (no registry): Gauge and Counter then return
	// detached metrics that count but are not exported.
	Metrics Metrics
	// Tasks may be nil; Progress is then only exported as gauges.
	Tasks Tasks
	// State, when set, is durable state of this component in the engine's
	// state store (Redis, when settings.state configures one), shared by
	// every instance: a sink keeps there what it needs to recognise a
	// redelivered batch after a restart. Nil when the host has no store.
	State State
}

// State is a component's durable key-value state.
type State interface {
	// Get returns the value of key, nil when none was put.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores the value of key.
	Put(ctx context.Context, key string, value []byte) error
}

// Metrics makes the named series a connector updates; the engine's
// registry (shared/telemetry) implements it and exports them.
type Metrics interface {
	Counter(name, help string, constLabels ...string) *metric.Counter
	Gauge(name, help string, constLabels ...string) *metric.Gauge
	Histogram(name, help string, bounds []float64, constLabels ...string) *metric.Histogram
}

// Tasks shows the progress of long tasks (the status line, the health
// endpoints); the engine's Status implements it.
type Tasks interface {
	SetProgress(task string, done, total int64)
	ClearProgress(task string)
}

type runtimeKey struct{}

// WithRuntime returns ctx carrying rt.
func WithRuntime(ctx context.Context, rt *Runtime) context.Context {
	return context.WithValue(ctx, runtimeKey{}, rt)
}

var discardRuntime = &Runtime{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

// RuntimeFrom returns the runtime in ctx, or one that discards everything
// (tests that call a connector directly). It is never nil.
func RuntimeFrom(ctx context.Context) *Runtime {
	if rt, ok := ctx.Value(runtimeKey{}).(*Runtime); ok && rt != nil {
		return rt
	}
	return discardRuntime
}

// Logger is the runtime's logger (never nil).
func (rt *Runtime) Logger() *slog.Logger {
	if rt.Log == nil {
		return discardRuntime.Log
	}
	return rt.Log
}

// Gauge returns the gauge name (a dotted name as the reference documents
// it, e.g. "postgres_cdc.slot_lag_bytes") labelled with this component.
func (rt *Runtime) Gauge(name, help string) *metric.Gauge {
	if rt.Metrics == nil {
		return &metric.Gauge{}
	}
	return rt.Metrics.Gauge(name, help, "name", rt.Name)
}

// Histogram returns the histogram name with the given bucket bounds
// (metric.LatencyMillis for the reference's "duration_ms" names) labelled
// with this component.
func (rt *Runtime) Histogram(name, help string, bounds []float64) *metric.Histogram {
	if rt.Metrics == nil {
		return metric.NewHistogram(bounds)
	}
	return rt.Metrics.Histogram(name, help, bounds, "name", rt.Name)
}

// Counter returns the counter name labelled with this component.
func (rt *Runtime) Counter(name, help string) *metric.Counter {
	if rt.Metrics == nil {
		return &metric.Counter{}
	}
	return rt.Metrics.Counter(name, help, "name", rt.Name)
}

// Progress reports how far a long task (a snapshot of one table, say) got:
// done units of total (total <= 0 when unknown). It shows in the status line,
// the health endpoints and as the gauges progress.done / progress.total
// labelled with the task. Report done == total (or call Done) when finished.
func (rt *Runtime) Progress(task string, done, total int64) {
	if rt.Tasks != nil {
		rt.Tasks.SetProgress(task, done, total)
	}
	if rt.Metrics != nil {
		rt.Metrics.Gauge("progress.done", "Units of a long task (e.g. snapshot rows) done.", "name", rt.Name, "task", task).Set(float64(done))
		rt.Metrics.Gauge("progress.total", "Estimated units of a long task; 0 when unknown.", "name", rt.Name, "task", task).Set(float64(max(total, 0)))
	}
}

// Done removes a finished task from the status line.
func (rt *Runtime) Done(task string) {
	if rt.Tasks != nil {
		rt.Tasks.ClearProgress(task)
	}
}
