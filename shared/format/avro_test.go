package format

import (
	"bytes"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/rivven/rivven-connect/events"
)

const explicitSchema = `{
  "type": "record", "name": "Order", "namespace": "shop",
  "fields": [
    {"name": "id", "type": "int"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "ratio", "type": "float"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
      {"name": "name", "type": "string"},
      {"name": "vip", "type": "boolean", "default": false}
    ]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "code", "type": ["null", "long", "string"]},
    {"name": "source", "type": "string", "default": "web"}
  ]
}`

var explicitBatch = inserts(
	`{"id":1,"amount":"12.34","ratio":0.5,"status":"NEW","created_at":"2024-01-15T10:30:00.123Z","day":"2024-01-15","customer":{"name":"Alice","vip":true},"tags":["a","b"],"attrs":{"x":1,"y":-2},"note":"hi","code":7,"source":"app","ignored":true}`,
	`{"id":2,"amount":-0.5,"ratio":2,"status":"PAID","created_at":1705314600000,"day":19737,"customer":{"name":"Bob"},"tags":[],"attrs":{},"code":"X-1"}`,
)

func TestAvroExplicitSchema(t *testing.T) {
	_, b := encode(t, Options{Format: "avro", Avro: &AvroOptions{Schema: explicitSchema, Compression: "deflate"}}, explicitBatch)
	r, err := goavro.NewOCFReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Codec().Schema(), `"shop.Order"`) {
		t.Errorf("schema in file: %s", r.Codec().Schema())
	}
	var got []map[string]any
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v.(map[string]any))
	}
	if len(got) != 2 {
		t.Fatalf("%d records", len(got))
	}
	a, c := got[0], got[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"id", a["id"], int32(1)},
		{"amount", a["amount"].(*big.Rat).RatString(), "617/50"},
		{"amount2", c["amount"].(*big.Rat).RatString(), "-1/2"},
		{"ratio", a["ratio"], float32(0.5)},
		{"ratio2", c["ratio"], float32(2)},
		{"status", a["status"], "NEW"},
		{"status2", c["status"], "PAID"},
		{"created_at", a["created_at"].(time.Time).UTC(), time.Date(2024, 1, 15, 10, 30, 0, 123e6, time.UTC)},
		{"created_at2", c["created_at"].(time.Time).UTC(), time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"day", a["day"].(time.Time).UTC(), time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)},
		{"day2", c["day"].(time.Time).UTC(), time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)},
		{"customer", a["customer"], map[string]any{"name": "Alice", "vip": true}},
		{"customer default", c["customer"], map[string]any{"name": "Bob", "vip": false}},
		{"tags", a["tags"], []any{"a", "b"}},
		{"tags2", c["tags"], []any{}},
		{"attrs", a["attrs"], map[string]any{"x": int64(1), "y": int64(-2)}},
		{"note", a["note"], map[string]any{"string": "hi"}},
		{"note missing → default null", c["note"], nil},
		{"code long branch", a["code"], map[string]any{"long": int64(7)}},
		{"code string branch", c["code"], map[string]any{"string": "X-1"}},
		{"source", a["source"], "app"},
		{"source default", c["source"], "web"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestAvroExplicitSchemaErrors(t *testing.T) {
	enc, err := New(Options{Format: "avro", Avro: &AvroOptions{Schema: explicitSchema}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ row, want string }{
		{`{"amount":"1","ratio":1,"status":"NEW","created_at":0,"day":0,"customer":{"name":"a"},"tags":[],"attrs":{},"code":null}`, "field id: missing and has no default"},
		{`{"id":1,"amount":"1","ratio":1,"status":"GONE","created_at":0,"day":0,"customer":{"name":"a"},"tags":[],"attrs":{},"code":null}`, `"GONE" is not a symbol of enum shop.Status`},
		{`{"id":3000000000,"amount":"1","ratio":1,"status":"NEW","created_at":0,"day":0,"customer":{"name":"a"},"tags":[],"attrs":{},"code":null}`, "does not fit an Avro int"},
		{`{"id":1,"amount":"1.234","ratio":1,"status":"NEW","created_at":0,"day":0,"customer":{"name":"a"},"tags":[],"attrs":{},"code":null}`, "more than 2 decimal places"},
		{`{"id":1,"amount":"1","ratio":"fast","status":"NEW","created_at":0,"day":0,"customer":{"name":"a"},"tags":[],"attrs":{},"code":null}`, `field ratio: "fast" is not a number`},
		{`{"id":1,"amount":"1","ratio":1,"status":"NEW","created_at":"yesterday","day":0,"customer":{"name":"a"},"tags":[],"attrs":{},"code":null}`, "not an RFC 3339 timestamp"},
		{`{"id":1,"amount":"1","ratio":1,"status":"NEW","created_at":0,"day":0,"customer":{"name":"a"},"tags":[],"attrs":{"x":"a"},"code":null}`, `field attrs: ["x"]: "a" is not an integer`},
	} {
		var buf bytes.Buffer
		err := enc.Encode(&buf, inserts(c.row))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("row %s: error %v, want %q", c.row, err, c.want)
		}
	}
	// A value no branch of a union takes (the string branch would take
	// any value as its JSON text, so this union has none).
	u, err := New(Options{Format: "avro", Avro: &AvroOptions{Schema: `{"type":"record","name":"U","fields":[{"name":"v","type":["null","long","boolean"]}]}`}})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Encode(&bytes.Buffer{}, inserts(`{"v":"x"}`)); err == nil || !strings.Contains(err.Error(), "matches no branch") {
		t.Errorf("union: %v", err)
	}
	// After failed batches the encoder still writes good files.
	var buf bytes.Buffer
	if err := enc.Encode(&buf, explicitBatch); err != nil {
		t.Fatal(err)
	}
	if tbl, _ := readOCF(t, buf.Bytes()); len(tbl.rows) != 2 {
		t.Fatalf("%d rows after errors", len(tbl.rows))
	}
}

func TestAvroWireFormat(t *testing.T) {
	id := uint32(12345)
	enc, b := encode(t, Options{Format: "avro", Avro: &AvroOptions{Schema: explicitSchema, WireFormat: true, SchemaID: &id}}, explicitBatch)
	checkMeta(t, enc, ".avro", "application/avro", "")
	if !bytes.Equal(b[4:9], []byte{0, 0, 0, 0x30, 0x39}) {
		t.Fatalf("first record header % x, want magic 0 and id 12345 big-endian", b[4:9])
	}
	codec, err := goavro.NewCodec(explicitSchema)
	if err != nil {
		t.Fatal(err)
	}
	datums := readWire(t, b, id)
	if len(datums) != 2 {
		t.Fatalf("%d records", len(datums))
	}
	for i, d := range datums {
		v, rest, err := codec.NativeFromBinary(d)
		if err != nil || len(rest) != 0 {
			t.Fatalf("record %d: %v, %d bytes left", i, err, len(rest))
		}
		if got := v.(map[string]any)["id"]; got != int32(i+1) {
			t.Errorf("record %d id %v", i, got)
		}
	}

	// Inferred schema in wire format: the datum follows the inferred
	// record (the registry id must then name that schema).
	_, b = encode(t, Options{Format: "avro", Avro: &AvroOptions{WireFormat: true, SchemaID: &id}}, inserts(`{"a":1,"b":"x"}`))
	inferred, err := goavro.NewCodec(`{"type":"record","name":"Event","namespace":"rivven.events","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	datums = readWire(t, b, id)
	v, _, err := inferred.NativeFromBinary(datums[0])
	if err != nil || !reflect.DeepEqual(v, map[string]any{"a": int64(1), "b": "x"}) {
		t.Fatalf("inferred wire record %v, %v", v, err)
	}
}

// Rows may hold Go values (events.ValuePayload from transforms), not only
// decoded JSON.
func TestGoValues(t *testing.T) {
	e := events.New(events.Insert, "s", events.ValuePayload(map[string]any{
		"i": 5, "u": uint64(7), "f": float32(1.5), "s": "x", "b": true, "t": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "m": map[string]any{"k": []any{1}},
	}))
	_, b := encode(t, Options{Format: "parquet"}, []*events.Event{e})
	tbl, _ := readParquet(t, b)
	want := map[string]any{"i": int64(5), "u": int64(7), "f": 1.5, "s": "x", "b": true, "t": "2024-01-02T03:04:05Z", "m": `{"k":[1]}`}
	if !reflect.DeepEqual(tbl.rows[0], want) {
		t.Fatalf("got %#v\nwant %#v", tbl.rows[0], want)
	}
	_, b = encode(t, Options{Format: "avro"}, []*events.Event{e})
	av, _ := readOCF(t, b)
	if !reflect.DeepEqual(av.rows[0], want) {
		t.Fatalf("avro got %#v\nwant %#v", av.rows[0], want)
	}
}

func TestAvroInferredNames(t *testing.T) {
	_, b := encode(t, Options{Format: "avro", Avro: &AvroOptions{Namespace: "my.ns", RecordName: "Row"}},
		inserts(`{"created-at":"x","a_b":1,"a-b":2,"1st":true,"ünï":"u"}`))
	tbl, r := readOCF(t, b)
	if want := []string{"_1st", "a_b_2", "a_b", "created_at", "_n_"}; !reflect.DeepEqual(tbl.names, want) {
		t.Fatalf("fields %v, want %v", tbl.names, want)
	}
	row := tbl.rows[0]
	if row["a_b"] != int64(1) || row["a_b_2"] != int64(2) || row["created_at"] != "x" || row["_1st"] != true || row["_n_"] != "u" {
		t.Fatalf("row %v", row)
	}
	if s := r.Codec().Schema(); !strings.Contains(s, `"my.ns.Row"`) && !strings.Contains(s, `"namespace":"my.ns"`) {
		t.Fatalf("schema %s", s)
	}
}
