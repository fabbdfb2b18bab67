package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is exponential backoff with jitter (settings.retry): wait Initial
// before the first retry, multiply by Multiplier after each, never above
// Max, and spread every wait by ±Jitter so that a fleet that failed
// together does not retry together (thundering herd).
type Policy struct {
	MaxRetries int // retries after the first attempt; 0 = try once
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64 // 0..1
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	switch {
	case p.MaxRetries < 0:
		return errors.New("retry: max_retries must be ≥ 0")
	case p.Initial <= 0 || p.Max <= 0:
		return errors.New("retry: backoffs must be positive")
	case p.Multiplier < 1:
		return errors.New("retry: backoff_multiplier must be ≥ 1")
	case p.Jitter < 0 || p.Jitter > 1:
		return errors.New("retry: jitter_factor must be within 0..1")
	}
	return nil
}

// Base returns the wait before retry n (n ≥ 1) without jitter.
func (p Policy) Base(n int) time.Duration {
	d := float64(p.Initial)
	for i := 1; i < n; i++ {
		d *= p.Multiplier
		if d >= float64(p.Max) {
			return p.Max
		}
	}
	return min(time.Duration(d), p.Max)
}

// Delay returns the wait before retry n with jitter: Base(n) scaled by a
// factor in [1-Jitter, 1+Jitter) picked by r (a number in [0, 1)), and
// capped at Max so max_backoff_ms stays a true ceiling.
func (p Policy) Delay(n int, r float64) time.Duration {
	d := float64(p.Base(n)) * (1 + p.Jitter*(2*r-1))
	return time.Duration(math.Min(math.Max(d, 0), float64(p.Max)))
}

// Clock is time as retries see it; tests replace it. pipeline.Clock
// satisfies it.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Option changes how Do retries.
type Option func(*retryOpts)

type retryOpts struct {
	clock   Clock
	rand    func() float64
	onRetry func(attempt int, err error, wait time.Duration)
	retryIf func(error) bool
}

// WithClock replaces the wall clock (tests).
func WithClock(c Clock) Option { return func(o *retryOpts) { o.clock = c } }

// WithRand replaces the jitter source; it must return numbers in [0, 1).
func WithRand(f func() float64) Option { return func(o *retryOpts) { o.rand = f } }

// OnRetry is called before each wait (for logs and retry counters).
func OnRetry(f func(attempt int, err error, wait time.Duration)) Option {
	return func(o *retryOpts) { o.onRetry = f }
}

// RetryIf narrows which retryable errors Do retries: only those for which
// f holds (a sink handler retries in-process only what the server asked
// it to retry after a given time; everything else goes back to the
// trigger, whose redelivery is the retry).
func RetryIf(f func(error) bool) Option { return func(o *retryOpts) { o.retryIf = f } }

// HasRetryAfter reports whether err carries a Retry-After from the remote
// side (a 429, or a 503 that said when to come back).
func HasRetryAfter(err error) bool { return RetryAfterOf(err) > 0 }

// Do calls fn until it succeeds, fails with an error that is not
// retryable (see ClassOf), or has been retried p.MaxRetries times. Between
// attempts it waits Policy.Delay, or the Retry-After the error carries
// (the server knows best, so it wins over the policy, even above Max).
//
// The context deadline always wins: a wait that would end after it is not
// started; Do returns at once with a Timeout error wrapping the last one.
func Do(ctx context.Context, p Policy, fn func(ctx context.Context) error, opts ...Option) error {
	o := retryOpts{clock: RealClock{}, rand: rand.Float64}
	for _, opt := range opts {
		opt(&o)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if !Retryable(err) || attempt > p.MaxRetries || o.retryIf != nil && !o.retryIf(err) {
			return err
		}
		wait := p.Delay(attempt, o.rand())
		if ra := RetryAfterOf(err); ra > 0 {
			wait = ra
		}
		if dl, ok := ctx.Deadline(); ok && !o.clock.Now().Add(wait).Before(dl) {
			return &Error{Class: Timeout, Err: fmt.Errorf("giving up: the next retry (in %v) would pass the deadline: %w", wait, err)}
		}
		if o.onRetry != nil {
			o.onRetry(attempt, err, wait)
		}
		if serr := o.clock.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}
