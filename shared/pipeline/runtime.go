package pipeline

import (
	"fmt"
	"sort"
	"strings"
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
