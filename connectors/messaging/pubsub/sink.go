package pubsub

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
)

// Sink metric names, as the reference documents them (oversized_total is
// ours: the reference has no oversized_behavior metric).
const (
	metricPublished   = "pubsub.sink.messages_published_total"
	metricBytes       = "pubsub.sink.bytes_published_total"
	metricBatches     = "pubsub.sink.batches_published_total"
	metricFailures    = "pubsub.sink.publish_failures_total"
	metricCompression = "pubsub.sink.compression_savings_bytes"
	metricOversized   = "pubsub.sink.oversized_total"
)

// Attributes the sink sets on a message.
const (
	// AttrCompression names the codec of a compressed body (gzip, zstd).
	AttrCompression = "rivven-compression"
	// AttrTruncated is set on a body cut to the size limit; its value is
	// the body's size in bytes before it was cut.
	AttrTruncated = "rivven-truncated"
)

// MaxMessageBytes is Pub/Sub's limit on a publish request (10 MB), which a
// single message must fit in together with the topic name.
const MaxMessageBytes = int(pubsub.MaxPublishRequestBytes)

func init() {
	catalog.RegisterSink[SinkConfig](catalog.Meta{
		Name:             "pubsub-sink",
		ConcurrentWrites: true,
		Aliases:          []string{"google-pubsub-sink"},
		Category:         catalog.Messaging,
		Subcategory:      "Queues",
		Description:      "Publishes events to a Google Cloud Pub/Sub topic with batching, compression and ordering keys; every message's result is checked and refused ones are dead-lettered.",
		Tags:             []string{"pubsub", "gcp", "google-cloud", "queue", "topic"},
		Metrics:          []string{metricPublished, metricBytes, metricBatches, metricFailures, metricCompression, metricOversized},
	}, NewSink)
}

// SinkConfig is the pubsub-sink config block.
type SinkConfig struct {
	ProjectID         string       `yaml:"project_id" required:"true" doc:"GCP project ID."`
	TopicID           string       `yaml:"topic_id" required:"true" doc:"Pub/Sub topic ID (or full name projects/<p>/topics/<t>); an event routed by a transform goes to the topic its route names instead."`
	BatchSize         int          `yaml:"batch_size" default:"100" min:"1" max:"1000" doc:"Messages per publish request."`
	BatchTimeoutMS    int          `yaml:"batch_timeout_ms" default:"1000" min:"1" doc:"Max wait before a partial publish request is sent. A write flushes its messages when it has handed them all over, so this only bounds overlapping writes."`
	Compression       string       `yaml:"compression" default:"none" enum:"none,gzip,zstd" doc:"Compression of each message body; a compressed message carries the attribute rivven-compression (gzip or zstd)."`
	BodyFormat        string       `yaml:"body_format" default:"json" enum:"json,raw,base64" doc:"Message body: json (the Rivven event JSON), raw (the event data: a JSON string as its text, anything else as JSON) or base64 (raw, base64-encoded)."`
	OrderingKey       *OrderingKey `yaml:"ordering_key" doc:"Ordering key of each message; enables message ordering on the publisher."`
	OversizedBehavior string       `yaml:"oversized_behavior" default:"fail" enum:"fail,skip,truncate" doc:"A message over Pub/Sub's 10 MB limit: fail (the event fails and is dead-lettered), skip (dropped, counted and logged) or truncate (body cut to the limit, attribute rivven-truncated set to the original size)."`
	Auth              *Auth        `yaml:"auth" doc:"Credentials; without it Application Default Credentials are used."`
	EmulatorHost      string       `yaml:"emulator_host" doc:"host:port of a Pub/Sub emulator (plaintext, no authentication); PUBSUB_EMULATOR_HOST works too."`
}

