package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic"
)

func init() {
	catalog.RegisterSink[SinkConfig](catalog.Meta{
		Name:             "sqs-sink",
		ConcurrentWrites: true,
		Category:         catalog.Messaging,
		Subcategory:      "Queues",
		Description:      "Sends events to an Amazon SQS queue (standard or FIFO) with SendMessageBatch; per-message failures are reported per event.",
		Tags:             []string{"sqs", "aws", "amazon", "queue", "fifo"},
		Metrics:          []string{"sqs.sink.messages_sent_total", "sqs.sink.bytes_sent_total", "sqs.sink.batches_sent_total", "sqs.sink.success_rate", "sqs.sink.messages_failed_total"},
	}, NewSink)
}

// SinkConfig is the sqs-sink's config block.
type SinkConfig struct {
	QueueURL            string                    `yaml:"queue_url" required:"true" doc:"Full SQS queue URL, like https://sqs.us-east-1.amazonaws.com/123456789012/my-queue; a name ending in .fifo is a FIFO queue."`
	Region              string                    `yaml:"region" doc:"AWS region; when empty the region in queue_url's host, else us-east-1."`
	EndpointURL         string                    `yaml:"endpoint_url" doc:"Endpoint to call instead of AWS's (LocalStack, tests)."`
	BatchSize           int                       `yaml:"batch_size" default:"10" min:"1" max:"10" doc:"Messages per SendMessageBatch request (a request also stays within 256 KiB)."`
	BatchTimeoutMS      int                       `yaml:"batch_timeout_ms" default:"1000" min:"0" doc:"Max wait before flush. Accepted for compatibility: the engine hands the sink whole batches and each Write sends its batch at once, so nothing waits."`
	MessageGroupID      string                    `yaml:"message_group_id" doc:"Static MessageGroupId (FIFO queues; on standard queues it makes fair-queue groups). With message_group_id_field it is the fallback for events without that field."`
	MessageGroupIDField string                    `yaml:"message_group_id_field" doc:"Event field (of the row: after, or before for deletes) whose value is the MessageGroupId."`
	DedupIDField        string                    `yaml:"deduplication_id_field" doc:"Event field whose value is the MessageDeduplicationId (FIFO queues); events without it rely on the queue's content-based deduplication."`
	DelaySeconds        int                       `yaml:"delay_seconds" default:"0" min:"0" max:"900" doc:"Message delay in seconds (standard queues; FIFO queues only have a queue-level delay)."`
	IncludeMetadata     bool                      `yaml:"include_metadata" default:"true" doc:"Send event_type, stream, namespace, timestamp, position, transaction_id and codec as String message attributes."`
	Codec               string                    `yaml:"codec" default:"rivven" enum:"rivven,debezium,cloudevents" doc:"Message body encoding: Rivven event JSON, Debezium change envelope or CloudEvents (structured JSON)."`
	Debezium            events.DebeziumOptions    `yaml:"debezium" doc:"Settings of codec debezium, named after the Debezium connector properties (dots as underscores), with Debezium's defaults."`
	CloudEvents         events.CloudEventsOptions `yaml:"cloudevents" doc:"Settings of codec cloudevents."`
	Auth                *Auth                     `yaml:"auth" doc:"Credentials; without it the AWS default credential chain."`
}

// Validate checks what the tags cannot express.
func (c *SinkConfig) Validate() []spec.Problem {
	q, ps := checkCommon(c.QueueURL, c.Region, c.EndpointURL, c.Auth)
	if c.BatchSize < 1 || c.BatchSize > 10 {
		ps = append(ps, spec.Problem{Path: "batch_size", Message: "must be between 1 and 10"})
	}
	if c.DelaySeconds < 0 || c.DelaySeconds > 900 {
		ps = append(ps, spec.Problem{Path: "delay_seconds", Message: "must be between 0 and 900"})
	}
	for _, oe := range events.CodecErrors(c.Codec, c.Debezium, c.CloudEvents, false) {
		ps = append(ps, spec.Problem{Path: oe.Path, Message: oe.Message})
	}
	if len(c.MessageGroupID) > 128 {
		ps = append(ps, spec.Problem{Path: "message_group_id", Message: "at most 128 characters"})
	}
	if q.URL != "" {
		if q.FIFO && c.MessageGroupID == "" && c.MessageGroupIDField == "" {
			ps = append(ps, spec.Problem{Path: "message_group_id", Message: "a FIFO queue needs message_group_id or message_group_id_field"})
		}
		if q.FIFO && c.DelaySeconds != 0 {
			ps = append(ps, spec.Problem{Path: "delay_seconds", Message: "FIFO queues take no per-message delay (set the queue's DelaySeconds)"})
		}
		if !q.FIFO && c.DedupIDField != "" {
			ps = append(ps, spec.Problem{Path: "deduplication_id_field", Message: "deduplication applies to FIFO queues (a name ending in .fifo) only"})
		}
	}
	return ps
}

// Sink sends events to one queue.
type Sink struct {
	cfg    SinkConfig
	q      sqstopic.Queue
	codec  events.Codec
	client *awssqs.Client

	// The reference's metrics, exported by the engine (Metrics).
	sent, bytes, batches, failedN atomic.Uint64
}

// NewSink builds an sqs-sink.
func NewSink(ctx context.Context, cfg *SinkConfig) (connector.Sink, error) {
	q, _ := sqstopic.ParseQueueURL(cfg.QueueURL)
	codec, _ := events.NewCodec(cfg.Codec, cfg.Debezium, cfg.CloudEvents)
	client, err := sqstopic.NewClient(ctx, q, cfg.Region, cfg.EndpointURL, cfg.Auth)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	return &Sink{cfg: *cfg, q: q, codec: codec, client: client}, nil
}

