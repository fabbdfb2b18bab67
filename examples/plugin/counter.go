// Package counter is an example of a rivven-connect connector module kept
// outside the rivven-connect repository. It registers a source,
// acme-counter, that emits a numbered sequence of signed records, and a
// transform, acme-upper, that upper-cases string fields.
//
// Build a CLI with it (see README.md):
//
//	rivven-connect build --with example.com/rivven-counter=./examples/plugin
package counter

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/rivven/rivven-connect/shared/sdk"
)

func init() {
	sdk.RegisterSource(sdk.Meta{
		Name:        "acme-counter",
		Category:    sdk.Utility,
		Subcategory: "Generate",
		Description: "Emits records numbered 1..count, each signed with HMAC-SHA256 under a secret key; resumes after the last committed number.",
		Tags:        []string{"example", "plugin"},
	}, NewSource)
	sdk.RegisterTransform(sdk.Meta{
		Name:        "acme-upper",
		Category:    sdk.Transforms,
		Description: "Upper-cases the named string fields of each row.",
		Tags:        []string{"example", "plugin"},
	}, NewUpper)
}

// Config is the acme-counter config block: its tags are the spec the CLI
// validates, defaults and documents.
type Config struct {
	Count     int    `yaml:"count" default:"100" min:"1" doc:"Records to emit in all; the source then stops."`
	BatchSize int    `yaml:"batch_size" default:"10" min:"1" max:"10000" doc:"Records per batch."`
	Stream    string `yaml:"stream" default:"counter" doc:"Stream name of the events."`
	Key       string `yaml:"key" required:"true" secret:"true" doc:"HMAC key that signs each record (the signature field)."`
}

// Validate checks what the tags cannot express.
func (c *Config) Validate() []sdk.Problem {
	if c.BatchSize > c.Count {
		return []sdk.Problem{{Path: "batch_size", Message: fmt.Sprintf("batch_size %d exceeds count %d", c.BatchSize, c.Count)}}
	}
	return nil
}

// Source emits the sequence; see Config.
type Source struct{ cfg Config }

// NewSource builds the source from its validated config.
func NewSource(_ context.Context, c *Config) (sdk.Source, error) { return &Source{cfg: *c}, nil }

// Sign is the signature of record n under key: hex HMAC-SHA256 of n.
func Sign(key string, n int) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(strconv.Itoa(n)))
	return hex.EncodeToString(m.Sum(nil))
}

// Read emits records after resume (the last committed number) until
// count; each event's position is its number.
func (s *Source) Read(ctx context.Context, resume []byte, emit sdk.Emitter) error {
	next := 1
	if len(resume) > 0 {
		n, err := strconv.Atoi(string(resume))
		if err != nil {
			return sdk.Fatal(fmt.Errorf("acme-counter: resume position %q is not a number", resume))
		}
		next = n + 1
	}
	log := sdk.RuntimeFrom(ctx).Logger()
	log.Info("acme-counter starting", "from", next, "count", s.cfg.Count)
	emitted := sdk.RuntimeFrom(ctx).Counter("acme_counter.records_total", "Records emitted.")
	for next <= s.cfg.Count {
		if ctx.Err() != nil {
			return nil
		}
		batch := make([]*sdk.Event, 0, s.cfg.BatchSize)
		for ; next <= s.cfg.Count && len(batch) < s.cfg.BatchSize; next++ {
			row := map[string]any{
				"id":        next,
				"name":      "item-" + strconv.Itoa(next),
				"signature": Sign(s.cfg.Key, next),
			}
			// Every third record has a price; an even one's is whole.
			if next%3 == 0 {
				if next%2 == 0 {
					row["price"] = next * 100
				} else {
					row["price"] = float64(next) + 0.5
				}
			}
			e := sdk.NewEvent(sdk.Record, s.cfg.Stream, row)
			e.Metadata.Position = strconv.Itoa(next)
			batch = append(batch, e)
		}
		if err := emit.Emit(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("acme-counter: emit: %w", err)
		}
		emitted.Add(uint64(len(batch)))
	}
	return nil
}

// UpperConfig is the acme-upper config block.
type UpperConfig struct {
	Fields []string `yaml:"fields" required:"true" doc:"Row fields to upper-case."`
}

// NewUpper builds the transform.
func NewUpper(_ context.Context, c *UpperConfig) (sdk.Transform, error) {
	fields := append([]string(nil), c.Fields...)
	return sdk.PerEvent(func(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
		if !e.Type.IsData() {
			return []*sdk.Event{e}, nil
		}
		v, err := e.Data.Mutable()
		if err != nil {
			return nil, fmt.Errorf("acme-upper: %w", err)
		}
		row, ok := v.(map[string]any)
		if e.Type == sdk.Update && ok {
			row, ok = row["after"].(map[string]any)
		}
		if !ok {
			return nil, fmt.Errorf("acme-upper: the %s event's row is not an object", e.Type)
		}
		for _, f := range fields {
			if s, ok := row[f].(string); ok {
				row[f] = strings.ToUpper(s)
			}
		}
		return []*sdk.Event{e}, nil
	}), nil
}
