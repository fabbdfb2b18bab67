package state

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Embedded is a Redis store backed by an in-process miniredis. It lets a
// connector run without any Redis configured (local runs, tests), through
// exactly the code path used in production. State lives in memory and is
// lost on Close, and it is not shared between processes.
type Embedded struct {
	*Redis
	srv *miniredis.Miniredis

	mu sync.Mutex
	ln net.Listener // opened by the first Addr call
}

var _ Store = (*Embedded)(nil)

// NewEmbedded starts a miniredis and returns a store connected to it. The
// store's client talks to it over in-memory pipes: no port is opened and
// no loopback connection made, which a function's cold start would wait
// for. Addr opens a port for clients of its own.
func NewEmbedded() (*Embedded, error) {
	srv := miniredis.NewMiniRedis()
	// The first Dial starts the server (without a listener).
	c, err := srv.Dial()
	if err != nil {
		return nil, fmt.Errorf("state: start embedded redis: %w", err)
	}
	c.Close()
	r := NewRedisClient(redis.NewClient(&redis.Options{
		Addr:   "embedded",
		Dialer: func(context.Context, string, string) (net.Conn, error) { return srv.Dial() },
		// miniredis answers neither CLIENT SETINFO nor CLIENT
		// MAINT_NOTIFICATIONS: asking costs each new connection two
		// round trips that only fail.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}))
	r.where = "embedded redis"
	return &Embedded{Redis: r, srv: srv}, nil
}

// Addr is the host:port of a loopback listener serving the embedded store,
// opened by the first call, for clients other than the store's own (tests
// that go through a proxy or a cluster client).
func (e *Embedded) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(fmt.Sprintf("state: embedded redis: listen: %v", err))
		}
		e.ln = ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				e.srv.Server().ServeConn(c)
			}
		}()
	}
	return e.ln.Addr().String()
}

// Close closes the client and stops the server.
func (e *Embedded) Close() error {
	err := e.Redis.Close()
	e.mu.Lock()
	if e.ln != nil {
		e.ln.Close()
	}
	e.mu.Unlock()
	e.srv.Close()
	return err
}
