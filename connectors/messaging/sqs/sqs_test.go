package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic/sqsfake"
)

var testAuth = &Auth{AccessKeyID: "AKIDFAKE", SecretAccessKey: "fake-secret"}

func TestRegistered(t *testing.T) {
	for _, c := range []struct {
		kind catalog.Kind
		name string
	}{{catalog.Sink, "sqs-sink"}, {catalog.Source, "sqs-source"}} {
		e, ok := catalog.Lookup(c.kind, c.name)
		if !ok {
			t.Fatalf("%s is not registered", c.name)
		}
		if e.Category != catalog.Messaging || e.Subcategory != "Queues" {
			t.Errorf("%s: %s/%s", c.name, e.Category, e.Subcategory)
		}
	}
}

const sinkExample = `queue_url: https://sqs.us-east-1.amazonaws.com/123456789/my-queue
region: us-east-1
batch_size: 10
batch_timeout_ms: 1000
include_metadata: true
auth:
  access_key_id: AKID
  secret_access_key: hunter2
`

const fifoExample = `queue_url: https://sqs.us-east-1.amazonaws.com/123456789/orders.fifo
region: us-east-1
message_group_id_field: customer_id
deduplication_id_field: order_id
`

func decodeSink(src string) (*SinkConfig, []spec.Problem) {
	return spec.DecodeString[SinkConfig](src, "sinks.sqs.config")
}

func decodeSource(src string) (*SourceConfig, []spec.Problem) {
	return spec.DecodeString[SourceConfig](src, "sources.sqs.config")
}

