package state

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis logs on its own when a pooled connection cannot be dialled
// (an outage). In JSON mode that line must be JSON like every other.
func TestRedisClientLogsThroughSlog(t *testing.T) {
	var buf syncBuffer
	LogTo(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { LogTo(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))) })

	// A port nobody listens on: every dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MinIdleConns: 1, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	_ = c.Ping(context.Background()).Err()

	// The pool fills its idle connections in the background and logs
	// the failures; wait for a line rather than for a time.
	deadline := time.Now().Add(10 * time.Second)
	for buf.String() == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := buf.String()
	if out == "" {
		t.Fatal("go-redis logged nothing through slog")
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if m["component"] != "go-redis" || m["level"] != "WARN" {
			t.Errorf("line %s", line)
		}
	}
}

// syncBuffer is written by go-redis's pool goroutines while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
