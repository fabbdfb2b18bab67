package sqstopic

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/transport"
)

func init() {
	transport.Register("sqs", func(ctx context.Context, b *config.Broker, _ config.TopicSettings) (transport.Transport, error) {
		var c config.BrokerSQS
		if b.SQS != nil {
			c = *b.SQS
		}
		return NewTransport(ctx, c, nil)
	})
}

// Transport carries a deployed pipeline's topics on SQS queues
// (broker.transport: sqs): the topic layer between a source service and
// the sink and transform functions an SQS event source mapping triggers.
//
// Each topic is one queue, named queue_prefix + topic with characters SQS
// does not allow replaced by '-' (plus .fifo with fifo: true). Messages
// carry the event key in the rivven-key attribute and a body that is not
// valid UTF-8 base64-encoded with rivven-encoding: base64 — what the SQS
// trigger adapter reads back. On FIFO queues the key is the message group,
// so order per key is kept, and the deduplication id is a hash of key and
// body, so a batch a crashed source publishes again within SQS's five
// minute window is dropped by SQS.
type Transport struct {
	client *awssqs.Client
	cfg    config.BrokerSQS

	mu     sync.Mutex
	queues map[string]Queue // topic → resolved queue
}

// NewTransport connects to SQS; auth nil means the default credential
// chain (an IAM role where deployed).
func NewTransport(ctx context.Context, c config.BrokerSQS, auth *Auth) (*Transport, error) {
	client, err := NewClient(ctx, Queue{}, c.Region, c.Endpoint, auth)
	if err != nil {
		return nil, err
	}
	return &Transport{client: client, cfg: c, queues: map[string]Queue{}}, nil
}

// QueueName is the queue that carries topic.
func (t *Transport) QueueName(topicName string) string {
	name := []byte(t.cfg.QueuePrefix + topicName)
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			name[i] = '-'
		}
	}
	if t.cfg.FIFO {
		return string(name) + ".fifo"
	}
	return string(name)
}

func (t *Transport) resolve(ctx context.Context, topicName string) (Queue, error) {
	t.mu.Lock()
	q, ok := t.queues[topicName]
	t.mu.Unlock()
	if ok {
		return q, nil
	}
	name := t.QueueName(topicName)
	in := &awssqs.GetQueueUrlInput{QueueName: aws.String(name)}
	if t.cfg.AccountID != "" {
		in.QueueOwnerAWSAccountId = aws.String(t.cfg.AccountID)
	}
	out, err := t.client.GetQueueUrl(ctx, in)
	if err != nil {
		var missing *types.QueueDoesNotExist
		if errors.As(err, &missing) {
			return Queue{}, fmt.Errorf("sqs: queue %s (topic %s): %w", name, topicName, topic.ErrUnknownTopic)
		}
		return Queue{}, fmt.Errorf("sqs: GetQueueUrl %s: %w", name, err)
	}
	q = Queue{URL: aws.ToString(out.QueueUrl), Name: name, FIFO: t.cfg.FIFO}
	t.mu.Lock()
	t.queues[topicName] = q
	t.mu.Unlock()
	return q, nil
}

// Describe reports a queue as a topic of one partition: SQS has no
// partitions, and FIFO message groups already keep order per key.
func (t *Transport) Describe(ctx context.Context, topicName string) (topic.Spec, error) {
	if _, err := t.resolve(ctx, topicName); err != nil {
		return topic.Spec{}, err
	}
	return topic.Spec{Partitions: 1, ReplicationFactor: 1}, nil
}

// Create creates the topic's queue (an existing one with the same
// attributes is fine: CreateQueue is idempotent then). Partitions and
// replication do not apply to SQS.
func (t *Transport) Create(ctx context.Context, topicName string, _ topic.Spec) error {
	attrs := map[string]string{}
	if t.cfg.FIFO {
		attrs["FifoQueue"] = "true"
	}
	_, err := t.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(t.QueueName(topicName)), Attributes: attrs})
	if err != nil {
		return fmt.Errorf("sqs: CreateQueue %s: %w", t.QueueName(topicName), err)
	}
	return nil
}

