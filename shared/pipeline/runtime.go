package pipeline

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// TaskProgress is one task's progress.
type TaskProgress struct {
	Task  string `json:"task"`
	Done  int64  `json:"done"`
	Total int64  `json:"total,omitempty"`
}

// SetProgress records a long task's progress (connector.Tasks); a nil
// Status records nothing.
func (s *Status) SetProgress(task string, done, total int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.progress == nil {
		s.progress = map[string]TaskProgress{}
	}
	s.progress[task] = TaskProgress{Task: task, Done: done, Total: max(total, 0)}
}

// ClearProgress forgets a finished task; a nil Status does nothing.
func (s *Status) ClearProgress(task string) {
	if s == nil {
		return
	}
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

// ProgressView is a task's progress with the rate it went at lately and,
// when its total is known, the percent done and the time left at that rate.
type ProgressView struct {
	TaskProgress
	// Percent is -1 while the total is unknown.
	Percent int64 `json:"percent"`
	// Rate is units (rows) per second over the last measured interval; 0
	// until two measurements are a second apart.
	Rate float64 `json:"rate_per_sec"`
	// ETA is the time left at Rate; 0 when unknown.
	ETA time.Duration `json:"-"`
	// ETASecs is ETA in whole seconds, for JSON readers.
	ETASecs int64 `json:"eta_secs,omitempty"`
}

// ProgressMeter turns successive progress readings into rates and times
// left. Readings less than a second apart keep the last rate, so a
// display redrawn every 200 ms does not jitter. Not safe for concurrent
// use: each reader keeps its own.
type ProgressMeter struct {
	at    time.Time
	done  map[string]int64
	rates map[string]float64
}

// Measure returns tasks with their rate and time left as of now.
func (m *ProgressMeter) Measure(now time.Time, tasks []TaskProgress) []ProgressView {
	if m.done == nil {
		m.done, m.rates, m.at = map[string]int64{}, map[string]float64{}, now
		for _, p := range tasks {
			m.done[p.Task] = p.Done
		}
	} else if secs := now.Sub(m.at).Seconds(); secs >= 1 {
		done := map[string]int64{}
		for _, p := range tasks {
			prev, seen := m.done[p.Task]
			if seen {
				m.rates[p.Task] = float64(max(p.Done-prev, 0)) / secs
			}
			done[p.Task] = p.Done
		}
		for t := range m.rates {
			if _, ok := done[t]; !ok {
				delete(m.rates, t)
			}
		}
		m.done, m.at = done, now
	}
	out := make([]ProgressView, len(tasks))
	for i, p := range tasks {
		v := ProgressView{TaskProgress: p, Percent: -1, Rate: m.rates[p.Task]}
		if p.Total > 0 {
			v.Percent = min(100, p.Done*100/p.Total)
			if v.Rate > 0 && p.Done < p.Total {
				v.ETA = (time.Duration(float64(p.Total-p.Done)/v.Rate) * time.Second).Round(time.Second)
				v.ETASecs = int64(v.ETA / time.Second)
			}
		}
		out[i] = v
	}
	return out
}

// ProgressLine renders tasks in progress for a status line, e.g.
// "public.orders 40k/1.0M (4%) 12.0k/s ETA 1m20s"; "" when there are
// none. human formats counts.
func ProgressLine(tasks []ProgressView, human func(float64) string) string {
	var parts []string
	for _, p := range tasks {
		var b strings.Builder
		b.WriteString(p.Task + " " + human(float64(p.Done)))
		if p.Total > 0 {
			fmt.Fprintf(&b, "/%s (%d%%)", human(float64(p.Total)), p.Percent)
		}
		if p.Rate > 0 {
			fmt.Fprintf(&b, " %s/s", human(p.Rate))
		}
		if p.ETA > 0 {
			b.WriteString(" ETA " + p.ETA.String())
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, ", ")
}
