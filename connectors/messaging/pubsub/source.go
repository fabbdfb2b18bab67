// Package pubsub holds the Google Cloud Pub/Sub source and sink.
//
// The source pulls a subscription and acknowledges a message only after the
// batch holding it was durably published downstream (Emit returned nil):
// at-least-once. A batch whose Emit failed is negatively acknowledged, so
// Pub/Sub redelivers it at once; a source that dies holding messages lets
// their ack deadline lapse, with the same effect.
//
// The sink publishes events to a topic, waits for every message's result
// and reports the ones Pub/Sub refused in a *connector.WriteError.
package pubsub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
)

// Source metric names: the reference's sink family (pubsub.sink.*_total)
// applied to what its source snapshot reports.
const (
	metricReceived   = "pubsub.source.messages_received_total"
	metricAcked      = "pubsub.source.messages_acked_total"
	metricNacked     = "pubsub.source.messages_nacked_total"
	metricInFlight   = "pubsub.source.in_flight_messages"
	metricEmptyPolls = "pubsub.source.empty_polls_total"
)

func init() {
	catalog.RegisterSource[SourceConfig](catalog.Meta{
		Name:        "pubsub-source",
		Aliases:     []string{"pubsub", "google-pubsub-source"},
		Category:    catalog.Messaging,
		Subcategory: "Queues",
		Description: "Pulls a Google Cloud Pub/Sub subscription with flow control; messages are acknowledged only after they were durably published (at-least-once).",
		Tags:        []string{"pubsub", "gcp", "google-cloud", "queue", "subscription"},
		Metrics:     []string{metricReceived, metricAcked, metricNacked, metricInFlight, metricEmptyPolls},
	}, NewSource)
}

// SourceConfig is the pubsub-source config block.
type SourceConfig struct {
	ProjectID          string      `yaml:"project_id" required:"true" doc:"GCP project ID."`
	SubscriptionID     string      `yaml:"subscription_id" required:"true" doc:"Pub/Sub subscription ID (or its full name projects/<p>/subscriptions/<s>)."`
	MaxMessages        int         `yaml:"max_messages" default:"100" min:"1" max:"1000" doc:"Messages per pull; one pull is emitted as one batch."`
	AckDeadlineSeconds int         `yaml:"ack_deadline_seconds" default:"60" min:"10" max:"600" doc:"Acknowledgment deadline the source sets (and keeps extending) on messages it holds; a source that dies lets it lapse and Pub/Sub redelivers."`
	BatchAckSize       int         `yaml:"batch_ack_size" default:"50" min:"1" max:"2500" doc:"Acknowledgements of published messages are sent once this many are due (or when no pulled message is waiting), at most this many per request."`
	FlowControl        FlowControl `yaml:"flow_control" doc:"Limits on messages pulled but not yet acknowledged."`
	IncludeAttributes  bool        `yaml:"include_attributes" default:"true" doc:"Add the message attributes to the event metadata, as the object attributes."`
	Auth               *Auth       `yaml:"auth" doc:"Credentials; without it Application Default Credentials are used."`
	EmulatorHost       string      `yaml:"emulator_host" doc:"host:port of a Pub/Sub emulator (plaintext, no authentication); PUBSUB_EMULATOR_HOST works too."`
}

// FlowControl bounds what the source holds unacknowledged.
type FlowControl struct {
	MaxOutstandingMessages int `yaml:"max_outstanding_messages" default:"1000" min:"1" doc:"Max in-flight messages (pulled, not yet acknowledged); pulls ask for no more than what is left."`
	MaxOutstandingBytes    int `yaml:"max_outstanding_bytes" default:"104857600" min:"1" doc:"Max in-flight bytes (100MB); no pull starts while this many message bytes are held, so it is exceeded by at most one pull."`
}

// Auth selects credentials.
type Auth struct {
	CredentialsPath string `yaml:"credentials_path" doc:"Google credentials JSON file (service account key, or workload identity federation); its content is never logged."`
}

func (a *Auth) path() string {
	if a == nil {
		return ""
	}
	return a.CredentialsPath
}

