package events

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../samples/events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLambdaEventOnSamples(t *testing.T) {
	for file, want := range map[string]TriggerKind{
		"sqs.json": TriggerSQS, "sqs-fifo.json": TriggerSQS, "kinesis.json": TriggerKinesis, "kafka.json": TriggerKafka,
	} {
		b, err := ParseLambdaEvent(sample(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if b.Kind != want || len(b.Deliveries) != 3 {
			t.Fatalf("%s: kind %s with %d deliveries, want %s with 3", file, b.Kind, len(b.Deliveries), want)
		}
		if b.FIFO != (file == "sqs-fifo.json") {
			t.Errorf("%s: FIFO = %v", file, b.FIFO)
		}
		for i := range b.Deliveries {
			if _, err := DecodeDelivery(PayloadAuto, &b.Deliveries[i]); err != nil {
				t.Errorf("%s: delivery %d: %v", file, i, err)
			}
		}
	}
	for _, bad := range []string{`{}`, `{"Records":[]}`, `{"Records":[{"eventSource":"aws:s3"}]}`, `[1]`} {
		if _, err := ParseLambdaEvent([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestSQSDeliveries(t *testing.T) {
	b, err := ParseSQSEvent(sample(t, "sqs-fifo.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := b.Deliveries[2]
	if d.ID != "8cdb7d4f-7e63-4a1b-a7a8-2f4c6b6d3a10" || d.Topic != "demo-orders" || d.Attempt != 2 || d.Group != "orders-1" ||
		!d.Time.Equal(time.Date(2025, 6, 1, 12, 0, 2, 0, time.UTC)) {
		t.Fatalf("delivery = %+v", d)
	}
	if string(b.Deliveries[0].Key) != `{"order_id":1001}` {
		t.Fatalf("key = %s", b.Deliveries[0].Key)
	}
}

// The scanner-based SQS parser reads what encoding/json reads into
// aws-lambda-go's type, escapes and all.
func TestSQSParserAgreesWithEncodingJSON(t *testing.T) {
	ds := []Delivery{
		{ID: "a", Value: []byte("line\nbreak \"quoted\" \u00e9 \\ </tag>"), Key: []byte("k\u2028"), Attempt: 3, Group: "g"},
		{ID: "b", Value: []byte(`{"event_type":"insert"}`), Time: time.UnixMilli(1700000000123)},
	}
	for _, arn := range []string{"arn:aws:sqs:r:1:q", "arn:aws:sqs:r:1:q.fifo"} {
		raw, _ := json.Marshal(NewSQSEvent(SQSSource{QueueARN: arn}, ds))
		var ev lambdaevents.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		b, err := ParseSQSEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ev.Records {
			d := b.Deliveries[i]
			if d.ID != m.MessageId || string(d.Value) != m.Body || len(d.Key) > 0 && string(d.Key) != *m.MessageAttributes[SQSAttrKey].StringValue ||
				d.Attempt != atoiOr0(m.Attributes["ApproximateReceiveCount"]) || d.Group != m.Attributes["MessageGroupId"] || d.Topic != "q" {
				t.Errorf("%s record %d: %+v vs %+v", arn, i, d, m)
			}
		}
		if b.FIFO != strings.HasSuffix(arn, ".fifo") {
			t.Errorf("%s: FIFO %v", arn, b.FIFO)
		}
	}
	for _, bad := range []string{`{"Records":{}}`, `{"Records":[{"body":"x"}]}`, `{"Records":[{"messageId":1}]}`, `{"Records":[{"messageId":"a"}`} {
		if _, err := ParseSQSEvent([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestSQSBinaryBodyRoundTrips(t *testing.T) {
	ds := []Delivery{{ID: "m1", Value: []byte{0xff, 0x00, 0x01}}, {ID: "m2", Value: []byte(`{"a":1}`)}}
	raw, _ := json.Marshal(NewSQSEvent(SQSSource{QueueARN: "arn:aws:sqs:r:1:q"}, ds))
	b, err := ParseLambdaEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ds {
		if string(b.Deliveries[i].Value) != string(ds[i].Value) || b.Deliveries[i].Err != nil {
			t.Fatalf("delivery %d: %q (%v), want %q", i, b.Deliveries[i].Value, b.Deliveries[i].Err, ds[i].Value)
		}
	}
}

func responseJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSQSResponse(t *testing.T) {
	std, _ := ParseLambdaEvent(sample(t, "sqs.json"))
	fifo, _ := ParseLambdaEvent(sample(t, "sqs-fifo.json"))
	id := func(b *Batch, i int) string { return b.Deliveries[i].ID }
	if got, want := responseJSON(t, std.Response([]int{1})), `{"batchItemFailures":[{"itemIdentifier":"`+id(std, 1)+`"}]}`; got != want {
		t.Errorf("standard queue: %s, want %s", got, want)
	}
	// FIFO: per message group, the first failure and every later message
	// of that group (0 and 1 are group orders-0, 2 is orders-1).
	if got, want := responseJSON(t, fifo.Response([]int{0})),
		`{"batchItemFailures":[{"itemIdentifier":"`+id(fifo, 0)+`"},{"itemIdentifier":"`+id(fifo, 1)+`"}]}`; got != want {
		t.Errorf("fifo queue: %s, want %s", got, want)
	}
	if got, want := responseJSON(t, fifo.Response([]int{1})), `{"batchItemFailures":[{"itemIdentifier":"`+id(fifo, 1)+`"}]}`; got != want {
		t.Errorf("fifo queue, other group goes on: %s, want %s", got, want)
	}
	if got := responseJSON(t, fifo.Response(nil)); got != `{"batchItemFailures":[]}` {
		t.Errorf("success: %s", got)
	}
}

func TestKinesisResponseReportsLowestSequence(t *testing.T) {
	ds := []Delivery{{ID: "9"}, {ID: "10"}, {ID: "49590338271490256608559692538361571095921575989136588898"}}
	raw, _ := json.Marshal(NewKinesisEvent(KinesisSource{StreamARN: "arn:aws:kinesis:r:1:stream/s"}, ds))
	b, err := ParseLambdaEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	// "10" < "9" as text; the lowest number is 9.
	if got := responseJSON(t, b.Response([]int{2, 1, 0})); got != `{"batchItemFailures":[{"itemIdentifier":"9"}]}` {
		t.Errorf("got %s", got)
	}
	if got := responseJSON(t, b.Response([]int{2, 1})); got != `{"batchItemFailures":[{"itemIdentifier":"10"}]}` {
		t.Errorf("got %s", got)
	}
	again, err := ReadLambdaResponse(TriggerKinesis, b.Deliveries, []byte(`{"batchItemFailures":[{"itemIdentifier":"10"}]}`))
	if err != nil || !reflect.DeepEqual(again, []int{1, 2}) {
		t.Errorf("redelivered %v (%v), want from the checkpoint on: [1 2]", again, err)
	}
}

func TestKafkaResponseShape(t *testing.T) {
	b, err := ParseLambdaEvent(sample(t, "kafka.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Deliveries: demo.orders-0 offsets 15, 16; demo.orders-1 offset 7.
	if b.Deliveries[1].ID != "demo.orders-0-16" || b.Deliveries[2].Partition != 1 || b.Deliveries[2].Offset != 7 {
		t.Fatalf("deliveries: %+v", b.Deliveries)
	}
	if b.Deliveries[0].Attributes["content-type"] != "application/json" {
		t.Errorf("headers: %v", b.Deliveries[0].Attributes)
	}
	got := responseJSON(t, b.Response([]int{1, 2}))
	want := `{"batchItemFailures":[{"itemIdentifier":{"topic-partition":"demo.orders-0","offset":16}},{"itemIdentifier":{"topic-partition":"demo.orders-1","offset":7}}]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	again, err := ReadLambdaResponse(TriggerKafka, b.Deliveries, []byte(got))
	if err != nil || !reflect.DeepEqual(again, []int{1, 2}) {
		t.Errorf("redelivered %v (%v)", again, err)
	}
	if _, err := ReadLambdaResponse(TriggerKafka, b.Deliveries, []byte(`{"batchItemFailures":[{"itemIdentifier":{"topic-partition":"x-0","offset":1}}]}`)); err == nil {
		t.Error("an identifier not in the batch was accepted")
	}
}

func TestPubSubPush(t *testing.T) {
	b, err := ParsePubSubPush(sample(t, "pubsub-push.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := b.Deliveries[0]
	if d.ID != "2070443601311540" || d.Topic != "demo-orders-console" || d.Attempt != 1 || string(d.Key) != "order-1001" || d.Attributes["source"] != "orders" {
		t.Fatalf("delivery = %+v", d)
	}
	// Snake-case only, as older push bodies have it.
	b, err = ParsePubSubPush([]byte(`{"message":{"data":"e30=","message_id":"7","publish_time":"2021-02-26T19:13:55.749Z"},"subscription":"projects/p/subscriptions/s"}`))
	if err != nil || b.Deliveries[0].ID != "7" || b.Deliveries[0].Time.Year() != 2021 || string(b.Deliveries[0].Value) != "{}" {
		t.Fatalf("%+v, %v", b, err)
	}
	if _, err := ParsePubSubPush([]byte(`{"message":{}}`)); err == nil {
		t.Error("a message without id was accepted")
	}
	for _, s := range []int{102, 200, 201, 202, 204} {
		if !PushAcked(s) {
			t.Errorf("%d is an ack", s)
		}
	}
	if PushAcked(500) || PushAcked(400) || PushAcked(203) {
		t.Error("non-ack statuses acked")
	}
}

func TestDecodeDelivery(t *testing.T) {
	cases := []struct {
		format, body string
		typ          Type
		stream       string
		err          string
	}{
		{"auto", `{"event_type":"delete","stream":"s","timestamp":"2025-01-01T00:00:00Z","data":{"a":1},"metadata":{}}`, Delete, "s", ""},
		{"auto", `{"op":"c","after":{"a":1},"source":{"table":"t"}}`, Insert, "t", ""},
		{"auto", `{"schema":{},"payload":{"op":"d","before":{"a":1},"source":{"table":"t"}}}`, Delete, "t", ""},
		{"auto", `{"specversion":"1.0","type":"rivven.s.update","id":"1","source":"x","data":{}}`, Update, "s", ""},
		{"auto", `{"order":1,"op":"buy"}`, Record, "orders", ""}, // op alone is business data
		{"auto", `[1,2]`, Record, "orders", ""},
		{"auto", `not json`, "", "", "not JSON"},
		{"auto", `{"a":`, "", "", "not valid JSON"},
		{"auto", ``, "", "", "empty"},
		{"auto", `{"event_type":"bogus"}`, "", "", "unknown event_type"},
		{"raw", `not json`, Record, "orders", ""},
		{"raw", `{"event_type":"insert"}`, Record, "orders", ""},
		{"rivven", `{"op":"c","after":{}}`, "", "", "event_type"},
		{"debezium", `{"op":"c","after":{"a":1}}`, Insert, "default", ""},
	}
	for _, c := range cases {
		d := &Delivery{ID: "id-1", Topic: "orders", Value: []byte(c.body)}
		e, err := DecodeDelivery(c.format, d)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: err %v, want %q", c.format, c.body, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.format, c.body, err)
			continue
		}
		if e.Type != c.typ || e.Stream != c.stream {
			t.Errorf("%s %s: %s on %s, want %s on %s", c.format, c.body, e.Type, e.Stream, c.typ, c.stream)
		}
	}
	// Raw wrapping spells text as a string and binary as base64; the
	// position is the delivery id.
	e, _ := DecodeDelivery(PayloadRaw, &Delivery{ID: "m-9", Value: []byte("hello"), Key: []byte("k")})
	if d, _ := e.Data.JSON(); string(d) != `"hello"` || string(e.Key) != `"k"` || e.Metadata.Position != "m-9" {
		t.Errorf("text: %s key %s position %s", d, e.Key, e.Metadata.Position)
	}
	e, _ = DecodeDelivery(PayloadRaw, &Delivery{Value: []byte{0xff, 0xfe}})
	if d, _ := e.Data.JSON(); string(d) != `"//4="` {
		t.Errorf("binary: %s", d)
	}
	// A delivery that names its codec is decoded with it.
	e, err := DecodeDelivery(CodecRivven, &Delivery{Codec: CodecCloudEvents, Value: []byte(`{"specversion":"1.0","type":"rivven.s.insert","id":"1","source":"x","data":{}}`)})
	if err != nil || e.Type != Insert {
		t.Errorf("codec override: %v %v", e, err)
	}
	if err := CheckPayloadFormat("avro"); err == nil || !strings.Contains(err.Error(), "auto, rivven, debezium, cloudevents, raw") {
		t.Errorf("CheckPayloadFormat: %v", err)
	}
}

// The CloudEvents codec writes only attribute types the CloudEvents spec
// allows (SDKs reject objects), and still reads the object form.
func TestCloudEventsExtensionsAreStrings(t *testing.T) {
	e, err := Rivven.Decode([]byte(`{"event_type":"insert","stream":"s","timestamp":"2025-01-01T00:00:00Z","data":{"a":1},"metadata":{"position":"p1"},"source":{"table":"t"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := CloudEvents.Append(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range m {
		if _, obj := v.(map[string]any); obj && k != "data" {
			t.Errorf("extension %s is an object: %v", k, v)
		}
	}
	back, err := CloudEvents.Decode(b)
	if err != nil || back.Metadata.Position != "p1" || back.Source == nil || back.Source.Table != "t" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	old, err := CloudEvents.Decode([]byte(`{"specversion":"1.0","type":"rivven.s.insert","rivvenmetadata":{"position":"p2"},"rivvensource":{"table":"u"}}`))
	if err != nil || old.Metadata.Position != "p2" || old.Source.Table != "u" {
		t.Fatalf("object form: %+v, %v", old, err)
	}
}
