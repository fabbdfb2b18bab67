package llmfake

import (
	"sync"

	"github.com/rivven/rivven-connect/shared/metric"
)

// Metrics is a connector.Metrics that keeps every counter, gauge and histogram by
// name, for tests to read.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]*metric.Counter
	gauges   map[string]*metric.Gauge
	hists    map[string]*metric.Histogram
}

// Counter implements connector.Metrics.
func (m *Metrics) Counter(name, _ string, _ ...string) *metric.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counters == nil {
		m.counters = map[string]*metric.Counter{}
	}
	c, ok := m.counters[name]
	if !ok {
		c = &metric.Counter{}
		m.counters[name] = c
	}
	return c
}

// Gauge implements connector.Metrics.
func (m *Metrics) Gauge(name, _ string, _ ...string) *metric.Gauge {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gauges == nil {
		m.gauges = map[string]*metric.Gauge{}
	}
	g, ok := m.gauges[name]
	if !ok {
		g = &metric.Gauge{}
		m.gauges[name] = g
	}
	return g
}

// Histogram implements connector.Metrics.
func (m *Metrics) Histogram(name, _ string, bounds []float64, _ ...string) *metric.Histogram {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hists == nil {
		m.hists = map[string]*metric.Histogram{}
	}
	h, ok := m.hists[name]
	if !ok {
		h = metric.NewHistogram(bounds)
		m.hists[name] = h
	}
	return h
}

// Observations is how many values a histogram recorded, or -1 when it was
// never registered.
func (m *Metrics) Observations(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.hists[name]
	if !ok {
		return -1
	}
	return int64(h.Snapshot().Count)
}

// Value is a counter's value, or -1 when it was never registered.
func (m *Metrics) Value(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[name]
	if !ok {
		return -1
	}
	return int64(c.Value())
}

// Registered says whether a counter or gauge of that name exists.
func (m *Metrics) Registered(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, c := m.counters[name]
	_, g := m.gauges[name]
	_, h := m.hists[name]
	return c || g || h
}
