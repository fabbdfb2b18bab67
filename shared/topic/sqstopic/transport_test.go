package sqstopic

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic/sqsfake"
)

// testAuth are the static keys the fake accepts.
var testAuth = &Auth{AccessKeyID: "AKIDFAKE", SecretAccessKey: "fake-secret"}

func newTestTransport(t *testing.T, f *sqsfake.Server, c config.BrokerSQS) *Transport {
	t.Helper()
	c.Endpoint, c.Region = f.HTTP.URL, "us-east-1"
	tr, err := NewTransport(context.Background(), c, testAuth)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// receiveAll drains a queue through the SDK, attributes included.
func receiveAll(t *testing.T, tr *Transport, topicName string) []topic.Message {
	t.Helper()
	q, err := tr.resolve(context.Background(), topicName)
	if err != nil {
		t.Fatal(err)
	}
	var out []topic.Message
	for {
		r, err := tr.client.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(q.URL), MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 100,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			v := []byte(aws.ToString(m.Body))
			if a, ok := m.MessageAttributes[events.SQSAttrEncoding]; ok && aws.ToString(a.StringValue) == "base64" {
				if v, err = base64.StdEncoding.DecodeString(string(v)); err != nil {
					t.Fatal(err)
				}
			}
			msg := topic.Message{Value: v}
			if a, ok := m.MessageAttributes[events.SQSAttrKey]; ok {
				msg.Key = []byte(aws.ToString(a.StringValue))
			}
			if a, ok := m.MessageAttributes["trace"]; ok {
				msg.Headers = []topic.Header{{Key: "trace", Value: []byte(aws.ToString(a.StringValue))}}
			}
			out = append(out, msg)
		}
	}
}

func TestTransportProducesWhatTheTriggerReads(t *testing.T) {
	f := sqsfake.New(t)
	tr := newTestTransport(t, f, config.BrokerSQS{QueuePrefix: "shop-"})
	ctx := context.Background()
	if got := tr.QueueName("orders.dlq"); got != "shop-orders-dlq" {
		t.Fatalf("queue name %q", got)
	}
	if _, err := tr.Describe(ctx, "orders"); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("describe before create: %v", err)
	}
	if err := tr.Create(ctx, "orders", topic.Spec{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if s, err := tr.Describe(ctx, "orders"); err != nil || s.Partitions != 1 {
		t.Fatalf("describe: %+v %v", s, err)
	}
	msgs := []topic.Message{
		{Key: []byte(`{"id":1}`), Value: []byte(`{"event_type":"insert"}`), Headers: []topic.Header{{Key: "trace", Value: []byte("abc")}}},
		{Value: []byte{0xff, 0x00, 0x01}}, // not text: travels base64
	}
	for i := range 23 {
		msgs = append(msgs, topic.Message{Key: []byte{'k', byte('a' + i)}, Value: []byte(strings.Repeat("x", i+1))})
	}
	if err := tr.Produce(ctx, "orders", msgs); err != nil {
		t.Fatal(err)
	}
	got := receiveAll(t, tr, "orders")
	if len(got) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if !bytes.Equal(got[i].Value, msgs[i].Value) || !bytes.Equal(got[i].Key, msgs[i].Key) {
			t.Errorf("message %d: %q/%q, want %q/%q", i, got[i].Key, got[i].Value, msgs[i].Key, msgs[i].Value)
		}
	}
	if len(got[0].Headers) != 1 || string(got[0].Headers[0].Value) != "abc" {
		t.Errorf("headers %+v", got[0].Headers)
	}
	if _, err := tr.Describe(ctx, "payments"); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := tr.Produce(ctx, "payments", msgs[:1]); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("produce to unknown topic: %v", err)
	}
}

func TestTransportRetriesRejectedEntries(t *testing.T) {
	f := sqsfake.New(t)
	tr := newTestTransport(t, f, config.BrokerSQS{})
	ctx := context.Background()
	if err := tr.Create(ctx, "t", topic.Spec{}); err != nil {
		t.Fatal(err)
	}
	rejected := map[string]bool{}
	f.FailEntry = func(body string) bool {
		if body == "m3" && !rejected[body] {
			rejected[body] = true // once: the resend goes through
			return true
		}
		return body == "poison"
	}
	var msgs []topic.Message
	for _, v := range []string{"m1", "m2", "m3", "m4"} {
		msgs = append(msgs, topic.Message{Value: []byte(v)})
	}
	if err := tr.Produce(ctx, "t", msgs); err != nil {
		t.Fatal(err)
	}
	if d := f.Depth("t"); d != 4 {
		t.Fatalf("depth %d, want 4 (m3 resent once)", d)
	}
	err := tr.Produce(ctx, "t", []topic.Message{{Value: []byte("ok")}, {Value: []byte("poison")}})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 message(s) not stored") {
		t.Fatalf("poison: %v", err)
	}
}

func TestTransportFIFOGroupsAndDedup(t *testing.T) {
	f := sqsfake.New(t)
	tr := newTestTransport(t, f, config.BrokerSQS{FIFO: true})
	ctx := context.Background()
	if err := tr.Create(ctx, "orders", topic.Spec{}); err != nil {
		t.Fatal(err)
	}
	msgs := []topic.Message{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}, {Value: []byte("3")}}
	for range 2 { // a crashed source publishing its batch again
		if err := tr.Produce(ctx, "orders", msgs); err != nil {
			t.Fatal(err)
		}
	}
	if d := f.Depth("orders.fifo"); d != 3 {
		t.Fatalf("depth %d, want 3: the second publish is deduplicated", d)
	}
}

// The reference gives sqs-sink's region the default us-east-1: a queue
// URL that names no region (LocalStack's, say) and no region key give a
// client in us-east-1; an AWS queue URL gives its own region, the only
// one its queue can be reached in.
func TestClientRegionDefault(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"http://localhost:4566/000000000000/q", "us-east-1"},
		{"https://sqs.eu-west-1.amazonaws.com/123456789/my-queue", "eu-west-1"},
	} {
		q, err := ParseQueueURL(c.url)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := NewClient(context.Background(), q, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := cl.Options().Region; got != c.want {
			t.Errorf("%s: region %q, want %q", c.url, got, c.want)
		}
	}
}
