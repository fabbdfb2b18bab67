package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/schema"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterSink[SinkConfig](catalog.Meta{
		Name:             "kafka-sink",
		ConcurrentWrites: true,
		Category:         catalog.Messaging,
		Subcategory:      "Queues",
		Description:      "Produces events to an Apache Kafka topic (or each event's route), with configurable acks and compression, optionally idempotent or one transaction per batch.",
		Tags:             []string{"kafka", "producer", "redpanda", "msk", "confluent", "exactly-once", "queue"},
		Metrics:          []string{"kafka.sink.messages_produced_total", "kafka.sink.bytes_produced_total", "kafka.sink.batches_sent_total", "kafka.sink.success_rate"},
	}, NewSink)
}

// SinkConfig is the kafka-sink config block.
type SinkConfig struct {
	Brokers         []string                  `yaml:"brokers" required:"true" doc:"Kafka bootstrap broker addresses (host:port)."`
	Topic           string                    `yaml:"topic" required:"true" doc:"Kafka topic to produce to; an event routed by a transform goes to its route instead."`
	Acks            string                    `yaml:"acks" default:"all" enum:"none,leader,all" doc:"Acknowledgements a produce waits for: none, leader, or all in-sync replicas. idempotent and transactional_id need all."`
	Compression     string                    `yaml:"compression" default:"none" enum:"none,gzip,snappy,lz4,zstd" doc:"Compression of record batches."`
	Idempotent      bool                      `yaml:"idempotent" default:"false" doc:"Idempotent producer: retries do not duplicate or reorder records. Implied by transactional_id."`
	TransactionalID string                    `yaml:"transactional_id" doc:"Makes every batch one Kafka transaction (committed when all records were written, aborted otherwise), for exactly-once with read_committed consumers. Unique per running sink instance."`
	KeyField        string                    `yaml:"key_field" doc:"Dot path into the event's row whose value is the record key (a string as is, anything else as JSON); default: the event key as JSON."`
	Codec           string                    `yaml:"codec" default:"rivven" enum:"rivven,debezium,cloudevents" doc:"How events are encoded as record values: Rivven event JSON, Debezium change envelope or CloudEvents (structured JSON)."`
	Debezium        events.DebeziumOptions    `yaml:"debezium" doc:"Settings of codec debezium, named after the Debezium connector properties (dots as underscores), with Debezium's defaults."`
	CloudEvents     events.CloudEventsOptions `yaml:"cloudevents" doc:"Settings of codec cloudevents."`
	Security        *Security                 `yaml:"security" doc:"TLS and SASL settings."`
	// SchemaRegistryURL makes values the rows of the events in the
	// registry's wire format.
	SchemaRegistryURL string             `yaml:"schema_registry_url" doc:"Schema registry URL (Confluent's REST API: Confluent, Redpanda, Apicurio's ccompat, Karapace). Set, each value is the event's row in the registry's wire format (magic byte 0, 4-byte schema id, the Avro, JSON Schema or Protobuf datum) under a schema the sink registers (see schema_registry), with the event type and stream in the headers rivven.op and rivven.stream; empty: the codec encodes whole events."`
	SchemaRegistry    schema.SinkOptions `yaml:"schema_registry" doc:"Schema registry settings: format, subject strategy, a given schema (else inferred), authentication, TLS."`
}

// Validate checks what the tags cannot express.
func (c *SinkConfig) Validate() []spec.Problem {
	ps := c.validate()
	if c.SchemaRegistryURL != "" {
		if err := schema.ValidateURL(c.SchemaRegistryURL); err != nil {
			ps = append(ps, spec.Problem{Path: "schema_registry_url", Message: err.Error()})
		}
		if c.Codec != "" && c.Codec != events.CodecRivven {
			ps = append(ps, spec.Problem{Path: "codec", Message: fmt.Sprintf("codec %s cannot be combined with schema_registry_url (values are then the rows in the registry's wire format)", c.Codec)})
		}
		for _, p := range c.SchemaRegistry.Validate() {
			p.Path = "schema_registry." + p.Path
			ps = append(ps, p)
		}
	}
	return ps
}

