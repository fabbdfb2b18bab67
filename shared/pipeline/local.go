package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Factory builds components by connector name; shared/catalog
// provides it (shared code never imports connectors).
//
// ctx carries the component's Runtime and bounds its construction; the
// factory validates cfg before the connector's constructor sees it.
type Factory interface {
	NewSource(ctx context.Context, connector string, cfg *yaml.Node, path string) (Source, error)
	NewSink(ctx context.Context, connector string, cfg *yaml.Node, path string) (Sink, error)
	NewTransform(ctx context.Context, typ string, cfg *yaml.Node, path string) (Transform, error)
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
	// WrapProducer, when set, wraps the topic producer the sources and
	// dead-lettering publish through (the dashboard's tap).
	WrapProducer func(topic.Producer) topic.Producer
	// Trigger, when set, is the envelope the emulator hands each batch to
	// the sink in, through the same Adapter the serverless hosts use: one
	// of LocalTriggers. Each topic partition is one queue, shard, Kafka
	// partition or ordered subscription, so key order holds whatever the
	// trigger. "" hands the topic's records to the sink's Handler
	// directly, as `run sink` does: encoding an envelope and parsing it
	// back costs more than the rest of the path, and only tells something
	// to those who test a trigger.
	Trigger string
}

// LocalTriggers lists the envelopes the emulator can deliver in.
var LocalTriggers = []string{"sqs", "sqs-fifo", "kinesis", "kafka", "pubsub"}

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
	// draining is closed once the sources are done: nothing more will
	// arrive, so sinks stop holding partial batches back (Batcher).
	draining chan struct{}
	// topicID names this run's in-memory topics: their offsets start at 0
	// in every run, so records of two runs are told apart by it.
	topicID string
}

type localSink struct {
	name    string
	spec    *config.Sink
	handler *Handler
	group   string
	retry   Backoff
	batch   int           // most records per delivery
	linger  time.Duration // how long a partial batch waits for more (Batcher)
	// commitEvery is offset_commit_interval (see SinkRunner.CommitEvery).
	commitEvery int
	// inflight holds rate_limit.max_in_flight slots (nil = one per
	// partition; see SinkRunner.MaxInFlight).
	inflight chan struct{}
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
	if _, ok := f.(*secretFactory); !ok {
		f = WithSecrets(f, NewResolver(p))
	}
	if opts.Trigger != "" && !slices.Contains(LocalTriggers, opts.Trigger) {
		return nil, fmt.Errorf("unknown trigger %q (allowed: %s)", opts.Trigger, strings.Join(LocalTriggers, ", "))
	}
	ts := p.Settings.Topic
	l := &Local{p: p, opts: opts, Broker: topic.NewMemory(), draining: make(chan struct{}), topicID: runID()}
	l.Broker.AutoCreate = ts.AutoCreate
	l.Broker.Default = topic.Spec{Partitions: ts.DefaultPartitions, ReplicationFactor: ts.DefaultReplicationFactor}
	var producer topic.Producer = l.Broker
	if opts.WrapProducer != nil {
		producer = opts.WrapProducer(producer)
	}
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
		r, err := NewSourceRunner(ctx, p, name, f, Deps{Store: opts.Store, Producer: producer, Log: opts.Log, Metrics: opts.Metrics})
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
		h, err := NewSinkHandler(ctx, p, name, f, Deps{Store: opts.Store, Producer: producer, Log: opts.Log, Metrics: opts.Metrics})
		if err != nil {
			return nil, err
		}
		l.status = append(l.status, h.Status)
		group := ConsumerGroup(p, name)
		for _, t := range s.Topics {
			// The topic keeps what this group has not committed and no
			// more than its bound (topic.Memory): the source waits for
			// a slow sink.
			l.Broker.Subscribe(group, t)
		}
		rt := p.Settings.Retry
		batch, linger := batchPolicy(h.Sink, opts.BatchSize)
		ls := &localSink{
			name: name, spec: s, group: group, handler: h, batch: batch, linger: linger, commitEvery: s.OffsetCommitInterval,
			retry: Backoff{Initial: time.Duration(rt.InitialBackoffMs) * time.Millisecond,
				Max: time.Duration(rt.MaxBackoffMs) * time.Millisecond, Multiplier: rt.BackoffMultiplier},
		}
		if rl := s.RateLimit; rl != nil && rl.MaxInFlight > 0 {
			ls.inflight = make(chan struct{}, rl.MaxInFlight)
		}
		l.sinks = append(l.sinks, ls)
	}
	if len(l.sources)+len(l.sinks) == 0 {
		return nil, errors.New("the pipeline has no enabled sources or sinks")
	}
	return l, nil
}

