package sqstopic_test

// An external test package: shared/host links this package for the sqs
// transport, so a test of the two together cannot live inside it.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	_ "github.com/rivven/rivven-connect/connectors/transform/maskfield"
	_ "github.com/rivven/rivven-connect/connectors/utility/stdout"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/host"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic/sqsfake"
)

// A transform function deployed with broker.transport sqs publishes its
// output and its dead letters to SQS queues through this transport.
func TestTransformFunctionPublishesToSQS(t *testing.T) {
	f := sqsfake.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", sqstopic.TestAuth.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sqstopic.TestAuth.SecretAccessKey)
	tr := sqstopic.NewTestTransport(t, f, config.BrokerSQS{QueuePrefix: "shop-"})
	for _, q := range []string{"orders.masked", "orders.dlq"} {
		if err := tr.Create(context.Background(), q, topic.Spec{}); err != nil {
			t.Fatal(err)
		}
	}
	pipelineYAML := `
broker:
  transport: sqs
  sqs: {endpoint: "` + f.HTTP.URL + `", region: us-east-1, queue_prefix: shop-}
sinks:
  out:
    connector: stdout
    topics: [orders]
    transforms:
      - type: MaskField
        config: {fields: [card]}
`
	env := map[string]string{"RIVVEN_PIPELINE": pipelineYAML, "RIVVEN_CONNECTOR": "sinks.out.transforms[0]", "RIVVEN_OUTPUT_TOPIC": "orders.masked"}
	rt, err := host.Init(context.Background(), host.Function{Kind: "transform", Connector: "MaskField"}, host.Options{
		Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Log: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	body := `{"event_type":"insert","stream":"orders","timestamp":"2025-01-01T00:00:00Z","data":{"id":1,"card":"4111"},"metadata":{}}`
	ds := []events.Delivery{{ID: "m-0", Value: []byte(body), Attempt: 1}, {ID: "m-1", Value: []byte(`{"broken":`), Attempt: 1}}
	raw, _ := json.Marshal(events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:us-east-1:000000000000:shop-orders"}, ds))
	resp, err := rt.Adapter.InvokeLambda(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != `{"batchItemFailures":[]}` {
		t.Fatalf("response %s", resp)
	}
	out := sqstopic.ReceiveAll(t, tr, "orders.masked")
	if len(out) != 1 || bytes.Contains(out[0].Value, []byte("4111")) || !bytes.Contains(out[0].Value, []byte(`"id":1`)) {
		t.Fatalf("published %d: %v", len(out), out)
	}
	if dl := sqstopic.ReceiveAll(t, tr, "orders.dlq"); len(dl) != 1 || !bytes.Contains(dl[0].Value, []byte("payload_b64")) {
		t.Fatalf("dead letters %v", dl)
	}
}
