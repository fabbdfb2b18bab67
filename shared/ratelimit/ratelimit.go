// Package ratelimit holds the rate limits of sources and sinks
// (rate_limit: {events_per_second, burst_capacity}): a token bucket for one
// process, and GCRA in Redis for a sink that runs as many function
// instances and must hold its rate across all of them.
//
// Both take a batch of any size: a batch larger than the bucket is let
// through in bucket-sized parts as tokens refill, never deadlocking (the
// reference implementation waited forever there).
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// Limiter delays callers to hold a rate.
type Limiter interface {
	// Wait blocks until n events may pass, or ctx is done.
	Wait(ctx context.Context, n int) error
}

// Burst is the documented default burst: a tenth of the rate, at least 10.
func Burst(eventsPerSecond float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(int(eventsPerSecond/10), 10)
}

// Clock lets tests drive time.
type Clock = resilience.Clock

// Bucket is a token bucket: capacity events_per_second + burst, refilled
// continuously at events_per_second.
type Bucket struct {
	rate     float64 // tokens per second
	capacity float64
	clock    Clock

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket. clock may be nil (wall clock).
func NewBucket(eventsPerSecond float64, burst int, clock Clock) (*Bucket, error) {
	if eventsPerSecond <= 0 || math.IsInf(eventsPerSecond, 0) || math.IsNaN(eventsPerSecond) {
		return nil, fmt.Errorf("events_per_second must be positive, got %v", eventsPerSecond)
	}
	if clock == nil {
		clock = resilience.RealClock{}
	}
	c := eventsPerSecond + float64(Burst(eventsPerSecond, burst))
	return &Bucket{rate: eventsPerSecond, capacity: c, clock: clock, tokens: c, last: clock.Now()}, nil
}

// Capacity is the most events that pass at once.
func (b *Bucket) Capacity() int { return int(b.capacity) }

// Wait implements Limiter. Waiters are served in turn: each takes what the
// bucket holds and sleeps only for the rest.
func (b *Bucket) Wait(ctx context.Context, n int) error {
	need := float64(n)
	for need > 0 {
		b.mu.Lock()
		now := b.clock.Now()
		b.tokens = math.Min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
		take := math.Min(need, b.tokens)
		b.tokens -= take
		need -= take
		// Sleep until the next part (at most a full bucket) is refilled.
		part := math.Min(need, b.capacity)
		wait := time.Duration((part - b.tokens) / b.rate * float64(time.Second))
		b.mu.Unlock()
		if need <= 0 {
			return nil
		}
		if err := b.clock.Sleep(ctx, max(wait, time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}