func (c *SinkConfig) validate() []spec.Problem {
	ps := validateBrokers(c.Brokers)
	if c.Topic == "" {
		ps = append(ps, spec.Problem{Path: "topic", Message: "required"})
	}
	if _, ok := acksOf[c.Acks]; !ok {
		ps = append(ps, spec.Problem{Path: "acks", Message: fmt.Sprintf("unknown acks %q (allowed: none, leader, all)", c.Acks)})
	} else if c.Acks != "" && c.Acks != "all" {
		if c.Idempotent {
			ps = append(ps, spec.Problem{Path: "acks", Message: "idempotent needs acks: all"})
		}
		if c.TransactionalID != "" {
			ps = append(ps, spec.Problem{Path: "acks", Message: "transactional_id needs acks: all"})
		}
	}
	if _, ok := compressionOf[c.Compression]; !ok {
		ps = append(ps, spec.Problem{Path: "compression", Message: fmt.Sprintf("unknown compression %q (allowed: none, gzip, snappy, lz4, zstd)", c.Compression)})
	}
	for _, oe := range events.CodecErrors(c.Codec, c.Debezium, c.CloudEvents, true) {
		ps = append(ps, spec.Problem{Path: oe.Path, Message: oe.Message})
	}
	if c.KeyField != "" && strings.Contains("."+c.KeyField+".", "..") {
		ps = append(ps, spec.Problem{Path: "key_field", Message: fmt.Sprintf("%q is not a dot path like id or customer.id", c.KeyField)})
	}
	return append(ps, c.Security.validate("security.")...)
}

var acksOf = map[string]kgo.Acks{"": kgo.AllISRAcks(), "all": kgo.AllISRAcks(), "leader": kgo.LeaderAck(), "none": kgo.NoAck()}

var compressionOf = map[string]kgo.CompressionCodec{
	"": kgo.NoCompression(), "none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// Sink produces to Kafka; see SinkConfig. Writes of a transactional sink
// are serialized (one transaction at a time).
type Sink struct {
	cfg   SinkConfig
	codec events.Codec
	cl    *kgo.Client
	path  []string
	txMu  sync.Mutex
	ser   *schema.Serializer // with schema_registry_url

	produced, bytes, batches, failed atomic.Int64
}

// NewSink builds a kafka sink. The client connects lazily.
func NewSink(ctx context.Context, cfg *SinkConfig) (connector.Sink, error) { return newSink(cfg) }

func newSink(cfg *SinkConfig, extra ...kgo.Opt) (*Sink, error) {
	codec, err := events.NewCodec(cfg.Codec, cfg.Debezium, cfg.CloudEvents)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	// Records can go to topics of the codec's choosing (Debezium's
	// transaction topic).
	codec = events.ForTopics(codec)
	opts, err := clientOpts(cfg.Brokers, cfg.Security)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	opts = append(opts,
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(acksOf[cfg.Acks]),
		kgo.ProducerBatchCompression(compressionOf[cfg.Compression]),
	)
	switch {
	case cfg.TransactionalID != "":
		opts = append(opts, kgo.TransactionalID(cfg.TransactionalID))
	case !cfg.Idempotent:
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("kafka: %w", err))
	}
	s := &Sink{cfg: *cfg, codec: codec, cl: cl}
	if cfg.SchemaRegistryURL != "" {
		rc, err := schema.NewClient(cfg.SchemaRegistryURL, cfg.SchemaRegistry.Client)
		if err != nil {
			cl.Close()
			return nil, connector.Fatal(fmt.Errorf("kafka: schema_registry_url: %w", err))
		}
		s.ser = schema.NewSerializer(rc, cfg.SchemaRegistry)
	}
	if cfg.KeyField != "" {
		s.path = strings.Split(cfg.KeyField, ".")
	}
	return s, nil
}

