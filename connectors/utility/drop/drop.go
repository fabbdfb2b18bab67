// Package drop is a sink that discards events and only counts them. It
// measures what a pipeline costs without any sink cost, e.g. in benchmarks.
package drop

import (
	"context"
	"sync/atomic"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:             "drop",
		ConcurrentWrites: true,
		Aliases:          []string{"null"},
		Category:         catalog.Utility,
		Subcategory:      "Debug",
		Description:      "Discards every event and counts them; for benchmarks and dry runs.",
		Tags:             []string{"null", "discard", "devnull", "benchmark", "test"},
	}, New)
}

// Config is empty: the drop sink has no settings.
type Config struct{}

// Sink discards events. It is safe for concurrent use.
type Sink struct {
	n atomic.Uint64
}

// New builds a drop sink.
func New(context.Context, *Config) (connector.Sink, error) { return &Sink{}, nil }

// Write counts the batch and forgets it.
func (s *Sink) Write(_ context.Context, batch []*events.Event) error {
	s.n.Add(uint64(len(batch)))
	return nil
}

// ConcurrentWrites: counting is atomic.
func (s *Sink) ConcurrentWrites() bool { return true }

// Count returns how many events were written so far.
func (s *Sink) Count() uint64 { return s.n.Load() }
