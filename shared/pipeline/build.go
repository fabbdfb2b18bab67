package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rivven/rivven-connect/shared/condition"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/ratelimit"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Deps is what runners and handlers share with their host.
type Deps struct {
	Store    state.Store    // offsets, epochs, breakers and the delivery ledger
	Producer topic.Producer // the topic transport: publishing and dead letters
	Log      *slog.Logger
	Metrics  *telemetry.Registry // optional
	// Delivery is how the host's trigger delivers records; it decides how
	// a sink recognises a redelivery (see Delivery). The zero value keeps
	// no ledger, which is right only for in-process topics.
	Delivery Delivery
	// Epoch is the fencing token of a sink instance that must be the only
	// one (`rivven-connect run sink`); serverless hosts leave it 0 since
	// they run many instances at once by design.
	Epoch int64
}

// Delivery is how a trigger delivers records to a sink.
type Delivery int

const (
	// DeliveryEphemeral: in-process topics (the local emulator) whose
	// record IDs do not outlive the process: no ledger, breaker only.
	DeliveryEphemeral Delivery = iota
	// DeliveryOrdered: per-partition ordered offsets (Kafka/MSK, Kinesis,
	// Redis Streams): committed offsets per (sink, topic, partition).
	DeliveryOrdered
	// DeliveryUnordered: queues with stable message IDs (SQS, Pub/Sub):
	// a set of done message IDs kept for dedup_ttl_secs.
	DeliveryUnordered
)

func (d Delivery) dedup() resilience.DedupMode {
	switch d {
	case DeliveryOrdered:
		return resilience.DedupOffsets
	case DeliveryUnordered:
		return resilience.DedupIDs
	}
	return resilience.DedupNone
}

// SinkStateName is the name a sink's shared state (breaker, ledger,
// epoch) is kept under. The prefix keeps it apart from a source of the
// same name, whose epoch must not fence the sink's.
func SinkStateName(sink string) string { return "sink:" + sink }

// BreakerConfig returns a sink's circuit breaker policy; nil when it is
// disabled.
func BreakerConfig(s *config.Sink) *resilience.BreakerConfig {
	cb := s.CircuitBreaker
	if !cb.Enabled {
		return nil
	}
	return &resilience.BreakerConfig{
		FailureThreshold: cb.FailureThreshold,
		ResetTimeout:     time.Duration(cb.ResetTimeoutSecs) * time.Second,
		SuccessThreshold: cb.SuccessThreshold,
	}
}

// RetryPolicy is settings.retry as a resilience.Policy.
func RetryPolicy(p *config.Pipeline) resilience.Policy {
	rt := p.Settings.Retry
	return resilience.Policy{
		MaxRetries: rt.MaxRetries,
		Initial:    time.Duration(rt.InitialBackoffMs) * time.Millisecond,
		Max:        time.Duration(rt.MaxBackoffMs) * time.Millisecond,
		Multiplier: rt.BackoffMultiplier,
		Jitter:     rt.JitterFactor,
	}
}

// componentContext is what a component's constructor gets: ctx carrying
// the component's Runtime (the status is attached once the runner or
// handler exists; construction reports no progress).
func (d Deps) componentContext(ctx context.Context, name string) context.Context {
	return WithRuntime(ctx, &Runtime{Name: name, Log: d.log(), Metrics: d.Metrics})
}

// componentState is a component's State in the store: the offsets hash
// of its state name, under keys apart from any source position.
type componentState struct {
	store state.Store
	name  string
}

func (c componentState) Get(ctx context.Context, key string) ([]byte, error) {
	return c.store.Offset(ctx, c.name, "state:"+key)
}

func (c componentState) Put(ctx context.Context, key string, value []byte) error {
	return c.store.CommitOffset(ctx, c.name, "state:"+key, value)
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
func NewSinkHandler(ctx context.Context, p *config.Pipeline, name string, f Factory, d Deps) (*Handler, error) {
	s, ok := p.Sinks[name]
	if !ok {
		return nil, fmt.Errorf("the pipeline has no sink %q", name)
	}
	path := "sinks." + name
	ctx = d.componentContext(ctx, name)
	if d.Store != nil {
		RuntimeFrom(ctx).State = componentState{store: d.Store, name: SinkStateName(name)}
	}
	sink, err := f.NewSink(ctx, s.Connector, &s.Config, path+".config")
	if err != nil {
		return nil, err
	}
	chain, err := buildChain(ctx, f, s.Transforms)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		Name: name, Sink: sink, Transforms: chain, DeadLetters: d.Producer, DeadLetterTopic: s.DeadLetterTopic,
		Status: NewStatus(name, canonical(f, "sink", s.Connector), "sink"), Log: d.log(),
		MaxConsecutiveErrors: p.Settings.MaxConsecutiveErrors, MaxAttempts: p.Settings.Retry.MaxRetries + 1,
		Metrics: d.Metrics, Retry: RetryPolicy(p),
	}
	if d.Metrics != nil {
		h.Latency = d.Metrics.BatchLatency(name, h.Status.Connector, "sink")
		reportMetrics(d.Metrics, name, sink)
	}
	if err := wireLedger(h, s, path, d); err != nil {
		return nil, err
	}
	if rl := s.RateLimit; rl != nil && rl.EventsPerSecond > 0 {
		if h.Limiter, err = sinkLimiter(d.Store, SinkStateName(name), rl); err != nil {
			return nil, fmt.Errorf("%s.rate_limit: %w", path, err)
		}
	}
	return h, nil
}

