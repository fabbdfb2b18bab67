package resilience

import (
	"sync"
	"time"
)

// LocalBreaker is a circuit breaker kept in one process: the reference's
// per-connector circuit_breaker block, beside the engine's breaker shared
// through Redis. Closed, it admits every call; open after
// FailureThreshold consecutive failures, it refuses calls for
// ResetTimeout; then half-open it admits one probe at a time, and closes
// again after SuccessThreshold successful probes (a failed probe opens it
// again). Safe for concurrent use.
type LocalBreaker struct {
	cfg BreakerConfig
	// Now is the clock (tests move it); time.Now when nil.
	Now func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	halfOpen  bool
	probing   bool
	successes int
}

// NewLocalBreaker returns a closed breaker.
func NewLocalBreaker(cfg BreakerConfig) *LocalBreaker { return &LocalBreaker{cfg: cfg} }

func (b *LocalBreaker) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Allow reports whether a call may go ahead; a call it admits must be
// followed by Record.
func (b *LocalBreaker) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return true
	}
	if b.now().Before(b.openUntil) {
		return false
	}
	b.halfOpen = true
	if b.probing {
		return false
	}
	b.probing = true
	return true
}

// Record reports how an admitted call ended.
func (b *LocalBreaker) Record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		b.failures = 0
		if b.halfOpen {
			b.successes++
			if b.successes >= b.cfg.SuccessThreshold {
				b.halfOpen, b.successes, b.openUntil = false, 0, time.Time{}
			}
		}
		return
	}
	b.successes = 0
	b.failures++
	if b.halfOpen || b.failures >= b.cfg.FailureThreshold {
		b.openUntil = b.now().Add(b.cfg.ResetTimeout)
		b.halfOpen = false
	}
}