// ensureTopic applies settings.topic (and a source's topic_config).
func (l *Local) ensureTopic(ctx context.Context, name string, tc *config.TopicConfig, path string) error {
	return EnsureTopic(ctx, l.Broker, l.p.Settings.Topic, name, tc, path, l.opts.Log)
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
			defer secrets.Crash()
			_ = r.Run(srcCtx) // failures are in the status
		}()
	}
	for _, s := range l.sinks {
		if err := s.handler.Start(sinkCtx); err != nil {
			s.handler.Status.SetState(Failed)
			l.opts.Log.Error("sink health check failed", "sink", s.name, "error", err)
			l.release(s)
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
					defer secrets.Crash()
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
			close(l.draining)
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

// consume feeds one partition to a sink: fetch, wrap the messages in the
// configured trigger's envelope, pass it through the Adapter (the code the
// Lambda and Cloud Run hosts run), read the trigger's answer back, commit
// the prefix before the first message to redeliver and, after a backoff,
// redeliver from there.
func (l *Local) consume(ctx context.Context, s *localSink, t string, part int32) {
	offset, ok := l.Broker.Committed(s.group, t, part)
	if !ok {
		offset = l.startOffset(s, t, part)
		l.Broker.Commit(s.group, t, part, offset)
	}
	ad := &Adapter{Handler: s.handler, Topics: []string{t}, Ordered: true}
	attempts := map[int64]int{}
	failures := 0
	ds := make([]events.Delivery, 0, s.batch)
	if l.opts.Trigger == "" {
		ad = nil // records go to the handler as they are (deliver)
	}
	fetch := func(fctx context.Context, from int64, limit int, more bool) ([]topic.Message, error) {
		if !more {
			return l.Broker.Fetch(fctx, t, part, from, limit)
		}
		// Waiting for the rest of a partial batch: stop once the sources
		// are done, since nothing more will come.
		fctx, cancel := context.WithCancel(fctx)
		defer cancel()
		secrets.Go(func() {
			select {
			case <-l.draining:
				cancel()
			case <-fctx.Done():
			}
		})
		msgs, err := l.Broker.Fetch(fctx, t, part, from, limit)
		if err != nil && ctx.Err() == nil {
			return msgs, errLingerOver
		}
		return msgs, err
	}
	// A sink that Failed consumes no more; its other partitions' consumers
	// may wait for data that never comes, so the first one out lets the
	// sources go on.
	defer func() {
		if s.handler.Status.State() == Failed {
			l.release(s)
		}
	}()
	committed := offset
	commit := func() {
		if offset > committed {
			l.Broker.Commit(s.group, t, part, offset)
			committed = offset
		}
	}
	// What was consumed is committed when the consumer stops.
	defer commit()
	for ctx.Err() == nil {
		if s.inflight != nil {
			// Wait for data without a slot, so that an idle partition
			// holds none back from the busy ones.
			if _, err := l.Broker.Fetch(ctx, t, part, offset, 1); err != nil {
				return
			}
			select {
			case s.inflight <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		stop := l.batch(ctx, ad, s, t, part, fetch, attempts, &ds, &offset, &failures, commit)
		if s.inflight != nil {
			<-s.inflight
		}
		if stop {
			return
		}
	}
}

// batch delivers one batch of a partition and commits as
// offset_commit_interval says; it returns true when the consumer must
// stop.
func (l *Local) batch(ctx context.Context, ad *Adapter, s *localSink, t string, part int32, fetch fetchFunc,
	attempts map[int64]int, dsp *[]events.Delivery, offset *int64, failures *int, commit func()) bool {
	msgs, err := gather(ctx, s.batch, s.linger, *offset, fetch)
	if err != nil {
		return true
	}
	// What is read of msgs is read now: once the batch is handled, a sink
	// that Failed no longer holds its entries (release), and they may go.
	first, last := msgs[0].Offset, msgs[len(msgs)-1].Offset
	var again []int
	if ad == nil {
		again, err = l.handle(ctx, s, t, part, msgs, attempts)
	} else {
		ds := (*dsp)[:0]
		for _, m := range msgs {
			ds = append(ds, l.delivery(s, m, attemptOf(attempts, m.Offset)))
		}
		*dsp = ds
		again, err = l.deliver(ctx, ad, s, t, part, ds)
	}
	if errors.Is(err, ErrSinkFailed) {
		return true
	}
	if err != nil {
		// Nothing was processed (say, the health check failed): the
		// trigger retries the whole batch.
		again = []int{0}
	}
	// Fetched offsets are consecutive (the topic is a log).
	next := last + 1
	if len(again) > 0 {
		next = first + int64(again[0])
	}
	if len(attempts) > 0 {
		for o := *offset; o < next; o++ {
			delete(attempts, o)
		}
	}
	// Only what is delivered again is counted: the map stays empty while
	// every batch goes through.
	for o := next; o <= last; o++ {
		attempts[o] = attemptOf(attempts, o)
	}
	*offset = next
	// Commit every offset_commit_interval records, once caught up with
	// the end (so a drain sees everything consumed), and before waiting
	// to redeliver.
	if len(again) > 0 || next >= l.Broker.HighWatermark(t, part) || next-l.committed(s, t, part) >= int64(max(s.commitEvery, 1)) {
		commit()
	}
	s.handler.Status.Lag.Store(l.lag(s))
	if len(again) == 0 {
		*failures = 0
		return false
	}
	*failures++
	delay := s.retry.Delay(*failures)
	if d := s.handler.ProbeIn(); d > 0 {
		delay = d // the open breaker's next probe, not later
	}
	return (RealClock{}).Sleep(ctx, delay) != nil
}

// attemptOf is the delivery attempt a message's delivery now is: one more
// than the deliveries counted for its offset.
func attemptOf(attempts map[int64]int, off int64) int {
	if len(attempts) == 0 {
		return 1
	}
	return attempts[off] + 1
}

// handle hands a partition's messages to the sink's handler as records of
// a log, the way `run sink` does (offset ids, the partition as ordering
// group, the attempt counted here), and returns the indices to redeliver.
func (l *Local) handle(ctx context.Context, s *localSink, t string, part int32, msgs []topic.Message, attempts map[int64]int) ([]int, error) {
	group := events.KafkaTopicPartition(t, part)
	recs := make([]Record, len(msgs))
	for i, m := range msgs {
		recs[i] = Record{ID: strconv.FormatInt(m.Offset, 10), Topic: t, TopicID: l.topicID, Partition: part, Offset: m.Offset, HasOffset: true,
			Attempt: attemptOf(attempts, m.Offset), Group: group, Raw: m.Value}
		d := events.Delivery{ID: recs[i].ID, Topic: t, Partition: part, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
		recs[i].Event, recs[i].DecodeErr = events.DecodeDelivery("", &d)
	}
	res, err := s.handler.Handle(ctx, recs)
	if err != nil {
		return nil, err
	}
	return res.FailedIdx, nil
}

// committed is the group's committed offset of a partition.
func (l *Local) committed(s *localSink, t string, part int32) int64 {
	c, _ := l.Broker.Committed(s.group, t, part)
	return c
}

// delivery describes a topic message the way the configured trigger
// would present it: its id scheme (an SQS message id, a Kinesis sequence
// number, topic-partition-offset, a Pub/Sub message id), receive count and
// ordering group.
func (l *Local) delivery(s *localSink, m topic.Message, attempt int) events.Delivery {
	d := events.Delivery{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Attempt: attempt,
		Key: m.Key, Value: m.Value, Time: m.Time,
	}
	if len(m.Headers) > 0 {
		d.Attributes = make(map[string]string, len(m.Headers))
		for _, h := range m.Headers {
			d.Attributes[h.Key] = string(h.Value)
		}
	}
	switch l.opts.Trigger {
	case "sqs", "sqs-fifo":
		d.ID = uuidOf(m.Topic, m.Partition, m.Offset)
		d.Group = fmt.Sprintf("%s-%d", m.Topic, m.Partition)
	case "kinesis":
		// Sequence numbers are 56-digit decimals growing within a shard.
		d.ID = fmt.Sprintf("4959%052d", m.Offset)
		if len(d.Key) == 0 {
			d.Key = []byte(strconv.Itoa(int(m.Partition)))
		}
	case "kafka":
		d.ID = fmt.Sprintf("%s-%d-%d", m.Topic, m.Partition, m.Offset)
	case "pubsub":
		h := fnv.New64a()
		fmt.Fprintf(h, "%s\x00%d\x00%d", m.Topic, m.Partition, m.Offset)
		d.ID = strconv.FormatUint(h.Sum64()>>1, 10)
		// One ordering key per partition keeps the partition's order, as
		// an ordered subscription does per key.
		d.Group = fmt.Sprintf("%s-%d", m.Topic, m.Partition)
		d.Key = m.Key
	}
	return d
}

// deliver hands a batch to the sink in the trigger's envelope and returns
// the indices the trigger would deliver again, read from the answer the
// adapter gave: the partial batch response for the Lambda triggers, the
// HTTP status of each push for Pub/Sub (a nack stops the partition there,
// as an ordered subscription does).
func (l *Local) deliver(ctx context.Context, ad *Adapter, s *localSink, t string, part int32, ds []events.Delivery) ([]int, error) {
	var (
		kind events.TriggerKind
		ev   any
	)
	switch l.opts.Trigger {
	case "pubsub":
		sub := "projects/local/subscriptions/" + s.group
		for i := range ds {
			body, err := json.Marshal(events.NewPubSubPush(sub, ds[i]))
			if err != nil {
				return nil, err
			}
			status, _, err := ad.PushBody(ctx, body)
			if err != nil && !events.PushAcked(status) && status != http.StatusInternalServerError {
				return nil, err
			}
			if !events.PushAcked(status) {
				return rangeFrom(i, len(ds)), nil
			}
		}
		return nil, nil
	case "kinesis":
		kind = events.TriggerKinesis
		ev = events.NewKinesisEvent(events.KinesisSource{
			StreamARN: "arn:aws:kinesis:local:000000000000:stream/" + t, Region: "local",
			ShardID: fmt.Sprintf("shardId-%012d", part),
		}, ds)
	case "kafka":
		kind = events.TriggerKafka
		ev = events.NewKafkaEvent(events.KafkaSource{
			ClusterARN: "arn:aws:kafka:local:000000000000:cluster/local/rivven", BootstrapServers: "localhost:9092",
		}, ds)
	default:
		kind = events.TriggerSQS
		arn := "arn:aws:sqs:local:000000000000:" + t
		if l.opts.Trigger == "sqs-fifo" {
			arn += ".fifo"
		}
		ev = events.NewSQSEvent(events.SQSSource{QueueARN: arn, Region: "local"}, ds)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	resp, err := ad.InvokeLambda(ctx, raw)
	if err != nil {
		return nil, err
	}
	return events.ReadLambdaResponse(kind, ds, resp)
}

func rangeFrom(i, n int) []int {
	out := make([]int, 0, n-i)
	for ; i < n; i++ {
		out = append(out, i)
	}
	return out
}

// uuidOf makes an SQS-style message id that stays the same for the same
// message across redeliveries, as SQS's does.
func uuidOf(t string, part int32, off int64) string {
	h := fnv.New128a()
	fmt.Fprintf(h, "%s\x00%d\x00%d", t, part, off)
	b := h.Sum(nil)
	b[6] = b[6]&0x0f | 0x40 // version 4 layout
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// release stops a sink that will consume no more (it failed) from holding
// its topics back: the sources would wait for it forever.
func (l *Local) release(s *localSink) {
	for _, t := range s.spec.Topics {
		l.Broker.Unsubscribe(s.group, t)
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

// runID is a random id of one local run.
func runID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "local-" + hex.EncodeToString(b[:])
}