// sinkLimiter holds a sink's rate across every instance when the state is
// a shared Redis (GCRA in Redis), and in-process otherwise.
func sinkLimiter(store state.Store, stateName string, rl *config.RateLimit) (ratelimit.Limiter, error) {
	burst := rl.BurstCapacity
	if burst == 0 {
		burst = rl.BurstSize
	}
	if _, embedded := store.(*state.Embedded); !embedded {
		if cp, ok := store.(state.ClientProvider); ok {
			return ratelimit.NewRedis(cp.Client(), state.Key(stateName, "ratelimit"), rl.EventsPerSecond, burst, nil)
		}
	}
	return ratelimit.NewBucket(rl.EventsPerSecond, burst, nil)
}

// wireLedger gives the handler its shared state when the store can hold
// it (every store here can: Redis, or the embedded one in-process).
func wireLedger(h *Handler, s *config.Sink, path string, d Deps) error {
	cp, ok := d.Store.(state.ClientProvider)
	if !ok {
		return nil
	}
	cfg := resilience.LedgerConfig{
		Connector: SinkStateName(h.Name), Breaker: BreakerConfig(s), Dedup: d.Delivery.dedup(),
		TTL: time.Duration(s.DedupTTLSecs) * time.Second, Epoch: d.Epoch,
	}
	if cfg.Breaker == nil && cfg.Dedup == resilience.DedupNone && cfg.Epoch == 0 {
		return nil
	}
	l, err := resilience.NewLedger(cp.Client(), cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	h.Ledger = l
	h.Status.Epoch.Store(d.Epoch)
	if cfg.Breaker != nil {
		h.Status.Breaker.Store(int32(resilience.Closed))
		if d.Metrics != nil {
			h.Rejections = d.Metrics.Counter(h.Status.Connector+".circuit_breaker.rejected",
				"Batches rejected by the open circuit breaker.", "name", h.Name)
		}
	}
	return nil
}

// canonicalNamer is a Factory that knows each connector's own name
// (catalog.Builder).
type canonicalNamer interface {
	Canonical(kind, name string) string
}

// canonical is the connector's own name however the pipeline spells it:
// metric names and labels come from it, so that "object-storage" and
// "object_storage" in one pipeline are one connector to Prometheus rather
// than two series whose names clash.
func canonical(f Factory, kind, name string) string {
	if c, ok := f.(canonicalNamer); ok {
		return c.Canonical(kind, name)
	}
	return name
}

// NewSourceRunner builds the runner for sources.<name> of a pipeline.
func NewSourceRunner(ctx context.Context, p *config.Pipeline, name string, f Factory, d Deps) (*SourceRunner, error) {
	s, ok := p.Sources[name]
	if !ok {
		return nil, fmt.Errorf("the pipeline has no source %q", name)
	}
	ctx = d.componentContext(ctx, name)
	src, err := f.NewSource(ctx, s.Connector, &s.Config, "sources."+name+".config")
	if err != nil {
		return nil, err
	}
	chain, err := buildChain(ctx, f, s.Transforms)
	if err != nil {
		return nil, err
	}
	r := &SourceRunner{
		Name: name, Source: src, Transforms: chain, Topic: s.Topic, DeadLetterTopic: s.DeadLetterTopic,
		Producer: d.Producer, Store: d.Store, Status: NewStatus(name, canonical(f, "source", s.Connector), "source"), Log: d.log(),
		Metrics: d.Metrics,
	}
	if d.Metrics != nil {
		reportMetrics(d.Metrics, name, src)
	}
	if f, ok := d.Store.(state.Fencer); ok {
		r.Fencer = f
	}
	if rl := s.RateLimit; rl != nil && rl.EventsPerSecond > 0 {
		burst := rl.BurstSize
		if burst == 0 {
			burst = rl.BurstCapacity
		}
		// One source instance runs at a time (fencing): a local bucket holds it.
		if r.Limiter, err = ratelimit.NewBucket(rl.EventsPerSecond, burst, nil); err != nil {
			return nil, fmt.Errorf("sources.%s.rate_limit: %w", name, err)
		}
	}
	return r, nil
}

// ConsumerGroup is a sink's consumer group: consumer_group, else its name.
func ConsumerGroup(p *config.Pipeline, sink string) string {
	if g := p.Sinks[sink].ConsumerGroup; g != "" {
		return g
	}
	return sink
}

// buildChain builds a transform chain; nil when there are no steps.
func buildChain(ctx context.Context, f Factory, ts config.Transforms) (Transform, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	chain := make(Chain, 0, len(ts))
	for _, t := range ts {
		tr, err := f.NewTransform(ctx, t.Kind(), &t.Config, t.Path+".config")
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

// MetricsReporter is implemented by connectors that keep their documented
// metrics themselves; the engine exports them under the component's name.
type MetricsReporter interface {
	Metrics() map[string]float64
}

func reportMetrics(reg *telemetry.Registry, name string, c any) {
	if m, ok := c.(MetricsReporter); ok {
		reg.Report(name, m.Metrics)
	}
}
