package llm

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

// Split returns the events of batch that did not fail, and a
// *connector.TransformError naming those that did (they go to the
// dead-letter topic with their error).
func Split(batch []*events.Event, failed map[int]error) ([]*events.Event, error) {
	if len(failed) == 0 {
		return batch, nil
	}
	out := make([]*events.Event, 0, len(batch)-len(failed))
	te := &connector.TransformError{}
	for i, e := range batch {
		if err, ok := failed[i]; ok {
			te.Failed = append(te.Failed, connector.EventError{Event: e, Err: err})
			continue
		}
		out = append(out, e)
	}
	return out, te
}

// HTTPClient is the HTTP client the transforms use; tests replace it.
var HTTPClient *http.Client

// NewChatter makes the client of a provider.
func NewChatter(ctx context.Context, s Settings) (Chatter, error) {
	switch s.Provider {
	case "bedrock":
		return NewBedrock(ctx, s, HTTPClient)
	case "openai":
		return NewOpenAI(s, HTTPClient), nil
	}
	return nil, fmt.Errorf("unknown provider %q", s.Provider)
}

// NewEmbedder makes the embedding client of a provider.
func NewEmbedder(ctx context.Context, s Settings) (Embedder, error) {
	switch s.Provider {
	case "bedrock":
		return NewBedrock(ctx, s, HTTPClient)
	case "openai":
		return NewOpenAI(s, HTTPClient), nil
	}
	return nil, fmt.Errorf("unknown provider %q", s.Provider)
}

// Secs turns a *_secs key into a duration.
func Secs(n int) time.Duration { return time.Duration(n) * time.Second }

// Millis turns a *_ms key into a duration.
func Millis(n int) time.Duration { return time.Duration(n) * time.Millisecond }
