package schema_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/schema"
	"github.com/rivven/rivven-connect/shared/schema/srtest"
)

func row(t *testing.T, stream, data string) *events.Event {
	t.Helper()
	return events.New(events.Record, stream, events.RawPayload([]byte(data)))
}

func TestPromotion(t *testing.T) {
	var r *schema.Record
	steps := []struct {
		row  string
		want string // kind of id, nullable of name
	}{
		{`{"id":1,"name":"a"}`, "int false"},
		{`{"id":3000000000,"name":"b"}`, "long false"},
		{`{"id":1.5,"name":"c"}`, "double false"},
		{`{"id":2}`, "double true"},
		{`{"id":2,"name":null}`, "double true"},
	}
	for _, s := range steps {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(s.row))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if !r.Fits(m) {
			r = r.Widen("ns", "R", m)
		}
		got := r.Cols[0].Kind.String() + " " + map[bool]string{true: "true", false: "false"}[r.Cols[1].Nullable]
		if got != s.want {
			t.Errorf("after %s: id/name = %s, want %s", s.row, got, s.want)
		}
	}
	// A later field is nullable (earlier rows lack it); numbers and
	// strings mix to string.
	r = r.Widen("ns", "R", map[string]any{"id": "x", "name": "n", "extra": true})
	if c := r.Cols[0]; c.Key != "extra" || !c.Nullable || c.Kind != schema.KindBool {
		t.Errorf("extra: %+v", c)
	}
	if r.Cols[1].Kind != schema.KindString {
		t.Errorf("id after a string: %s", r.Cols[1].Kind)
	}
}

// registry starts the fake with basic auth and returns a client of it.
func registry(t *testing.T) (*srtest.Registry, string) {
	t.Helper()
	reg := srtest.New()
	reg.User, reg.Password = "svc", "s3cret"
	srv := reg.Server(false)
	t.Cleanup(srv.Close)
	return reg, srv.URL
}