func TestConfig(t *testing.T) {
	cfg, ps := decodeSink(sinkExample)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.BatchSize != 10 || !cfg.IncludeMetadata || cfg.Codec != "rivven" || cfg.Auth.SecretAccessKey != "hunter2" || cfg.DelaySeconds != 0 {
		t.Errorf("decoded %+v", cfg)
	}
	if _, ps := decodeSink(fifoExample); len(ps) > 0 {
		t.Fatal(ps)
	}
	src, ps := decodeSource("queue_url: https://sqs.eu-west-1.amazonaws.com/1/q\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if src.MaxMessages != 10 || src.WaitTimeSeconds != 20 || src.VisibilityTimeout != 0 || src.Codec != "auto" {
		t.Errorf("source defaults %+v", src)
	}
	if q, _ := sqstopic.ParseQueueURL(src.QueueURL); q.Region != "eu-west-1" || q.Name != "q" || q.FIFO {
		t.Errorf("queue %+v", q)
	}

	const p = "sinks.sqs.config."
	const u = "queue_url: https://sqs.us-east-1.amazonaws.com/1/q\n"
	const uf = "queue_url: https://sqs.us-east-1.amazonaws.com/1/q.fifo\n"
	for _, tc := range []struct{ yaml, path, msg string }{
		{"region: us-east-1\n", p + "queue_url", "required"},
		{"queue_url: sqs/q\n", p + "queue_url", "not a queue URL"},
		{"queue_url: https://sqs.us-east-1.amazonaws.com/q\n", p + "queue_url", "/<account id>/<queue name>"},
		{u + "region: eu-west-1\n", p + "region", "differs"},
		{u + "batch_size: 11\n", p + "batch_size", "range"},
		{u + "batch_size: 0\n", p + "batch_size", "range"},
		{u + "delay_seconds: 901\n", p + "delay_seconds", "range"},
		{u + "codec: avro\n", p + "codec", "cloudevents"},
		{u + "deduplication_id_field: id\n", p + "deduplication_id_field", "FIFO"},
		{uf, p + "message_group_id", "FIFO queue needs"},
		{uf + "message_group_id: g\ndelay_seconds: 5\n", p + "delay_seconds", "FIFO"},
		{u + "auth: {access_key_id: AKID}\n", p + "auth", "go together"},
		{u + "auth: {profile: dev, access_key_id: a, secret_access_key: b}\n", p + "auth.profile", "not both"},
		{u + "endpoint_url: localhost:4566\n", p + "endpoint_url", "http"},
		{u + "queue: x\n", p + "queue", "unknown key"},
	} {
		_, ps := decodeSink(tc.yaml)
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	const sp = "sources.sqs.config."
	for _, tc := range []struct{ yaml, path, msg string }{
		{u + "max_messages: 11\n", sp + "max_messages", "range"},
		{u + "wait_time_seconds: 21\n", sp + "wait_time_seconds", "range"},
		{u + "visibility_timeout: 43201\n", sp + "visibility_timeout", "range"},
		{u + "codec: avro\n", sp + "codec", "raw"},
		{"wait_time_seconds: 1\n", sp + "queue_url", "required"},
	} {
		_, ps := decodeSource(tc.yaml)
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	_, ps = decodeSink(u + "auth: {secret_access_key: [hunter2]}\n")
	if len(ps) == 0 || strings.Contains(spec.Problems(ps).Error(), "hunter2") {
		t.Errorf("problems %v", ps)
	}
}

// createQueue creates a queue in the fake through the SDK.
func createQueue(t *testing.T, f *sqsfake.Server, name string, attrs map[string]string) string {
	t.Helper()
	q, _ := sqstopic.ParseQueueURL(f.URL("bootstrap"))
	c, err := sqstopic.NewClient(context.Background(), q, "us-east-1", f.HTTP.URL, testAuth)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil || aws.ToString(got.QueueUrl) != aws.ToString(out.QueueUrl) {
		t.Fatalf("GetQueueUrl %v %v", got, err)
	}
	return aws.ToString(out.QueueUrl)
}

func newTestSink(t *testing.T, f *sqsfake.Server, cfg SinkConfig) *Sink {
	t.Helper()
	cfg.EndpointURL, cfg.Auth = f.HTTP.URL, testAuth
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 10
	}
	if cfg.Codec == "" {
		cfg.Codec = "rivven"
	}
	s, err := NewSink(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.(*Sink).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

func newTestSource(t *testing.T, f *sqsfake.Server, cfg SourceConfig) *Source {
	t.Helper()
	cfg.EndpointURL, cfg.Auth = f.HTTP.URL, testAuth
	if cfg.MaxMessages == 0 {
		cfg.MaxMessages = 10
	}
	if cfg.Codec == "" {
		cfg.Codec = "auto"
	}
	if cfg.WaitTimeSeconds == 0 {
		cfg.WaitTimeSeconds = 2
	}
	s, err := NewSource(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.(*Source).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s.(*Source)
}

// collect reads until n events arrived (or 10s passed) and returns them.
func collect(t *testing.T, s *Source, n int) []*events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*events.Event
	err := s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b...)
		if len(got) >= n {
			cancel()
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	return got
}

func row(t *testing.T, e *events.Event) map[string]any {
	t.Helper()
	r, err := e.Row()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func meta(e *events.Event, k string) string {
	v, _ := e.Metadata.Get(k)
	return string(v)
}

func testEvents() []*events.Event {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ns := "public"
	mk := func(typ events.Type, data string, key string) *events.Event {
		return &events.Event{Type: typ, Stream: "orders", Namespace: &ns, Timestamp: ts, Data: events.RawPayload([]byte(data)), Key: json.RawMessage(key),
			Source: &events.SourceInfo{Connector: "postgres", Database: "shop", Schema: "public", Table: "orders"}}
	}
	return []*events.Event{
		mk(events.Insert, `{"id":1,"customer_id":"c1","total":10}`, `{"id":1}`),
		mk(events.Update, `{"before":{"id":1,"customer_id":"c1","total":10},"after":{"id":1,"customer_id":"c1","total":12}}`, `{"id":1}`),
		mk(events.Delete, `{"id":1,"customer_id":"c1","total":12}`, `{"id":1}`),
	}
}

func TestRoundTrip(t *testing.T) {
	f := sqsfake.New(t)
	for _, codec := range events.CodecNames {
		for _, read := range []string{"auto", codec} {
			t.Run(codec+"/"+read, func(t *testing.T) {
				name := "rt-" + codec + "-" + read
				url := createQueue(t, f, name, nil)
				sink := newTestSink(t, f, SinkConfig{QueueURL: url, Codec: codec, IncludeMetadata: true})
				in := testEvents()
				if err := sink.Write(context.Background(), in); err != nil {
					t.Fatal(err)
				}
				src := newTestSource(t, f, SourceConfig{QueueURL: url, Codec: read})
				got := collect(t, src, len(in))
				for i, e := range got {
					w := in[i]
					if e.Type != w.Type || e.Stream != w.Stream {
						t.Errorf("event %d: %s %s, want %s %s", i, e.Type, e.Stream, w.Type, w.Stream)
					}
					if g, want := fmt.Sprint(row(t, e)), fmt.Sprint(row(t, w)); g != want {
						t.Errorf("event %d row %s, want %s", i, g, want)
					}
					if !e.Timestamp.Equal(w.Timestamp) {
						t.Errorf("event %d timestamp %v", i, e.Timestamp)
					}
					if meta(e, "sqs_receive_count") != "1" || !strings.HasPrefix(meta(e, "sqs_message_id"), `"msg-`) {
						t.Errorf("event %d metadata %+v", i, e.Metadata)
					}
				}
				waitDepth(t, f, name, 0)
			})
		}
	}
	// raw: any body becomes a record event.
	url := createQueue(t, f, "raw", nil)
	sink := newTestSink(t, f, SinkConfig{QueueURL: url})
	if err := sink.Write(context.Background(), testEvents()[:1]); err != nil {
		t.Fatal(err)
	}
	got := collect(t, newTestSource(t, f, SourceConfig{QueueURL: url, Codec: "raw"}), 1)
	if got[0].Type != events.Record || got[0].Stream != "raw" || !strings.Contains(fmt.Sprint(row(t, got[0])), "event_type") {
		t.Errorf("raw event %s %s %v", got[0].Type, got[0].Stream, row(t, got[0]))
	}
}

func waitDepth(t *testing.T, f *sqsfake.Server, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.Depth(name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d messages, want %d", name, f.Depth(name), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func order(id int, customer string) *events.Event {
	return events.New(events.Insert, "orders", events.RawPayload(fmt.Appendf(nil, `{"order_id":"o%d","customer_id":%q}`, id, customer)))
}

func TestFIFO(t *testing.T) {
	f := sqsfake.New(t)
	url := createQueue(t, f, "orders.fifo", map[string]string{"FifoQueue": "true"})
	sink := newTestSink(t, f, SinkConfig{QueueURL: url, MessageGroupIDField: "customer_id", DedupIDField: "order_id", BatchSize: 2})
	batch := []*events.Event{order(1, "c1"), order(2, "c2"), order(3, "c1"), order(1, "c1"), order(4, "c2"), order(5, "c1")}
	if err := sink.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	// A later batch with an order already sent: deduplicated.
	if err := sink.Write(context.Background(), []*events.Event{order(3, "c1"), order(6, "c2")}); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, f, "orders.fifo", 6)

	// One message at a time: per group, the order sent.
	src := newTestSource(t, f, SourceConfig{QueueURL: url, MaxMessages: 1, Codec: "rivven"})
	got := collect(t, src, 6)
	perGroup := map[string][]string{}
	for _, e := range got {
		r := row(t, e)
		g := r["customer_id"].(string)
		if meta(e, "sqs_message_group_id") != `"`+g+`"` || meta(e, "sqs_sequence_number") == "" {
			t.Errorf("metadata %+v", e.Metadata)
		}
		perGroup[g] = append(perGroup[g], r["order_id"].(string))
	}
	if fmt.Sprint(perGroup) != "map[c1:[o1 o3 o5] c2:[o2 o4 o6]]" {
		t.Errorf("per group %v", perGroup)
	}
	waitDepth(t, f, "orders.fifo", 0)

	// Static group id with content-based deduplication.
	url = createQueue(t, f, "static.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	sink = newTestSink(t, f, SinkConfig{QueueURL: url, MessageGroupID: "all"})
	e := order(7, "c3")
	if err := sink.Write(context.Background(), []*events.Event{e, e.Clone()}); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, f, "static.fifo", 1)

	// A FIFO event without a group: per-event failure, not sent.
	url = createQueue(t, f, "nogroup.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	sink = newTestSink(t, f, SinkConfig{QueueURL: url, MessageGroupIDField: "customer_id"})
	err := sink.Write(context.Background(), []*events.Event{order(8, "c1"), events.New(events.Insert, "orders", events.RawPayload([]byte(`{"x":1}`)))})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil || !strings.Contains(we.Failed[1].Error(), "customer_id") {
		t.Fatalf("write: %v", err)
	}
}

func TestPerEntryFailure(t *testing.T) {
	f := sqsfake.New(t)
	f.FailEntry = func(body string) bool { return strings.Contains(body, `"poison"`) }
	url := createQueue(t, f, "std", nil)
	sink := newTestSink(t, f, SinkConfig{QueueURL: url, BatchSize: 3})
	batch := make([]*events.Event, 8)
	for i := range batch {
		batch[i] = order(i, "c")
	}
	batch[4] = order(4, "poison")
	err := sink.Write(context.Background(), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[4] == nil || !strings.Contains(we.Failed[4].Error(), "InternalError") {
		t.Fatalf("write: %v", err)
	}
	waitDepth(t, f, "std", 7)
	if f.Calls("SendMessageBatch") != 3 {
		t.Errorf("%d SendMessageBatch calls, want 3", f.Calls("SendMessageBatch"))
	}

	// FIFO: the failure fails every later event, so that a retry keeps order.
	url = createQueue(t, f, "f.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	sink = newTestSink(t, f, SinkConfig{QueueURL: url, BatchSize: 3, MessageGroupID: "g"})
	err = sink.Write(context.Background(), batch)
	// 3 and 5 were in the request with the failure and SQS took them.
	if !errors.As(err, &we) || len(we.Failed) != 3 {
		t.Fatalf("fifo write: %v", err)
	}
	for _, i := range []int{4, 6, 7} {
		if we.Failed[i] == nil {
			t.Errorf("index %d not failed", i)
		}
	}
	if !strings.Contains(we.Failed[4].Error(), "InternalError") || !strings.Contains(we.Failed[6].Error(), "FIFO order") {
		t.Errorf("errors %v / %v", we.Failed[4], we.Failed[6])
	}
	waitDepth(t, f, "f.fifo", 5)
}

func TestOversize(t *testing.T) {
	f := sqsfake.New(t)
	url := createQueue(t, f, "big", nil)
	sink := newTestSink(t, f, SinkConfig{QueueURL: url, IncludeMetadata: true})
	big := events.New(events.Record, "s", events.RawPayload(fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("x", 256*1024))))
	// Three messages of 100 KiB: within the limit each, but not together in one request.
	mid := events.New(events.Record, "s", events.RawPayload(fmt.Appendf(nil, `{"blob":%q}`, strings.Repeat("y", 100*1024))))
	err := sink.Write(context.Background(), []*events.Event{order(1, "c"), big, mid, mid.Clone(), mid.Clone()})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil || !strings.Contains(we.Failed[1].Error(), "256 KiB") {
		t.Fatalf("write: %v", err)
	}
	waitDepth(t, f, "big", 4)
}

func TestDeleteOnlyAfterEmit(t *testing.T) {
	f := sqsfake.New(t)
	url := createQueue(t, f, "q", nil)
	sink := newTestSink(t, f, SinkConfig{QueueURL: url})
	if err := sink.Write(context.Background(), []*events.Event{order(1, "c")}); err != nil {
		t.Fatal(err)
	}
	src := newTestSource(t, f, SourceConfig{QueueURL: url, VisibilityTimeout: 1})
	boom := errors.New("broker down")
	err := src.Read(context.Background(), nil, connector.EmitterFunc(func(context.Context, []*events.Event) error { return boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("read: %v", err)
	}
	if f.Depth("q") != 1 || f.Calls("DeleteMessageBatch") != 0 {
		t.Fatalf("depth %d, %d deletes", f.Depth("q"), f.Calls("DeleteMessageBatch"))
	}
	// After the visibility timeout it comes back, received twice.
	got := collect(t, src, 1)
	if meta(got[0], "sqs_receive_count") != "2" || got[0].Type != events.Insert {
		t.Errorf("redelivered %+v", got[0].Metadata)
	}
	waitDepth(t, f, "q", 0)

	// A body that does not decode stays for the redrive policy.
	url = createQueue(t, f, "bad", nil)
	q, _ := sqstopic.ParseQueueURL(url)
	c, _ := sqstopic.NewClient(context.Background(), q, "", f.HTTP.URL, testAuth)
	if _, err := c.SendMessage(context.Background(), &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("not json")}); err != nil {
		t.Fatal(err)
	}
	src = newTestSource(t, f, SourceConfig{QueueURL: url, Codec: "rivven", WaitTimeSeconds: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src.decodeFailed = func(string, error) { cancel() }
	if err := src.Read(ctx, nil, connector.EmitterFunc(func(context.Context, []*events.Event) error { t.Error("emitted"); return nil })); err != nil {
		t.Fatal(err)
	}
	if f.Depth("bad") != 1 {
		t.Errorf("undecodable message deleted")
	}
}

func TestCheck(t *testing.T) {
	f := sqsfake.New(t)
	s, err := NewSink(context.Background(), &SinkConfig{QueueURL: f.URL("missing"), EndpointURL: f.HTTP.URL, Auth: testAuth, BatchSize: 10, Codec: "rivven"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.(*Sink).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "QueueDoesNotExist") {
		t.Errorf("check: %v", err)
	}
}

func TestSinkMetrics(t *testing.T) {
	f := sqsfake.New(t)
	url := createQueue(t, f, "m", nil)
	sink := newTestSink(t, f, SinkConfig{QueueURL: url, BatchSize: 2})
	f.FailEntry = func(body string) bool { return strings.Contains(body, `"n":2`) }
	var batch []*events.Event
	for i := range 5 {
		batch = append(batch, events.New(events.Insert, "s", events.ValuePayload(map[string]any{"n": i})))
	}
	_ = sink.Write(context.Background(), batch)
	m := sink.Metrics()
	if m["sqs.sink.messages_sent_total"] != 4 || m["sqs.sink.messages_failed_total"] != 1 || m["sqs.sink.batches_sent_total"] != 3 || m["sqs.sink.success_rate"] != 0.8 || m["sqs.sink.bytes_sent_total"] == 0 {
		t.Fatalf("metrics %v", m)
	}
}
