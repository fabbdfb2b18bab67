package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Adapter is the one piece between a trigger and the Handler, shared by
// every host: it turns a trigger envelope into records (stable ids, topic,
// attempt, decoded payload or a per-record decode error) and the handler's
// Result into the trigger's answer (a partial batch response, or an HTTP
// status for push deliveries). The Lambda host, the Cloud Run host, the
// local emulator and `rivven-connect invoke` all go through it, so the
// envelope code that runs in the cloud is the code tested locally.
//
// The envelope types live in events (no engine types) and this file holds
// the little that needs the Handler, so that the emulator in this package
// can use the adapter without an import cycle.
type Adapter struct {
	Handler *Handler
	// Payload is how message bodies are decoded: one of
	// events.PayloadFormats; "" means auto.
	Payload string
	// Topics are the pipeline topics behind the trigger. A delivery whose
	// source name (a queue, stream or subscription) is none of them is
	// attributed to the only topic when there is exactly one, so that its
	// dead letters go to the configured <topic>.dlq.
	Topics []string
	// Ordered makes every batch keep its order as one ordering group
	// where the trigger names none (a standard SQS queue): the local
	// emulator delivers one partition per batch and redelivers from the
	// first failure, which promises the partition's order.
	Ordered bool
}

// Outcome is what one delivered batch came to.
type Outcome struct {
	Result Result
	// Failed are the indices of the deliveries to redeliver, ascending.
	Failed []int
	// Response is the trigger's partial batch response (SQS, Kinesis,
	// Kafka); nil for push triggers.
	Response any
}

// Deliver runs one batch through the handler. An error means nothing was
// processed (the sink is Failed or its health check fails): the host
// fails the invocation so the trigger retries the whole batch.
func (a *Adapter) Deliver(ctx context.Context, b *events.Batch) (Outcome, error) {
	recs := make([]Record, len(b.Deliveries))
	for i := range b.Deliveries {
		d := &b.Deliveries[i]
		d.Topic = a.topic(d.Topic)
		r := &recs[i]
		*r = Record{ID: d.ID, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Attempt: d.Attempt, Raw: d.Value, Group: a.group(b, d),
			HasOffset: b.Kind == events.TriggerKafka}
		r.Event, r.DecodeErr = events.DecodeDelivery(a.Payload, d)
		adoptTraceContext(r.Event, d)
	}
	res, err := a.Handler.Handle(ctx, recs)
	out := Outcome{Result: res, Failed: res.FailedIdx}
	if err != nil {
		return out, err
	}
	out.Response = b.Response(res.FailedIdx)
	return out, nil
}

// group is a delivery's ordering scope: what the trigger promises to keep
// in order (SQS FIFO message groups, Kafka partitions, Kinesis shards,
// Pub/Sub ordering keys). A standard SQS queue promises no order, even
// for messages that carry a MessageGroupId (fair queues).
func (a *Adapter) group(b *events.Batch, d *events.Delivery) string {
	g := d.Group
	if b.Kind == events.TriggerSQS && !b.FIFO {
		g = ""
	}
	if g == "" && a.Ordered {
		g = events.KafkaTopicPartition(d.Topic, d.Partition)
	}
	return g
}

func (a *Adapter) topic(name string) string {
	if len(a.Topics) == 1 && !slices.Contains(a.Topics, name) {
		return a.Topics[0]
	}
	return name
}

// InvokeLambda answers one Lambda invocation of a batch trigger (SQS,
// Kinesis, MSK or self-managed Kafka, detected from the event): the event
// JSON in, the partial batch response JSON out. An error fails the
// invocation, and the trigger retries the whole batch.
func (a *Adapter) InvokeLambda(ctx context.Context, event []byte) ([]byte, error) {
	b, err := events.ParseLambdaEvent(event)
	if err != nil {
		return nil, err
	}
	out, err := a.Deliver(ctx, b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out.Response)
}

