package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Factory builds components by connector name; connectors/catalog
// provides it (shared code never imports connectors).
type Factory interface {
	NewSource(connector string, cfg *yaml.Node, path string) (Source, error)
	NewSink(connector string, cfg *yaml.Node, path string) (Sink, error)
	NewTransform(typ string, cfg *yaml.Node, path string) (Transform, error)
}

// LocalOptions tune the local emulator.
type LocalOptions struct {
	// MaxEvents stops sources after that many events in total (0 = no
	// limit); everything emitted is still delivered before Run returns.
	MaxEvents int64
	// Duration stops sources after that long (0 = no limit), then drains.
	Duration time.Duration
	Store    state.Store // required
	Log      *slog.Logger
	// BatchSize is the most records a sink gets per call (default 1024).
	BatchSize int
	// Metrics, when set, gets each sink's write latency histogram.
	Metrics *telemetry.Registry
	// OnStart, when set, is called with the statuses once everything is
	// built (the CLI starts its status display and metrics from it).
	OnStart func(Statuses)
}

// Local is a pipeline running in one process on an in-process transport:
// sources as goroutines publishing to partitioned topics, sinks fed through
// the same Handler the serverless hosts use, with consumer groups and
// committed offsets.
type Local struct {
	p       *config.Pipeline
	opts    LocalOptions
	Broker  *topic.Memory
	sources []*SourceRunner
	sinks   []*localSink
	status  Statuses
	readers map[string][]string // topic → consumer groups reading it
}

type localSink struct {
	name    string
	spec    *config.Sink
	handler *Handler
	group   string
	retry   Backoff
}

