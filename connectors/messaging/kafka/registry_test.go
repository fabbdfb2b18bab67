package kafka

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/schema"
	"github.com/rivven/rivven-connect/shared/schema/srtest"
	"github.com/rivven/rivven-connect/shared/spec"
)

// consumeAll reads every record of a topic with a plain client.
func consumeAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxT(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func ev(typ events.Type, stream, data string) *events.Event {
	e := events.New(typ, stream, events.RawPayload([]byte(data)))
	e.Key = json.RawMessage(`{"id":1}`)
	return e
}

// The sink writes Avro rows under schemas it infers and registers; the
// records are checked by goavro with the registry's schema of the id in
// each header, and the source reads them back as events.
func TestSchemaRegistryAvroSinkAndSource(t *testing.T) {
	brokers := cluster(t, kfake.SeedTopics(1, "orders"))
	reg := srtest.New()
	reg.User, reg.Password = "svc", "pw"
	srv := reg.Server(false)
	defer srv.Close()
	opts := schema.SinkOptions{Client: schema.Client{Username: "svc", Password: "pw"}, Format: schema.Avro, SubjectStrategy: schema.TopicName, Namespace: "rivven.events", AutoRegister: true}
	s := mkSink(t, SinkConfig{Brokers: brokers, Topic: "orders", SchemaRegistryURL: srv.URL, SchemaRegistry: opts})
	batch := []*events.Event{
		ev(events.Insert, "orders", `{"id":1,"amount":5}`),
		ev(events.Update, "orders", `{"before":{"id":1,"amount":5},"after":{"id":1,"amount":7.5}}`),
		ev(events.Schema, "orders", `{"ddl":"ALTER TABLE orders ADD note text"}`),
		ev(events.Insert, "orders", `{"id":2,"amount":1,"note":"hi"}`),
		ev(events.Insert, "orders", `null`),
		ev(events.Delete, "orders", `{"id":2,"amount":1,"note":"hi"}`),
	}
	err := s.Write(ctxT(t), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[4] == nil || !strings.Contains(we.Failed[4].Error(), "no row") {
		t.Fatalf("Write: %v", err)
	}
	recs := consumeAll(t, brokers, "orders", 4)
	wantOps := []string{"insert", "update", "insert", "delete"}
	for i, r := range recs {
		if r.Value[0] != 0 {
			t.Fatalf("record %d: no magic byte", i)
		}
		id := int(binary.BigEndian.Uint32(r.Value[1:5]))
		text, _, ok := reg.Schema(id)
		if !ok {
			t.Fatalf("record %d: id %d is not in the registry", i, id)
		}
		codec, err := goavro.NewCodec(text)
		if err != nil {
			t.Fatal(err)
		}
		native, _, err := codec.NativeFromBinary(r.Value[5:])
		if err != nil {
			t.Fatalf("record %d: goavro: %v", i, err)
		}
		m := native.(map[string]any)
		if i == 1 && m["amount"] != 7.5 {
			t.Errorf("update's row: %v", m)
		}
		if string(r.Headers[0].Value) != wantOps[i] || r.Headers[0].Key != HeaderOp || string(r.Key) != `{"id":1}` {
			t.Errorf("record %d: headers %v key %s", i, r.Headers, r.Key)
		}
	}
	if vs := reg.Subjects()["orders-value"]; len(vs) != 3 {
		t.Errorf("orders-value versions %v: int amount, double amount, nullable note", vs)
	}

	src := mkSource(t, SourceConfig{Brokers: brokers, Topic: "orders", ConsumerGroup: "g-sr", SchemaRegistryURL: srv.URL, SchemaRegistry: schema.Client{Username: "svc", Password: "pw"}})
	got := readN(t, src, 4)
	for i, e := range got {
		if string(e.Type) != wantOps[i] || e.Metadata.SchemaID == nil || e.Metadata.SchemaSubject != "orders-value" || e.Stream != "orders" {
			t.Errorf("event %d: %s %s schema %v %q", i, e.Type, e.Stream, e.Metadata.SchemaID, e.Metadata.SchemaSubject)
		}
	}
	if row, _ := got[1].Row(); row["amount"] != 7.5 {
		t.Errorf("update's after image: %v", row)
	}
	if row, _ := got[2].Row(); row["note"] != "hi" {
		t.Errorf("third row: %v", row)
	}
}

// A value the source cannot decode is emitted raw with the reason.
func TestSchemaRegistrySourceUnknownID(t *testing.T) {
	brokers := cluster(t, kfake.SeedTopics(1, "x"))
	srv := srtest.New().Server(false)
	defer srv.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("x"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctxT(t), &kgo.Record{Value: []byte{0, 0, 0, 0, 42, 2, 3}}, &kgo.Record{Value: []byte(`{"plain":1}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	src := mkSource(t, SourceConfig{Brokers: brokers, Topic: "x", ConsumerGroup: "g", SchemaRegistryURL: srv.URL})
	got := readN(t, src, 2)
	if de, ok := got[0].Metadata.Get("decode_error"); !ok || !strings.Contains(string(de), "schema 42") {
		t.Errorf("unknown id: %v", got[0].Metadata)
	}
	if row, _ := got[1].Row(); row["plain"] != json.Number("1") && row["plain"] != 1.0 {
		t.Errorf("plain JSON: %v", row)
	}
}

func TestSchemaRegistryConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"schema_registry_url: ftp://r\n", "sinks.k.config.schema_registry_url", "not an http"},
		{"schema_registry_url: http://r\ncodec: debezium\n", "sinks.k.config.codec", "cannot be combined"},
		{"schema_registry_url: http://r\nschema_registry: {format: xml}\n", "sinks.k.config.schema_registry.format", ""},
		{"schema_registry_url: http://r\nschema_registry: {username: u}\n", "sinks.k.config.schema_registry.password", "needs a password"},
		{"schema_registry_url: http://r\nschema_registry: {schema: '{\"type\":\"nope\"}'}\n", "sinks.k.config.schema_registry.schema", "avro schema"},
		{"schema_registry_url: http://r\nschema_registry: {format: protobuf, schema: 'message {'}\n", "sinks.k.config.schema_registry.schema", "protobuf schema"},
		{"schema_registry_url: http://r\nschema_registry: {subject_strategy: name}\n", "sinks.k.config.schema_registry.subject_strategy", ""},
	} {
		_, ps := spec.DecodeString[SinkConfig]("brokers: [a:9092]\ntopic: t\n"+tc.yaml, "sinks.k.config")
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: %v, want one problem at %s containing %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	_, ps := spec.DecodeString[SourceConfig]("brokers: [a:9092]\ntopic: t\nconsumer_group: g\nschema_registry_url: http://r\nschema_registry: {bearer_token: x, username: u, password: p}", "sources.k.config")
	if len(ps) != 1 || ps[0].Path != "sources.k.config.schema_registry.bearer_token" {
		t.Errorf("source: %v", ps)
	}
}
