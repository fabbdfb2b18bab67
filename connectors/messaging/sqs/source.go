package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	catalog.RegisterSource[SourceConfig](catalog.Meta{
		Name:        "sqs-source",
		Category:    catalog.Messaging,
		Subcategory: "Queues",
		Description: "Long-polls an Amazon SQS queue (standard or FIFO) and emits its messages as events; a message is deleted only after the batch holding it was durably published.",
		Tags:        []string{"sqs", "aws", "amazon", "queue", "fifo"},
	}, NewSource)
}

// SourceConfig is the sqs-source's config block.
type SourceConfig struct {
	QueueURL          string `yaml:"queue_url" required:"true" doc:"Full SQS queue URL, like https://sqs.us-east-1.amazonaws.com/123456789012/my-queue."`
	Region            string `yaml:"region" doc:"AWS region; when empty the region in queue_url's host, else us-east-1."`
	EndpointURL       string `yaml:"endpoint_url" doc:"Endpoint to call instead of AWS's (LocalStack, tests)."`
	MaxMessages       int    `yaml:"max_messages" default:"10" min:"1" max:"10" doc:"Messages per ReceiveMessage call (one emitted batch)."`
	WaitTimeSeconds   int    `yaml:"wait_time_seconds" default:"20" min:"0" max:"20" doc:"Long-polling wait of ReceiveMessage; 0 is short polling."`
	VisibilityTimeout int    `yaml:"visibility_timeout" default:"0" min:"0" max:"43200" doc:"Seconds a received message stays hidden before it is delivered again unless deleted; 0 keeps the queue's setting. Should exceed the time to publish a batch."`
	Codec             string `yaml:"codec" default:"auto" enum:"auto,rivven,debezium,cloudevents,raw" doc:"How message bodies decode: auto (event_type → Rivven JSON, specversion → CloudEvents, a Debezium envelope → Debezium, other JSON → a record event), rivven, debezium, cloudevents, or raw (any body as a record event)."`
	Auth              *Auth  `yaml:"auth" doc:"Credentials; without it the AWS default credential chain."`
}

// Validate checks what the tags cannot express.
func (c *SourceConfig) Validate() []spec.Problem {
	_, ps := checkCommon(c.QueueURL, c.Region, c.EndpointURL, c.Auth)
	if c.MaxMessages < 1 || c.MaxMessages > 10 {
		ps = append(ps, spec.Problem{Path: "max_messages", Message: "must be between 1 and 10"})
	}
	if c.WaitTimeSeconds < 0 || c.WaitTimeSeconds > 20 {
		ps = append(ps, spec.Problem{Path: "wait_time_seconds", Message: "must be between 0 and 20"})
	}
	if c.VisibilityTimeout < 0 || c.VisibilityTimeout > 43200 {
		ps = append(ps, spec.Problem{Path: "visibility_timeout", Message: "must be between 0 and 43200 (12 hours)"})
	}
	if err := events.CheckPayloadFormat(c.Codec); err != nil {
		ps = append(ps, spec.Problem{Path: "codec", Message: err.Error()})
	}
	return ps
}

// Source reads one queue.
type Source struct {
	cfg    SourceConfig
	q      sqstopic.Queue
	client *awssqs.Client
	// decodeFailed is a test hook, called with each message that did not
	// decode.
	decodeFailed func(id string, err error)
}

// NewSource builds an sqs-source.
func NewSource(ctx context.Context, cfg *SourceConfig) (connector.Source, error) {
	q, _ := sqstopic.ParseQueueURL(cfg.QueueURL)
	client, err := sqstopic.NewClient(ctx, q, cfg.Region, cfg.EndpointURL, cfg.Auth)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	return &Source{cfg: *cfg, q: q, client: client}, nil
}

// Check calls GetQueueAttributes.
func (s *Source) Check(ctx context.Context) error { return sqstopic.CheckQueue(ctx, s.client, s.q) }

