// Package host runs one pipeline component as a serverless function: it
// reads the function's configuration from the environment, builds the
// component's Handler the way every host does (pipeline.NewSinkHandler),
// and serves it on the platform it finds itself on — AWS Lambda through
// aws-lambda-go, Cloud Run through net/http. The trigger
// envelopes themselves are handled by pipeline.Adapter, which the local
// emulator and `rivven-connect invoke` share.
//
// A function main (generated under functions/) links its connector's
// package with a blank import and calls
//
//	host.Main(host.Function{Kind: "sink", Connector: "stdout"})
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/transport"
)

// warmTimeout bounds loading the ledger's scripts at cold start.
const warmTimeout = 10 * time.Second

// Function says which connector a function binary hosts.
type Function struct {
	Kind      string // "sink" or "transform"
	Connector string // its catalog name
}

func (f Function) String() string { return f.Kind + "/" + f.Connector }

// Options are what a host (or a test) hands Init besides the environment.
type Options struct {
	// Lookup reads environment variables (RIVVEN_*, REDIS_URL and the
	// ${VAR}s of the pipeline file); nil means os.LookupEnv.
	Lookup func(string) (string, bool)
	// Producer publishes dead letters and, for transform functions, the
	// output. nil means the transport the pipeline's broker block names
	// (broker.transport, linked by build tag: transports.sqs,
	// transports.kafka, transports.pubsub). Without a broker block a sink function runs without
	// one: records that fail are reported to the trigger (whose redrive
	// policy or on-failure destination then dead-letters them); a transform
	// function cannot start.
	Producer topic.Producer
	// Log receives the function's logs (JSON lines); nil means stderr.
	Log io.Writer
	// Catalog is where connectors are looked up; nil means the default.
	Catalog *catalog.Registry

	// parsed is the pipeline Main already read and parsed (with the
	// default catalog and the process environment) to decide whether to
	// supervise; nil means Init reads and parses it.
	parsed *parsedPipeline
	// gc is put back once the first batch is answered; nil when Main did
	// not hold back the first collection.
	gc *startGC
}

// Runtime is an initialized function: ready to take trigger envelopes.
type Runtime struct {
	Function Function
	Env      Env
	Pipeline *config.Pipeline
	// Component is the YAML path of the hosted component (sinks.<name> or
	// the transform step's path).
	Component string
	Adapter   *pipeline.Adapter
	Log       *slog.Logger
	Metrics   *telemetry.Registry
	Store     state.Store

	transport transport.Transport // opened from the broker block; nil otherwise
	secrets   *secrets.Resolver   // the pipeline's secret references
}

// Init does everything a cold start does, so that any misconfiguration
// fails there — once, with one line saying what is wrong — and never at
// the first event: read the environment, load and validate the pipeline,
// find the function's component in it, build its handler, open the state
// store and run the connector's health check.
func Init(ctx context.Context, fn Function, opts Options) (*Runtime, error) {
	rt, err := initRuntime(ctx, fn, opts)
	// A connector's error may quote a value read through a secret
	// reference (a driver printing its DSN): it is blanked out here, where
	// the host prints or returns it.
	return rt, secrets.RedactError(err)
}