func serializer(t *testing.T, url string, o schema.SinkOptions) *schema.Serializer {
	t.Helper()
	cl, err := schema.NewClient(url, schema.Client{Username: "svc", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Namespace == "" {
		o.Namespace = "rivven.events"
	}
	o.AutoRegister = true
	return schema.NewSerializer(cl, o)
}

// header checks the wire-format header and returns the schema id and the
// rest.
func header(t *testing.T, b []byte) (int, []byte) {
	t.Helper()
	if len(b) < 5 || b[0] != 0 {
		t.Fatalf("no magic byte: % x", b)
	}
	return int(binary.BigEndian.Uint32(b[1:5])), b[5:]
}

// Avro values, checked by goavro (another Avro implementation than the
// writer's) with the schema the registry holds for the id in the header.
func TestAvroInferredAndEvolved(t *testing.T) {
	reg, url := registry(t)
	s := serializer(t, url, schema.SinkOptions{Format: schema.Avro, SubjectStrategy: schema.TopicName})
	ctx := context.Background()
	rows := []string{
		`{"id":1,"name":"Alice","tags":["a"]}`,
		`{"id":2,"name":"Bob","tags":[]}`,
		`{"id":3000000000,"name":"Carol","tags":["c"]}`, // int → long
		`{"id":4,"tags":["d"],"price":9.5}`,             // name missing → nullable; price added
		`{"id":5,"name":"Eve","tags":[],"price":10}`,
	}
	var decoded []map[string]any
	for _, r := range rows {
		enc, err := s.Encode(ctx, "orders", row(t, "orders", r))
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		id, datum := header(t, enc.Value)
		if id != enc.ID || enc.Subject != "orders-value" {
			t.Errorf("id %d subject %s, header id %d", enc.ID, enc.Subject, id)
		}
		text, typ, ok := reg.Schema(id)
		if !ok || typ != "AVRO" {
			t.Fatalf("schema %d: %v %s", id, ok, typ)
		}
		codec, err := goavro.NewCodec(text)
		if err != nil {
			t.Fatalf("goavro: %v\n%s", err, text)
		}
		native, rest, err := codec.NativeFromBinary(datum)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro decode: %v (%d bytes left)", err, len(rest))
		}
		decoded = append(decoded, native.(map[string]any))
	}
	if got := reg.Subjects()["orders-value"]; len(got) != 3 {
		t.Errorf("versions of orders-value: %v, want 3 (int, long, then nullable name and price)", got)
	}
	if decoded[0]["id"] != int32(1) || decoded[0]["name"] != "Alice" || decoded[0]["tags"] != `["a"]` {
		t.Errorf("first: %v", decoded[0])
	}
	if decoded[2]["id"] != int64(3000000000) {
		t.Errorf("third: %v", decoded[2])
	}
	if decoded[3]["name"] != nil || decoded[3]["price"].(map[string]any)["double"] != 9.5 {
		t.Errorf("fourth: %v", decoded[3])
	}
	if decoded[4]["name"].(map[string]any)["string"] != "Eve" || decoded[4]["price"].(map[string]any)["double"] != 10.0 {
		t.Errorf("fifth: %v", decoded[4])
	}

	// A change the registry refuses (long → string is no Avro promotion)
	// fails that event only; the schema stays.
	_, err := s.Encode(ctx, "orders", row(t, "orders", `{"id":"six","tags":[]}`))
	if err == nil || !strings.Contains(err.Error(), "incompatible") {
		t.Errorf("incompatible change: %v", err)
	}
	if _, err := s.Encode(ctx, "orders", row(t, "orders", `{"id":7,"tags":[]}`)); err != nil {
		t.Errorf("after a refused change: %v", err)
	}
	if got := reg.Subjects()["orders-value"]; len(got) != 3 {
		t.Errorf("versions after a refused change: %v", got)
	}

	// A restarted sink widens the latest version: a narrow row registers
	// nothing new.
	before := reg.Requests["POST /subjects/{subject}/versions"]
	s2 := serializer(t, url, schema.SinkOptions{Format: schema.Avro, SubjectStrategy: schema.TopicName})
	enc, err := s2.Encode(ctx, "orders", row(t, "orders", `{"id":8,"tags":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ids := reg.Subjects()["orders-value"]; enc.ID != ids[len(ids)-1] || reg.Requests["POST /subjects/{subject}/versions"] != before {
		t.Errorf("restarted: id %d, versions %v, registrations %d → %d", enc.ID, ids, before, reg.Requests["POST /subjects/{subject}/versions"])
	}

	// Schemas are cached: many rows of one shape ask the registry nothing.
	n := len(reg.Requests)
	total := 0
	for _, c := range reg.Requests {
		total += c
	}
	for range 50 {
		if _, err := s.Encode(ctx, "orders", row(t, "orders", `{"id":9,"tags":[],"name":"x","price":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	after := 0
	for _, c := range reg.Requests {
		after += c
	}
	if after != total || len(reg.Requests) != n {
		t.Errorf("50 rows of a known shape made %d requests", after-total)
	}
}

func TestSubjectStrategies(t *testing.T) {
	reg, url := registry(t)
	ctx := context.Background()
	for strategy, want := range map[string]string{
		schema.TopicName:       "t1-value",
		schema.RecordName:      "rivven.events.customers",
		schema.TopicRecordName: "t1-rivven.events.customers",
	} {
		s := serializer(t, url, schema.SinkOptions{Format: schema.Avro, SubjectStrategy: strategy})
		enc, err := s.Encode(ctx, "t1", row(t, "customers", `{"id":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if enc.Subject != want {
			t.Errorf("%s: subject %s, want %s", strategy, enc.Subject, want)
		}
		if _, ok := reg.Subjects()[want]; !ok {
			t.Errorf("%s: %s not registered: %v", strategy, want, reg.Subjects())
		}
	}
	// The same schema under three subjects has one id.
	ids := map[int]bool{}
	for _, vs := range reg.Subjects() {
		ids[vs[0]] = true
	}
	if len(ids) != 1 {
		t.Errorf("ids %v", ids)
	}
}

// JSON Schema values, validated against the registered schema by
// santhosh-tekuri/jsonschema.
func TestJSONSchema(t *testing.T) {
	reg, url := registry(t)
	s := serializer(t, url, schema.SinkOptions{Format: schema.JSON, SubjectStrategy: schema.TopicName})
	for _, r := range []string{`{"id":1,"name":"a","obj":{"x":1}}`, `{"id":2.5,"name":"b"}`, `{"id":3,"name":null,"obj":{}}`} {
		enc, err := s.Encode(context.Background(), "j", row(t, "j", r))
		if err != nil {
			t.Fatal(err)
		}
		id, body := header(t, enc.Value)
		text, typ, _ := reg.Schema(id)
		if typ != "JSON" {
			t.Fatalf("type %s", typ)
		}
		sch, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("s.json", sch); err != nil {
			t.Fatal(err)
		}
		compiled, err := c.Compile("s.json")
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("value %q: %v", body, err)
		}
		if err := compiled.Validate(inst); err != nil {
			t.Errorf("value %s does not validate against %s: %v", body, text, err)
		}
	}
	if vs := reg.Subjects()["j-value"]; len(vs) != 3 {
		t.Errorf("versions %v (integer, number, then nullable)", vs)
	}
}

// Protobuf values: the message-index byte, then fields read by protowire
// (the wire format's primitives, not the dynamic message the writer
// used).
func TestProtobuf(t *testing.T) {
	reg, url := registry(t)
	s := serializer(t, url, schema.SinkOptions{Format: schema.Protobuf, SubjectStrategy: schema.TopicName})
	enc, err := s.Encode(context.Background(), "p", row(t, "p", `{"id":300,"name":"Zoë","ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	id, rest := header(t, enc.Value)
	text, typ, _ := reg.Schema(id)
	if typ != "PROTOBUF" || !strings.Contains(text, "optional int32 id = 1;") {
		t.Fatalf("%s schema:\n%s", typ, text)
	}
	if rest[0] != 0 {
		t.Fatalf("message indexes: first byte %d, want 0 (the first message)", rest[0])
	}
	fields := map[protowire.Number]any{}
	b := rest[1:]
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		b = b[n:]
		switch wt {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			fields[num], b = v, b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			fields[num], b = string(v), b[n:]
		default:
			t.Fatalf("wire type %d", wt)
		}
	}
	// Fields are numbered in key order of the first row: id, name, ok.
	if fields[1] != uint64(300) || fields[2] != "Zoë" || fields[3] != uint64(1) {
		t.Errorf("fields %v\n%s", fields, text)
	}
	// int32 → double changes the wire type: the registry refuses it.
	if _, err := s.Encode(context.Background(), "p", row(t, "p", `{"id":1.5,"name":"x","ok":false}`)); err == nil || !strings.Contains(err.Error(), "wire-compatible") {
		t.Errorf("int32 → double: %v", err)
	}
}

// What the serializer writes, the deserializer reads, for each format.
func TestRoundTrip(t *testing.T) {
	_, url := registry(t)
	cl, err := schema.NewClient(url, schema.Client{Username: "svc", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	d := schema.NewDeserializer(cl)
	for _, f := range []string{schema.Avro, schema.JSON, schema.Protobuf} {
		s := serializer(t, url, schema.SinkOptions{Format: f, SubjectStrategy: schema.TopicRecordName})
		enc, err := s.Encode(context.Background(), "rt"+f, row(t, "rows", `{"id":7,"name":"n","score":1.25,"gone":null}`))
		if err != nil {
			t.Fatal(f, err)
		}
		got, err := d.Decode(context.Background(), enc.Value)
		if err != nil {
			t.Fatal(f, err)
		}
		b, _ := json.Marshal(got.Data)
		want := map[string]string{
			schema.Avro:     `{"gone":null,"id":7,"name":"n","score":1.25}`,
			schema.JSON:     `{"id":7,"name":"n","score":1.25}`,
			schema.Protobuf: `{"id":7,"name":"n","score":1.25}`,
		}[f]
		if string(b) != want || got.ID != enc.ID || got.Subject != "rt"+f+"-rivven.events.rows" {
			t.Errorf("%s: %s (id %d, subject %s), want %s", f, b, got.ID, got.Subject, want)
		}
	}
	if _, err := d.Decode(context.Background(), []byte(`{"plain":"json"}`)); err != schema.ErrNotWireFormat {
		t.Errorf("plain JSON: %v", err)
	}
}

// Given schemas are registered as they are.
func TestGivenAvroSchema(t *testing.T) {
	reg, url := registry(t)
	text := `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}`
	s := serializer(t, url, schema.SinkOptions{Format: schema.Avro, SubjectStrategy: schema.RecordName, Schema: text})
	enc, err := s.Encode(context.Background(), "x", row(t, "whatever", `{"id":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if enc.Subject != "shop.Order" {
		t.Errorf("subject %s", enc.Subject)
	}
	_, datum := header(t, enc.Value)
	// id 5 (zigzag 10), union branch 0 (null).
	if !bytes.Equal(datum, []byte{10, 0}) {
		t.Errorf("datum % x", datum)
	}
	if got, _, _ := reg.Schema(enc.ID); got != text {
		t.Errorf("registered %s", got)
	}
	if _, err := s.Encode(context.Background(), "x", row(t, "whatever", `{"note":"no id"}`)); err == nil {
		t.Error("a row without the required id encoded")
	}
}

// Authentication and TLS: a bearer token over HTTPS with the server's CA.
func TestBearerAndTLS(t *testing.T) {
	reg := srtest.New()
	reg.Token = "tok-123"
	srv := reg.Server(true)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := func(c schema.Client) error {
		cl, err := schema.NewClient(srv.URL, c)
		if err != nil {
			return err
		}
		_, err = schema.NewSerializer(cl, schema.SinkOptions{AutoRegister: true}).Encode(context.Background(), "t", row(t, "s", `{"a":1}`))
		return err
	}
	if err := enc(schema.Client{BearerToken: "tok-123", TLS: schema.TLS{CAFile: ca}}); err != nil {
		t.Errorf("bearer over TLS: %v", err)
	}
	if err := enc(schema.Client{BearerToken: "wrong", TLS: schema.TLS{CAFile: ca}}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("a wrong token: %v", err)
	}
	if err := enc(schema.Client{BearerToken: "tok-123"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an unknown CA: %v", err)
	}
	if err := enc(schema.Client{BearerToken: "wrong", TLS: schema.TLS{CAFile: ca}}); err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the token: %v", err)
	}
}

// The worked example of the kafka connector's README, as written there.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../connectors/messaging/kafka/README.md")
	if err != nil {
		t.Fatal(err)
	}
	reg, url := registry(t)
	s := serializer(t, url, schema.SinkOptions{Format: schema.Avro, SubjectStrategy: schema.TopicName})
	var first []byte
	for _, r := range []string{`{"id":1,"name":"Alice"}`, `{"id":3000000000,"name":"Bob"}`, `{"id":4,"price":9.5}`} {
		enc, err := s.Encode(context.Background(), "orders", row(t, "orders", r))
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = enc.Value
		}
	}
	ids := reg.Subjects()["orders-value"]
	if len(ids) != 3 {
		t.Fatalf("versions %v", ids)
	}
	for _, id := range ids {
		text, _, _ := reg.Schema(id)
		if !strings.Contains(string(readme), "\n"+text+"\n") {
			t.Errorf("the README does not show version %d as registered:\n%s", id, text)
		}
	}
	var hex []string
	for _, b := range first {
		hex = append(hex, fmt.Sprintf("%02x", b))
	}
	if h := strings.Join(hex, " "); !strings.Contains(string(readme), "`"+h+"`") {
		t.Errorf("the README does not show the first value as `%s`", h)
	}
}
