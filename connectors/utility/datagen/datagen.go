// Package datagen is a source of synthetic rows (orders, users, page views,
// ...) for demos, tests and benchmarks. With a seed the whole stream — data,
// event timestamps and metadata — is reproducible byte for byte, including
// after a resume, so it doubles as a fixture generator.
package datagen

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterSource[Config](catalog.Meta{
		Name:        "datagen",
		Category:    catalog.Utility,
		Subcategory: "Generate",
		Description: "Generates synthetic orders, users, page views and more, optionally as an insert/update/delete CDC stream; reproducible with a seed.",
		Tags:        []string{"synthetic", "test", "demo", "benchmark", "cdc", "fake", "generator"},
	}, New)
}

// Config is the datagen source's config block.
type Config struct {
	Pattern         string  `yaml:"pattern" required:"true" enum:"orders,users,pageviews,sequence,random,events,metrics,key_value" doc:"Data pattern to generate (fields per pattern are listed below)."`
	EventsPerSecond int     `yaml:"events_per_second" default:"1" min:"0" doc:"Events generated per second; 0 = as fast as the pipeline takes them."`
	MaxEvents       uint64  `yaml:"max_events" default:"0" doc:"Stop after this many events in total, counted from the first ever (a resumed run does not start over); 0 = unlimited."`
	StreamName      string  `yaml:"stream_name" default:"datagen" doc:"Stream name of the events (also the source table)."`
	Namespace       string  `yaml:"namespace" doc:"Namespace of the events; none when empty."`
	Seed            *uint64 `yaml:"seed" doc:"RNG seed. With a seed the stream (data, timestamps, metadata) is identical on every run; random when unset."`
	CDCMode         bool    `yaml:"cdc_mode" default:"false" doc:"Emit insert/update/delete events (60/30/10) over a pool of live rows instead of records."`
}

// Validate checks what the tags cannot express; New runs it too, for
// configs built in code.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if _, ok := patterns[c.Pattern]; !ok {
		ps = append(ps, spec.Problem{Path: "pattern", Message: fmt.Sprintf("unknown pattern %q (allowed: %s)", c.Pattern, strings.Join(patternNames(), ", "))})
	}
	if c.EventsPerSecond < 0 {
		ps = append(ps, spec.Problem{Path: "events_per_second", Message: "must be at least 0"})
	}
	if c.StreamName == "" {
		ps = append(ps, spec.Problem{Path: "stream_name", Message: "must not be empty"})
	}
	return ps
}

// Tuning knobs. They are part of the stream's definition: changing
// poolSize changes what a seeded cdc_mode run generates.
const (
	maxBatch = 1024   // events per Emit when unpaced
	poolSize = 10_000 // live rows cdc_mode updates and deletes pick from
)

// epoch is where the logical clock of a seeded run starts.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Source generates events; see Config. It keeps no state between Reads, so
// one Source may be read again after a restart.
type Source struct {
	cfg Config
	pat *pattern
}

// New builds a datagen source.
func New(ctx context.Context, cfg *Config) (connector.Source, error) {
	return &Source{cfg: *cfg, pat: patterns[cfg.Pattern]}, nil
}

// Read emits events from the sequence after resume until max_events is
// reached (then it returns nil) or ctx is done (also nil: stopping a
// generator is never an error).
func (s *Source) Read(ctx context.Context, resume []byte, emit connector.Emitter) error {
	var first uint64
	if len(resume) > 0 {
		last, err := strconv.ParseUint(string(resume), 10, 64)
		if err != nil {
			return connector.Fatal(fmt.Errorf("datagen: resume position %q is not a sequence number", resume))
		}
		if last == math.MaxUint64 {
			return nil // nothing comes after the last number
		}
		first = last + 1
	}
	if s.cfg.MaxEvents > 0 && first >= s.cfg.MaxEvents {
		return nil
	}
	g := newGenerator(&s.cfg, s.pat)
	if s.cfg.Seed != nil {
		// Only a seeded stream has a continuation to reproduce; replaying
		// the prefix restores the RNG and the cdc pool exactly.
		if !g.skip(ctx, first) {
			return nil
		}
	}
	g.seq = first
	if s.cfg.EventsPerSecond == 0 {
		return s.flood(ctx, g, emit)
	}
	return s.paced(ctx, g, emit)
}

// flood emits full batches as fast as the emitter takes them.
func (s *Source) flood(ctx context.Context, g *generator, emit connector.Emitter) error {
	batch := make([]*events.Event, 0, maxBatch)
	for {
		if more, err := s.send(ctx, g, emit, &batch, maxBatch); !more || err != nil {
			return err
		}
	}
}

// paced emits, on every tick, the events due since the start. Ticks are
// coarser than one event at high rates, so the rate holds without a timer
// per event.
func (s *Source) paced(ctx context.Context, g *generator, emit connector.Emitter) error {
	eps := uint64(s.cfg.EventsPerSecond)
	period := min(max(time.Second/time.Duration(eps), 5*time.Millisecond), 100*time.Millisecond)
	tick := time.NewTicker(period)
	defer tick.Stop()
	batch := make([]*events.Event, 0, min(eps, maxBatch))
	start := time.Now()
	var done uint64 // events sent, or forgiven after a stall, since start
	for {
		due := uint64(time.Since(start).Seconds()*float64(eps)) + 1 // the first is due at once
		// After a stall (a slow sink) send at most one second's worth of
		// backlog instead of bursting all of it.
		done = max(done, due-min(due, eps))
		if more, err := s.send(ctx, g, emit, &batch, due-done); !more || err != nil {
			return err
		}
		done = due
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// send emits the next n events in batches of at most maxBatch, stopping
// early at max_events. It reports whether the source goes on: false once
// max_events is reached or ctx is done.
func (s *Source) send(ctx context.Context, g *generator, emit connector.Emitter, batch *[]*events.Event, n uint64) (bool, error) {
	for {
		k := min(n, maxBatch)
		if s.cfg.MaxEvents > 0 {
			k = min(k, s.cfg.MaxEvents-g.seq) // Read ensures g.seq < MaxEvents
		}
		if ctx.Err() != nil {
			return false, nil
		}
		if k == 0 {
			return s.cfg.MaxEvents == 0 || g.seq < s.cfg.MaxEvents, nil
		}
		var now time.Time
		if !g.logical {
			now = time.Now().UTC() // one clock read per batch keeps it cheap
		}
		b := g.fill((*batch)[:0], int(k), now)
		err := emit.Emit(ctx, b)
		clear(b) // the emitter owns the events now; don't keep them alive
		*batch = b
		switch {
		case err != nil && ctx.Err() != nil:
			return false, nil // cancelled: a clean stop
		case err != nil:
			return false, fmt.Errorf("datagen: emit: %w", err)
		}
		n -= k
	}
}
