package kafka

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
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

// With provide_transaction_metadata, a source's BEGIN/END records go to
// <server>.transaction keyed by the transaction id; without it they are
// left out.
func TestDebeziumTransactionTopic(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "dbz", "shop.transaction"))
	ctx := ctxT(t)
	begin := &events.Event{Type: events.State, Stream: "_state", Timestamp: t0, Key: []byte(`{"id":"571:53195832"}`),
		Data:     events.RawPayload(events.AppendTransactionRecord(nil, false, "571:53195832", t0, 0, nil)),
		Metadata: events.Metadata{TransactionID: "571", Extra: []events.Field{{Key: events.MetaControl, Value: json.RawMessage(`"transaction"`)}}},
		Source:   &events.SourceInfo{Connector: "postgres-cdc", Name: "shop", Database: "shop", Commit: "0/32BB438"}}
	off := events.DefaultDebeziumOptions()
	if err := mkSink(t, SinkConfig{Brokers: addrs, Topic: "dbz", Codec: "debezium", Debezium: off}).Write(ctx, []*events.Event{begin}); err != nil {
		t.Fatal(err)
	}
	on := off
	on.ProvideTransactionMetadata = true
	if err := mkSink(t, SinkConfig{Brokers: addrs, Topic: "dbz", Codec: "debezium", Debezium: on}).Write(ctx, []*events.Event{begin}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("dbz", "shop.transaction"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Read both topics to their ends: the BEGIN, and nothing from the
	// sink without provide_transaction_metadata.
	var recs []*kgo.Record
	for len(recs) < 1 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, fs.Records()...)
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, "dbz", "shop.transaction")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("dbz", 0); o.Offset != 0 {
		t.Errorf("data topic has %d records, want none", o.Offset)
	}
	if len(recs) != 1 || recs[0].Topic != "shop.transaction" || string(recs[0].Key) != `{"id":"571:53195832"}` ||
		!strings.HasPrefix(string(recs[0].Value), `{"status":"BEGIN","id":"571:53195832"`) {
		for _, r := range recs {
			t.Errorf("%s: %s = %s", r.Topic, r.Key, r.Value)
		}
	}
}
