package resilience

import (
	"context"
	"errors"
	"testing"
	"time"
)

var policy = Policy{MaxRetries: 4, Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.1}

func TestPolicyDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 100, 2: 200, 3: 400, 4: 800, 5: 1000, 30: 1000} {
		if got := policy.Base(n); got != want*time.Millisecond {
			t.Errorf("Base(%d) = %v", n, got)
		}
	}
	// Jitter spreads ±10%, never beyond the cap.
	if lo, hi := policy.Delay(2, 0), policy.Delay(2, 0.999999); lo != 180*time.Millisecond || hi < 219*time.Millisecond || hi > 220*time.Millisecond {
		t.Errorf("jitter range %v..%v", lo, hi)
	}
	if got := policy.Delay(10, 0.999); got != time.Second {
		t.Errorf("capped delay with jitter = %v", got)
	}
	if err := policy.Validate(); err != nil {
		t.Error(err)
	}
	if err := (Policy{Initial: time.Second, Max: time.Second, Multiplier: 0.5}).Validate(); err == nil {
		t.Error("multiplier < 1 accepted")
	}
}

func TestDoRetriesRetryableErrors(t *testing.T) {
	clk := newManualClock()
	calls := 0
	err := Do(context.Background(), policy, func(context.Context) error {
		calls++
		if calls < 3 {
			return New(Connection, errors.New("refused"))
		}
		return nil
	}, WithClock(clk), WithRand(func() float64 { return 0.5 }))
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if len(clk.sleeps) != 2 || clk.sleeps[0] != 100*time.Millisecond || clk.sleeps[1] != 200*time.Millisecond {
		t.Fatalf("sleeps %v", clk.sleeps)
	}
}

func TestDoStopsOnPermanentErrors(t *testing.T) {
	calls := 0
	err := Do(context.Background(), policy, func(context.Context) error {
		calls++
		return New(Auth, errors.New("401"))
	}, WithClock(newManualClock()))
	if ClassOf(err) != Auth || calls != 1 {
		t.Fatalf("err %v calls %d", err, calls)
	}
}

func TestDoGivesUpAfterMaxRetries(t *testing.T) {
	clk := newManualClock()
	calls := 0
	retried := 0
	err := Do(context.Background(), policy, func(context.Context) error {
		calls++
		return New(Timeout, errors.New("slow"))
	}, WithClock(clk), OnRetry(func(int, error, time.Duration) { retried++ }))
	if ClassOf(err) != Timeout || calls != 5 || retried != 4 {
		t.Fatalf("err %v calls %d retried %d", err, calls, retried)
	}
}

func TestDoHonoursRetryAfter(t *testing.T) {
	clk := newManualClock()
	calls := 0
	_ = Do(context.Background(), policy, func(context.Context) error {
		calls++
		if calls == 1 {
			return RateLimitedAfter(errors.New("429"), 5*time.Second)
		}
		return nil
	}, WithClock(clk))
	if len(clk.sleeps) != 1 || clk.sleeps[0] != 5*time.Second {
		t.Fatalf("sleeps %v, want the server's 5s", clk.sleeps)
	}
}

func TestDoDeadlineWins(t *testing.T) {
	// The deadline is real (contexts use the wall clock), so the test
	// clock starts now and the policy works in minutes.
	clk := newManualClock()
	clk.t = time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(25*time.Minute))
	defer cancel()
	slow := Policy{MaxRetries: 5, Initial: 10 * time.Minute, Max: time.Hour, Multiplier: 2}
	calls := 0
	err := Do(ctx, slow, func(context.Context) error {
		calls++
		return New(Connection, errors.New("refused"))
	}, WithClock(clk), WithRand(func() float64 { return 0.5 }))
	// 10 min fits before the deadline, 10+20 does not: two calls, one wait.
	if calls != 2 || len(clk.sleeps) != 1 || ClassOf(err) != Timeout {
		t.Fatalf("calls %d sleeps %v err %v", calls, clk.sleeps, err)
	}
	// A Retry-After beyond the deadline is not waited for either.
	calls = 0
	err = Do(ctx, policy, func(context.Context) error {
		calls++
		return RateLimitedAfter(errors.New("429"), time.Hour)
	}, WithClock(clk))
	if calls != 1 || ClassOf(err) != Timeout {
		t.Fatalf("calls %d err %v", calls, err)
	}
}

func TestDoCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Do(ctx, policy, func(context.Context) error { t.Fatal("called"); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