// Validate checks what the tags cannot; NewSource runs it too.
func (c *SourceConfig) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.ProjectID == "" {
		ps = append(ps, spec.Problem{Path: "project_id", Message: "required"})
	}
	if c.SubscriptionID == "" {
		ps = append(ps, spec.Problem{Path: "subscription_id", Message: "required"})
	}
	ps = rangeProblem(ps, "max_messages", c.MaxMessages, 1, 1000)
	ps = rangeProblem(ps, "ack_deadline_seconds", c.AckDeadlineSeconds, 10, 600)
	ps = rangeProblem(ps, "batch_ack_size", c.BatchAckSize, 1, 2500)
	ps = rangeProblem(ps, "flow_control.max_outstanding_messages", c.FlowControl.MaxOutstandingMessages, 1, 0)
	ps = rangeProblem(ps, "flow_control.max_outstanding_bytes", c.FlowControl.MaxOutstandingBytes, 1, 0)
	if c.Auth != nil && c.Auth.CredentialsPath != "" && c.EmulatorHost != "" {
		ps = append(ps, spec.Problem{Path: "emulator_host", Message: "an emulator takes no credentials: remove auth.credentials_path or emulator_host"})
	}
	return ps
}

// rangeProblem adds a problem when v is outside lo..hi (hi 0: no upper bound).
func rangeProblem(ps []spec.Problem, path string, v, lo, hi int) []spec.Problem {
	switch {
	case hi == 0 && v < lo:
		return append(ps, spec.Problem{Path: path, Message: fmt.Sprintf("%d is below the minimum %d", v, lo)})
	case hi != 0 && (v < lo || v > hi):
		return append(ps, spec.Problem{Path: path, Message: fmt.Sprintf("%d is outside the allowed range %d to %d", v, lo, hi)})
	}
	return ps
}

// Source pulls a subscription; see SourceConfig.
type Source struct {
	cfg  SourceConfig
	sub  string // full subscription name
	opts []option.ClientOption

	mu     sync.Mutex
	client *pubsub.Client

	// extendEvery is how often leases are extended; 0 = half the ack
	// deadline. Tests shorten it.
	extendEvery time.Duration
}

// NewSource builds a pubsub-source.
func NewSource(ctx context.Context, cfg *SourceConfig) (connector.Source, error) {
	return newSource(cfg)
}

func newSource(cfg *SourceConfig, opts ...option.ClientOption) (*Source, error) {
	return &Source{
		cfg:  *cfg,
		sub:  pubsubtopic.FullName(cfg.ProjectID, "subscriptions", cfg.SubscriptionID),
		opts: opts,
	}, nil
}

// conn returns the client, connecting on first use.
func (s *Source) conn(ctx context.Context) (*pubsub.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	c, err := pubsubtopic.NewClient(ctx, pubsubtopic.ClientConfig{
		ProjectID: s.cfg.ProjectID, CredentialsPath: s.cfg.Auth.path(), EmulatorHost: s.cfg.EmulatorHost,
	}, s.opts...)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	s.client = c
	return c, nil
}

// Check verifies that the subscription exists and is readable.
func (s *Source) Check(ctx context.Context) error {
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	_, err = c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: s.sub})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("pubsub: subscription %s does not exist", s.sub)
	}
	if err != nil {
		return fmt.Errorf("pubsub: get subscription %s: %w", s.sub, pubsubtopic.Classify(err))
	}
	return nil
}

// Close closes the client.
func (s *Source) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

// reader is the state of one Read.
type reader struct {
	s                                   *Source
	client                              *pubsub.Client
	log                                 *slog.Logger
	received, acked, nacked, emptyPolls *metric.Counter
	inFlight                            *metric.Gauge

	mu     sync.Mutex
	cond   *sync.Cond
	held   map[string]int // ack ID → size, for flow control and lease extension
	bytes  int
	closed bool
}

// pulled is one Pull's messages, emitted as one batch.
type pulled struct {
	msgs []*pubsubpb.ReceivedMessage
}

