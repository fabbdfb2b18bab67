// Package metric holds the values a connector updates on its hot path: a
// Counter and a Gauge, each a single atomic word, and a Histogram of fixed
// buckets. It links no metrics client: shared/telemetry exports them
// (Prometheus, CloudWatch EMF), so a connector that counts things does not
// link an exporter.
package metric

import (
	"math"
	"sync/atomic"
)

// Counter is a monotonically increasing value. Updating it is a single
// atomic add, so it is fine on the per-event path. The zero value counts
// without being exported (a detached metric).
type Counter struct{ v atomic.Uint64 }

// Add increases the counter by n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc increases the counter by one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the current total.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that can go up and down. It stores the float64's bits in
// an atomic word, so Set is a single atomic store.
type Gauge struct{ bits atomic.Uint64 }

// Set replaces the gauge's value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Histogram counts observations into fixed buckets, as Prometheus
// histograms do, with one atomic add per observation (plus a CAS loop for
// the sum). Bounds are upper bounds, ascending; an observation above the
// last bound falls into the implicit +Inf bucket. The zero value is usable
// and has only the +Inf bucket (a detached histogram that still counts).
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, non-cumulative; nil in the zero value
	inf    atomic.Uint64   // the +Inf bucket of the zero value
	sum    atomic.Uint64   // float64 bits
	n      atomic.Uint64
}

// NewHistogram returns a histogram with the given ascending upper bounds.
func NewHistogram(bounds []float64) *Histogram {
	b := append([]float64(nil), bounds...)
	return &Histogram{bounds: b, counts: make([]atomic.Uint64, len(b)+1)}
}

// LatencyMillis is the bucket layout of the reference's "duration_ms"
// histograms: 0.1 ms (an in-memory target) to 60 s (a slow warehouse load)
// on a 1-2.5-5 ladder, so every connector gets useful quantiles without a
// layout of its own.
var LatencyMillis = []float64{
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
	1000, 2500, 5000, 10000, 30000, 60000,
}

// LatencySeconds is LatencyMillis in seconds, for the "_seconds" names.
var LatencySeconds = func() []float64 {
	s := make([]float64, len(LatencyMillis))
	for i, v := range LatencyMillis {
		s[i] = v / 1000
	}
	return s
}()

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	if h.counts == nil {
		h.inf.Add(1)
	} else {
		i := 0
		for i < len(h.bounds) && v > h.bounds[i] {
			i++
		}
		h.counts[i].Add(1)
	}
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
	h.n.Add(1)
}

// HistogramSnapshot is a histogram's state at one moment.
type HistogramSnapshot struct {
	Bounds []float64
	// Cumulative[i] counts observations <= Bounds[i], as Prometheus wants.
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

// Snapshot reads the histogram. Concurrent observations may land in some
// buckets and not yet in the count; Count is taken as the bucket total so the
// snapshot is self-consistent.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Cumulative: make([]uint64, len(h.bounds)), Sum: math.Float64frombits(h.sum.Load())}
	var run uint64
	for i := range h.bounds {
		run += h.counts[i].Load()
		s.Cumulative[i] = run
	}
	if h.counts != nil {
		run += h.counts[len(h.bounds)].Load()
	} else {
		run += h.inf.Load()
	}
	s.Count = run
	return s
}