// OrderingKey says where a message's ordering key comes from.
type OrderingKey struct {
	Mode      string `yaml:"mode" required:"true" enum:"static,field,stream" doc:"static (value for every message), field (a field of the event's row) or stream (the event's stream, e.g. the table)."`
	Value     string `yaml:"value" doc:"The key with mode static."`
	FieldPath string `yaml:"field_path" doc:"Dot path into the event's row (after image; before image of deletes) with mode field, e.g. customer_id or customer.id."`
	Fallback  string `yaml:"fallback" doc:"Key used when the field is missing or null (mode field) or the stream is empty (mode stream); without it such messages are published without ordering key."`
}

// Validate checks what the tags cannot; NewSink runs it too.
func (c *SinkConfig) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.ProjectID == "" {
		ps = append(ps, spec.Problem{Path: "project_id", Message: "required"})
	}
	if c.TopicID == "" {
		ps = append(ps, spec.Problem{Path: "topic_id", Message: "required"})
	}
	ps = rangeProblem(ps, "batch_size", c.BatchSize, 1, 1000)
	ps = rangeProblem(ps, "batch_timeout_ms", c.BatchTimeoutMS, 1, 0)
	ps = enumProblem(ps, "compression", c.Compression, "none", "gzip", "zstd")
	ps = enumProblem(ps, "body_format", c.BodyFormat, "json", "raw", "base64")
	ps = enumProblem(ps, "oversized_behavior", c.OversizedBehavior, "fail", "skip", "truncate")
	if k := c.OrderingKey; k != nil {
		ps = enumProblem(ps, "ordering_key.mode", k.Mode, "static", "field", "stream")
		switch k.Mode {
		case "static":
			if k.Value == "" {
				ps = append(ps, spec.Problem{Path: "ordering_key.value", Message: "required with mode static"})
			}
		case "field":
			if k.FieldPath == "" || strings.Contains("."+k.FieldPath+".", "..") {
				ps = append(ps, spec.Problem{Path: "ordering_key.field_path", Message: fmt.Sprintf("mode field needs a dot path like customer_id or customer.id, got %q", k.FieldPath)})
			}
		}
		for _, f := range []struct{ path, v string }{{"ordering_key.value", k.Value}, {"ordering_key.fallback", k.Fallback}} {
			if len(f.v) > pubsubtopic.MaxOrderingKeyBytes {
				ps = append(ps, spec.Problem{Path: f.path, Message: fmt.Sprintf("longer than Pub/Sub's %d-byte ordering key limit", pubsubtopic.MaxOrderingKeyBytes)})
			}
		}
	}
	if c.Auth != nil && c.Auth.CredentialsPath != "" && c.EmulatorHost != "" {
		ps = append(ps, spec.Problem{Path: "emulator_host", Message: "an emulator takes no credentials: remove auth.credentials_path or emulator_host"})
	}
	return ps
}

func enumProblem(ps []spec.Problem, path, v string, allowed ...string) []spec.Problem {
	for _, a := range allowed {
		if v == a {
			return ps
		}
	}
	return append(ps, spec.Problem{Path: path, Message: fmt.Sprintf("unknown value %q (allowed: %s)", v, strings.Join(allowed, ", "))})
}

// Sink publishes to a topic; see SinkConfig.
type Sink struct {
	cfg  SinkConfig
	opts []option.ClientOption
	path []string // ordering_key.field_path split

	mu     sync.Mutex
	client *pubsub.Client
	pubs   map[string]*pubsub.Publisher // by full topic name

	zenc *zstd.Encoder
	// flushing counts the Flush calls Writes started and left running.
	flushing sync.WaitGroup
}

// NewSink builds a pubsub-sink.
func NewSink(ctx context.Context, cfg *SinkConfig) (connector.Sink, error) {
	return newSink(cfg)
}

func newSink(cfg *SinkConfig, opts ...option.ClientOption) (*Sink, error) {
	s := &Sink{cfg: *cfg, opts: opts, pubs: map[string]*pubsub.Publisher{}}
	if k := cfg.OrderingKey; k != nil && k.Mode == "field" {
		s.path = strings.Split(k.FieldPath, ".")
	}
	if cfg.Compression == "zstd" {
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			return nil, connector.Fatal(fmt.Errorf("pubsub: zstd: %w", err))
		}
		s.zenc = enc
	}
	return s, nil
}