// Read pulls and emits until ctx is done (then it returns nil) or a pull
// or Emit fails (then it returns the error). resume is ignored: the
// subscription itself is the cursor, and an acknowledgement its commit.
func (s *Source) Read(ctx context.Context, _ []byte, emit connector.Emitter) error {
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	rt := connector.RuntimeFrom(ctx)
	r := &reader{
		s: s, client: c, log: rt.Logger(),
		held:       map[string]int{},
		received:   rt.Counter(metricReceived, "Messages pulled from the subscription."),
		acked:      rt.Counter(metricAcked, "Messages acknowledged after they were published."),
		nacked:     rt.Counter(metricNacked, "Messages negatively acknowledged (redelivered) because publishing failed or the source stopped."),
		emptyPolls: rt.Counter(metricEmptyPolls, "Pulls that returned no message."),
		inFlight:   rt.Gauge(metricInFlight, "Messages pulled and not yet acknowledged."),
	}
	r.cond = sync.NewCond(&r.mu)

	pctx, stop := context.WithCancel(ctx)
	batches := make(chan pulled, 1)
	pullErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(batches)
		pullErr <- r.pull(pctx, batches)
	}()
	go func() {
		defer wg.Done()
		r.extend(pctx)
	}()

	err = r.consume(ctx, batches, emit)
	stop()
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
	// Drain so the puller can finish; what it pulled is nacked below.
	var leftover []string
	for b := range batches {
		for _, m := range b.msgs {
			leftover = append(leftover, m.AckId)
		}
	}
	wg.Wait()
	if perr := <-pullErr; err == nil && perr != nil && ctx.Err() == nil {
		err = perr
	}
	// Everything still held was not published: hand it back now rather
	// than after the ack deadline.
	r.mu.Lock()
	for id := range r.held {
		leftover = append(leftover, id)
	}
	r.mu.Unlock()
	r.nack(context.WithoutCancel(ctx), dedupe(leftover))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// pull pulls while flow control allows and hands each non-empty pull on.
func (r *reader) pull(ctx context.Context, out chan<- pulled) error {
	fc := r.s.cfg.FlowControl
	for {
		r.mu.Lock()
		for !r.closed && (len(r.held) >= fc.MaxOutstandingMessages || r.bytes >= fc.MaxOutstandingBytes) {
			r.cond.Wait()
		}
		room := fc.MaxOutstandingMessages - len(r.held)
		r.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		n := min(r.s.cfg.MaxMessages, room)
		resp, err := r.pullOnce(ctx, n)
		if ctx.Err() != nil {
			if resp != nil {
				// Pulled as ctx ended: let the caller nack them.
				r.hold(resp.ReceivedMessages)
			}
			return nil
		}
		if err != nil {
			if status.Code(err) == codes.NotFound {
				return connector.Fatal(fmt.Errorf("pubsub: subscription %s does not exist", r.s.sub))
			}
			return fmt.Errorf("pubsub: pull %s: %w", r.s.sub, pubsubtopic.Classify(err))
		}
		msgs := resp.ReceivedMessages
		if len(msgs) == 0 {
			r.emptyPolls.Inc()
			continue
		}
		r.received.Add(uint64(len(msgs)))
		r.hold(msgs)
		// The subscription's own deadline may be shorter than ours.
		r.modack(ctx, ackIDs(msgs), r.s.cfg.AckDeadlineSeconds)
		select {
		case out <- pulled{msgs: msgs}:
		case <-ctx.Done():
			return nil
		}
	}
}

// pullGrace is how long a pull in flight may finish after ctx ended. A
// pull cancelled while the server is handing it messages loses them
// until their ack deadline lapses; one allowed to finish returns them,
// and Read nacks them at once.
const pullGrace = 2 * time.Second

func (r *reader) pullOnce(ctx context.Context, n int) (*pubsubpb.PullResponse, error) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(pullGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-pctx.Done():
		}
	})
	defer stop()
	return r.client.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{Subscription: r.s.sub, MaxMessages: int32(n)})
}

func (r *reader) hold(msgs []*pubsubpb.ReceivedMessage) {
	r.mu.Lock()
	for _, m := range msgs {
		sz := len(m.GetMessage().GetData())
		r.held[m.AckId] = sz
		r.bytes += sz
	}
	r.inFlight.Set(float64(len(r.held)))
	r.mu.Unlock()
}

// release forgets acknowledged (or nacked) messages and wakes the puller.
func (r *reader) release(ids []string) {
	r.mu.Lock()
	for _, id := range ids {
		if sz, ok := r.held[id]; ok {
			r.bytes -= sz
			delete(r.held, id)
		}
	}
	r.inFlight.Set(float64(len(r.held)))
	r.cond.Broadcast()
	r.mu.Unlock()
}

func ackIDs(msgs []*pubsubpb.ReceivedMessage) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.AckId
	}
	return ids
}

