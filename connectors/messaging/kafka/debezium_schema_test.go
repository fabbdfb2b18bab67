package kafka

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/events"
)

// With debezium.schemas_enable the topic holds what Kafka Connect's
// JsonConverter writes with schemas.enable=true on both sides: the value
// {schema, payload} with the table's column types, and the key
// {schema: <server>.<schema>.<table>.Key, payload}.
func TestDebeziumSchemasEnable(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "dbz"))
	ctx := ctxT(t)
	dbz := events.DefaultDebeziumOptions()
	dbz.SchemasEnable = true
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "dbz", Codec: "debezium", Debezium: dbz})
	e := &events.Event{Type: events.Insert, Stream: "orders", Namespace: new(string), Timestamp: t0,
		Data: events.RawPayload([]byte(`{"id":7,"price":1.56}`)), Key: []byte(`{"id":7}`),
		Source: &events.SourceInfo{Connector: "postgres-cdc", Name: "shop", Database: "shop", Schema: "public", Table: "orders",
			Columns: string(events.AppendColumns(nil, []events.Column{{Name: "id", Type: "integer", NotNull: true}, {Name: "price", Type: "numeric(10,2)"}}))}}
	if err := sink.Write(ctx, []*events.Event{e}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("dbz"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < 1 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, fs.Records()...)
	}
	var key struct {
		Schema  struct{ Name string }
		Payload map[string]any
	}
	if err := json.Unmarshal(recs[0].Key, &key); err != nil || key.Schema.Name != "shop.public.orders.Key" || key.Payload["id"] != 7.0 {
		t.Errorf("key %s: %v", recs[0].Key, err)
	}
	var val struct {
		Schema  struct{ Name string }
		Payload struct{ After map[string]any }
	}
	if err := json.Unmarshal(recs[0].Value, &val); err != nil || val.Schema.Name != "shop.public.orders.Envelope" || val.Payload.After["price"] != "AJw=" {
		t.Errorf("value %s: %v", recs[0].Value, err)
	}
}
