package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/transport"
)

func init() {
	register(command{"run", "Run one source or sink as a long-lived service on the Redis Streams transport", runRun})
}

const runSynopsis = "source|sink NAME -c FILE [--log-level L] [--json-logs] [--ui [ADDR]] [--cpuprofile FILE] [--memprofile FILE]"

// runRun runs one connector until SIGINT/SIGTERM (exit 0), until it fails
// (exit 1), or until a newer instance of it takes over (exit 3, fenced).
// Topics, offsets, epochs and breakers live in the Redis named by
// settings.state.redis_url or REDIS_URL, so instances on other machines
// share them.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("run", runSynopsis, stdout)
	file := fs.String("c", "", "pipeline file")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default: settings.log_level)")
	jsonLogs := fs.Bool("json-logs", false, "log JSON lines even on a terminal")
	ui := &uiFlag{}
	fs.Var(ui, "ui", uiUsage)
	prof := addProfileFlags(fs)
	// Flags may come before, between or after "source NAME".
	var pos []string
	args = uiArgs(args)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return exitWith(exitUsage, err)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitWith(exitUsage, errors.New("usage: rivven-connect run "+runSynopsis))
	}
	kind, name := pos[0], pos[1]
	if kind != "source" && kind != "sink" {
		return exitWith(exitUsage, fmt.Errorf("run %q: the first argument must be source or sink", kind))
	}
	p, resolver, err := loadToRun(ctx, *file)
	if err != nil {
		return err
	}
	defer resolver.Close()
	redisURL := p.Settings.State.RedisURL
	if redisURL == "" {
		redisURL = os.Getenv("REDIS_URL")
	}
	if redisURL == "" {
		return exitWith(exitUsage, errors.New("run needs a shared Redis for topics, offsets and epochs: set settings.state.redis_url or REDIS_URL "+
			"(use `rivven-connect local` to run a pipeline in one process)"))
	}
	level := p.Settings.LogLevel
	if *logLevel != "" {
		level = *logLevel
	}
	log, err := telemetry.NewLogger(stderr, level, *jsonLogs || !isTerminal(stderr))
	if err != nil {
		return exitWith(exitUsage, err)
	}
	// From here on the reason the service stops is a log line like every
	// other (JSON in JSON mode), not a plain "error:" line after them.
	defer func() {
		var ee *exitError
		if errors.As(err, &ee) && ee.err != nil {
			log.Error(ee.err.Error(), "exit_code", ee.code)
			err = exitWith(ee.code, nil)
		}
	}()

	state.LogTo(log)
	store, err := state.Open(ctx, redisURL)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	defer store.Close()
	cp, ok := store.(state.ClientProvider)
	if !ok {
		return exitWith(exitFailed, errors.New("the state store cannot carry topics"))
	}
	tr, stream, closeTopics, err := openTopics(ctx, p, cp, log)
	if err != nil {
		return err
	}
	defer closeTopics()

	var reg *telemetry.Registry
	if p.Settings.Metrics.Enabled {
		reg = telemetry.NewRegistry()
	}
	deps := pipeline.Deps{Store: store, Producer: tr, Log: log, Metrics: reg}
	dash := newDashboard(p, ui, "run "+kind+" "+name)
	if dash != nil {
		deps.Producer = dash.Tap(tr)
	}
	var status *pipeline.Status
	var runFn func(context.Context) error
	if kind == "source" {
		status, runFn, err = newSourceService(ctx, p, builderWith(resolver), name, tr, deps)
	} else {
		status, runFn, err = newSinkService(ctx, p, builderWith(resolver), name, tr, stream, store, deps)
	}
	if err != nil {
		return err
	}

	hs, err := serveEndpoints(ctx, p, reg, store, status, log, kind, name)
	if err != nil {
		return err
	}
	if err := startDashboard(ctx, dash, p, ui, pipeline.Statuses{status}, log); err != nil {
		return exitWith(exitFailed, err)
	}

	stopProfiles, err := prof.start()
	if err != nil {
		return err
	}
	log.Info("running", kind, name, "connector", status.Connector)
	err = runFn(ctx)
	if perr := stopProfiles(); perr != nil {
		log.Error("writing the profile failed", "error", perr)
	}
	switch {
	case errors.Is(err, state.ErrFenced):
		return exitWith(exitFenced, fmt.Errorf("%s %s was fenced: a newer instance took over, so this one stopped (%v)", kind, name, hs.redact(err.Error())))
	case err != nil:
		return exitWith(exitFailed, fmt.Errorf("%s %s failed: %s", kind, name, hs.redact(err.Error())))
	}
	log.Info("stopped", kind, name, "state", status.State().String())
	return nil
}