// extend keeps the leases of held messages alive while Emit is slow (the
// engine applies back-pressure), so Pub/Sub does not redeliver messages
// that are merely waiting.
func (r *reader) extend(ctx context.Context) {
	every := r.s.extendEvery
	if every <= 0 {
		every = time.Duration(r.s.cfg.AckDeadlineSeconds) * time.Second / 2
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := make([]string, 0, len(r.held))
		for id := range r.held {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		r.modack(ctx, ids, r.s.cfg.AckDeadlineSeconds)
	}
}

// maxIDsPerRequest keeps acknowledge/modack requests under Pub/Sub's
// 512 KiB request limit (ack IDs are up to ~200 bytes).
const maxIDsPerRequest = 2500

func chunks(ids []string, n int, f func([]string)) {
	for len(ids) > 0 {
		k := min(n, len(ids))
		f(ids[:k])
		ids = ids[k:]
	}
}

// modack sets the ack deadline of ids; failures are logged: at worst the
// messages are redelivered, which at-least-once allows.
func (r *reader) modack(ctx context.Context, ids []string, secs int) {
	chunks(ids, maxIDsPerRequest, func(part []string) {
		err := r.client.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription: r.s.sub, AckIds: part, AckDeadlineSeconds: int32(secs),
		})
		if err != nil && ctx.Err() == nil {
			r.log.Warn("pubsub: modify ack deadline failed; the messages may be redelivered", "subscription", r.s.sub, "messages", len(part), "error", err)
		}
	})
}

// nack hands messages back for immediate redelivery (deadline 0).
func (r *reader) nack(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.modack(ctx, ids, 0)
	r.nacked.Add(uint64(len(ids)))
	r.release(ids)
}

// ack acknowledges published messages, batch_ack_size per request.
func (r *reader) ack(ctx context.Context, ids []string) error {
	var err error
	chunks(ids, r.s.cfg.BatchAckSize, func(part []string) {
		if err != nil {
			return
		}
		e := r.client.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: r.s.sub, AckIds: part})
		if e != nil {
			err = fmt.Errorf("pubsub: acknowledge %d message(s): %w", len(part), pubsubtopic.Classify(e))
			return
		}
		r.acked.Add(uint64(len(part)))
		r.release(part)
	})
	return err
}

// consume emits each pull and acknowledges what was published.
func (r *reader) consume(ctx context.Context, in <-chan pulled, emit connector.Emitter) error {
	var due []string // published, not yet acknowledged
	flush := func() error {
		// Published messages must be acknowledged even when ctx ended,
		// or they come again as duplicates.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err := r.ack(actx, due)
		due = due[:0]
		return err
	}
	defer func() { _ = flush() }()
	for {
		var b pulled
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case b, ok = <-in:
			if !ok {
				return nil // the puller stopped; Read reports why
			}
		}
		batch := make([]*events.Event, len(b.msgs))
		for i, m := range b.msgs {
			batch[i] = r.s.event(m)
		}
		if err := emit.Emit(ctx, batch); err != nil {
			// Read nacks everything still held, this batch included.
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pubsub: emit: %w", err)
		}
		due = append(due, ackIDs(b.msgs)...)
		if len(due) >= r.s.cfg.BatchAckSize || len(in) == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// event turns a message into a record event.
func (s *Source) event(rm *pubsubpb.ReceivedMessage) *events.Event {
	m := rm.GetMessage()
	id := m.GetMessageId()
	stream := pubsubtopic.ShortName(s.sub)
	e := &events.Event{
		Type:      events.Record,
		Stream:    stream,
		Timestamp: time.Now().UTC(),
		Source:    &events.SourceInfo{Connector: "pubsub-source", Table: stream, Position: id},
	}
	if pt := m.GetPublishTime(); pt != nil {
		e.Timestamp = pt.AsTime().UTC()
	}
	e.Metadata.Position = id
	data := m.GetData()
	// The same choice as the mqtt source: JSON stays JSON, text becomes a
	// string, anything else a base64 string marked as such.
	switch {
	case json.Valid(data):
		e.Data = events.RawPayload(append([]byte(nil), data...))
	case utf8.Valid(data):
		e.Data = events.RawPayload(jsonOf(string(data)))
	default:
		e.Data = events.RawPayload(jsonOf(base64.StdEncoding.EncodeToString(data)))
		e.Metadata.Set("payload_encoding", jsonOf("base64"))
	}
	e.Metadata.Set("message_id", jsonOf(id))
	e.Metadata.Set("publish_time", jsonOf(e.Timestamp.Format(time.RFC3339Nano)))
	if k := m.GetOrderingKey(); k != "" {
		e.Key = jsonOf(k)
		e.Metadata.Set("ordering_key", jsonOf(k))
	}
	if n := rm.GetDeliveryAttempt(); n > 0 {
		e.Metadata.Set("delivery_attempt", jsonOf(n))
	}
	if s.cfg.IncludeAttributes && len(m.GetAttributes()) > 0 {
		e.Metadata.Set("attributes", jsonOf(m.GetAttributes()))
	}
	return e
}

func jsonOf(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
