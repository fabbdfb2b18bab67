// Package panicker is a sink for the CLI's tests that panics with its
// token in the panic value, as a careless connector might: the test builds
// a CLI with it (build --with) and checks the token never shows in the
// output while the panic is still reported.
package panicker

import (
	"context"
	"errors"

	"github.com/rivven/rivven-connect/shared/sdk"
)

func init() {
	sdk.RegisterSink(sdk.Meta{
		Name:        "test-panicker",
		Category:    sdk.Utility,
		Description: "Panics at its first batch with its token in the panic value (a test of secret redaction).",
	}, New)
}

// Config is the test-panicker config block.
type Config struct {
	Token string `yaml:"token" required:"true" secret:"true" doc:"Credential quoted in the panic."`
	In    string `yaml:"in" default:"write" enum:"write,goroutine" doc:"write: panic in Write; goroutine: in a goroutine the sink starts itself."`
}

// Sink panics; see Config.
type Sink struct{ cfg Config }

// New builds the sink.
func New(_ context.Context, c *Config) (sdk.Sink, error) { return &Sink{cfg: *c}, nil }

// Write panics with the token in the value.
func (s *Sink) Write(context.Context, []*sdk.Event) error {
	boom := func() { panic(errors.New("test-panicker: the server refused token " + s.cfg.Token)) }
	if s.cfg.In == "goroutine" {
		done := make(chan struct{})
		go func() {
			defer close(done)
			boom()
		}()
		<-done
		return nil
	}
	boom()
	return nil
}
