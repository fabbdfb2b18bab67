package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/schema"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterSource[SourceConfig](catalog.Meta{
		Name:        "kafka-source",
		Category:    catalog.Messaging,
		Subcategory: "Queues",
		Description: "Consumes an Apache Kafka topic in a consumer group and emits each record as an event; offsets are committed only after the batch was durably published.",
		Tags:        []string{"kafka", "consumer", "redpanda", "msk", "confluent", "migration", "queue"},
		Metrics:     []string{"kafka.source.messages_consumed_total", "kafka.source.bytes_consumed_total", "kafka.source.polls_total", "kafka.source.poll_latency_avg_ms"},
	}, NewSource)
}

// SourceConfig is the kafka-source config block.
type SourceConfig struct {
	Brokers       []string  `yaml:"brokers" required:"true" doc:"Kafka bootstrap broker addresses (host:port)."`
	Topic         string    `yaml:"topic" required:"true" doc:"Kafka topic to consume from."`
	ConsumerGroup string    `yaml:"consumer_group" required:"true" doc:"Consumer group ID; the group's committed offsets are where a restarted source continues."`
	StartOffset   string    `yaml:"start_offset" default:"latest" doc:"Where to start in a partition the group has no committed offset for: earliest, latest, or an offset (a non-negative integer)."`
	Codec         string    `yaml:"codec" default:"auto" enum:"auto,rivven,debezium,cloudevents,raw" doc:"How record values decode: auto (Rivven, CloudEvents or Debezium by their keys, any other JSON as a record event), rivven, debezium, cloudevents, or raw (every value wrapped as a record event). A value that does not decode is emitted as a raw record with metadata decode_error."`
	Security      *Security `yaml:"security" doc:"TLS and SASL settings."`
	// SchemaRegistryURL decodes wire-format values.
	SchemaRegistryURL string        `yaml:"schema_registry_url" doc:"Schema registry URL (Confluent's REST API). Set, a value in the registry's wire format (magic byte 0, 4-byte schema id) is decoded with the Avro, JSON Schema or Protobuf schema of its id (fetched once per id) into a record event (the type and stream of the headers rivven.op and rivven.stream when present), with metadata schema_id and schema_subject; other values decode by codec."`
	SchemaRegistry    schema.Client `yaml:"schema_registry" doc:"Schema registry authentication and TLS."`
}

// Validate checks what the tags cannot express.
func (c *SourceConfig) Validate() []spec.Problem {
	ps := validateBrokers(c.Brokers)
	if c.Topic == "" {
		ps = append(ps, spec.Problem{Path: "topic", Message: "required"})
	}
	if c.ConsumerGroup == "" {
		ps = append(ps, spec.Problem{Path: "consumer_group", Message: "required"})
	}
	if _, err := startOffset(c.StartOffset); err != nil {
		ps = append(ps, spec.Problem{Path: "start_offset", Message: err.Error()})
	}
	switch c.Codec {
	case "", events.PayloadAuto, events.PayloadRaw, events.CodecRivven, events.CodecDebezium, events.CodecCloudEvents:
	default:
		ps = append(ps, spec.Problem{Path: "codec", Message: fmt.Sprintf("unknown codec %q (allowed: auto, rivven, debezium, cloudevents, raw)", c.Codec)})
	}
	if c.SchemaRegistryURL != "" {
		if err := schema.ValidateURL(c.SchemaRegistryURL); err != nil {
			ps = append(ps, spec.Problem{Path: "schema_registry_url", Message: err.Error()})
		}
		for _, p := range c.SchemaRegistry.Validate() {
			p.Path = "schema_registry." + p.Path
			ps = append(ps, p)
		}
	}
	return append(ps, c.Security.validate("security.")...)
}

func startOffset(s string) (kgo.Offset, error) {
	switch s {
	case "", "latest":
		return kgo.NewOffset().AtEnd(), nil
	case "earliest":
		return kgo.NewOffset().AtStart(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return kgo.Offset{}, fmt.Errorf("%q is not earliest, latest or a non-negative offset", s)
	}
	return kgo.NewOffset().At(n), nil
}

// Source consumes a Kafka topic; see SourceConfig.
type Source struct {
	cfg   SourceConfig
	opts  []kgo.Opt
	start kgo.Offset
	des   *schema.Deserializer // with schema_registry_url

	consumed, bytes, polls, pollNanos atomic.Int64
}

// NewSource builds a kafka source.
func NewSource(ctx context.Context, cfg *SourceConfig) (connector.Source, error) {
	return newSource(cfg)
}

func newSource(cfg *SourceConfig) (*Source, error) {
	opts, err := clientOpts(cfg.Brokers, cfg.Security)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	s := &Source{cfg: *cfg, opts: opts}
	s.start, _ = startOffset(cfg.StartOffset)
	if cfg.SchemaRegistryURL != "" {
		rc, err := schema.NewClient(cfg.SchemaRegistryURL, cfg.SchemaRegistry)
		if err != nil {
			return nil, connector.Fatal(fmt.Errorf("kafka: schema_registry_url: %w", err))
		}
		s.des = schema.NewDeserializer(rc)
	}
	return s, nil
}

// Metrics returns a snapshot of the source's counters under the names of
// the connector reference.
func (s *Source) Metrics() map[string]float64 {
	m := map[string]float64{
		"kafka.source.messages_consumed_total": float64(s.consumed.Load()),
		"kafka.source.bytes_consumed_total":    float64(s.bytes.Load()),
		"kafka.source.polls_total":             float64(s.polls.Load()),
		"kafka.source.poll_latency_avg_ms":     0,
	}
	if n := s.polls.Load(); n > 0 {
		m["kafka.source.poll_latency_avg_ms"] = float64(s.pollNanos.Load()) / float64(n) / 1e6
	}
	return m
}

// Check connects to the brokers.
func (s *Source) Check(ctx context.Context) error {
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: ping %v: %w", s.cfg.Brokers, err)
	}
	return nil
}

