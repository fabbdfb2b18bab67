// Package resilience holds the reliability building blocks every connector
// and host shares: typed error classes, retries with exponential backoff and
// jitter, a circuit breaker and a delivery ledger whose state lives in Redis
// (so a whole serverless fleet trips and deduplicates together), and secret
// redaction for anything shown to operators.
//
// State that must be shared is kept in Redis under the connector's hash tag
// (state.Key), and every change to it is one Lua script that receives its
// keys through KEYS[]: atomic on a single node, legal on a cluster.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
)

// Class is what kind of failure an error is, which decides whether trying
// again can help. The classes are the reference's: Connection, Timeout and
// RateLimited are retryable; Auth, NotFound, Schema and Fatal are not.
type Class int

const (
	// Unknown is an error nobody classified. It is retried: an unexpected
	// error is more often a blip than a permanent condition, and retries
	// are bounded anyway.
	Unknown Class = iota
	Connection
	Timeout
	RateLimited
	Auth
	NotFound
	Schema
	Fatal
)

var classNames = [...]string{"unknown", "connection", "timeout", "rate_limited", "auth", "not_found", "schema", "fatal"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "Class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// Retryable reports whether an error of this class may succeed on retry.
func (c Class) Retryable() bool { return c <= RateLimited }

// Error is an error with its class and, for RateLimited, how long the
// remote side asked us to wait.
type Error struct {
	Class      Class
	Err        error
	RetryAfter time.Duration // 0 = not given
}

func (e *Error) Error() string { return e.Class.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// New classifies err; nil stays nil.
func New(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Err: err}
}

// Errorf is New with a formatted message (%w works).
func Errorf(c Class, format string, args ...any) error {
	return &Error{Class: c, Err: fmt.Errorf(format, args...)}
}

// RateLimitedAfter is a RateLimited error carrying the server's Retry-After.
func RateLimitedAfter(err error, after time.Duration) error {
	return &Error{Class: RateLimited, Err: err, RetryAfter: after}
}

// ErrFenced is state.ErrFenced: a newer instance holds the connector.
var ErrFenced = state.ErrFenced

// ErrOpen is returned for work refused by an open circuit breaker; the
// message is the one the reference documents.
var ErrOpen = errors.New("circuit breaker is open")

// ClassOf returns the class of err: the one it was given with New, else a
// guess from well-known error types (network, context, Redis), else
// Unknown.
func ClassOf(err error) Class {
	if err == nil {
		return Unknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	switch {
	case errors.Is(err, state.ErrFenced), errors.Is(err, context.Canceled):
		return Fatal
	case errors.Is(err, ErrOpen):
		return Connection
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return Timeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Connection
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return Timeout
		}
		return Connection
	}
	// Redis answers these while failing over, loading, out of memory,
	// busy with a script or without enough replicas; they pass.
	msg := err.Error()
	for _, p := range []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "BUSY ", "NOREPLICAS ",
		"OOM ", "ERR max number of clients reached", "redis: connection pool timeout"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, ": "+p) {
			return Connection
		}
	}
	// Any other error reply means Redis was reached and refused the
	// command (a script error, a key of the wrong type): sending the same
	// command again gets the same answer.
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range []string{"NOAUTH ", "WRONGPASS ", "NOPERM "} {
			if strings.HasPrefix(re.Error(), p) {
				return Auth
			}
		}
		return Fatal
	}
	return Unknown
}

// Retryable reports whether err may succeed on retry.
func Retryable(err error) bool { return err != nil && ClassOf(err).Retryable() }

// RetryAfterOf returns the wait a RateLimited error asked for (0 if none).
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// FromHTTP classifies an HTTP response the way the reference's connectors
// do: 408 Timeout; 429 RateLimited (with Retry-After); 5xx Connection
// (the server side is in trouble, it may pass); 401/403 Auth; 404/410
// NotFound; 400/413/415/422 Schema (the request itself is wrong); other
// 4xx Fatal. retryAfter is the raw header value ("" if absent). It returns
// nil for statuses below 400.
func FromHTTP(status int, retryAfter string, now time.Time, err error) error {
	if status < 400 {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("HTTP %d %s", status, http.StatusText(status))
	}
	var c Class
	switch {
	case status == http.StatusRequestTimeout:
		c = Timeout
	case status == http.StatusTooManyRequests:
		d, _ := ParseRetryAfter(retryAfter, now)
		return RateLimitedAfter(err, d)
	case status >= 500:
		c = Connection
		if d, ok := ParseRetryAfter(retryAfter, now); ok {
			return &Error{Class: c, Err: err, RetryAfter: d} // 503 may carry one too
		}
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		c = Auth
	case status == http.StatusNotFound, status == http.StatusGone:
		c = NotFound
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge,
		status == http.StatusUnsupportedMediaType, status == http.StatusUnprocessableEntity:
		c = Schema
	default:
		c = Fatal
	}
	return &Error{Class: c, Err: err}
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3). A date in the past gives 0, true.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
