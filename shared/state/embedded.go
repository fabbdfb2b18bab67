package state

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Embedded is a Redis store backed by an in-process miniredis. It lets a
// connector run without any Redis configured (local runs, tests), through
// exactly the code path used in production. State lives in memory and is
// lost on Close, and it is not shared between processes.
type Embedded struct {
	*Redis
	srv *miniredis.Miniredis
}

var _ Store = (*Embedded)(nil)

// NewEmbedded starts a miniredis on a free loopback port and returns a store
// connected to it.
func NewEmbedded() (*Embedded, error) {
	srv, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("state: start embedded redis: %w", err)
	}
	r := NewRedisClient(redis.NewClient(&redis.Options{Addr: srv.Addr()}))
	r.where = "embedded redis at " + srv.Addr()
	return &Embedded{Redis: r, srv: srv}, nil
}

// Addr is the host:port the embedded server listens on.
func (e *Embedded) Addr() string { return e.srv.Addr() }

// Close closes the client and stops the server.
func (e *Embedded) Close() error {
	err := e.Redis.Close()
	e.srv.Close()
	return err
}
