package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
)

func TestClassOf(t *testing.T) {
	timeoutErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		err  error
		want Class
	}{
		{errors.New("something odd"), Unknown},
		{New(Auth, errors.New("bad key")), Auth},
		{fmt.Errorf("wrapped: %w", New(Schema, errors.New("no column x"))), Schema},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, Connection},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), Connection},
		{io.EOF, Connection},
		{io.ErrUnexpectedEOF, Connection},
		{timeoutErr, Timeout},
		{context.DeadlineExceeded, Timeout},
		{context.Canceled, Fatal},
		{&state.FencedError{Connector: "c", Epoch: 1, Current: 2}, Fatal},
		{ErrOpen, Connection},
		{errors.New("LOADING Redis is loading the dataset in memory"), Connection},
		{errors.New("READONLY You can't write against a read only replica."), Connection},
		{RateLimitedAfter(errors.New("slow down"), time.Second), RateLimited},
	}
	for _, c := range cases {
		if got := ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	for c, retry := range map[Class]bool{Unknown: true, Connection: true, Timeout: true, RateLimited: true, Auth: false, NotFound: false, Schema: false, Fatal: false} {
		if c.Retryable() != retry {
			t.Errorf("%v.Retryable() = %v", c, !retry)
		}
	}
	if Retryable(nil) {
		t.Error("nil is not retryable")
	}
	if New(Auth, nil) != nil {
		t.Error("New(class, nil) must stay nil")
	}
}

func TestFromHTTP(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		status     int
		retryAfter string
		want       Class
		after      time.Duration
	}{
		{408, "", Timeout, 0},
		{429, "7", RateLimited, 7 * time.Second},
		{429, "Wed, 01 Jan 2025 12:00:30 GMT", RateLimited, 30 * time.Second},
		{429, "", RateLimited, 0},
		{500, "", Connection, 0},
		{503, "2", Connection, 2 * time.Second},
		{504, "", Connection, 0},
		{400, "", Schema, 0},
		{401, "", Auth, 0},
		{403, "", Auth, 0},
		{404, "", NotFound, 0},
		{409, "", Fatal, 0},
	}
	for _, c := range cases {
		err := FromHTTP(c.status, c.retryAfter, now, nil)
		if ClassOf(err) != c.want || RetryAfterOf(err) != c.after {
			t.Errorf("%d %q: class %v after %v, want %v %v", c.status, c.retryAfter, ClassOf(err), RetryAfterOf(err), c.want, c.after)
		}
	}
	if FromHTTP(204, "", now, nil) != nil {
		t.Error("2xx is not an error")
	}
	if d, ok := ParseRetryAfter("Wed, 01 Jan 2025 11:00:00 GMT", now); !ok || d != 0 {
		t.Errorf("past date: %v %v", d, ok)
	}
	if _, ok := ParseRetryAfter("soon", now); ok {
		t.Error("garbage accepted")
	}
}

func TestRedact(t *testing.T) {
	r := NewRedactor("s3cr3t-token", "x")
	cases := map[string]string{
		"dial redis://admin:hunter2@cache:6379/0: refused":   "dial redis://admin:****@cache:6379/0: refused",
		"postgres: host=db password=hunter2 user=app failed": "postgres: host=db password=**** user=app failed",
		`auth failed for {"api_key": "abc123"}`:              `auth failed for {"api_key": "****"}`,
		"header Authorization: Bearer-xyz rejected":          "header Authorization: **** rejected",
		"the token s3cr3t-token was refused":                 "the token **** was refused",
		"x marks the spot":                                   "x marks the spot", // too short to be a secret
	}
	for in, want := range cases {
		if got := r.Redact(in); got != want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	var nilR *Redactor
	if got := nilR.Redact("https://u:p@h/"); got != "https://u:****@h/" {
		t.Errorf("nil redactor: %q", got)
	}
}

// TestClassOfRedisReplies classifies error replies as a Redis server
// sends them: a refused command (a key of the wrong type, a broken
// script) is not a connection problem and is not retried; a server that
// is busy or failing over is.
func TestClassOfRedisReplies(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		key := state.Key(connector(t, c), LedgerSuffix)
		if err := c.Set(ctx, key, "not a hash", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		err := c.HGet(ctx, key, "f").Err()
		if err == nil || ClassOf(err) != Fatal || ClassOf(fmt.Errorf("ledger: %w", err)) != Fatal {
			t.Errorf("WRONGTYPE reply %v: class %v, want fatal", err, ClassOf(err))
		}
		err = c.Eval(ctx, "return redis.call('NOSUCHCOMMAND')", nil).Err()
		if err == nil || ClassOf(err) != Fatal {
			t.Errorf("script error %v: class %v, want fatal", err, ClassOf(err))
		}
	})
	for _, msg := range []string{"BUSY Redis is busy running a script.", "OOM command not allowed when used memory > 'maxmemory'.",
		"NOREPLICAS Not enough good replicas to write.", "ERR max number of clients reached"} {
		if got := ClassOf(fmt.Errorf("ledger: %w", replyError(msg))); got != Connection {
			t.Errorf("%q: class %v, want connection", msg, got)
		}
	}
	if got := ClassOf(replyError("NOPERM User has no permissions to run the 'eval' command")); got != Auth {
		t.Errorf("NOPERM: class %v, want auth", got)
	}
}

// replyError is an error reply of the kind go-redis returns (redis.Error)
// for replies the embedded store cannot be made to send.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}