// Metrics returns the sink's counters under the reference's names.
func (s *Sink) Metrics() map[string]float64 {
	ok, bad := s.sent.Load(), s.failedN.Load()
	rate := 1.0
	if ok+bad > 0 {
		rate = float64(ok) / float64(ok+bad)
	}
	return map[string]float64{
		"sqs.sink.messages_sent_total":   float64(ok),
		"sqs.sink.bytes_sent_total":      float64(s.bytes.Load()),
		"sqs.sink.batches_sent_total":    float64(s.batches.Load()),
		"sqs.sink.success_rate":          rate,
		"sqs.sink.messages_failed_total": float64(bad),
	}
}

// Check calls GetQueueAttributes.
func (s *Sink) Check(ctx context.Context) error { return sqstopic.CheckQueue(ctx, s.client, s.q) }

// Write sends the batch in SendMessageBatch requests of at most batch_size
// messages and 256 KiB. Events that cannot be encoded, are too large or
// that SQS rejects are reported in a *connector.WriteError by their index.
// On a FIFO queue the first failed request fails every later event too, so
// that a retry keeps the order.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	failed := map[int]error{}
	var ready []sqstopic.Entry
	for i, ev := range batch {
		en, err := s.entry(i, ev)
		if errors.Is(err, events.ErrSkipped) {
			continue // left out by the encoding: done, nothing to send
		}
		if err != nil {
			failed[i] = err
			continue
		}
		ready = append(ready, en)
	}
	requests, err := sqstopic.SendEntries(ctx, s.client, s.q, ready, s.cfg.BatchSize, failed)
	s.batches.Add(uint64(requests))
	if err != nil {
		s.failedN.Add(uint64(len(batch)))
		return err
	}
	var sent, bytes uint64
	for _, en := range ready {
		if _, bad := failed[en.Index]; !bad {
			sent++
			bytes += uint64(en.Size)
		}
	}
	s.sent.Add(sent)
	s.bytes.Add(bytes)
	s.failedN.Add(uint64(len(failed)))
	if len(failed) > 0 {
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

// entry encodes one event; its Id is its index in the batch.
func (s *Sink) entry(i int, ev *events.Event) (sqstopic.Entry, error) {
	body, err := s.codec.Append(nil, ev)
	if err != nil {
		return sqstopic.Entry{}, fmt.Errorf("sqs: encode: %w", err)
	}
	en := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(body))}
	size := len(body)
	if s.cfg.DelaySeconds > 0 {
		en.DelaySeconds = int32(s.cfg.DelaySeconds)
	}
	if s.cfg.IncludeMetadata {
		attrs := map[string]types.MessageAttributeValue{}
		add := func(k, v string) {
			if v != "" {
				attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
				size += len(k) + len("String") + len(v)
			}
		}
		add("event_type", string(ev.Type.Wire()))
		add("stream", ev.Stream)
		if ev.Namespace != nil {
			add("namespace", *ev.Namespace)
		}
		if !ev.Timestamp.IsZero() {
			add("timestamp", string(events.AppendTimestamp(nil, ev.Timestamp)))
		}
		add("position", ev.Metadata.Position)
		add("transaction_id", ev.Metadata.TransactionID)
		add("codec", s.codec.Name())
		en.MessageAttributes = attrs
	}
	if size > sqstopic.MaxMessageBytes {
		return sqstopic.Entry{}, fmt.Errorf("sqs: message of %d bytes (body and attributes) exceeds the SQS limit of %d bytes (256 KiB)", size, sqstopic.MaxMessageBytes)
	}
	group := s.cfg.MessageGroupID
	if f := s.cfg.MessageGroupIDField; f != "" {
		v, ok, err := fieldString(ev, f)
		switch {
		case err != nil:
			return sqstopic.Entry{}, fmt.Errorf("sqs: message_group_id_field: %w", err)
		case ok:
			group = v
		case group == "" && s.q.FIFO:
			return sqstopic.Entry{}, fmt.Errorf("sqs: the event has no field %q for the MessageGroupId (and no message_group_id is set)", f)
		}
	}
	if len(group) > 128 {
		return sqstopic.Entry{}, fmt.Errorf("sqs: MessageGroupId %.20q... is longer than 128 characters", group)
	}
	if group != "" {
		en.MessageGroupId = aws.String(group)
	}
	if f := s.cfg.DedupIDField; f != "" {
		v, ok, err := fieldString(ev, f)
		if err != nil {
			return sqstopic.Entry{}, fmt.Errorf("sqs: deduplication_id_field: %w", err)
		}
		if len(v) > 128 {
			return sqstopic.Entry{}, fmt.Errorf("sqs: MessageDeduplicationId %.20q... is longer than 128 characters", v)
		}
		if ok && v != "" {
			en.MessageDeduplicationId = aws.String(v)
		}
	}
	return sqstopic.Entry{Index: i, E: en, Size: size}, nil
}

// fieldString reads a top-level field of the event's row as a string:
// strings as they are, other values as JSON.
func fieldString(ev *events.Event, key string) (string, bool, error) {
	row, err := ev.Row()
	if err != nil {
		return "", false, err
	}
	v, ok := row[key]
	if !ok || v == nil {
		return "", false, nil
	}
	if s, isStr := v.(string); isStr {
		return s, true, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// ConcurrentWrites: a Write's entries are its own and the SQS client and
// counters are safe for concurrent use. On a FIFO queue SQS orders by
// message group; concurrent batches come from concurrent requests, which
// no trigger orders against each other.
func (*Sink) ConcurrentWrites() bool { return true }