func (s *Sink) conn(ctx context.Context) (*pubsub.Client, error) {
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

func (s *Sink) topicName(id string) string {
	return pubsubtopic.FullName(s.cfg.ProjectID, "topics", id)
}

// publisher returns the publisher of a topic (full name).
func (s *Sink) publisher(c *pubsub.Client, name string) *pubsub.Publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pubs[name]
	if !ok {
		p = c.Publisher(name)
		p.PublishSettings.CountThreshold = s.cfg.BatchSize
		p.PublishSettings.DelayThreshold = time.Duration(s.cfg.BatchTimeoutMS) * time.Millisecond
		p.EnableMessageOrdering = s.cfg.OrderingKey != nil
		s.pubs[name] = p
	}
	return p
}

// Check verifies that the topic exists.
func (s *Sink) Check(ctx context.Context) error {
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	name := s.topicName(s.cfg.TopicID)
	_, err = c.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: name})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("pubsub: topic %s does not exist", name)
	}
	if err != nil {
		return fmt.Errorf("pubsub: get topic %s: %w", name, pubsubtopic.Classify(err))
	}
	return nil
}

// Close sends what the publishers hold and closes the client.
func (s *Sink) Close(context.Context) error {
	// A Flush a Write started may still run: Stop must not overlap it.
	s.flushing.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pubs {
		p.Stop()
	}
	s.pubs = map[string]*pubsub.Publisher{}
	if s.zenc != nil {
		_ = s.zenc.Close()
		s.zenc = nil
	}
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

type sinkMetrics struct {
	published, bytes, batches, failures, savings, oversized *metric.Counter
}

func metricsOf(ctx context.Context) sinkMetrics {
	rt := connector.RuntimeFrom(ctx)
	return sinkMetrics{
		published: rt.Counter(metricPublished, "Messages published."),
		bytes:     rt.Counter(metricBytes, "Message body bytes published."),
		batches:   rt.Counter(metricBatches, "Writes (batches of events) published."),
		failures:  rt.Counter(metricFailures, "Messages that failed to publish (including oversized ones with oversized_behavior fail)."),
		savings:   rt.Counter(metricCompression, "Bytes saved by compressing message bodies."),
		oversized: rt.Counter(metricOversized, "Messages over the 10 MB limit (failed, skipped or truncated)."),
	}
}

// ConcurrentWrites: Write keeps no state between calls but the publishers
// (created under mu) and the zstd encoder (EncodeAll is safe for
// concurrent use), so concurrent requests publish in parallel.
func (s *Sink) ConcurrentWrites() bool { return true }

// Write publishes the batch and waits for every message. Events that
// cannot be turned into a message (or are oversized with
// oversized_behavior fail) and messages Pub/Sub refused are reported in a
// *connector.WriteError; when every message was refused the whole write
// fails with the first error, so that an outage is retried as one.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	m := metricsOf(ctx)
	log := connector.RuntimeFrom(ctx).Logger()
	failed := map[int]error{}
	type sent struct {
		i    int
		pub  *pubsub.Publisher
		key  string
		size int
		res  *pubsub.PublishResult
	}
	var out []sent
	used := map[*pubsub.Publisher]bool{}
	for i, e := range batch {
		name := s.topicName(s.cfg.TopicID)
		if e.Route != "" {
			name = s.topicName(e.Route)
		}
		msg, bodyLen, oversize, err := s.message(e, name)
		if msg != nil && msg.Attributes[AttrCompression] != "" && msg.Attributes[AttrTruncated] == "" {
			if saved := bodyLen - len(msg.Data); saved > 0 {
				m.savings.Add(uint64(saved))
			}
		}
		if oversize > 0 {
			m.oversized.Inc()
		}
		switch {
		case err != nil:
			failed[i] = fmt.Errorf("pubsub: %w", err)
			continue
		case msg == nil:
			log.Warn("pubsub: oversized message skipped (oversized_behavior: skip)", "topic", name, "stream", e.Stream, "position", e.Metadata.Position, "bytes", oversize, "limit", messageLimit(name))
			continue
		}
		p := s.publisher(c, name)
		used[p] = true
		out = append(out, sent{i: i, pub: p, key: msg.OrderingKey, size: len(msg.Data), res: p.Publish(ctx, msg)})
	}
	// Partial bundles go now instead of after batch_timeout_ms; Flush does
	// not watch ctx, the Gets below do.
	for p := range used {
		s.flushing.Add(1)
		go func() {
			defer s.flushing.Done()
			p.Flush()
		}()
	}
	var refused int
	var first error
	paused := map[*pubsub.Publisher]map[string]bool{}
	for _, o := range out {
		if _, err := o.res.Get(ctx); err != nil {
			refused++
			err = fmt.Errorf("pubsub: publish: %w", pubsubtopic.Classify(err))
			if first == nil {
				first = err
			}
			failed[o.i] = err
			if o.key != "" {
				if paused[o.pub] == nil {
					paused[o.pub] = map[string]bool{}
				}
				paused[o.pub][o.key] = true
			}
			continue
		}
		m.published.Inc()
		m.bytes.Add(uint64(o.size))
	}
	// A failed ordering key is paused by the client so that later messages
	// cannot overtake the failed one; the engine retries the failed events
	// (in order), so the key must accept messages again.
	for p, keys := range paused {
		for k := range keys {
			p.ResumePublish(k)
		}
	}
	m.failures.Add(uint64(len(failed)))
	if len(out) > refused {
		m.batches.Inc()
	}
	if refused > 0 && refused == len(out) && len(failed) == len(batch) {
		return first
	}
	if len(failed) > 0 {
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

// message builds the message of an event for topic name. bodyLen is the
// uncompressed body's size; oversize is the message's size when it was
// over the limit (0 otherwise); a nil message without error means it was
// skipped.
func (s *Sink) message(e *events.Event, name string) (msg *pubsub.Message, bodyLen, oversize int, err error) {
	body, err := s.body(e)
	if err != nil {
		return nil, 0, 0, err
	}
	bodyLen = len(body)
	msg = &pubsub.Message{}
	if s.cfg.OrderingKey != nil {
		k, err := s.orderingKey(e)
		if err != nil {
			return nil, bodyLen, 0, err
		}
		msg.OrderingKey = k
	}
	data, err := s.compress(body, msg)
	if err != nil {
		return nil, bodyLen, 0, err
	}
	msg.Data = data
	limit := messageLimit(name)
	size := proto.Size(&pubsubpb.PubsubMessage{Data: msg.Data, Attributes: msg.Attributes, OrderingKey: msg.OrderingKey})
	if size <= limit {
		return msg, bodyLen, 0, nil
	}
	switch s.cfg.OversizedBehavior {
	case "skip":
		return nil, bodyLen, size, nil
	case "truncate":
		if err := s.truncate(body, msg, limit); err != nil {
			return nil, bodyLen, size, err
		}
		return msg, bodyLen, size, nil
	}
	return nil, bodyLen, size, resilience.Errorf(resilience.Schema, "oversized message: %d bytes exceed Pub/Sub's limit of %d (oversized_behavior: fail)", size, limit)
}

// messageLimit is the largest message (encoded PubsubMessage) a publish
// request to name can carry: what the client library's bundler allows.
func messageLimit(name string) int {
	topicField := 1 + protowire.SizeVarint(uint64(len(name))) + len(name)
	return MaxMessageBytes - topicField - 5
}

// truncate cuts the uncompressed body until the (re-compressed) message
// fits, so that a compressed body stays decodable. The cut body is no
// longer valid JSON: the attribute tells consumers.
func (s *Sink) truncate(body []byte, msg *pubsub.Message, limit int) error {
	if msg.Attributes == nil {
		msg.Attributes = map[string]string{}
	}
	msg.Attributes[AttrTruncated] = strconv.Itoa(len(body))
	n := len(body)
	for n > 0 {
		overhead := proto.Size(&pubsubpb.PubsubMessage{Attributes: msg.Attributes, OrderingKey: msg.OrderingKey})
		room := limit - overhead - 1 - protowire.SizeVarint(uint64(limit))
		if room <= 0 {
			return resilience.Errorf(resilience.Schema, "oversized message: its attributes and ordering key alone exceed the limit")
		}
		n = min(n, room)
		data, err := s.compress(body[:n], msg)
		if err != nil {
			return err
		}
		if len(data) <= room {
			msg.Data = data
			return nil
		}
		n -= len(data) - room + 1024 // incompressible: compression added framing
	}
	msg.Data = nil
	return nil
}

// body encodes the event per body_format.
func (s *Sink) body(e *events.Event) ([]byte, error) {
	if s.cfg.BodyFormat == "json" {
		b, err := events.Rivven.Append(nil, e)
		if err != nil {
			return nil, resilience.Errorf(resilience.Schema, "encode event: %w", err)
		}
		return b, nil
	}
	raw, err := e.Data.AppendJSON(nil)
	if err != nil {
		return nil, resilience.Errorf(resilience.Schema, "encode data: %w", err)
	}
	// A JSON string is text the source wrapped (a non-JSON payload): its
	// own bytes are the raw body, not the quoted string.
	if len(raw) > 0 && raw[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err == nil {
			raw = []byte(str)
		}
	}
	if s.cfg.BodyFormat == "base64" {
		return base64.StdEncoding.AppendEncode(nil, raw), nil
	}
	return raw, nil
}

// compress compresses body per compression and marks msg.
func (s *Sink) compress(body []byte, msg *pubsub.Message) ([]byte, error) {
	switch s.cfg.Compression {
	case "gzip":
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(body); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		setAttr(msg, AttrCompression, "gzip")
		return buf.Bytes(), nil
	case "zstd":
		setAttr(msg, AttrCompression, "zstd")
		return s.zenc.EncodeAll(body, nil), nil
	}
	return body, nil
}

func setAttr(msg *pubsub.Message, k, v string) {
	if msg.Attributes == nil {
		msg.Attributes = map[string]string{}
	}
	msg.Attributes[k] = v
}

var errNoKey = errors.New("no ordering key")

// orderingKey picks the message's ordering key per ordering_key.
func (s *Sink) orderingKey(e *events.Event) (string, error) {
	k := s.cfg.OrderingKey
	var key string
	var err error
	switch k.Mode {
	case "static":
		return k.Value, nil
	case "stream":
		key = e.Stream
		if key == "" {
			err = errNoKey
		}
	case "field":
		key, err = s.fieldKey(e)
	}
	if errors.Is(err, errNoKey) {
		return k.Fallback, nil
	}
	if err != nil {
		return "", err
	}
	if len(key) > pubsubtopic.MaxOrderingKeyBytes || !utf8.ValidString(key) {
		return "", resilience.Errorf(resilience.Schema, "ordering key from %s is not a UTF-8 string of at most %d bytes", k.Mode, pubsubtopic.MaxOrderingKeyBytes)
	}
	return key, nil
}

// fieldKey reads field_path from the event's row: strings as they are,
// other values as JSON; errNoKey when missing or null.
func (s *Sink) fieldKey(e *events.Event) (string, error) {
	row, err := e.Row()
	if err != nil {
		// Data that is not an object (a string payload, say) has no
		// fields; if it is not even JSON, encoding the body fails anyway.
		return "", errNoKey
	}
	var v any = row
	for _, p := range s.path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", errNoKey
		}
		if v, ok = m[p]; !ok {
			return "", errNoKey
		}
	}
	switch v := v.(type) {
	case nil:
		return "", errNoKey
	case string:
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", resilience.Errorf(resilience.Schema, "ordering_key.field_path %s: %w", s.cfg.OrderingKey.FieldPath, err)
	}
	return string(b), nil
}
