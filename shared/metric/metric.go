// Package metric holds the two values a connector updates on its hot path:
// a Counter and a Gauge, each a single atomic word. It links no metrics
// client: shared/telemetry exports them (Prometheus, CloudWatch EMF), so a
// connector that counts things does not link an exporter.
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
