package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/rivven/rivven-connect/shared/telemetry"
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
	Metrics *telemetry.Registry
	// Status may be nil; Progress is then only logged at debug.
	Status *Status
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
func (rt *Runtime) Gauge(name, help string) *telemetry.Gauge {
	if rt.Metrics == nil {
		return &telemetry.Gauge{}
	}
	return rt.Metrics.Gauge(name, help, "name", rt.Name)
}

// Counter returns the counter name labelled with this component.
func (rt *Runtime) Counter(name, help string) *telemetry.Counter {
	if rt.Metrics == nil {
		return &telemetry.Counter{}
	}
	return rt.Metrics.Counter(name, help, "name", rt.Name)
}

// Progress reports how far a long task (a snapshot of one table, say) got:
// done units of total (total <= 0 when unknown). It shows in the status line,
// the health endpoints and as the gauges progress.done / progress.total
// labelled with the task. Report done == total (or call Done) when finished.
func (rt *Runtime) Progress(task string, done, total int64) {
	if rt.Status != nil {
		rt.Status.setProgress(task, done, total)
	}
	if rt.Metrics != nil {
		rt.Metrics.Gauge("progress.done", "Units of a long task (e.g. snapshot rows) done.", "name", rt.Name, "task", task).Set(float64(done))
		rt.Metrics.Gauge("progress.total", "Estimated units of a long task; 0 when unknown.", "name", rt.Name, "task", task).Set(float64(max(total, 0)))
	}
}

// Done removes a finished task from the status line.
func (rt *Runtime) Done(task string) {
	if rt.Status != nil {
		rt.Status.clearProgress(task)
	}
}

// TaskProgress is one task's progress.
type TaskProgress struct {
	Task  string `json:"task"`
	Done  int64  `json:"done"`
	Total int64  `json:"total,omitempty"`
}

func (s *Status) setProgress(task string, done, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress == nil {
		s.progress = map[string]TaskProgress{}
	}
	s.progress[task] = TaskProgress{Task: task, Done: done, Total: max(total, 0)}
}

func (s *Status) clearProgress(task string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.progress, task)
}

// Progress returns the tasks in progress, sorted by name.
func (s *Status) Progress() []TaskProgress {
	s.mu.Lock()
	out := make([]TaskProgress, 0, len(s.progress))
	for _, p := range s.progress {
		out = append(out, p)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Task < out[j].Task })
	return out
}

// ProgressLine renders the tasks in progress for a status line, e.g.
// "public.orders 40k/1.0M (4%)"; "" when there are none. human formats
// counts.
func (s *Status) ProgressLine(human func(float64) string) string {
	var parts []string
	for _, p := range s.Progress() {
		if p.Total > 0 {
			parts = append(parts, fmt.Sprintf("%s %s/%s (%d%%)", p.Task, human(float64(p.Done)), human(float64(p.Total)), min(100, p.Done*100/p.Total)))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", p.Task, human(float64(p.Done))))
		}
	}
	return strings.Join(parts, ", ")
}
