package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// gcra admits n events against the theoretical arrival time (TAT) stored at
// KEYS[1], all in one atomic step. Time comes from the Redis server so that
// instances with skewed clocks share one timeline.
//
// ARGV: n, emission interval in µs (1e6 / rate), tolerance in µs
// (capacity × interval). Returns 0 when admitted, else the µs to wait.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + n * interval
local wait = new_tat - now - tolerance
if wait > 0 then return wait end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
`)

// Redis is GCRA shared through Redis by every instance using the same key.
// GCRA is the token bucket expressed as one timestamp, which makes the
// check-and-take a single small script.
type Redis struct {
	client   redis.Scripter
	key      string
	interval float64 // µs per event
	capacity int
	clock    Clock
}

// NewRedis limits to eventsPerSecond (with burst) across every instance
// sharing key. key must be cluster-safe (state.Key gives hash-tagged keys).
func NewRedis(client redis.Scripter, key string, eventsPerSecond float64, burst int, clock Clock) (*Redis, error) {
	if eventsPerSecond <= 0 || math.IsInf(eventsPerSecond, 0) || math.IsNaN(eventsPerSecond) {
		return nil, fmt.Errorf("events_per_second must be positive, got %v", eventsPerSecond)
	}
	if clock == nil {
		clock = resilience.RealClock{}
	}
	return &Redis{
		client: client, key: key, interval: 1e6 / eventsPerSecond,
		capacity: int(eventsPerSecond) + Burst(eventsPerSecond, burst), clock: clock,
	}, nil
}

// Wait implements Limiter: one script call per bucket-sized part.
func (r *Redis) Wait(ctx context.Context, n int) error {
	for n > 0 {
		part := min(n, r.capacity)
		tolerance := float64(r.capacity) * r.interval
		wait, err := gcra.Run(ctx, r.client, []string{r.key}, part, r.interval, tolerance).Int64()
		if err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		if wait == 0 {
			n -= part
			continue
		}
		if err := r.clock.Sleep(ctx, time.Duration(wait)*time.Microsecond); err != nil {
			return err
		}
	}
	return nil
}