// transportRetries is how often Produce resends entries SQS rejected
// before it gives up on the batch.
const transportRetries = 4

// Produce sends msgs to the topic's queue and returns once SQS stored
// every one. Entries SQS rejects are sent again (with backoff); if some
// still fail the error says how many, and the caller publishes the batch
// again (on FIFO queues the deduplication id makes that safe).
func (t *Transport) Produce(ctx context.Context, topicName string, msgs []topic.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	q, err := t.resolve(ctx, topicName)
	if err != nil {
		return err
	}
	ready := make([]Entry, 0, len(msgs))
	for i := range msgs {
		en, err := t.entry(i, &msgs[i])
		if err != nil {
			return fmt.Errorf("sqs: topic %s: message %d: %w", topicName, i, err)
		}
		ready = append(ready, en)
	}
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		failed := map[int]error{}
		if _, err := SendEntries(ctx, t.client, q, ready, 10, failed); err != nil {
			return err
		}
		if len(failed) == 0 {
			return nil
		}
		var first error
		retry := ready[:0:0]
		for _, en := range ready {
			if e, ok := failed[en.Index]; ok {
				retry = append(retry, en)
				if first == nil {
					first = e
				}
			}
		}
		if attempt == transportRetries {
			return fmt.Errorf("sqs: topic %s: %d of %d message(s) not stored after %d attempts, e.g.: %w", topicName, len(failed), len(msgs), attempt+1, first)
		}
		ready = retry
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// entry encodes one message; its Id is its index.
func (t *Transport) entry(i int, m *topic.Message) (Entry, error) {
	body := string(m.Value)
	attrs := map[string]types.MessageAttributeValue{}
	size := 0
	add := func(k, v string) {
		attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		size += len(k) + len("String") + len(v)
	}
	if !Text(m.Value) {
		body = base64.StdEncoding.EncodeToString(m.Value)
		add(events.SQSAttrEncoding, "base64")
	}
	size += len(body)
	if len(m.Key) > 0 {
		if !utf8.Valid(m.Key) {
			return Entry{}, errors.New("the key is not valid UTF-8, which an SQS attribute must be")
		}
		add(events.SQSAttrKey, string(m.Key))
	}
	for _, h := range m.Headers {
		add(h.Key, string(h.Value))
	}
	if len(attrs) > 10 {
		return Entry{}, fmt.Errorf("%d message attributes (key, encoding and headers); SQS allows 10", len(attrs))
	}
	if size > MaxMessageBytes {
		return Entry{}, fmt.Errorf("%d bytes (body and attributes) exceed the SQS limit of %d bytes (256 KiB)", size, MaxMessageBytes)
	}
	e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(body)}
	if len(attrs) > 0 {
		e.MessageAttributes = attrs
	}
	if t.cfg.FIFO {
		group := string(m.Key)
		if group == "" {
			group = "rivven" // keyless events share one group: total order
		}
		if len(group) > 128 {
			sum := sha256.Sum256(m.Key)
			group = hex.EncodeToString(sum[:])
		}
		h := sha256.New()
		h.Write(m.Key)
		h.Write([]byte{0})
		h.Write(m.Value)
		e.MessageGroupId = aws.String(group)
		e.MessageDeduplicationId = aws.String(hex.EncodeToString(h.Sum(nil)))
	}
	return Entry{Index: i, E: e, Size: size}, nil
}

// Text reports whether b can be an SQS body as is: valid UTF-8 of the
// characters SQS accepts (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
// #x10000-#x10FFFF).
func Text(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return strings.IndexFunc(string(b), func(r rune) bool {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
			return false
		case r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
			return false
		}
		return true
	}) < 0
}

// Close releases nothing: the SDK client holds no connections that need
// closing.
func (t *Transport) Close() error { return nil }
