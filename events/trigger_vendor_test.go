package events

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// Fixtures written by AWS, not by this project (testdata/README.md).
func vendor(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVendorFixturesParse(t *testing.T) {
	for _, c := range []struct {
		file  string
		kind  TriggerKind
		n     int
		first Delivery
	}{
		{"kafka-event.json", TriggerKafka, 1, Delivery{ID: "AWSKafkaTopic-0-0", Topic: "AWSKafkaTopic", Group: "AWSKafkaTopic-0"}},
		{"powertools-kafkaEventSelfManaged.json", TriggerKafka, 1, Delivery{ID: "mytopic-0-15", Topic: "mytopic", Offset: 15, Group: "mytopic-0"}},
		{"sqs-event.json", TriggerSQS, 1, Delivery{ID: "MessageID_1", Topic: "SQSQueue", Attempt: 2}},
		{"kinesis-event.json", TriggerKinesis, 2, Delivery{ID: "49568167373333333333333333333333333333333333333333333333", Topic: "simple-stream", Group: "shardId-000000000000"}},
	} {
		b, err := ParseLambdaEvent(vendor(t, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if b.Kind != c.kind || len(b.Deliveries) != c.n {
			t.Fatalf("%s: %s with %d deliveries", c.file, b.Kind, len(b.Deliveries))
		}
		d := b.Deliveries[0]
		if d.ID != c.first.ID || d.Topic != c.first.Topic || d.Offset != c.first.Offset || d.Group != c.first.Group || d.Attempt != c.first.Attempt || d.Err != nil {
			t.Errorf("%s: first delivery %+v", c.file, d)
		}
	}
}

// The Kafka partial batch response names a partition under the key AWS
// documents, "topic-partition"; Lambda fails the whole batch for any other.
func TestKafkaResponseUsesTopicPartitionKey(t *testing.T) {
	for _, file := range []string{"kafka-event.json", "powertools-kafkaEventSelfManaged.json"} {
		b, err := ParseLambdaEvent(vendor(t, file))
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			BatchItemFailures []struct {
				ItemIdentifier map[string]any `json:"itemIdentifier"`
			} `json:"batchItemFailures"`
		}
		raw := responseJSON(t, b.Response([]int{0}))
		if err := json.Unmarshal([]byte(raw), &resp); err != nil {
			t.Fatal(err)
		}
		d := b.Deliveries[0]
		want := map[string]any{"topic-partition": d.Group, "offset": float64(d.Offset)}
		if len(resp.BatchItemFailures) != 1 || !reflect.DeepEqual(resp.BatchItemFailures[0].ItemIdentifier, want) {
			t.Errorf("%s: response %s, want one itemIdentifier %v", file, raw, want)
		}
		if again, err := ReadLambdaResponse(TriggerKafka, b.Deliveries, []byte(raw)); err != nil || !reflect.DeepEqual(again, []int{0}) {
			t.Errorf("%s: read back %v, %v", file, again, err)
		}
		// The emulator reads a response as Lambda does: the old key name
		// is not an identifier.
		old := `{"batchItemFailures":[{"itemIdentifier":{"partition":"` + d.Group + `","offset":0}}]}`
		if _, err := ReadLambdaResponse(TriggerKafka, b.Deliveries, []byte(old)); err == nil {
			t.Errorf("%s: the key \"partition\" was accepted", file)
		}
	}
}

func TestUnknownEventNamesItsEventSource(t *testing.T) {
	for _, c := range []struct{ event, want string }{
		{`{"eventSource":"aws:rmq","rmqMessagesByQueue":{}}`, `"aws:rmq"`},
		{`{"Records":[{"eventSource":"aws:s3"}]}`, `"aws:s3"`},
		{`{"records":{}}`, "no eventSource"},
	} {
		_, err := ParseLambdaEvent([]byte(c.event))
		if !errors.Is(err, ErrUnknownTrigger) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to name %s", c.event, err, c.want)
		}
	}
}