// openTopics opens where the service's topics live: the broker the
// pipeline names, else Redis Streams next to the state. stream is nil when
// the broker cannot be consumed as a stream (SQS, Pub/Sub).
func openTopics(ctx context.Context, p *config.Pipeline, cp state.ClientProvider, log *slog.Logger) (tr topicTransport, stream pipeline.StreamTransport, closeFn func(), err error) {
	if p.Broker != nil {
		bt, err := transport.Open(ctx, p.Broker, p.Settings.Topic)
		if err != nil {
			return nil, nil, nil, exitWith(exitUsage, err)
		}
		stream, _ = bt.(pipeline.StreamTransport)
		log.Info("topics on the broker", "transport", transport.Name(p.Broker))
		return bt, stream, func() { _ = bt.Close() }, nil
	}
	rt := topic.NewRedis(cp.Client())
	rt.AutoCreate = p.Settings.Topic.AutoCreate
	rt.Default = topic.Spec{Partitions: p.Settings.Topic.DefaultPartitions, ReplicationFactor: p.Settings.Topic.DefaultReplicationFactor}
	return rt, rt, func() {}, nil
}

// progressEvery is how often `run source` logs a snapshot's progress.
const progressEvery = 10 * time.Second

// newSourceService builds the runner of sources.<name> after making sure
// its topic and dead-letter topic exist.
func newSourceService(ctx context.Context, p *config.Pipeline, f pipeline.Factory, name string, tr topicTransport, deps pipeline.Deps) (*pipeline.Status, func(context.Context) error, error) {
	s, ok := p.Sources[name]
	if !ok || !s.Enabled {
		return nil, nil, exitWith(exitUsage, fmt.Errorf("the pipeline has no enabled source %q (sources: %s)", name, strings.Join(p.SourceNames(), ", ")))
	}
	path := "sources." + name
	if err := ensureTopics(ctx, tr, p, deps.Log, []topicUse{{s.Topic, s.TopicConfig, path + ".topic"}, {deadLetterTopic(s.DeadLetterTopic, s.Topic), nil, path + ".dead_letter_topic"}}); err != nil {
		return nil, nil, err
	}
	r, err := pipeline.NewSourceRunner(ctx, p, name, f, deps)
	if err != nil {
		return nil, nil, exitWith(exitUsage, err)
	}
	// A service has no status display: a long snapshot shows as log lines.
	r.ProgressEvery = progressEvery
	return r.Status, r.Run, nil
}

// newSinkService builds the runner of sinks.<name>: one instance consumes
// every partition of its topics, holding the sink's epoch so that a newer
// instance fences it (serverless hosts instead run many, unfenced).
func newSinkService(ctx context.Context, p *config.Pipeline, f pipeline.Factory, name string, tr topicTransport, stream pipeline.StreamTransport, store state.Store, deps pipeline.Deps) (*pipeline.Status, func(context.Context) error, error) {
	s, ok := p.Sinks[name]
	if !ok || !s.Enabled {
		return nil, nil, exitWith(exitUsage, fmt.Errorf("the pipeline has no enabled sink %q (sinks: %s)", name, strings.Join(p.SinkNames(), ", ")))
	}
	if stream == nil {
		return nil, nil, exitWith(exitUsage, fmt.Errorf("broker.transport %s: a sink reading from %s runs as a function its queue triggers (see `rivven-connect deploy terraform`), not as `run sink`; `run sink` consumes Kafka or Redis Streams topics",
			transport.Name(p.Broker), transport.Name(p.Broker)))
	}
	var uses []topicUse
	for i, t := range s.Topics {
		uses = append(uses, topicUse{t, nil, fmt.Sprintf("sinks.%s.topics[%d]", name, i)}, topicUse{deadLetterTopic(s.DeadLetterTopic, t), nil, "sinks." + name + ".dead_letter_topic"})
	}
	if err := ensureTopics(ctx, tr, p, deps.Log, uses); err != nil {
		return nil, nil, err
	}
	epoch, err := store.(state.Fencer).AcquireEpoch(ctx, pipeline.SinkStateName(name), time.Now())
	if err != nil {
		return nil, nil, exitWith(exitFailed, err)
	}
	deps.Delivery, deps.Epoch = pipeline.DeliveryOrdered, epoch
	r, err := pipeline.NewSinkRunner(ctx, p, name, f, stream, deps)
	if err != nil {
		return nil, nil, exitWith(exitUsage, err)
	}
	deps.Log.Info("sink instance holds its epoch; older instances are fenced", "sink", name, "epoch", epoch)
	return r.Handler.Status, r.Run, nil
}

