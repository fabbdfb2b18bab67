package pipeline

import (
	"fmt"
	"log/slog"

	"github.com/rivven/rivven-connect/shared/condition"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Deps is what runners and handlers share with their host.
type Deps struct {
	Store    state.Store    // offsets (and, with resilience, epochs and breakers)
	Producer topic.Producer // the topic transport: publishing and dead letters
	Log      *slog.Logger
	Metrics  *telemetry.Registry // optional
}

func (d Deps) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// NewSinkHandler builds the Handler for sinks.<name> of a pipeline: the
// connector, its transforms, dead-lettering and the failure policy from
// settings. Every host (local emulator, Lambda, Cloud Run, invoke) builds
// its handler here so they behave the same.
func NewSinkHandler(p *config.Pipeline, name string, f Factory, d Deps) (*Handler, error) {
	s, ok := p.Sinks[name]
	if !ok {
		return nil, fmt.Errorf("the pipeline has no sink %q", name)
	}
	path := "sinks." + name
	sink, err := f.NewSink(s.Connector, &s.Config, path+".config")
	if err != nil {
		return nil, err
	}
	chain, err := buildChain(f, s.Transforms)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		Name: name, Sink: sink, Transforms: chain, DeadLetters: d.Producer, DeadLetterTopic: s.DeadLetterTopic,
		Status: NewStatus(name, s.Connector, "sink"), Log: d.log(),
		MaxConsecutiveErrors: p.Settings.MaxConsecutiveErrors, MaxAttempts: p.Settings.Retry.MaxRetries + 1,
	}
	if d.Metrics != nil {
		h.Latency = d.Metrics.BatchLatency(name, s.Connector, "sink")
	}
	return h, nil
}

// NewSourceRunner builds the runner for sources.<name> of a pipeline.
func NewSourceRunner(p *config.Pipeline, name string, f Factory, d Deps) (*SourceRunner, error) {
	s, ok := p.Sources[name]
	if !ok {
		return nil, fmt.Errorf("the pipeline has no source %q", name)
	}
	src, err := f.NewSource(s.Connector, &s.Config, "sources."+name+".config")
	if err != nil {
		return nil, err
	}
	chain, err := buildChain(f, s.Transforms)
	if err != nil {
		return nil, err
	}
	return &SourceRunner{
		Name: name, Source: src, Transforms: chain, Topic: s.Topic, DeadLetterTopic: s.DeadLetterTopic,
		Producer: d.Producer, Store: d.Store, Status: NewStatus(name, s.Connector, "source"), Log: d.log(),
	}, nil
}

// ConsumerGroup is a sink's consumer group: consumer_group, else its name.
func ConsumerGroup(p *config.Pipeline, sink string) string {
	if g := p.Sinks[sink].ConsumerGroup; g != "" {
		return g
	}
	return sink
}

// buildChain builds a transform chain; nil when there are no steps.
func buildChain(f Factory, ts config.Transforms) (Transform, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	chain := make(Chain, 0, len(ts))
	for _, t := range ts {
		tr, err := f.NewTransform(t.Kind(), &t.Config, t.Path+".config")
		if err != nil {
			return nil, err
		}
		if t.Predicate.Kind != 0 {
			p, ps := spec.Decode[condition.Predicate](&t.Predicate, t.Path+".predicate")
			if len(ps) > 0 {
				return nil, spec.Problems(ps)
			}
			match, err := p.Compile()
			if err != nil {
				return nil, fmt.Errorf("%s.predicate: %w", t.Path, err)
			}
			tr = Only(tr, match)
		}
		chain = append(chain, tr)
	}
	return chain, nil
}