func initRuntime(ctx context.Context, fn Function, opts Options) (*Runtime, error) {
	lookup := opts.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	reg := opts.Catalog
	if reg == nil {
		reg = catalog.Default
	}
	entry, ok := reg.Lookup(catalog.Kind(fn.Kind), fn.Connector)
	if !ok {
		return nil, fmt.Errorf("this binary does not link the %s connector %q", fn.Kind, fn.Connector)
	}
	env, err := LoadEnv(ctx, lookup)
	if err != nil {
		return nil, err
	}
	var (
		p     *config.Pipeline
		where string
		scope *scopedCatalog
	)
	if pp := opts.parsed; pp != nil && pp.ref == env.Pipeline && opts.Catalog == nil && opts.Lookup == nil {
		p, where, scope = pp.p, pp.where, pp.scope
	} else {
		doc, w, err := ReadPipeline(ctx, env.Pipeline)
		if err != nil {
			return nil, err
		}
		where, scope = w, &scopedCatalog{inner: reg}
		if p, err = config.Parse(doc, scope, config.Options{Env: lookup}); err != nil {
			return nil, pipelineError(where, err)
		}
	}
	p.Path = where
	rt := &Runtime{Function: fn, Env: env, Pipeline: p}
	level := p.Settings.LogLevel
	if env.LogLevel != "" {
		level = env.LogLevel
	}
	w := opts.Log
	if w == nil {
		w = os.Stderr
	}
	if rt.Log, err = telemetry.NewLogger(w, level, true); err != nil {
		return nil, err
	}
	rt.Log = rt.Log.With("function", fn.String())

	var step *config.Transform
	var topics []string
	var dlq string
	switch fn.Kind {
	case string(catalog.Sink):
		name, err := findSink(p, reg, entry, env.Connector)
		if err != nil {
			return nil, err
		}
		rt.Component = "sinks." + name
		topics = p.Sinks[name].Topics
	case string(catalog.Transform):
		if step, topics, dlq, err = findStep(p, reg, entry, env.Connector); err != nil {
			return nil, err
		}
		rt.Component = step.Path
		if env.OutputTopic == "" {
			return nil, fmt.Errorf("RIVVEN_OUTPUT_TOPIC: required for a transform function (the topic %s publishes its output to)", rt.Component)
		}
		if opts.Producer == nil && p.Broker == nil {
			return nil, fmt.Errorf("%s: a transform function publishes to %q through the pipeline's broker; the pipeline has no broker block (broker.transport: kafka, sqs or pubsub)", rt.Component, env.OutputTopic)
		}
	default:
		return nil, fmt.Errorf("unknown function kind %q (sink or transform)", fn.Kind)
	}
	if missing := scope.unknownIn(rt.Component); len(missing) > 0 {
		var parts []string
		for _, u := range missing {
			parts = append(parts, fmt.Sprintf("%s: %s %q", u.path, u.kind, u.name))
		}
		return nil, fmt.Errorf("%s uses connectors this %s function does not link: %s (link them into functions/%s, or deploy each transform as its own transform function)",
			rt.Component, fn, strings.Join(parts, "; "), fn)
	}

	// Secret references are resolved here, at cold start, and only those
	// of the hosted component and the blocks every component reads
	// (settings, broker): a function is granted access to those secrets
	// and no others.
	rt.secrets = pipeline.NewResolver(p)
	if err := pipeline.ResolveSettings(ctx, p, rt.secrets); err != nil {
		rt.secrets.Close()
		return nil, err
	}
	redisURL := p.Settings.State.RedisURL
	if redisURL == "" {
		redisURL = env.RedisURL
	}
	state.LogTo(rt.Log)
	if rt.Store, err = state.Open(ctx, redisURL); err != nil {
		rt.secrets.Close()
		return nil, err
	}
	if opts.Producer == nil && p.Broker != nil {
		tr, err := transport.Open(ctx, p.Broker, p.Settings.Topic)
		if err != nil {
			rt.Store.Close()
			rt.secrets.Close()
			return nil, err
		}
		rt.transport, opts.Producer = tr, tr
	}
	rt.Metrics = telemetry.NewRegistry()
	// Every trigger gives each message a stable id (SQS and Pub/Sub message
	// ids, topic-partition-offset, Kinesis sequence numbers, CloudEvent
	// ids), so redeliveries are recognised by id whatever the trigger;
	// Kinesis sequence numbers do not fit an offset anyway.
	deps := pipeline.Deps{Store: rt.Store, Producer: opts.Producer, Log: rt.Log, Metrics: rt.Metrics, Delivery: pipeline.DeliveryUnordered}
	f := pipeline.WithSecrets(catalog.Builder{R: reg}, rt.secrets)
	var h *pipeline.Handler
	if step == nil {
		h, err = pipeline.NewSinkHandler(ctx, p, strings.TrimPrefix(rt.Component, "sinks."), f, deps)
	} else {
		h, err = pipeline.NewTransformHandler(ctx, p, step, topics, dlq, f, &pipeline.Publisher{Producer: opts.Producer, Topic: env.OutputTopic}, deps)
	}
	if err != nil {
		rt.release()
		return nil, err
	}
	rt.Metrics.Watch(pipeline.Statuses{h.Status})
	if err := h.Start(ctx); err != nil {
		rt.release()
		return nil, fmt.Errorf("%s: %w", rt.Component, err)
	}
	rt.Adapter = &pipeline.Adapter{Handler: h, Payload: env.Payload, Topics: topics}
	// The delivery ledger's scripts load while the host waits for its
	// first batch (on Lambda: registers and asks for it) instead of on
	// that batch; if they do not, the first batch loads them as before.
	if h.Ledger != nil {
		go func() {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), warmTimeout)
			defer cancel()
			if err := h.Ledger.Warm(wctx); err != nil {
				rt.Log.Debug("the ledger's scripts were not loaded ahead of the first batch", "error", err)
			}
		}()
	}
	return rt, nil
}

// Close flushes and closes the connector, then the transport and the
// state store.
func (rt *Runtime) Close(ctx context.Context) error {
	err := rt.Adapter.Handler.Close(ctx)
	if rerr := rt.release(); err == nil {
		err = rerr
	}
	return err
}

