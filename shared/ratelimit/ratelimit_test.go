package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/testenv"
)

// fakeClock advances only when slept on.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept += d
	c.mu.Unlock()
	return ctx.Err()
}

func TestBurstDefault(t *testing.T) {
	if Burst(50, 0) != 10 || Burst(1000, 0) != 100 || Burst(1000, 7) != 7 {
		t.Fatal("default burst is max(eps/10, 10) unless given")
	}
}

func TestBucketPassesABatchTenTimesTheBucket(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	b, err := NewBucket(100, 10, clk) // capacity 110
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(context.Background(), 1100); err != nil {
		t.Fatal(err)
	}
	// 110 pass at once, the other 990 at 100/s.
	if want := 9900 * time.Millisecond; clk.slept < want-10*time.Millisecond || clk.slept > want+50*time.Millisecond {
		t.Fatalf("simulated wait %v, want about %v", clk.slept, want)
	}
}

func TestBucketRefillsAndCapsAtCapacity(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	b, _ := NewBucket(10, 10, clk)
	b.Wait(context.Background(), 20)
	clk.now = clk.now.Add(time.Hour) // idle: refills to capacity, not beyond
	clk.slept = 0
	b.Wait(context.Background(), 20)
	if clk.slept != 0 {
		t.Fatalf("a full bucket made the caller wait %v", clk.slept)
	}
	b.Wait(context.Background(), 5)
	if clk.slept < 490*time.Millisecond || clk.slept > 510*time.Millisecond {
		t.Fatalf("5 events past an empty bucket at 10/s waited %v, want 500ms", clk.slept)
	}
}

func TestBucketStopsOnCancel(t *testing.T) {
	b, _ := NewBucket(1, 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx, 100); err == nil {
		t.Fatal("Wait ignored a cancelled context")
	}
	if _, err := NewBucket(0, 1, nil); err == nil {
		t.Fatal("a zero rate was accepted")
	}
}

func TestRedisGCRAAdmitsBurstThenPaces(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	clk := &fakeClock{now: time.Unix(0, 0)}
	l, _ := NewRedis(c, "rivven:{sink}:ratelimit", 100, 10, clk)
	if err := l.Wait(context.Background(), 110); err != nil {
		t.Fatal(err)
	}
	if clk.slept != 0 {
		t.Fatalf("the first full bucket waited %v", clk.slept)
	}
	// miniredis's TIME is the wall clock, so the next event must wait
	// about one interval (10ms) unless the test itself was slow.
	if err := l.Wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if clk.slept == 0 {
		t.Fatal("an event past the bucket did not wait")
	}
}

// Four concurrent handlers sharing one limit in real Redis: the total that
// passes in a window stays near capacity + rate × window.
func TestRedisLimitHoldsAcrossFourHandlers(t *testing.T) {
	testenv.RequireService(t, "redis", "127.0.0.1:6379")
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	key := fmt.Sprintf("rivven:{ratelimit-test-%d}:ratelimit", time.Now().UnixNano())
	defer c.Del(context.Background(), key)
	const rate, burst = 400.0, 40
	window := 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		l, err := NewRedis(c, key, rate, burst, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.Wait(ctx, 25) == nil {
				passed.Add(25)
			}
		}()
	}
	wg.Wait()
	want := rate + burst + rate*window.Seconds()
	if got := float64(passed.Load()); got < 0.6*want || got > 1.25*want {
		t.Fatalf("%v events passed in %v across 4 handlers, want about %v", got, window, want)
	}
}
