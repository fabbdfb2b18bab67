package resilience

// Production code reaches the breaker's transitions only inside the
// ledger's scripts (Begin and End). Breaker runs the same Lua functions one
// at a time, so that these tests can drive the state machine step by step
// and from many instances at once.

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
)

// Standalone transitions: KEYS[1] = breaker hash; ARGV[1] = now (ms).
var (
	breakerAllow = redis.NewScript(breakerLua + `
local b = br_load(KEYS[1])
local ok, probe = br_allow(KEYS[1], b, tonumber(ARGV[1]), tonumber(ARGV[2]))
return {ok, probe, b.s, b.f}
`)
	breakerFailure = redis.NewScript(breakerLua + `
local b = br_load(KEYS[1])
br_failure(KEYS[1], b, tonumber(ARGV[1]), tonumber(ARGV[2]))
return {b.s, b.f}
`)
	breakerSuccess = redis.NewScript(breakerLua + `
local b = br_load(KEYS[1])
br_success(KEYS[1], b, tonumber(ARGV[2]), tonumber(ARGV[3]))
return {b.s, b.f}
`)
)

// Breaker is a circuit breaker shared by every instance of a connector:
// its state is one Redis hash under the connector's hash tag, changed only
// by the scripts above. With the embedded store it works the same, in one
// process.
type Breaker struct {
	c   redis.Cmdable
	key string
	cfg BreakerConfig
	now func() time.Time
}

// NewBreaker returns the breaker of connector. now may be nil (wall clock).
func NewBreaker(c redis.Cmdable, connector string, cfg BreakerConfig, now func() time.Time) (*Breaker, error) {
	if err := state.ValidateConnector(connector); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("circuit_breaker: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Breaker{c: c, key: state.Key(connector, BreakerSuffix), cfg: cfg, now: now}, nil
}

// Permit is the answer to Allow.
type Permit struct {
	Allowed  bool
	Probe    bool // the caller holds the half-open probe and must report
	State    BreakerState
	Failures int
}

// Allow asks whether a write may go ahead. A caller that gets Allowed
// must report the write's outcome with Success or Failure.
func (b *Breaker) Allow(ctx context.Context) (Permit, error) {
	v, err := breakerAllow.Run(ctx, b.c, []string{b.key}, b.now().UnixMilli(), b.cfg.ResetTimeout.Milliseconds()).Int64Slice()
	if err != nil {
		return Permit{}, fmt.Errorf("circuit breaker: %w", err)
	}
	return Permit{Allowed: v[0] == 1, Probe: v[1] == 1, State: BreakerState(v[2]), Failures: int(v[3])}, nil
}

// Failure records a failed write and returns the state after it.
func (b *Breaker) Failure(ctx context.Context) (BreakerState, error) {
	v, err := breakerFailure.Run(ctx, b.c, []string{b.key}, b.now().UnixMilli(), b.cfg.FailureThreshold).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("circuit breaker: %w", err)
	}
	return BreakerState(v[0]), nil
}

// Success records a successful write (probe says whether it was the
// half-open probe) and returns the state after it.
func (b *Breaker) Success(ctx context.Context, probe bool) (BreakerState, error) {
	v, err := breakerSuccess.Run(ctx, b.c, []string{b.key}, b.now().UnixMilli(), b2i(probe), b.cfg.SuccessThreshold).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("circuit breaker: %w", err)
	}
	return BreakerState(v[0]), nil
}

// Snapshot reads the state.
func (b *Breaker) Snapshot(ctx context.Context) (Snapshot, error) {
	return readBreaker(ctx, b.c, b.key)
}