// release closes the transport and the state store.
func (rt *Runtime) release() error {
	var err error
	if rt.transport != nil {
		err = rt.transport.Close()
	}
	if cerr := rt.Store.Close(); err == nil {
		err = cerr
	}
	if cerr := rt.secrets.Close(); err == nil {
		err = cerr
	}
	return err
}

// findSink picks the pipeline's sink this function hosts: the one
// RIVVEN_CONNECTOR names, else the only enabled sink using this connector
// — under any spelling of it: its aliases, and the legacy names its
// package registers (the object-storage function hosts a sink whose
// connector is object_storage, object-store or s3).
func findSink(p *config.Pipeline, reg *catalog.Registry, entry *catalog.Entry, want string) (string, error) {
	uses := func(s *config.Sink) bool {
		e, ok := reg.Lookup(catalog.Sink, s.Connector)
		return ok && entry.SamePackage(e)
	}
	if want != "" {
		name := strings.TrimPrefix(want, "sinks.")
		s, ok := p.Sinks[name]
		switch {
		case !ok:
			return "", fmt.Errorf("RIVVEN_CONNECTOR: the pipeline has no sink %q (sinks: %s)", name, strings.Join(sortedNames(p.Sinks), ", "))
		case !s.Enabled:
			return "", fmt.Errorf("RIVVEN_CONNECTOR: sinks.%s is disabled (enabled: false)", name)
		case !uses(s):
			return "", fmt.Errorf("RIVVEN_CONNECTOR: sinks.%s uses connector %q, and this is the %s function", name, s.Connector, entry.Name)
		}
		return name, nil
	}
	var fits []string
	for _, name := range p.SinkNames() {
		if uses(p.Sinks[name]) {
			fits = append(fits, name)
		}
	}
	switch len(fits) {
	case 1:
		return fits[0], nil
	case 0:
		return "", fmt.Errorf("RIVVEN_CONNECTOR: no enabled sink of the pipeline uses connector %q", entry.Name)
	}
	return "", fmt.Errorf("RIVVEN_CONNECTOR: not set, and sinks %s all use connector %q: set it to one of them", strings.Join(fits, ", "), entry.Name)
}

// findStep picks the transform step this function hosts: the step
// RIVVEN_CONNECTOR names by its YAML path, or the only step of this
// transform under the entry it names, or the only one in the pipeline.
// It also returns the topics that feed the step and the dead-letter topic
// of its entry.
func findStep(p *config.Pipeline, reg *catalog.Registry, entry *catalog.Entry, want string) (*config.Transform, []string, string, error) {
	type cand struct {
		step   *config.Transform
		entry  string
		index  string
		topics []string
		dlq    string
	}
	var all []cand
	add := func(base string, ts config.Transforms, topics []string, dlq string) {
		for i, t := range ts {
			if e, ok := reg.Lookup(catalog.Transform, t.Kind()); ok && entry.SamePackage(e) {
				all = append(all, cand{t, base, spec.Index(base+".transforms", i), topics, dlq})
			}
		}
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		add("sources."+name, s.Transforms, []string{s.Topic}, s.DeadLetterTopic)
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		add("sinks."+name, s.Transforms, s.Topics, s.DeadLetterTopic)
	}
	var fits []cand
	for _, c := range all {
		if want == "" || want == c.step.Path || want == c.index || want == c.entry ||
			!strings.Contains(want, ".") && (c.entry == "sinks."+want || c.entry == "sources."+want) {
			fits = append(fits, c)
		}
	}
	switch {
	case len(fits) == 1:
		return fits[0].step, fits[0].topics, fits[0].dlq, nil
	case len(fits) == 0 && want != "":
		return nil, nil, "", fmt.Errorf("RIVVEN_CONNECTOR: no %s step at %q (give the step's path, e.g. sinks.<name>.transforms[0])", entry.Name, want)
	case len(fits) == 0:
		return nil, nil, "", fmt.Errorf("RIVVEN_CONNECTOR: the pipeline has no %s step", entry.Name)
	}
	var paths []string
	for _, c := range fits {
		paths = append(paths, c.step.Path)
	}
	return nil, nil, "", fmt.Errorf("RIVVEN_CONNECTOR: %d %s steps fit (%s): set it to one of these paths", len(fits), entry.Name, strings.Join(paths, ", "))
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// pipelineError puts every problem of the pipeline file on one line: a
// cold start failure is read in a log or a console where one line is one
// entry.
func pipelineError(where string, err error) error {
	if where == "" {
		where = "RIVVEN_PIPELINE (inline)"
	}
	var ps spec.Problems
	if errors.As(err, &ps) {
		var parts []string
		for _, p := range ps {
			parts = append(parts, p.Error())
		}
		return fmt.Errorf("%s: %s", where, strings.Join(parts, "; "))
	}
	return fmt.Errorf("%s: %w", where, err)
}

// OneLine folds an error message onto one line.
func OneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
