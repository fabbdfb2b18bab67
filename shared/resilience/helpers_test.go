package resilience

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const realRedis = "127.0.0.1:6379"

// backends runs fn against the embedded store and the real Redis (skipped
// locally when absent, a failure under CI).
func backends(t *testing.T, fn func(t *testing.T, c redis.UniversalClient)) {
	t.Run("embedded", func(t *testing.T) {
		e, err := state.NewEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		fn(t, e.Client())
	})
	t.Run("redis", func(t *testing.T) {
		testenv.RequireService(t, "redis", realRedis)
		r, err := state.NewRedis("redis://" + realRedis + "/0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		fn(t, r.Client())
	})
}

// connector returns a name unique to this run and deletes its keys after
// the test, so runs against a shared Redis never see each other.
func connector(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	name := fmt.Sprintf("t-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	t.Cleanup(func() {
		keys := []string{}
		for _, s := range []string{BreakerSuffix, LedgerSuffix, DedupSuffix, AttemptsSuffix, state.EpochSuffix, "offsets"} {
			keys = append(keys, state.Key(name, s))
		}
		if err := c.Del(context.Background(), keys...).Err(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// manualClock is a clock tests move by hand; Sleep records and advances.
type manualClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newManualClock() *manualClock { return &manualClock{t: time.UnixMilli(1_750_000_000_000)} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *manualClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}
