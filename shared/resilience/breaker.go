package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// BreakerConfig is a circuit breaker's policy (sinks.<name>.circuit_breaker).
type BreakerConfig struct {
	// FailureThreshold consecutive failed writes, counted across every
	// instance of the connector, open the circuit (1–100).
	FailureThreshold int
	// ResetTimeout is how long the circuit stays open before one probe
	// is let through (1 s – 1 h). It is also the probe's lease: a probe
	// that never reports (its instance died) is replaced after it.
	ResetTimeout time.Duration
	// SuccessThreshold successful probes in a row close it again (1–10).
	SuccessThreshold int
}

// DefaultBreaker is the reference's default policy.
var DefaultBreaker = BreakerConfig{FailureThreshold: 5, ResetTimeout: 30 * time.Second, SuccessThreshold: 2}

// Validate checks the ranges the reference documents; they are checked at
// startup so a typo cannot produce a breaker that never opens or never
// closes.
func (c BreakerConfig) Validate() error {
	var errs []error
	if c.FailureThreshold < 1 || c.FailureThreshold > 100 {
		errs = append(errs, fmt.Errorf("failure_threshold %d is out of range 1–100", c.FailureThreshold))
	}
	if c.ResetTimeout < time.Second || c.ResetTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("reset_timeout_secs %v is out of range 1–3600", c.ResetTimeout.Seconds()))
	}
	if c.SuccessThreshold < 1 || c.SuccessThreshold > 10 {
		errs = append(errs, fmt.Errorf("success_threshold %d is out of range 1–10", c.SuccessThreshold))
	}
	return errors.Join(errs...)
}

// BreakerState is the circuit's state.
type BreakerState int

const (
	Closed   BreakerState = iota // writes go through
	Open                         // writes fail fast
	HalfOpen                     // one probe at a time goes through
)

func (s BreakerState) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// BreakerSuffix names the hash holding a connector's breaker: fields s
// (state), f (consecutive failures), ok (probe successes), t (opened at,
// ms) and p (probe lease until, ms).
const BreakerSuffix = "breaker"

// breakerLua defines the three transitions as Lua functions over the
// breaker hash. Each script that includes them runs one of them (or allow
// plus the ledger) atomically, so two instances can never both see
// "closed, 4 failures" and both write "5": there is no check-then-set.
// Times come from the caller's clock (ARGV), never from the server, so
// tests can drive time and scripts stay deterministic for replication.
const breakerLua = `
local function br_load(k)
  local v = redis.call('HMGET', k, 's', 'f', 'ok', 't', 'p')
  return {s = tonumber(v[1]) or 0, f = tonumber(v[2]) or 0, ok = tonumber(v[3]) or 0, t = tonumber(v[4]) or 0, p = tonumber(v[5]) or 0}
end
-- allow: closed admits; open admits one probe once reset has passed (and
-- goes half-open); half-open admits one probe at a time (lease = reset).
local function br_allow(k, b, now, reset)
  if b.s == 0 then return 1, 0 end
  if b.s == 1 then
    if now - b.t < reset then return 0, 0 end
    b.s, b.ok, b.p = 2, 0, now + reset
    redis.call('HSET', k, 's', 2, 'ok', 0, 'p', b.p)
    return 1, 1
  end
  if b.p > now then return 0, 0 end
  b.p = now + reset
  redis.call('HSET', k, 'p', b.p)
  return 1, 1
end
-- wait: ms until the breaker admits its next probe (0: it admits now or
-- is closed), so a refused caller can come back exactly then instead of
-- after a backoff that may overshoot reset_timeout by seconds.
local function br_wait(b, now, reset)
  local w = 0
  if b.s == 1 then w = b.t + reset - now elseif b.s == 2 then w = b.p - now end
  if w < 0 then w = 0 end
  return w
end
-- failure: closed counts toward the threshold; half-open re-opens at once;
-- open ignores it (a write admitted before the circuit opened).
local function br_failure(k, b, now, thr)
  if b.s == 0 then
    b.f = redis.call('HINCRBY', k, 'f', 1)
    if b.f >= thr then
      b.s, b.t = 1, now
      redis.call('HSET', k, 's', 1, 't', now, 'ok', 0, 'p', 0)
    end
  elseif b.s == 2 then
    b.s, b.t, b.ok = 1, now, 0
    redis.call('HSET', k, 's', 1, 't', now, 'ok', 0, 'p', 0)
  end
end
-- success: closed resets the count; a successful probe counts toward
-- closing and frees the probe slot for the next one.
local function br_success(k, b, probe, sthr)
  if b.s == 0 then
    if b.f > 0 then b.f = 0; redis.call('HSET', k, 'f', 0) end
  elseif b.s == 2 and probe == 1 then
    b.ok = b.ok + 1
    if b.ok >= sthr then
      b.s, b.f, b.ok = 0, 0, 0
      redis.call('HSET', k, 's', 0, 'f', 0, 'ok', 0, 'p', 0)
    else
      redis.call('HSET', k, 'ok', b.ok, 'p', 0)
    end
  end
end
`

// Snapshot is the breaker's stored state.
type Snapshot struct {
	State    BreakerState
	Failures int
	OpenedAt time.Time // zero unless it ever opened
}

// readBreaker reads a breaker's stored state.
func readBreaker(ctx context.Context, c redis.Cmdable, key string) (Snapshot, error) {
	v, err := c.HMGet(ctx, key, "s", "f", "t").Result()
	if err != nil {
		return Snapshot{}, fmt.Errorf("circuit breaker: %w", err)
	}
	var s Snapshot
	var st, f, t int64
	fmt.Sscan(str(v[0]), &st)
	fmt.Sscan(str(v[1]), &f)
	fmt.Sscan(str(v[2]), &t)
	s.State, s.Failures = BreakerState(st), int(f)
	if t > 0 {
		s.OpenedAt = time.UnixMilli(t)
	}
	return s, nil
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return "0"
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