// Metrics returns a snapshot of the sink's counters under the names of
// the connector reference.
func (s *Sink) Metrics() map[string]float64 {
	ok, bad := s.produced.Load(), s.failed.Load()
	rate := 1.0
	if ok+bad > 0 {
		rate = float64(ok) / float64(ok+bad)
	}
	return map[string]float64{
		"kafka.sink.messages_produced_total": float64(ok),
		"kafka.sink.bytes_produced_total":    float64(s.bytes.Load()),
		"kafka.sink.batches_sent_total":      float64(s.batches.Load()),
		"kafka.sink.success_rate":            rate,
	}
}

// Check connects to the brokers.
func (s *Sink) Check(ctx context.Context) error {
	if err := s.cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: ping %v: %w", s.cfg.Brokers, err)
	}
	return nil
}

// Close flushes buffered records and closes the client.
func (s *Sink) Close(ctx context.Context) error {
	err := s.cl.Flush(ctx)
	s.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka: flush: %w", err)
	}
	return nil
}

// Write produces the batch and waits for every record. Events that cannot
// be encoded (or keyed) are reported in a *connector.WriteError and not
// produced. Without a transaction, records the broker rejected are
// reported there too (an error when all of them failed). With
// transactional_id the encodable events are one transaction: committed
// when all were written, aborted (and Write fails whole) otherwise.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	failed := map[int]error{}
	recs := make([]*kgo.Record, 0, len(batch))
	idx := make([]int, 0, len(batch))
	for i, e := range batch {
		n := len(recs)
		var err error
		if recs, err = s.records(ctx, recs, e); err != nil {
			failed[i] = fmt.Errorf("kafka: %w", err)
			continue
		}
		for range recs[n:] {
			idx = append(idx, i)
		}
	}
	s.failed.Add(int64(len(failed)))
	if len(recs) > 0 {
		var err error
		if s.cfg.TransactionalID != "" {
			err = s.produceTx(ctx, recs)
		} else {
			err = s.produce(ctx, recs, idx, failed)
		}
		if err != nil {
			s.failed.Add(int64(len(recs)))
			return err
		}
	}
	if len(failed) > 0 {
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

// produce writes recs; per-record errors go into failed by batch index.
func (s *Sink) produce(ctx context.Context, recs []*kgo.Record, idx []int, failed map[int]error) error {
	s.batches.Add(1)
	errs := s.send(ctx, recs)
	var n int
	var first error
	for j, err := range errs {
		if err != nil {
			failed[idx[j]] = fmt.Errorf("kafka: produce to %s: %w", recs[j].Topic, err)
			n++
			first = cmpOr(first, err)
			continue
		}
		s.count(recs[j])
	}
	if n == len(recs) {
		return fmt.Errorf("kafka: produce: all %d records failed: %w", n, first)
	}
	s.failed.Add(int64(n))
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// send produces recs asynchronously and waits for all their promises.
func (s *Sink) send(ctx context.Context, recs []*kgo.Record) []error {
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for j, r := range recs {
		s.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			errs[j] = err
			wg.Done()
		})
	}
	wg.Wait()
	return errs
}

func (s *Sink) count(r *kgo.Record) {
	s.produced.Add(1)
	s.bytes.Add(int64(len(r.Key) + len(r.Value)))
}

// produceTx writes recs in one transaction.
func (s *Sink) produceTx(ctx context.Context, recs []*kgo.Record) error {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if err := s.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka: begin transaction: %w", err)
	}
	s.batches.Add(1)
	var perr error
	for j, err := range s.send(ctx, recs) {
		if err != nil {
			perr = fmt.Errorf("kafka: produce to %s: %w", recs[j].Topic, err)
			break
		}
	}
	if perr == nil {
		if err := s.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			s.abort(ctx)
			return fmt.Errorf("kafka: commit transaction: %w", err)
		}
		for _, r := range recs {
			s.count(r)
		}
		return nil
	}
	s.abort(ctx)
	return fmt.Errorf("%w (transaction aborted)", perr)
}

// abort ends the open transaction, if any, by aborting it.
func (s *Sink) abort(ctx context.Context) {
	actx := context.WithoutCancel(ctx)
	_ = s.cl.AbortBufferedRecords(actx)
	_ = s.cl.EndTransaction(actx, kgo.TryAbort)
}