// Push answers one push delivery with the HTTP status the push service
// reads: 204 acknowledges (the record was written, or dead-lettered);
// 500 asks for redelivery of a record that failed; 503 when nothing could
// be processed (the sink is Failed or unhealthy); 400 for a body that is
// not a push envelope at all, which redelivery cannot fix either but which
// must not be acknowledged unread.
func (a *Adapter) Push(ctx context.Context, b *events.Batch) (int, Outcome, error) {
	out, err := a.Deliver(ctx, b)
	switch {
	case err != nil:
		return http.StatusServiceUnavailable, out, err
	case len(out.Failed) > 0:
		return http.StatusInternalServerError, out, nil
	}
	return http.StatusNoContent, out, nil
}

// PushBody answers a Pub/Sub push request body.
func (a *Adapter) PushBody(ctx context.Context, body []byte) (int, Outcome, error) {
	b, err := events.ParsePubSubPush(body)
	if err != nil {
		return http.StatusBadRequest, Outcome{}, err
	}
	return a.Push(ctx, b)
}

// NewTransformHandler builds the handler of a transform function: the one
// step of the pipeline's transforms it hosts (with its predicate), whose
// output goes to out — a Publisher for the next topic. It is built by
// NewSinkHandler, as a sink whose connector is out, so that a transform
// function gets exactly the failure policy, dead-lettering and
// reliability wiring of a sink function and reports per-record failures
// the same way.
func NewTransformHandler(ctx context.Context, p *config.Pipeline, step *config.Transform, topics []string, dlq string, f Factory, out Sink, d Deps) (*Handler, error) {
	q := *p
	q.Sinks = map[string]*config.Sink{step.Path: {
		Connector: publisherConnector, Topics: topics, Transforms: config.Transforms{step},
		DeadLetterTopic: dlq, Enabled: true, StartOffset: "earliest",
	}}
	h, err := NewSinkHandler(ctx, &q, step.Path, publishFactory{f, out}, d)
	if err != nil {
		return nil, err
	}
	h.Status.Connector, h.Status.Kind = step.Kind(), "transform"
	return h, nil
}

// publisherConnector names the stand-in sink of a transform function.
const publisherConnector = "rivven-publish"

// publishFactory builds transforms with f and answers every sink request
// with the transform function's publisher.
type publishFactory struct {
	Factory
	out Sink
}

func (pf publishFactory) NewSink(_ context.Context, connector string, cfg *yaml.Node, path string) (Sink, error) {
	if connector != publisherConnector {
		return nil, fmt.Errorf("%s: a transform function has no sink %q", path, connector)
	}
	return pf.out, nil
}

// Publisher is the sink of a transform function: it publishes each event,
// as Rivven JSON keyed by the event key, to Topic — or to the topic a
// routing transform named in the event's Route — through the pipeline's
// broker. An event that cannot be encoded fails alone; a failed publish
// fails the batch (it is retried as a whole, and the ledger drops what was
// already published when it comes back).
type Publisher struct {
	Producer topic.Producer
	Topic    string
}

// Write publishes the batch, one Produce call per destination topic.
func (p *Publisher) Write(ctx context.Context, batch []*events.Event) error {
	byTopic := map[string][]topic.Message{}
	var order []string
	var failed map[int]error
	for i, e := range batch {
		b, err := events.Marshal(e)
		if err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = fmt.Errorf("publish: %w", err)
			continue
		}
		t := p.Topic
		if e.Route != "" {
			t = e.Route
		}
		if _, ok := byTopic[t]; !ok {
			order = append(order, t)
		}
		byTopic[t] = append(byTopic[t], topic.Message{Key: e.Key, Value: b, Time: e.Timestamp})
	}
	for _, t := range order {
		if err := p.Producer.Produce(ctx, t, byTopic[t]); err != nil {
			return fmt.Errorf("publish to %s: %w", t, err)
		}
	}
	if failed != nil {
		return &WriteError{Failed: failed}
	}
	return nil
}
