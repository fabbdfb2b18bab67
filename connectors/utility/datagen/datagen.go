// Package datagen is a source of synthetic rows (orders, users, page views,
// ...) for demos, tests and benchmarks. With a seed the whole stream — data,
// event timestamps and metadata — is reproducible byte for byte, including
// after a resume, so it doubles as a fixture generator.
package datagen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/connectors/catalog"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
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
func New(cfg *Config) (pipeline.Source, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, pipeline.Fatal(spec.Problems(ps))
	}
	return &Source{cfg: *cfg, pat: patterns[cfg.Pattern]}, nil
}

// Read emits events from the sequence after resume until max_events is
// reached (then it returns nil) or ctx is done (also nil: stopping a
// generator is never an error).
func (s *Source) Read(ctx context.Context, resume []byte, emit pipeline.Emitter) error {
	var first uint64
	if len(resume) > 0 {
		last, err := strconv.ParseUint(string(resume), 10, 64)
		if err != nil {
			return pipeline.Fatal(fmt.Errorf("datagen: resume position %q is not a sequence number", resume))
		}
		first = last + 1
	}
	g := s.newGenerator()
	if s.cfg.Seed != nil {
		// Only a seeded stream has a continuation to reproduce; replaying
		// the prefix restores the RNG and the cdc pool exactly.
		g.skip(first)
	}
	g.seq = first
	if s.cfg.MaxEvents > 0 && first >= s.cfg.MaxEvents {
		return nil
	}
	if s.cfg.EventsPerSecond == 0 {
		return s.flood(ctx, g, emit)
	}
	return s.paced(ctx, g, emit)
}

func (s *Source) newGenerator() *generator {
	seed := rand.Uint64()
	if s.cfg.Seed != nil {
		seed = *s.cfg.Seed
	}
	step := time.Millisecond
	if s.cfg.EventsPerSecond > 0 {
		step = time.Second / time.Duration(s.cfg.EventsPerSecond)
	}
	var ns *string
	if s.cfg.Namespace != "" {
		ns = &s.cfg.Namespace
	}
	return &generator{
		pat:     s.pat,
		rng:     rand.New(rand.NewPCG(seed, pcgStream)),
		cdc:     s.cfg.CDCMode,
		logical: s.cfg.Seed != nil,
		step:    step,
		stream:  s.cfg.StreamName,
		ns:      ns,
	}
}

// pcgStream is the second PCG seed word; fixed so that the user's seed
// alone defines the stream.
const pcgStream = 0x6461746167656e // "datagen"

// remaining is how many events may still be generated; 0 when unlimited.
func (s *Source) remaining(g *generator) (n uint64, limited bool) {
	if s.cfg.MaxEvents == 0 {
		return 0, false
	}
	return s.cfg.MaxEvents - min(g.seq, s.cfg.MaxEvents), true
}

// flood emits full batches as fast as the emitter takes them.
func (s *Source) flood(ctx context.Context, g *generator, emit pipeline.Emitter) error {
	batch := make([]*events.Event, 0, maxBatch)
	for {
		n := uint64(maxBatch)
		if left, limited := s.remaining(g); limited {
			if left == 0 {
				return nil
			}
			n = min(n, left)
		}
		if ctx.Err() != nil {
			return nil
		}
		var err error
		if batch, err = s.emitBatch(ctx, g, emit, batch, int(n)); err != nil {
			return err
		}
	}
}

// paced emits, on every tick, the events due since the start. Ticks are
// coarser than one event at high rates, so the rate holds without a timer
// per event.
func (s *Source) paced(ctx context.Context, g *generator, emit pipeline.Emitter) error {
	eps := uint64(s.cfg.EventsPerSecond)
	period := min(max(time.Second/time.Duration(eps), 5*time.Millisecond), 100*time.Millisecond)
	tick := time.NewTicker(period)
	defer tick.Stop()
	batch := make([]*events.Event, 0, min(eps, maxBatch))
	start := time.Now()
	var done uint64 // events emitted, or forgiven after a stall, since start
	for {
		due := uint64(time.Since(start).Seconds()*float64(eps)) + 1 // the first is due at once
		if due > done+eps {
			// After a stall (a slow sink) send at most one second's worth
			// extra instead of bursting the whole backlog.
			done = due - eps
		}
		for done < due {
			n := min(due-done, maxBatch)
			if left, limited := s.remaining(g); limited {
				if left == 0 {
					return nil
				}
				n = min(n, left)
			}
			if ctx.Err() != nil {
				return nil
			}
			var err error
			if batch, err = s.emitBatch(ctx, g, emit, batch, int(n)); err != nil {
				return err
			}
			done += n
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// emitBatch generates n events into batch (reused) and emits them.
func (s *Source) emitBatch(ctx context.Context, g *generator, emit pipeline.Emitter, batch []*events.Event, n int) ([]*events.Event, error) {
	batch = batch[:0]
	var now time.Time
	if !g.logical {
		now = time.Now().UTC() // one clock read per batch keeps it cheap
	}
	for range n {
		batch = append(batch, g.event(now))
	}
	err := emit.Emit(ctx, batch)
	clear(batch) // the emitter owns the events now; don't keep them alive
	if err != nil && ctx.Err() != nil {
		return batch, nil
	}
	if err != nil {
		return batch, fmt.Errorf("datagen: emit: %w", err)
	}
	return batch, nil
}