// records appends the records of an event to recs: none when the codec
// leaves it out, the record (on the codec's own topic for what it
// diverts, like Debezium's schema changes), and a tombstone after it when
// the codec asks for one (Debezium's deletes) and the record has a key.
func (s *Sink) records(ctx context.Context, recs []*kgo.Record, e *events.Event) ([]*kgo.Record, error) {
	if s.ser != nil {
		return s.registryRecord(ctx, recs, e)
	}
	val, err := s.codec.Append(nil, e)
	if errors.Is(err, events.ErrSkipped) {
		return recs, nil
	}
	if err != nil {
		return recs, fmt.Errorf("encode: %w", err)
	}
	r := &kgo.Record{Topic: s.cfg.Topic, Value: val}
	if e.Route != "" {
		r.Topic = e.Route
	}
	if d, ok := s.codec.(events.Diverter); ok {
		if topic, ok := d.Divert(e); ok {
			r.Topic = topic
		}
	}
	if s.path != nil {
		k, err := s.keyOf(e)
		if err != nil {
			return recs, err
		}
		r.Key = k
	} else if len(e.Key) > 0 && string(e.Key) != "null" {
		if ke, ok := s.codec.(events.KeyEncoder); ok {
			// Debezium's key: the key columns as the value writes them,
			// with their schema under schemas_enable.
			if r.Key, err = ke.AppendKey(nil, e); err != nil {
				return recs, fmt.Errorf("encode key: %w", err)
			}
		} else {
			r.Key = append([]byte(nil), e.Key...)
		}
	}
	recs = append(recs, r)
	if t, ok := s.codec.(events.Tombstoner); ok && t.Tombstone(e) && len(r.Key) > 0 {
		recs = append(recs, &kgo.Record{Topic: r.Topic, Key: r.Key})
	}
	return recs, nil
}

// registryRecord appends the record of a data event whose value is its
// row in the registry's wire format; control events (schema, state, log)
// carry no row and are not written.
func (s *Sink) registryRecord(ctx context.Context, recs []*kgo.Record, e *events.Event) ([]*kgo.Record, error) {
	if !e.Type.IsData() {
		return recs, nil
	}
	topic := s.cfg.Topic
	if e.Route != "" {
		topic = e.Route
	}
	enc, err := s.ser.Encode(ctx, topic, e)
	if err != nil {
		return recs, fmt.Errorf("schema registry: %w", err)
	}
	r := &kgo.Record{Topic: topic, Value: enc.Value, Headers: []kgo.RecordHeader{
		{Key: HeaderOp, Value: []byte(e.Type)},
		{Key: HeaderStream, Value: []byte(e.Stream)},
	}}
	if s.path != nil {
		if r.Key, err = s.keyOf(e); err != nil {
			return recs, err
		}
	} else if len(e.Key) > 0 && string(e.Key) != "null" {
		r.Key = append([]byte(nil), e.Key...)
	}
	return append(recs, r), nil
}

// Headers of a record written with a schema registry.
const (
	HeaderOp     = "rivven.op"     // the event type: insert, update, delete, record, ...
	HeaderStream = "rivven.stream" // the event's stream
)

// keyOf reads key_field from the event's row.
func (s *Sink) keyOf(e *events.Event) ([]byte, error) {
	row, err := e.Row()
	if err != nil {
		return nil, fmt.Errorf("key_field %s: %w", s.cfg.KeyField, err)
	}
	var v any = row
	for _, p := range s.path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("key_field %s: no such field in the row", s.cfg.KeyField)
		}
		if v, ok = m[p]; !ok {
			return nil, fmt.Errorf("key_field %s: no such field in the row", s.cfg.KeyField)
		}
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(v), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("key_field %s: %w", s.cfg.KeyField, err)
	}
	return b, nil
}

// ConcurrentWrites: the franz-go client and the schema-registry
// serializer are safe for concurrent use and a Write's records are its
// own; with transactional_id the transactions still go one at a time
// (txMu).
func (*Sink) ConcurrentWrites() bool { return true }
