package state

import (
	"context"
	"fmt"
)

// Open returns the state store for url. An empty url means no Redis was
// configured: an embedded in-process one is started, which is fine for one
// process but keeps nothing across restarts. Otherwise url is handed to
// NewRedis and the server is pinged, so a wrong address or password fails
// at startup instead of at the first commit.
func Open(ctx context.Context, url string) (Store, error) {
	if url == "" {
		e, err := NewEmbedded()
		if err != nil {
			return nil, err // not e: a nil *Embedded would be a non-nil Store
		}
		return e, nil
	}
	r, err := NewRedis(url)
	if err != nil {
		return nil, err
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		_ = r.client.Close() // the ping error is the one worth reporting
		return nil, fmt.Errorf("state: redis at %s unreachable: %w", r.where, err)
	}
	return r, nil
}
