// Package state keeps what must survive a restart or be shared by every
// instance of a connector: committed offsets now, and epochs, breaker state
// and rate-limit buckets in the reliability layer. Redis holds it; without a
// configured Redis an embedded in-process one (miniredis) stands in.
package state

import "context"

// Store is the state backend. All keys of one connector share a Redis hash
// tag ({connector}) so that they live in one Redis Cluster slot, which keeps
// multi-key scripts legal on ElastiCache Serverless and Memorystore.
type Store interface {
	// Offset returns the committed position for (connector, key), nil when
	// none was committed.
	Offset(ctx context.Context, connector, key string) ([]byte, error)
	// CommitOffset stores a position.
	CommitOffset(ctx context.Context, connector, key string, position []byte) error
	// Offsets returns every committed position of a connector by key.
	Offsets(ctx context.Context, connector string) (map[string][]byte, error)
	// Ping checks the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases connections (and stops the embedded server).
	Close() error
}
