package resilience

import (
	"sync"
	"time"
)

// CircuitConfig is the circuit_breaker block of a sink's config for its
// in-process breaker, with the reference's defaults and ranges (vector
// and warehouse sinks embed it).
type CircuitConfig struct {
	Enabled          bool `yaml:"enabled" default:"true" doc:"Enable the circuit breaker."`
	FailureThreshold int  `yaml:"failure_threshold" default:"5" min:"1" max:"100" doc:"Consecutive failed batches before the circuit opens."`
	ResetTimeoutSecs int  `yaml:"reset_timeout_secs" default:"30" min:"1" max:"3600" doc:"Seconds the circuit stays open before one probe batch is let through."`
	SuccessThreshold int  `yaml:"success_threshold" default:"2" min:"1" max:"10" doc:"Successful probes in a row that close the circuit again."`
}

// Circuit is an in-process circuit breaker, the reference's per-connector
// circuit_breaker block (beside the engine's breaker shared through
// Redis). After FailureThreshold
// consecutive failed batches it opens and refuses batches without
// contacting the service; after ResetTimeout it lets one probe through at
// a time (half-open); SuccessThreshold successful probes close it, a
// failed probe opens it again.
type Circuit struct {
	cfg CircuitConfig
	// Now is the clock (tests move it); time.Now when nil.
	Now func() time.Time

	mu        sync.Mutex
	state     BreakerState
	failures  int
	successes int
	openedAt  time.Time
	probing   bool
}

// NewCircuit returns nil (always closed) when the breaker is disabled.
func NewCircuit(cfg CircuitConfig) *Circuit {
	if !cfg.Enabled {
		return nil
	}
	return &Circuit{cfg: cfg}
}

func (c *Circuit) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Allow says whether a batch may be sent now.
func (c *Circuit) Allow() bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case Open:
		if c.now().Sub(c.openedAt) < time.Duration(c.cfg.ResetTimeoutSecs)*time.Second {
			return false
		}
		c.state, c.successes, c.probing = HalfOpen, 0, true
		return true
	case HalfOpen:
		if c.probing {
			return false // one probe at a time
		}
		c.probing = true
		return true
	}
	return true
}

// Done reports the outcome of an allowed batch.
func (c *Circuit) Done(ok bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == HalfOpen && ok:
		c.probing = false
		if c.successes++; c.successes >= c.cfg.SuccessThreshold {
			c.state, c.failures = Closed, 0
		}
	case c.state == HalfOpen:
		c.state, c.openedAt, c.probing = Open, c.now(), false
	case ok:
		c.failures = 0
	default:
		if c.failures++; c.failures >= c.cfg.FailureThreshold {
			c.state, c.openedAt = Open, c.now()
		}
	}
}

// State is the circuit's state.
func (c *Circuit) State() BreakerState {
	if c == nil {
		return Closed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}
