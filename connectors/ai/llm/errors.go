package llm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Transforms link no engine or state store (shared/resilience links
// Redis), so the little of it the LLM calls need is here: which failures
// are worth another attempt, the server's Retry-After, and backoff.

// Kind is what a provider failure is, which decides whether to retry.
type Kind int

const (
	Permanent   Kind = iota // the request itself is wrong (4xx): same answer every time
	Timeout                 // no answer in time
	Unavailable             // 5xx or the network: may pass
	RateLimited             // 429: wait RetryAfter, then again
)

// Error is a classified provider failure.
type Error struct {
	Kind       Kind
	Err        error
	RetryAfter time.Duration // 0 = not given
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf is a Permanent error: the answer cannot be used.
func Errorf(format string, args ...any) error {
	return &Error{Kind: Permanent, Err: fmt.Errorf(format, args...)}
}

// KindOf classifies err: as given, else network failures and deadlines.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return Timeout
		}
		return Unavailable
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return Unavailable
	}
	return Permanent
}

// FromHTTP classifies a failed HTTP status: 408 Timeout, 429 RateLimited,
// 5xx Unavailable, every other 4xx Permanent. retryAfter is the header.
func FromHTTP(status int, retryAfter string, err error) error {
	k := Permanent
	switch {
	case status == http.StatusRequestTimeout:
		k = Timeout
	case status == http.StatusTooManyRequests:
		k = RateLimited
	case status >= 500:
		k = Unavailable
	}
	return &Error{Kind: k, Err: err, RetryAfter: parseRetryAfter(retryAfter, time.Now())}
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retry calls fn until it succeeds, fails with a Permanent error, or was
// retried s.MaxRetries times, waiting the exponential backoff with ±20%
// jitter, or the server's Retry-After when it gave one (the server knows
// best, so it wins over the backoff and its cap).
func retry(ctx context.Context, s Settings, onRetry func(), fn func(ctx context.Context) error) error {
	wait := s.InitialBackoff
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || KindOf(err) == Permanent || attempt >= s.MaxRetries || ctx.Err() != nil {
			return err
		}
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		d = min(d, s.MaxBackoff)
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			d = e.RetryAfter
		}
		onRetry()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		wait = min(wait*2, s.MaxBackoff)
	}
}