// NewLocal builds every enabled source and sink of the pipeline. Errors
// name the YAML path of the component that could not be built.
func NewLocal(ctx context.Context, p *config.Pipeline, f Factory, opts LocalOptions) (*Local, error) {
	if opts.Store == nil {
		return nil, errors.New("local emulator needs a state store")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	if err := SecretsSupported(p); err != nil {
		return nil, err
	}
	ts := p.Settings.Topic
	l := &Local{p: p, opts: opts, Broker: topic.NewMemory(), readers: map[string][]string{}}
	l.Broker.AutoCreate = ts.AutoCreate
	l.Broker.Default = topic.Spec{Partitions: ts.DefaultPartitions, ReplicationFactor: ts.DefaultReplicationFactor}
	var budget *Budget
	if opts.MaxEvents > 0 {
		budget = NewBudget(opts.MaxEvents)
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		path := "sources." + name
		if err := l.ensureTopic(ctx, s.Topic, s.TopicConfig, path+".topic"); err != nil {
			return nil, err
		}
		r, err := NewSourceRunner(p, name, f, Deps{Store: opts.Store, Producer: l.Broker, Log: opts.Log})
		if err != nil {
			return nil, err
		}
		r.Budget = budget
		l.status = append(l.status, r.Status)
		l.sources = append(l.sources, r)
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		path := "sinks." + name
		for i, t := range s.Topics {
			if err := l.ensureTopic(ctx, t, nil, fmt.Sprintf("%s.topics[%d]", path, i)); err != nil {
				return nil, err
			}
		}
		h, err := NewSinkHandler(p, name, f, Deps{Store: opts.Store, Producer: l.Broker, Log: opts.Log, Metrics: opts.Metrics})
		if err != nil {
			return nil, err
		}
		l.status = append(l.status, h.Status)
		group := ConsumerGroup(p, name)
		for _, t := range s.Topics {
			l.readers[t] = append(l.readers[t], group)
		}
		rt := p.Settings.Retry
		l.sinks = append(l.sinks, &localSink{
			name: name, spec: s, group: group, handler: h,
			retry: Backoff{Initial: time.Duration(rt.InitialBackoffMs) * time.Millisecond,
				Max: time.Duration(rt.MaxBackoffMs) * time.Millisecond, Multiplier: rt.BackoffMultiplier},
		})
	}
	if len(l.sources)+len(l.sinks) == 0 {
		return nil, errors.New("the pipeline has no enabled sources or sinks")
	}
	return l, nil
}

// SecretsSupported reports an error for a secrets block: no secret-store
// provider is wired in yet, and running with "vault:..." references left
// as literal strings would hand them to connectors as passwords.
func SecretsSupported(p *config.Pipeline) error {
	if p.Secrets == nil {
		return nil
	}
	line := ""
	if n := spec.Find(p.Root, "secrets.provider"); n != nil {
		line = fmt.Sprintf(" (line %d:%d)", n.Line, n.Column)
	}
	return fmt.Errorf("secrets.provider%s: the %s secret provider is not supported yet; reference secrets as ${VAR} environment variables instead",
		line, p.Secrets.Provider)
}

// ensureTopic applies settings.topic (and a source's topic_config).
func (l *Local) ensureTopic(ctx context.Context, name string, tc *config.TopicConfig, path string) error {
	ts := l.p.Settings.Topic
	auto := ts.AutoCreate
	want := topic.Spec{Partitions: ts.DefaultPartitions, ReplicationFactor: ts.DefaultReplicationFactor}
	if tc != nil {
		if tc.AutoCreate != nil {
			auto = *tc.AutoCreate
		}
		if tc.Partitions > 0 {
			want.Partitions = tc.Partitions
		}
		if tc.ReplicationFactor > 0 {
			want.ReplicationFactor = tc.ReplicationFactor
		}
	}
	have, err := l.Broker.Describe(ctx, name)
	switch {
	case err == nil:
		if ts.ValidateExisting && have.Partitions != want.Partitions {
			l.opts.Log.Warn("topic differs from its configuration", "topic", name, "partitions", have.Partitions, "configured", want.Partitions)
		}
		return nil
	case !errors.Is(err, topic.ErrUnknownTopic):
		return err
	case auto:
		return l.Broker.Create(ctx, name, want)
	case ts.RequireTopicExists:
		return fmt.Errorf("%s: topic %q does not exist and auto_create is off (settings.topic.require_topic_exists)", path, name)
	}
	return nil
}

// Statuses returns the status of every connector, sources first.
func (l *Local) Statuses() Statuses { return l.status }

// Run runs until sources finish (then drains), the duration passes, or ctx
// is cancelled (then it stops after in-flight batches, commits and flushes).
// It returns an error when any connector ended Failed.
func (l *Local) Run(ctx context.Context) error {
	if l.opts.OnStart != nil {
		l.opts.OnStart(l.status)
	}
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	if l.opts.Duration > 0 {
		t := time.AfterFunc(l.opts.Duration, stopSources)
		defer t.Stop()
	}
	sinkCtx, stopSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSinks()

	var srcWG, sinkWG sync.WaitGroup
	for _, r := range l.sources {
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			_ = r.Run(srcCtx) // failures are in the status
		}()
	}
	for _, s := range l.sinks {
		if err := s.handler.Start(sinkCtx); err != nil {
			s.handler.Status.SetState(Failed)
			l.opts.Log.Error("sink health check failed", "sink", s.name, "error", err)
			continue
		}
		for _, t := range s.spec.Topics {
			n, err := l.Broker.Partitions(t)
			if err != nil {
				return err
			}
			for p := range n {
				sinkWG.Add(1)
				go func() {
					defer sinkWG.Done()
					l.consume(sinkCtx, s, t, int32(p))
				}()
			}
		}
	}

	srcWG.Wait()
	if len(l.sources) > 0 || ctx.Err() == nil {
		// Sources are done (or there are none and we wait for a signal).
		if len(l.sources) == 0 {
			<-srcCtx.Done()
		}
		if ctx.Err() == nil {
			l.drain(ctx)
		}
	}
	stopSinks()
	sinkWG.Wait()
	var failed []string
	for _, s := range l.sinks {
		if err := s.handler.Close(context.Background()); err != nil {
			l.opts.Log.Error("sink close failed", "sink", s.name, "error", err)
			s.handler.Status.Fail(err)
			s.handler.Status.SetState(Failed)
		}
	}
	for _, st := range l.status {
		if st.State() == Failed {
			failed = append(failed, fmt.Sprintf("%s %s (%s)", st.Kind, st.Name, st.LastError()))
		}
	}
	if failed != nil {
		return fmt.Errorf("failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// drain waits until every sink has consumed everything on its topics, or
// has failed, or ctx is cancelled.
func (l *Local) drain(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		done := true
		for _, s := range l.sinks {
			if st := s.handler.Status.State(); st == Failed {
				continue
			}
			if l.lag(s) > 0 {
				done = false
				break
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lag is how many messages a sink's group is behind on its topics.
func (l *Local) lag(s *localSink) int64 {
	var lag int64
	for _, t := range s.spec.Topics {
		n, _ := l.Broker.Partitions(t)
		for p := range n {
			hw := l.Broker.HighWatermark(t, int32(p))
			c, _ := l.Broker.Committed(s.group, t, int32(p))
			lag += hw - c
		}
	}
	return lag
}

// consume feeds one partition to a sink: fetch, decode, Handle, commit the
// prefix that succeeded, and redeliver from the first failure after a
// backoff.
func (l *Local) consume(ctx context.Context, s *localSink, t string, part int32) {
	offset, ok := l.Broker.Committed(s.group, t, part)
	if !ok {
		offset = l.startOffset(s, t, part)
		l.Broker.Commit(s.group, t, part, offset)
	}
	attempts := map[int64]int{}
	failures := 0
	recs := make([]Record, 0, l.opts.BatchSize)
	for ctx.Err() == nil {
		msgs, err := l.Broker.Fetch(ctx, t, part, offset, l.opts.BatchSize)
		if err != nil {
			return
		}
		recs = recs[:0]
		for _, m := range msgs {
			attempts[m.Offset]++
			r := Record{ID: fmt.Sprint(m.Offset), Topic: t, Partition: part, Offset: m.Offset, Attempt: attempts[m.Offset], Raw: m.Value}
			r.Event, r.DecodeErr = events.DecodeAny(m.Value)
			recs = append(recs, r)
		}
		res, err := s.handler.Handle(ctx, recs)
		if errors.Is(err, ErrSinkFailed) {
			return
		}
		next := msgs[len(msgs)-1].Offset + 1
		if len(res.FailedIdx) > 0 {
			next = recs[res.FailedIdx[0]].Offset
		}
		for o := offset; o < next; o++ {
			delete(attempts, o)
		}
		l.Broker.Commit(s.group, t, part, next)
		l.trim(t, part)
		offset = next
		s.handler.Status.Lag.Store(l.lag(s))
		if len(res.FailedIdx) == 0 {
			failures = 0
			continue
		}
		failures++
		if (RealClock{}).Sleep(ctx, s.retry.Delay(failures)) != nil {
			return
		}
	}
}

// trim releases messages every group reading the topic has committed.
func (l *Local) trim(t string, part int32) {
	low := int64(-1)
	for _, g := range l.readers[t] {
		c, ok := l.Broker.Committed(g, t, part)
		if !ok {
			return
		}
		if low < 0 || c < low {
			low = c
		}
	}
	if low > 0 {
		l.Broker.Trim(t, part, low)
	}
}

func (l *Local) startOffset(s *localSink, t string, part int32) int64 {
	switch so := s.spec.StartOffset; so {
	case "", "earliest":
		return 0
	case "latest":
		return l.Broker.HighWatermark(t, part)
	default:
		ts, err := time.Parse(time.RFC3339, so)
		if err != nil {
			return 0 // validated at load; unreachable
		}
		return l.Broker.OffsetForTime(t, part, ts)
	}
}
