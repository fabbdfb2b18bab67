package resilience

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestBreakerConfigValidate(t *testing.T) {
	if err := DefaultBreaker.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []BreakerConfig{
		{FailureThreshold: 0, ResetTimeout: time.Second, SuccessThreshold: 1},
		{FailureThreshold: 101, ResetTimeout: time.Second, SuccessThreshold: 1},
		{FailureThreshold: 5, ResetTimeout: 500 * time.Millisecond, SuccessThreshold: 1},
		{FailureThreshold: 5, ResetTimeout: 3601 * time.Second, SuccessThreshold: 1},
		{FailureThreshold: 5, ResetTimeout: time.Second, SuccessThreshold: 11},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestBreakerTransitions(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		clk := newManualClock()
		cfg := BreakerConfig{FailureThreshold: 3, ResetTimeout: 10 * time.Second, SuccessThreshold: 2}
		b, err := NewBreaker(c, connector(t, c), cfg, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		mustState := func(want BreakerState) {
			t.Helper()
			s, err := b.Snapshot(ctx)
			if err != nil || s.State != want {
				t.Fatalf("state %v (%v), want %v", s.State, err, want)
			}
		}
		allow := func(wantOK, wantProbe bool) {
			t.Helper()
			p, err := b.Allow(ctx)
			if err != nil || p.Allowed != wantOK || p.Probe != wantProbe {
				t.Fatalf("Allow = %+v, %v; want allowed %v probe %v", p, err, wantOK, wantProbe)
			}
		}
		mustState(Closed)
		// A success between failures resets the count.
		b.Failure(ctx)
		b.Failure(ctx)
		b.Success(ctx, false)
		b.Failure(ctx)
		b.Failure(ctx)
		mustState(Closed)
		if st, _ := b.Failure(ctx); st != Open {
			t.Fatalf("3rd consecutive failure: %v", st)
		}
		allow(false, false)
		clk.Advance(9 * time.Second)
		allow(false, false)
		clk.Advance(time.Second)
		allow(true, true) // the probe
		mustState(HalfOpen)
		allow(false, false) // one probe at a time
		// A failed probe re-opens at once.
		if st, _ := b.Failure(ctx); st != Open {
			t.Fatalf("failed probe: %v", st)
		}
		allow(false, false)
		clk.Advance(10 * time.Second)
		allow(true, true)
		if st, _ := b.Success(ctx, true); st != HalfOpen {
			t.Fatalf("1st probe success: %v", st)
		}
		allow(true, true) // the next probe may go at once
		if st, _ := b.Success(ctx, true); st != Closed {
			t.Fatalf("2nd probe success: %v", st)
		}
		allow(true, false)
		// A probe whose instance died is replaced after the lease.
		for range 3 {
			b.Failure(ctx)
		}
		clk.Advance(10 * time.Second)
		allow(true, true)
		allow(false, false)
		clk.Advance(10 * time.Second)
		allow(true, true)
	})
}

// TestBreakerConcurrentFailuresCountOnce hammers one breaker from many
// goroutines (separate instances, one shared state): no failure is lost
// and the circuit opens exactly at the threshold.
func TestBreakerConcurrentFailuresCountOnce(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		name := connector(t, c)
		cfg := BreakerConfig{FailureThreshold: 100, ResetTimeout: time.Minute, SuccessThreshold: 1}
		var wg sync.WaitGroup
		opened := make(chan int, 200)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := NewBreaker(c, name, cfg, nil)
				for i := range 25 {
					st, err := b.Failure(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if st == Open {
						opened <- g*100 + i
					}
				}
			}()
		}
		wg.Wait()
		close(opened)
		b, _ := NewBreaker(c, name, cfg, nil)
		s, _ := b.Snapshot(ctx)
		// 200 failures: the 100th opens it; failures while open are not
		// counted, so the count stops at exactly 100.
		if s.State != Open || s.Failures != 100 {
			t.Fatalf("snapshot %+v", s)
		}
		if n := len(opened); n != 101 {
			t.Fatalf("%d failures reported Open, want 101 (the 100th and the 100 after it)", n)
		}
	})
}

// TestBreakerOneProbeAcrossInstances: when the reset passes, exactly one of
// many concurrent callers gets the probe.
func TestBreakerOneProbeAcrossInstances(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		name := connector(t, c)
		clk := newManualClock()
		cfg := BreakerConfig{FailureThreshold: 1, ResetTimeout: time.Second, SuccessThreshold: 1}
		b, _ := NewBreaker(c, name, cfg, clk.Now)
		b.Failure(ctx)
		clk.Advance(time.Second)
		var wg sync.WaitGroup
		var mu sync.Mutex
		probes := 0
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bi, _ := NewBreaker(c, name, cfg, clk.Now)
				p, err := bi.Allow(ctx)
				if err != nil {
					t.Error(err)
				}
				if p.Allowed {
					mu.Lock()
					probes++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if probes != 1 {
			t.Fatalf("%d probes admitted, want 1", probes)
		}
	})
}