// maxPoll bounds the records of one batch.
const maxPoll = 1000

// Read joins the consumer group and emits one batch per poll until ctx is
// done (then it returns nil) or Emit or the client fails. Offsets live in
// the consumer group: resume is ignored and a restarted source continues
// after the group's last commit. A batch's offsets are committed only
// after Emit returned nil; when Emit fails nothing is committed and the
// records come again after a restart. Rebalances wait until the polled
// batch is emitted and committed, so no other member gets records this
// one is still working on.
func (s *Source) Read(ctx context.Context, _ []byte, emit connector.Emitter) error {
	opts := append(append([]kgo.Opt(nil), s.opts...),
		kgo.ConsumerGroup(s.cfg.ConsumerGroup),
		kgo.ConsumeTopics(s.cfg.Topic),
		kgo.ConsumeResetOffset(s.start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return connector.Fatal(fmt.Errorf("kafka: %w", err))
	}
	defer func() {
		cl.AllowRebalance() // Close leaves the group, a rebalance
		cl.Close()
	}()
	batch := make([]*events.Event, 0, 64)
	for {
		t0 := time.Now()
		fetches := cl.PollRecords(ctx, maxPoll)
		s.polls.Add(1)
		s.pollNanos.Add(int64(time.Since(t0)))
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		if err := fetchErr(fetches); err != nil {
			cl.AllowRebalance()
			return fmt.Errorf("kafka: fetch %s: %w", s.cfg.Topic, err)
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		for _, r := range recs {
			s.bytes.Add(int64(len(r.Key) + len(r.Value)))
			batch = append(batch, s.event(ctx, r))
		}
		s.consumed.Add(int64(len(recs)))
		err := emit.Emit(ctx, batch)
		clear(batch)
		batch = batch[:0]
		if err != nil {
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil // not committed: read again after a restart
			}
			return fmt.Errorf("kafka: emit: %w", err)
		}
		// The batch is stored: commit even when ctx ended meanwhile.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = cl.CommitRecords(cctx, recs...)
		cancel()
		cl.AllowRebalance()
		if err != nil {
			return fmt.Errorf("kafka: commit offsets of group %s: %w", s.cfg.ConsumerGroup, err)
		}
	}
}

// fetchErr returns the first error that is not a cancellation.
func fetchErr(f kgo.Fetches) error {
	for _, e := range f.Errors() {
		if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
			continue
		}
		return fmt.Errorf("partition %d: %w", e.Partition, e.Err)
	}
	return nil
}

// event decodes a record with the configured codec. Decoded events keep
// their stream; raw records get the topic as stream. The key is the
// Kafka key (JSON when valid, else a JSON string) unless the decoded
// event has one; the position is always topic/partition/offset.
func (s *Source) event(ctx context.Context, r *kgo.Record) *events.Event {
	if s.des != nil && len(r.Value) > 0 && r.Value[0] == 0 {
		if e, err := s.registryEvent(ctx, r); err == nil {
			return e
		} else if !errors.Is(err, schema.ErrNotWireFormat) {
			e := s.plainEvent(r)
			e.Metadata.Set("decode_error", jsonString("schema registry: "+err.Error()))
			return e
		}
	}
	return s.plainEvent(r)
}

// registryEvent decodes a wire-format value into an event of the type
// and stream its headers name (a record of the topic's name without
// them); an update's row becomes its after image.
func (s *Source) registryEvent(ctx context.Context, r *kgo.Record) (*events.Event, error) {
	d, err := s.des.Decode(ctx, r.Value)
	if err != nil {
		return nil, err
	}
	typ, stream := events.Record, r.Topic
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderOp:
			if t, err := events.ParseType(string(h.Value)); err == nil && t.IsData() {
				typ = t
			}
		case HeaderStream:
			stream = string(h.Value)
		}
	}
	data := d.Data
	if typ == events.Update {
		data = map[string]any{"before": nil, "after": data}
	}
	e := events.New(typ, stream, events.ValuePayload(data))
	e.Timestamp = r.Timestamp.UTC()
	if len(r.Key) > 0 {
		e.Key = keyJSON(r.Key)
	}
	id := uint32(d.ID)
	e.Metadata.SchemaID = &id
	e.Metadata.SchemaSubject = d.Subject
	e.Metadata.Position = fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	return e, nil
}

// plainEvent decodes a record with the configured codec.
func (s *Source) plainEvent(r *kgo.Record) *events.Event {
	d := &events.Delivery{
		ID:        fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset),
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Time:      r.Timestamp.UTC(),
		Group:     fmt.Sprintf("%s-%d", r.Topic, r.Partition),
	}
	format := s.cfg.Codec
	if format == "" {
		format = events.PayloadAuto
	}
	e, err := events.DecodeDelivery(format, d)
	if err != nil {
		e, _ = events.DecodeDelivery(events.PayloadRaw, d)
		e.Metadata.Set("decode_error", jsonString(err.Error()))
	}
	if len(e.Key) == 0 && len(r.Key) > 0 {
		e.Key = keyJSON(r.Key)
	}
	e.Metadata.Position = fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	return e
}

// keyJSON is a Kafka key as JSON: itself when valid JSON, else a string.
func keyJSON(k []byte) json.RawMessage {
	if json.Valid(k) {
		return append(json.RawMessage(nil), k...)
	}
	return jsonString(string(k))
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