// serveEndpoints starts /metrics (with /health) and settings.health's
// endpoints when the pipeline enables them.
func serveEndpoints(ctx context.Context, p *config.Pipeline, reg *telemetry.Registry, store state.Store, status *pipeline.Status, log *slog.Logger, kind, name string) (*healthServer, error) {
	statuses := pipeline.Statuses{status}
	hs := &healthServer{statuses: statuses, store: store, redact: redactor(p)}
	if reg != nil {
		reg.Watch(statuses)
		addr, err := startMetrics(ctx, reg, p.Settings.Metrics, hs.healthFunc(ctx))
		if err != nil {
			return nil, exitWith(exitFailed, err)
		}
		log.Info("metrics served", kind, name, "url", "http://"+addr+"/metrics")
		if p.Settings.Metrics.Pprof {
			log.Info("profiles served", kind, name, "url", "http://"+addr+"/debug/pprof/")
		}
	}
	if p.Settings.Health.Enabled {
		addr, err := hs.serve(ctx, p.Settings.Health)
		if err != nil {
			return nil, exitWith(exitFailed, fmt.Errorf("settings.health.port: %w", err))
		}
		log.Info("health served", kind, name, "url", "http://"+addr+p.Settings.Health.Path, "ready", "http://"+addr+"/ready", "live", "http://"+addr+"/live")
	}
	return hs, nil
}

func deadLetterTopic(configured, t string) string {
	if configured != "" {
		return configured
	}
	return t + ".dlq"
}

type topicUse struct {
	name string
	tc   *config.TopicConfig
	path string
}

// topicTransport is what the runner publishes through and creates
// topics with: a broker transport or Redis Streams.
type topicTransport interface {
	topic.Producer
	topic.Admin
}

func ensureTopics(ctx context.Context, tr topic.Admin, p *config.Pipeline, log *slog.Logger, uses []topicUse) error {
	seen := map[string]bool{}
	for _, u := range uses {
		if seen[u.name] {
			continue
		}
		seen[u.name] = true
		validate := topic.ValidateTopic
		if v, ok := tr.(interface{ ValidateTopic(string) error }); ok {
			validate = v.ValidateTopic // the broker's own naming rules
		}
		if err := validate(u.name); err != nil {
			return exitWith(exitUsage, fmt.Errorf("%s: %w", u.path, err))
		}
		if err := pipeline.EnsureTopic(ctx, tr, p.Settings.Topic, u.name, u.tc, u.path, log); err != nil {
			if errors.Is(err, topic.ErrUnknownTopic) || strings.Contains(err.Error(), "does not exist") {
				return exitWith(exitUsage, err)
			}
			return exitWith(exitFailed, err)
		}
	}
	return nil
}

// secretValues collects every value the pipeline marks secret (the
// connectors' secret fields, the Redis password), so health output can
// blank them wherever an error quotes them.
func secretValues(p *config.Pipeline) []string {
	var out []string
	if u, err := url.Parse(p.Settings.State.RedisURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw)
		}
	}
	collect := func(kind catalog.Kind, connector string, node *yaml.Node) {
		if e, ok := catalog.Lookup(kind, connector); ok {
			out = append(out, secretsIn(e.Fields, node, false)...)
		}
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		collect(catalog.Source, s.Connector, &s.Config)
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		collect(catalog.Sink, s.Connector, &s.Config)
	}
	sort.Strings(out)
	return out
}

// secretsIn returns the scalar values under secret fields of node.
func secretsIn(fields []spec.Field, node *yaml.Node, secret bool) []string {
	if node == nil {
		return nil
	}
	for node.Kind == yaml.DocumentNode || node.Kind == yaml.AliasNode {
		if node.Kind == yaml.AliasNode {
			node = node.Alias
		} else if len(node.Content) > 0 {
			node = node.Content[0]
		} else {
			return nil
		}
	}
	var out []string
	switch node.Kind {
	case yaml.ScalarNode:
		if secret && node.Value != "" {
			out = append(out, node.Value)
		}
	case yaml.SequenceNode:
		for _, c := range node.Content {
			out = append(out, secretsIn(fields, c, secret)...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			f, known := spec.Lookup(fields, node.Content[i].Value)
			var sub []spec.Field
			if known {
				sub = f.Fields
				if f.Elem != nil {
					sub = f.Elem.Fields
				}
			}
			out = append(out, secretsIn(sub, node.Content[i+1], secret || (known && f.Secret))...)
		}
	}
	return out
}

// redactor hides the pipeline's configured secrets and every value read
// through a secret reference (resolved by the time anything is shown).
func redactor(p *config.Pipeline) func(string) string {
	r := resilience.NewRedactor(secretValues(p)...)
	return func(s string) string { return secrets.Redact(r.Redact(s)) }
}