// Read receives and emits batches until ctx is done (then it returns nil)
// or a call fails. Messages are deleted only after Emit returned nil; when
// Emit fails they stay, come back after the visibility timeout, and Read
// returns the error. SQS has no replayable positions: resume is ignored.
// A message that does not decode is left in the queue, so that the queue's
// redrive policy moves it to its dead-letter queue after maxReceiveCount.
func (s *Source) Read(ctx context.Context, _ []byte, emit connector.Emitter) error {
	in := &awssqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(s.q.URL),
		MaxNumberOfMessages:         int32(s.cfg.MaxMessages),
		WaitTimeSeconds:             int32(s.cfg.WaitTimeSeconds),
		VisibilityTimeout:           int32(s.cfg.VisibilityTimeout),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	}
	batch := make([]*events.Event, 0, s.cfg.MaxMessages)
	var done []types.DeleteMessageBatchRequestEntry
	for ctx.Err() == nil {
		out, err := s.client.ReceiveMessage(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sqs: ReceiveMessage %s: %w", s.q.URL, err)
		}
		batch, done = batch[:0], done[:0]
		for _, m := range out.Messages {
			e, err := s.event(m)
			if err != nil {
				if s.decodeFailed != nil {
					s.decodeFailed(aws.ToString(m.MessageId), err)
				}
				continue
			}
			batch = append(batch, e)
			done = append(done, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(len(done))), ReceiptHandle: m.ReceiptHandle})
		}
		if len(batch) == 0 {
			continue
		}
		if err := emit.Emit(ctx, batch); err != nil {
			clear(batch)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sqs: emit: %w", err)
		}
		clear(batch)
		// The batch is durable: delete it, even if ctx ends meanwhile.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		res, err := s.client.DeleteMessageBatch(dctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.q.URL), Entries: done})
		cancel()
		if err != nil {
			return fmt.Errorf("sqs: DeleteMessageBatch (the %d published messages will be delivered again): %w", len(done), err)
		}
		if len(res.Failed) > 0 {
			f := res.Failed[0]
			return fmt.Errorf("sqs: DeleteMessageBatch: %d of %d published messages not deleted (they will be delivered again), e.g. %s: %s",
				len(res.Failed), len(done), aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return nil
}

// event decodes one message and adds sqs_message_id and
// sqs_receive_count (and, on FIFO queues, sqs_message_group_id and
// sqs_sequence_number) to its metadata.
func (s *Source) event(m types.Message) (*events.Event, error) {
	attrs := m.Attributes
	d := events.Delivery{
		ID:      aws.ToString(m.MessageId),
		Topic:   s.q.Name,
		Value:   []byte(aws.ToString(m.Body)),
		Attempt: atoi(attrs["ApproximateReceiveCount"]),
		Group:   attrs["MessageGroupId"],
	}
	if ms := atoi(attrs["SentTimestamp"]); ms > 0 {
		d.Time = time.UnixMilli(int64(ms)).UTC()
	}
	if len(m.MessageAttributes) > 0 {
		d.Attributes = map[string]string{}
		for k, v := range m.MessageAttributes {
			if v.StringValue != nil {
				d.Attributes[k] = *v.StringValue
			}
		}
	}
	e, err := events.DecodeDelivery(s.cfg.Codec, &d)
	if err != nil {
		return nil, err
	}
	if e.Metadata.Position == "" {
		e.Metadata.Position = d.ID
	}
	e.Metadata.Set("sqs_message_id", jsonOf(d.ID))
	e.Metadata.Set("sqs_receive_count", jsonOf(d.Attempt))
	if d.Group != "" {
		e.Metadata.Set("sqs_message_group_id", jsonOf(d.Group))
	}
	if seq := attrs["SequenceNumber"]; seq != "" {
		e.Metadata.Set("sqs_sequence_number", jsonOf(seq))
	}
	return e, nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

func jsonOf(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
