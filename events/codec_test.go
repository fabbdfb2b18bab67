package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---- helpers ---------------------------------------------------------------

func mustMarshal(t testing.TB, e *Event) []byte {
	t.Helper()
	b, err := Marshal(e)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

func mustDecode(t testing.TB, c Codec, b []byte) *Event {
	t.Helper()
	e, err := c.Decode(b)
	if err != nil {
		t.Fatalf("%s.Decode(%s): %v", c.Name(), b, err)
	}
	return e
}

func mustAppend(t testing.TB, c Codec, e *Event) []byte {
	t.Helper()
	b, err := c.Append(nil, e)
	if err != nil {
		t.Fatalf("%s.Append: %v", c.Name(), err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s.Append wrote invalid JSON: %s", c.Name(), b)
	}
	return b
}

// sameEvent compares two events through their Rivven encoding, which covers
// every serialized field.
func sameEvent(t testing.TB, want, got *Event) {
	t.Helper()
	w, g := mustMarshal(t, want), mustMarshal(t, got)
	if !bytes.Equal(w, g) {
		t.Errorf("events differ\nwant %s\ngot  %s", w, g)
	}
}

func ptr[T any](v T) *T { return &v }

func jsonEqual(t testing.TB, want, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("JSON differs\nwant %s\ngot  %s", want, got)
	}
}

// ---- Rivven JSON goldens ---------------------------------------------------

// rivvenGoldens are events exactly as Rivven's serde_json writes them (plus
// our "key" and "source" extensions at the end). Decode followed by Marshal
// must give the same bytes back.
var rivvenGoldens = []struct {
	name string
	json string
}{
	{"insert/namespace-null", `{"event_type":"insert","stream":"users","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"id":1,"name":"Alice","email":"alice@example.com"},"metadata":{}}`},
	{"update/before-after", `{"event_type":"update","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.123Z","data":{"before":{"id":7,"status":"pending"},"after":{"id":7,"status":"shipped"}},"metadata":{"position":"0/16B3748","transaction_id":"771"}}`},
	{"update/before-null", `{"event_type":"update","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.123Z","data":{"before":null,"after":{"id":7,"status":"shipped"}},"metadata":{"position":"0/16B3748"}}`},
	{"delete", `{"event_type":"delete","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.123456Z","data":{"id":7,"status":"shipped"},"metadata":{"position":"0/16B37A0","transaction_id":"772","sequence":3}}`},
	{"record/full-metadata", `{"event_type":"record","stream":"clicks","namespace":null,"timestamp":"2024-01-15T10:30:00.123456789Z","data":{"url":"/pricing","ms":12},"metadata":{"position":"offset:42","transaction_id":"tx-1","sequence":18446744073709551615,"schema_id":4294967295,"schema_subject":"clicks-value","zeta":1,"alpha":{"nested":[1,2.5,"x",null,true]},"mid":"x","nothing":null,"flag":false}}`},
	{"record/schema-only", `{"event_type":"record","stream":"clicks","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"url":"/"},"metadata":{"schema_id":0,"schema_subject":"clicks-value"}}`},
	{"record/sequence-zero", `{"event_type":"record","stream":"s","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{},"metadata":{"sequence":0}}`},
	{"snapshot-read", `{"event_type":"insert","stream":"users","namespace":"app","timestamp":"1970-01-01T00:00:00Z","data":{"id":1},"metadata":{"position":"snapshot","snapshot":true}}`},
	{"snapshot-last", `{"event_type":"insert","stream":"users","namespace":"app","timestamp":"1970-01-01T00:00:00Z","data":{"id":1},"metadata":{"snapshot":"last"}}`},
	{"truncate", `{"event_type":"state","stream":"users","namespace":"app","timestamp":"2024-01-15T10:30:00Z","data":null,"metadata":{"control":"truncate"}}`},
	{"schema", `{"event_type":"schema","stream":"users","namespace":"app","timestamp":"2024-01-15T10:30:00Z","data":{"ddl":"ALTER TABLE users ADD COLUMN age int"},"metadata":{}}`},
	{"state", `{"event_type":"state","stream":"users","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"cursor":"abc"},"metadata":{}}`},
	{"log", `{"event_type":"log","stream":"connector","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"level":"info","message":"started"},"metadata":{}}`},
	{"timestamp/nanos", `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-02-29T23:59:59.000000001Z","data":{},"metadata":{}}`},
	{"timestamp/nanos-trailing-zero", `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-02-29T23:59:59.100000010Z","data":{},"metadata":{}}`},
	{"timestamp/micros", `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-02-29T23:59:59.000001Z","data":{},"metadata":{}}`},
	{"timestamp/millis-exact", `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00.100Z","data":{},"metadata":{}}`},
	{"timestamp/millis-999", `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2099-12-31T23:59:59.999Z","data":{},"metadata":{}}`},
	{"numbers", `{"event_type":"insert","stream":"accounts","namespace":"ledger","timestamp":"2024-01-15T10:30:00Z","data":{"i64max":9223372036854775807,"i64min":-9223372036854775808,"u64max":18446744073709551615,"decimal":12345678901234567890.123456789,"tiny":5e-324,"huge":1.7976931348623157e308,"neg":-0.0,"exp":1E+2,"arr":[18446744073709551615,12345678901234567890.123456789]},"metadata":{"sequence":9223372036854775807}}`},
	{"unicode-and-escapes", `{"event_type":"insert","stream":"événements","namespace":"schéma-😀","timestamp":"2024-01-15T10:30:00Z","data":{"s":"quote \" backslash \\ ctl \b\f\n\r\t \u0000\u001f html <a href=\"x\">&amp;</a> ü 中文 😀 \ud83d\ude00 \u00e9"},"metadata":{"position":"tx \"1\" \\ \b\f\n\r\t \u0001\u001f </script> & 'q' / ü 中文 😀 ` + "\u2028\u2029\x7f" + `","transaction_id":"\u0000","schema_subject":"sujet-é","k\"ey\n":"v","ключ":"значение"}}`},
	{"odd-spacing-in-data", `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{ "a" : 1 ,  "b":[ 1 , 2 ]
	},"metadata":{"extra":{ "x" : [ ] }}}`},
	{"data-scalars/string", `{"event_type":"record","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":"plain text","metadata":{}}`},
	{"data-scalars/number", `{"event_type":"record","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":12345678901234567890.123456789,"metadata":{}}`},
	{"data-scalars/array", `{"event_type":"record","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":[1,"two",{"three":3}],"metadata":{}}`},
	{"empty-strings", `{"event_type":"record","stream":"","namespace":"","timestamp":"2024-01-15T10:30:00Z","data":{"":""},"metadata":{"":""}}`},
	{"key/object", `{"event_type":"update","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.500Z","data":{"before":{"id":7},"after":{"id":7}},"metadata":{"position":"0/1"},"key":{"id":7}}`},
	{"key/string", `{"event_type":"insert","stream":"orders","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"id":7},"metadata":{},"key":"user-7"}`},
	{"source", `{"event_type":"insert","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.123456Z","data":{"id":7},"metadata":{"position":"lsn:24023128","transaction_id":"555"},"source":{"connector":"postgresql","database":"shop","schema":"public","table":"orders","position":"lsn:24023128","commit_ts":"2024-01-15T10:29:59.500Z","snapshot":true}}`},
	{"source/partial", `{"event_type":"insert","stream":"a<b>&c","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"id":7},"metadata":{},"source":{"connector":"http <&>","table":"a<b>&c"}}`},
	{"source/empty", `{"event_type":"insert","stream":"orders","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"id":7},"metadata":{},"source":{}}`},
	{"key-and-source", `{"event_type":"delete","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00Z","data":{"id":7},"metadata":{"position":"0/2","sequence":1,"op_ts":"x"},"key":{"id":7,"region":"eu"},"source":{"connector":"postgresql","table":"orders","commit_ts":"2024-01-15T10:29:59Z"}}`},
}

func TestRivvenGoldenRoundTrip(t *testing.T) {
	for _, g := range rivvenGoldens {
		t.Run(g.name, func(t *testing.T) {
			in := []byte(g.json)
			if !json.Valid(in) {
				t.Fatalf("golden is not valid JSON")
			}
			e := mustDecode(t, Rivven, in)
			out := mustMarshal(t, e)
			if !bytes.Equal(out, in) {
				t.Fatalf("round trip changed the bytes\nin  %s\nout %s", in, out)
			}
			// Append must append, not overwrite.
			pre := []byte("prefix:")
			out2, err := Rivven.Append(pre, e)
			if err != nil {
				t.Fatal(err)
			}
			if string(out2) != "prefix:"+g.json {
				t.Fatalf("Append with a prefix: %s", out2)
			}
			// DecodeAny and Unmarshal take the Rivven path.
			e2, err := Unmarshal(in)
			if err != nil {
				t.Fatal(err)
			}
			if out3 := mustMarshal(t, e2); !bytes.Equal(out3, in) {
				t.Fatalf("Unmarshal round trip\nin  %s\nout %s", in, out3)
			}
			// A clone encodes the same.
			if out4 := mustMarshal(t, e.Clone()); !bytes.Equal(out4, in) {
				t.Fatalf("Clone round trip\nin  %s\nout %s", in, out4)
			}
		})
	}
}

func TestRivvenGoldenFields(t *testing.T) {
	get := func(name string) *Event {
		for _, g := range rivvenGoldens {
			if g.name == name {
				return mustDecode(t, Rivven, []byte(g.json))
			}
		}
		t.Fatalf("no golden %q", name)
		return nil
	}

	e := get("insert/namespace-null")
	if e.Type != Insert || e.Stream != "users" || e.Namespace != nil || e.NamespaceOr("x") != "x" {
		t.Errorf("insert: %+v", e)
	}
	if !e.Timestamp.Equal(time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)) || e.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v", e.Timestamp)
	}
	if e.Key != nil || e.Source != nil {
		t.Errorf("key %s source %+v", e.Key, e.Source)
	}

	e = get("record/full-metadata")
	m := e.Metadata
	if m.Position != "offset:42" || m.TransactionID != "tx-1" || m.Sequence == nil || *m.Sequence != math.MaxUint64 ||
		m.SchemaID == nil || *m.SchemaID != math.MaxUint32 || m.SchemaSubject != "clicks-value" {
		t.Errorf("metadata %+v", m)
	}
	var keys []string
	for _, f := range m.Extra {
		keys = append(keys, f.Key)
	}
	if want := []string{"zeta", "alpha", "mid", "nothing", "flag"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("extra keys %v, want %v", keys, want)
	}
	if v, ok := m.Get("alpha"); !ok || string(v) != `{"nested":[1,2.5,"x",null,true]}` {
		t.Errorf("alpha = %s %v", v, ok)
	}
	if v, ok := m.Get("nothing"); !ok || string(v) != "null" {
		t.Errorf("nothing = %s %v", v, ok)
	}
	if _, ok := m.Get("position"); ok {
		t.Error("known keys must not show up as extra")
	}
	if !e.Timestamp.Equal(time.Date(2024, 1, 15, 10, 30, 0, 123456789, time.UTC)) {
		t.Errorf("timestamp %v", e.Timestamp)
	}

	e = get("record/schema-only")
	if e.Metadata.SchemaID == nil || *e.Metadata.SchemaID != 0 || e.Metadata.Sequence != nil {
		t.Errorf("metadata %+v", e.Metadata)
	}

	e = get("unicode-and-escapes")
	if e.Stream != "événements" || *e.Namespace != "schéma-😀" {
		t.Errorf("stream %q namespace %q", e.Stream, *e.Namespace)
	}
	if want := "tx \"1\" \\ \b\f\n\r\t \x01\x1f </script> & 'q' / ü 中文 😀 \u2028\u2029\x7f"; e.Metadata.Position != want {
		t.Errorf("position %q, want %q", e.Metadata.Position, want)
	}
	if e.Metadata.TransactionID != "\x00" {
		t.Errorf("transaction id %q", e.Metadata.TransactionID)
	}
	if v, ok := e.Metadata.Get("k\"ey\n"); !ok || string(v) != `"v"` {
		t.Errorf("escaped extra key: %s %v", v, ok)
	}
	row, err := e.Row()
	if err != nil {
		t.Fatal(err)
	}
	if want := "quote \" backslash \\ ctl \b\f\n\r\t \x00\x1f html <a href=\"x\">&amp;</a> ü 中文 😀 😀 é"; row["s"] != want {
		t.Errorf("data.s = %q, want %q", row["s"], want)
	}

	e = get("numbers")
	row, err = e.Row()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"i64max":  "9223372036854775807",
		"i64min":  "-9223372036854775808",
		"u64max":  "18446744073709551615",
		"decimal": "12345678901234567890.123456789",
		"tiny":    "5e-324",
		"neg":     "-0.0",
		"exp":     "1E+2",
	} {
		if n, ok := row[k].(json.Number); !ok || string(n) != want {
			t.Errorf("data.%s = %#v, want json.Number(%s)", k, row[k], want)
		}
	}
	if *e.Metadata.Sequence != math.MaxInt64 {
		t.Errorf("sequence %d", *e.Metadata.Sequence)
	}

	e = get("key/object")
	if string(e.Key) != `{"id":7}` {
		t.Errorf("key %s", e.Key)
	}
	e = get("key/string")
	if string(e.Key) != `"user-7"` {
		t.Errorf("key %s", e.Key)
	}

	e = get("source")
	want := &SourceInfo{Connector: "postgresql", Database: "shop", Schema: "public", Table: "orders",
		Position: "lsn:24023128", CommitTS: ptr(time.Date(2024, 1, 15, 10, 29, 59, 500_000_000, time.UTC)), Snapshot: true}
	if !reflect.DeepEqual(e.Source, want) {
		t.Errorf("source %+v, want %+v", e.Source, want)
	}
	e = get("source/empty")
	if e.Source == nil || *e.Source != (SourceInfo{}) {
		t.Errorf("source %+v", e.Source)
	}
}

// Events built in Go encode to exactly what serde would write.
func TestRivvenEncodeBuilt(t *testing.T) {
	seq := uint64(5)
	e := &Event{
		Type:      Update,
		Stream:    "orders",
		Namespace: ptr("public"),
		Timestamp: time.Date(2024, 1, 15, 11, 30, 0, 120_000_000, time.FixedZone("CET", 3600)),
		Data:      RawPayload([]byte(`{"before":{"id":1},"after":{"id":1,"note":"<b>"}}`)),
		Metadata:  Metadata{Position: "p", Sequence: &seq},
	}
	e.Metadata.Set("b", json.RawMessage(`2`))
	e.Metadata.Set("a", json.RawMessage(`1`))
	e.Metadata.Set("b", json.RawMessage(`3`)) // replaces, keeps the place
	e.Metadata.Set("nil", nil)
	want := `{"event_type":"update","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.120Z","data":{"before":{"id":1},"after":{"id":1,"note":"<b>"}},"metadata":{"position":"p","sequence":5,"b":3,"a":1,"nil":null}}`
	if got := mustMarshal(t, e); string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// Zero event: zero time, no data.
	got := mustMarshal(t, &Event{Type: Record})
	if want := `{"event_type":"record","stream":"","namespace":null,"timestamp":"0001-01-01T00:00:00Z","data":null,"metadata":{}}`; string(got) != want {
		t.Errorf("zero event: %s", got)
	}
	mustDecode(t, Rivven, got)
}

func TestAppendTimestamp(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), "2024-01-15T10:30:00Z"},
		{time.Date(2024, 1, 15, 10, 30, 0, 1_000_000, time.UTC), "2024-01-15T10:30:00.001Z"},
		{time.Date(2024, 1, 15, 10, 30, 0, 100_000_000, time.UTC), "2024-01-15T10:30:00.100Z"},
		{time.Date(2024, 1, 15, 10, 30, 0, 1_000, time.UTC), "2024-01-15T10:30:00.000001Z"},
		{time.Date(2024, 1, 15, 10, 30, 0, 120_000, time.UTC), "2024-01-15T10:30:00.000120Z"},
		{time.Date(2024, 1, 15, 10, 30, 0, 1, time.UTC), "2024-01-15T10:30:00.000000001Z"},
		{time.Date(2024, 1, 15, 10, 30, 0, 999_999_999, time.UTC), "2024-01-15T10:30:00.999999999Z"},
		{time.Date(2024, 1, 15, 12, 30, 0, 0, time.FixedZone("", 2*3600)), "2024-01-15T10:30:00Z"},
		{time.Time{}, "0001-01-01T00:00:00Z"},
	} {
		if got := string(AppendTimestamp(nil, c.t)); got != c.want {
			t.Errorf("AppendTimestamp(%v) = %s, want %s", c.t, got, c.want)
		}
		got, err := parseTimestamp([]byte(`"` + c.want + `"`))
		if err != nil || !got.Equal(c.t) || got.Location() != time.UTC {
			t.Errorf("parseTimestamp(%s) = %v, %v", c.want, got, err)
		}
	}
}

func TestTimestampParsing(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2024-01-15T10:30:00+02:00":           time.Date(2024, 1, 15, 8, 30, 0, 0, time.UTC),
		"2024-01-15T10:30:00.5-01:30":         time.Date(2024, 1, 15, 12, 0, 0, 500_000_000, time.UTC),
		"2024-01-15T10:30:00.123456789+00:00": time.Date(2024, 1, 15, 10, 30, 0, 123456789, time.UTC),
		"2024-02-29T00:00:00Z":                time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		"9999-12-31T23:59:59.999999999Z":      time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"0000-01-01T00:00:00Z":                time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseTimestamp([]byte(`"` + in + `"`))
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseTimestamp(%s) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "2024-01-15", "2024-01-15 10:30:00Z", "2024-01-15T10:30:00", "1705314600",
		"2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-01-15T24:00:00Z",
		"2024-01-15T10:60:00Z", "2024-01-15T10:30:61Z", "2024-01-15T10:30:00.Z", "2024-1-15T10:30:00Z",
		"2024-01-15T10:30:00+2:00", "2024-01-15T10:30:00ZZ", "Mon, 15 Jan 2024 10:30:00 GMT",
		"0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
	} {
		if got, err := parseTimestamp([]byte(`"` + in + `"`)); err == nil {
			t.Errorf("parseTimestamp(%q) = %v, want an error", in, got)
		}
	}
}

// ---- payload laziness ------------------------------------------------------

func TestPayloadUntouched(t *testing.T) {
	in := []byte(`{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data"  :  {"a" : 1 , "big": 18446744073709551615, "d": 1.50 } ,"metadata":{}}`)
	e := mustDecode(t, Rivven, in)
	if e.Data.Changed() {
		t.Error("fresh payload reports a change")
	}
	raw, err := e.Data.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"a" : 1 , "big": 18446744073709551615, "d": 1.50 }` {
		t.Fatalf("data bytes %q", raw)
	}
	// The payload is a window into the input, not a copy.
	if &raw[0] != &in[bytes.Index(in, []byte(`{"a"`))] {
		t.Error("data was copied")
	}
	out := mustMarshal(t, e)
	want := `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"a" : 1 , "big": 18446744073709551615, "d": 1.50 },"metadata":{}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}

	// Reading does not change the bytes either.
	v, err := e.Data.Value()
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != json.Number("1") || m["big"] != json.Number("18446744073709551615") || m["d"] != json.Number("1.50") {
		t.Errorf("value %#v", m)
	}
	if e.Data.Changed() {
		t.Error("Value marked the payload changed")
	}
	if out := mustMarshal(t, e); string(out) != want {
		t.Fatalf("after Value: %s", out)
	}
	// Value is cached.
	v2, _ := e.Data.Value()
	if reflect.ValueOf(v2).Pointer() != reflect.ValueOf(v).Pointer() {
		t.Error("Value decoded twice")
	}

	// Mutable: the change shows up, the rest keeps its value, numbers stay exact.
	v, err = e.Data.Mutable()
	if err != nil {
		t.Fatal(err)
	}
	v.(map[string]any)["a"] = json.Number("2")
	v.(map[string]any)["html"] = "<&>"
	if !e.Data.Changed() {
		t.Error("Mutable did not mark the payload changed")
	}
	out = mustMarshal(t, e)
	want = `{"event_type":"insert","stream":"t","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"a":2,"big":18446744073709551615,"d":1.50,"html":"<&>"},"metadata":{}}`
	if string(out) != want {
		t.Fatalf("after Mutable\ngot  %s\nwant %s", out, want)
	}
	// The input was not written to.
	if !bytes.Contains(in, []byte(`{"a" : 1 ,`)) {
		t.Error("input changed")
	}
}

func TestPayloadUpdateMutable(t *testing.T) {
	in := []byte(rivvenGoldens[1].json)
	e := mustDecode(t, Rivven, in)
	after, err := e.After()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Data.Mutable(); err != nil {
		t.Fatal(err)
	}
	after["status"] = "delivered"
	got, err := e.Data.JSON()
	if err != nil {
		t.Fatal(err)
	}
	// serde_json's default Map is a BTreeMap: keys come out sorted.
	if want := `{"after":{"id":7,"status":"delivered"},"before":{"id":7,"status":"pending"}}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e2 := mustDecode(t, Rivven, mustMarshal(t, e))
	a2, _ := e2.After()
	b2, _ := e2.Before()
	if a2["status"] != "delivered" || b2["status"] != "pending" {
		t.Errorf("after %v before %v", a2, b2)
	}
}

func TestPayloadSetAndValuePayload(t *testing.T) {
	var p Payload
	if v, err := p.Value(); v != nil || err != nil {
		t.Errorf("empty payload: %v %v", v, err)
	}
	if b, _ := p.AppendJSON(nil); string(b) != "null" {
		t.Errorf("empty payload JSON %s", b)
	}
	p.Set(map[string]any{"z": 1, "a": []any{"x", json.Number("1.0"), nil, true}, "s": "\u2028<>"})
	b, err := p.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":["x",1.0,null,true],"s":"` + "\u2028" + `<>","z":1}`; string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	vp := ValuePayload([]int{1, 2})
	if b, _ := vp.JSON(); string(b) != "[1,2]" {
		t.Errorf("ValuePayload JSON %s", b)
	}
	bad := ValuePayload(func() {})
	if _, err := bad.JSON(); err == nil {
		t.Error("encoding a func should fail")
	}
	e := &Event{Type: Insert, Data: bad}
	if _, err := Marshal(e); err == nil {
		t.Error("Marshal with unencodable data should fail")
	}
	// Invalid raw JSON is reported by Value, not hidden.
	rp := RawPayload([]byte(`{"a":`))
	if _, err := rp.Value(); err == nil {
		t.Error("Value of truncated JSON should fail")
	}
	rp = RawPayload([]byte(`{"a":1} {"b":2}`))
	if _, err := rp.Value(); err == nil {
		t.Error("Value of two documents should fail")
	}
	if _, err := rp.Object(); err == nil {
		t.Error("Object of two documents should fail")
	}
	rp = RawPayload([]byte(` [1] `))
	if _, err := rp.Object(); err == nil || !strings.Contains(err.Error(), "not an object") {
		t.Errorf("Object of an array: %v", err)
	}
}

func TestPayloadValueTypes(t *testing.T) {
	p := RawPayload([]byte(` {"s":"a\u00e9\ud83d\ude00\n","n":-1.5e10,"t":true,"f":false,"z":null,"a":[{},[],""],"o":{"k":{"k":"v"}},"dup":1,"dup":2} `))
	v, err := p.Value()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"s": "aé😀\n", "n": json.Number("-1.5e10"), "t": true, "f": false, "z": nil,
		"a": []any{map[string]any{}, []any{}, ""}, "o": map[string]any{"k": map[string]any{"k": "v"}}, "dup": json.Number("2"),
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got  %#v\nwant %#v", v, want)
	}
	// Same result as encoding/json with UseNumber.
	d := json.NewDecoder(bytes.NewReader(p.raw))
	d.UseNumber()
	var std any
	if err := d.Decode(&std); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, std) {
		t.Errorf("differs from encoding/json\nours %#v\nstd  %#v", v, std)
	}
}

// ---- After / Before / Row --------------------------------------------------

func TestAfterBeforeRow(t *testing.T) {
	row := `{"id":1,"name":"a"}`
	prev := `{"id":1,"name":"b"}`
	type want struct{ after, before, row string }
	for _, c := range []struct {
		typ  Type
		data string
		want want
	}{
		{Insert, row, want{row, "", row}},
		{Record, row, want{row, "", row}},
		{SnapshotRead, row, want{row, "", row}},
		{Update, `{"before":` + prev + `,"after":` + row + `}`, want{row, prev, row}},
		{Update, `{"before":null,"after":` + row + `}`, want{row, "", row}},
		{Update, `{"after":` + row + `}`, want{row, "", row}},
		{Delete, prev, want{"", prev, prev}},
		{Truncate, `null`, want{"", "", ""}},
		{Schema, `{"ddl":"x"}`, want{"", "", ""}},
		{State, `{"cursor":1}`, want{"", "", ""}},
		{Log, `{"msg":"x"}`, want{"", "", ""}},
		{Insert, `null`, want{"", "", ""}},
	} {
		e := &Event{Type: c.typ, Data: RawPayload([]byte(c.data))}
		check := func(what string, got map[string]any, err error, w string) {
			t.Helper()
			if err != nil {
				t.Errorf("%s %s(%s): %v", c.typ, what, c.data, err)
				return
			}
			if w == "" {
				if got != nil {
					t.Errorf("%s %s(%s) = %v, want nil", c.typ, what, c.data, got)
				}
				return
			}
			var wm map[string]any
			d := json.NewDecoder(strings.NewReader(w))
			d.UseNumber()
			_ = d.Decode(&wm)
			if !reflect.DeepEqual(got, wm) {
				t.Errorf("%s %s(%s) = %v, want %v", c.typ, what, c.data, got, wm)
			}
		}
		a, err := e.After()
		check("After", a, err, c.want.after)
		b, err := e.Before()
		check("Before", b, err, c.want.before)
		r, err := e.Row()
		check("Row", r, err, c.want.row)
	}

	// Shape errors are reported.
	for _, c := range []struct {
		typ  Type
		data string
	}{
		{Insert, `[1]`}, {Insert, `"s"`}, {Update, `[1]`}, {Update, `{"after":[1]}`},
		{Update, `{"after":"x"}`}, {Insert, `{"a":`},
	} {
		e := &Event{Type: c.typ, Data: RawPayload([]byte(c.data))}
		if _, err := e.Row(); err == nil {
			t.Errorf("%s Row(%s): want an error", c.typ, c.data)
		}
	}
	e := &Event{Type: Update, Data: RawPayload([]byte(`{"before":"x","after":{}}`))}
	if _, err := e.Before(); err == nil {
		t.Error("Before of a non-object before: want an error")
	}
}

// ---- decode errors ---------------------------------------------------------

func TestRivvenDecodeErrors(t *testing.T) {
	const good = `{"event_type":"insert","stream":"s","namespace":null,"timestamp":"2024-01-15T10:30:00Z","data":{"a":1},"metadata":{}}`
	if _, err := Rivven.Decode([]byte(good)); err != nil {
		t.Fatalf("the base case does not decode: %v", err)
	}
	sub := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the base case", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	for _, c := range []struct {
		name, in, want string
	}{
		{"empty", ``, "expected object"},
		{"space", `   `, "expected object"},
		{"null", `null`, "expected object"},
		{"array", `[]`, "expected object"},
		{"string", `"x"`, "expected object"},
		{"open brace", `{`, ""},
		{"missing event_type", sub(`"event_type":"insert",`, ""), "missing event_type"},
		{"missing timestamp", sub(`"timestamp":"2024-01-15T10:30:00Z",`, ""), "missing timestamp"},
		{"unknown event_type", sub(`"insert"`, `"upsert"`), `unknown event_type "upsert" (allowed: record, insert, update, delete, state, log, schema)`},
		{"event_type case", sub(`"insert"`, `"INSERT"`), `unknown event_type "INSERT"`},
		{"event_type null", sub(`"insert"`, `null`), "event_type"},
		{"event_type number", sub(`"insert"`, `1`), "event_type"},
		{"stream number", sub(`"s"`, `1`), "stream"},
		{"namespace number", sub(`"namespace":null`, `"namespace":1`), "namespace"},
		{"truncated", good[:len(good)/2], "unexpected end"},
		{"truncated in string", good[:20], "unexpected end"},
		{"truncated before brace", good[:len(good)-1], "unexpected end"},
		{"trailing garbage", good + "x", "trailing data"},
		{"trailing object", good + "{}", "trailing data"},
		{"trailing comma", good[:len(good)-1] + ",}", "expected object key"},
		{"missing colon", sub(`"stream":`, `"stream" `), "expected ':'"},
		{"missing comma", sub(`,"stream"`, ` "stream"`), "expected ',' or '}'"},
		{"single quotes", sub(`"s"`, `'s'`), "unexpected character"},
		{"bad escape", sub(`"s"`, `"a\qb"`), "invalid escape"},
		{"bad unicode escape", sub(`"s"`, `"a\u12G4"`), `invalid \u escape`},
		{"short unicode escape", sub(`"s"`, `"a\u12"`), `invalid \u escape`},
		{"control char", sub(`"s"`, "\"a\x01b\""), "control character"},
		{"raw newline", sub(`"s"`, "\"a\nb\""), "control character"},
		{"raw tab in data", sub(`{"a":1}`, "{\"a\":\"\t\"}"), "control character"},
		{"bad escape in data", sub(`{"a":1}`, `{"a":"\x41"}`), "invalid escape"},
		{"number 01", sub(`{"a":1}`, `{"a":01}`), "invalid number"},
		{"number -01", sub(`{"a":1}`, `{"a":-01}`), "invalid number"},
		{"number 1.", sub(`{"a":1}`, `{"a":1.}`), "invalid number"},
		{"number .5", sub(`{"a":1}`, `{"a":.5}`), "unexpected character"},
		{"number -", sub(`{"a":1}`, `{"a":-}`), "invalid number"},
		{"number 1e", sub(`{"a":1}`, `{"a":1e}`), "invalid number"},
		{"number +1", sub(`{"a":1}`, `{"a":+1}`), "unexpected character"},
		{"number NaN", sub(`{"a":1}`, `{"a":NaN}`), "unexpected character"},
		{"literal tru", sub(`{"a":1}`, `{"a":tru}`), "invalid literal"},
		{"literal nul", sub(`"namespace":null`, `"namespace":nul`), "invalid literal"},
		{"data unclosed array", sub(`{"a":1}`, `{"a":[1,2}`), "expected ',' or ']'"},
		{"data trailing comma", sub(`{"a":1}`, `{"a":1,}`), "expected object key"},
		{"data deep nesting", sub(`{"a":1}`, strings.Repeat("[", 5000)+strings.Repeat("]", 5000)), "nesting too deep"},
		{"timestamp not RFC 3339", sub(`"2024-01-15T10:30:00Z"`, `"2024-01-15 10:30:00"`), "not RFC 3339"},
		{"timestamp no zone", sub(`"2024-01-15T10:30:00Z"`, `"2024-01-15T10:30:00"`), "not RFC 3339"},
		{"timestamp bad month", sub(`"2024-01-15T10:30:00Z"`, `"2024-13-15T10:30:00Z"`), "not RFC 3339"},
		{"timestamp number", sub(`"2024-01-15T10:30:00Z"`, `1705314600`), "timestamp"},
		{"timestamp null", sub(`"2024-01-15T10:30:00Z"`, `null`), "timestamp"},
		{"metadata array", sub(`"metadata":{}`, `"metadata":[]`), "expected object"},
		{"metadata sequence negative", sub(`"metadata":{}`, `"metadata":{"sequence":-1}`), "sequence"},
		{"metadata sequence float", sub(`"metadata":{}`, `"metadata":{"sequence":1.5}`), "sequence"},
		{"metadata sequence string", sub(`"metadata":{}`, `"metadata":{"sequence":"1"}`), "sequence"},
		{"metadata sequence overflow", sub(`"metadata":{}`, `"metadata":{"sequence":18446744073709551616}`), "sequence"},
		{"metadata schema_id overflow", sub(`"metadata":{}`, `"metadata":{"schema_id":4294967296}`), "schema_id"},
		{"metadata position number", sub(`"metadata":{}`, `"metadata":{"position":1}`), "position"},
		{"metadata transaction_id object", sub(`"metadata":{}`, `"metadata":{"transaction_id":{}}`), "transaction_id"},
		{"source not object", sub(`"metadata":{}`, `"metadata":{},"source":1`), "source"},
		{"source bad field", sub(`"metadata":{}`, `"metadata":{},"source":{"table":1}`), "source"},
		{"source bad commit_ts", sub(`"metadata":{}`, `"metadata":{},"source":{"commit_ts":"yesterday"}`), "commit_ts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Rivven.Decode([]byte(c.in))
			if err == nil {
				t.Fatalf("no error; decoded %+v", e)
			}
			if e != nil {
				t.Errorf("an event came back with the error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "rivven event: ") {
				t.Errorf("error %q does not say what was decoded", err)
			}
		})
	}
}

// Things serde accepts that a strict scanner might not.
func TestRivvenDecodeLenient(t *testing.T) {
	for _, in := range []string{
		// white space everywhere
		" \t\r\n{ \"event_type\" : \"insert\" , \"stream\" : \"s\" , \"namespace\" : null , \"timestamp\" : \"2024-01-15T10:30:00Z\" , \"data\" : { } , \"metadata\" : { } } \n",
		// another field order, unknown fields, absent namespace/metadata/data
		`{"timestamp":"2024-01-15T10:30:00Z","unknown":[1,{"x":null}],"event_type":"insert","stream":"s"}`,
		// escaped key names
		`{"event\u005ftype":"insert","stream":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"posit\u0069on":"p"}}`,
		// null metadata fields, as if written by a serializer without skip_serializing_if
		`{"event_type":"insert","stream":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"position":null,"transaction_id":null,"sequence":null,"schema_id":null,"schema_subject":null}}`,
		`{"event_type":"insert","stream":"s","timestamp":"2024-01-15T10:30:00Z","metadata":null,"key":null,"source":null}`,
		// escaped slash
		`{"event_type":"insert","stream":"a\/b","timestamp":"2024-01-15T10:30:00Z"}`,
	} {
		e, err := Rivven.Decode([]byte(in))
		if err != nil {
			t.Errorf("Decode(%s): %v", in, err)
			continue
		}
		if e.Type != Insert || (e.Stream != "s" && e.Stream != "a/b") {
			t.Errorf("Decode(%s) = %+v", in, e)
		}
		out := mustMarshal(t, e)
		if strings.Contains(in, `"position":null`) && !bytes.Contains(out, []byte(`"metadata":{}`)) {
			t.Errorf("null metadata fields were kept: %s", out)
		}
		e2 := mustDecode(t, Rivven, out)
		sameEvent(t, e, e2)
	}
	e := mustDecode(t, Rivven, []byte(`{"event\u005ftype":"insert","stream":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"posit\u0069on":"p"}}`))
	if e.Metadata.Position != "p" || len(e.Metadata.Extra) != 0 {
		t.Errorf("escaped metadata key: %+v", e.Metadata)
	}
	e = mustDecode(t, Rivven, []byte(`{"event_type":"insert","stream":"s","timestamp":"2024-01-15T10:30:00Z","metadata":{"sequence":null,"x":1}}`))
	if e.Metadata.Sequence != nil || len(e.Metadata.Extra) != 1 {
		t.Errorf("null sequence: %+v", e.Metadata)
	}
	seq := uint64(3)
	e.Metadata.Sequence = &seq
	if out := mustMarshal(t, e); bytes.Count(out, []byte(`"sequence"`)) != 1 {
		t.Errorf("duplicate sequence key: %s", out)
	}
	// Invalid UTF-8 becomes U+FFFD, as with encoding/json.
	e = mustDecode(t, Rivven, []byte("{\"event_type\":\"insert\",\"stream\":\"a\xffb\",\"timestamp\":\"2024-01-15T10:30:00Z\"}"))
	if e.Stream != "a\uFFFDb" {
		t.Errorf("stream %q", e.Stream)
	}
	// Lone surrogates too.
	e = mustDecode(t, Rivven, []byte(`{"event_type":"insert","stream":"a\ud800b\udc00","timestamp":"2024-01-15T10:30:00Z"}`))
	if e.Stream != "a\uFFFDb\uFFFD" {
		t.Errorf("stream %q", e.Stream)
	}
}

func TestDecodeNeverPanics(t *testing.T) {
	// Every prefix of every golden, and single-byte corruptions of them.
	var inputs [][]byte
	for _, g := range rivvenGoldens {
		b := []byte(g.json)
		for i := range b {
			inputs = append(inputs, b[:i])
		}
		for _, r := range []byte{0, '"', '\\', '{', '}', '[', ']', ':', ',', 'n', '1', '-', 0xff} {
			for i := 0; i < len(b); i += 7 {
				c := bytes.Clone(b)
				c[i] = r
				inputs = append(inputs, c)
			}
		}
	}
	for _, in := range inputs {
		for _, c := range []Codec{Rivven, Debezium, CloudEvents} {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s.Decode(%q) panicked: %v", c.Name(), in, r)
					}
				}()
				e, err := c.Decode(in)
				if err == nil {
					if _, err := Marshal(e); err != nil {
						t.Fatalf("%s.Decode(%q) gave an event that does not encode: %v", c.Name(), in, err)
					}
					_, _ = e.Row()
				}
			}()
		}
		_, _ = DecodeAny(in)
	}
}

// ---- Debezium --------------------------------------------------------------

func debeziumRoundTripEvents() []*Event {
	seq := uint64(4)
	base := time.Date(2024, 1, 15, 10, 30, 0, 123_456_789, time.UTC)
	return []*Event{
		{Type: Insert, Stream: "orders", Namespace: ptr("public"), Timestamp: base,
			Data:     RawPayload([]byte(`{"id":1,"total":12345678901234567890.123456789}`)),
			Metadata: Metadata{Position: "lsn:100", TransactionID: "tx1", Sequence: &seq}},
		{Type: Record, Stream: "clicks", Timestamp: base, Data: RawPayload([]byte(`{"url":"/"}`))},
		{Type: SnapshotRead, Stream: "orders", Namespace: ptr("public"), Timestamp: base,
			Data: RawPayload([]byte(`{"id":2}`)), Metadata: Metadata{Position: "snap"}},
		{Type: Update, Stream: "orders", Namespace: ptr("public"), Timestamp: base,
			Data:     RawPayload([]byte(`{"before":{"id":3,"s":"a"},"after":{"id":3,"s":"b"}}`)),
			Metadata: Metadata{Position: "lsn:101", TransactionID: "tx2"}},
		{Type: Update, Stream: "orders", Timestamp: base,
			Data: RawPayload([]byte(`{"before":null,"after":{"id":3,"s":"b"}}`))},
		{Type: Delete, Stream: "orders", Namespace: ptr("public"), Timestamp: base,
			Data: RawPayload([]byte(`{"id":3,"s":"b"}`)), Metadata: Metadata{Position: "lsn:102", TransactionID: "tx3"}},
		{Type: Truncate, Stream: "orders", Namespace: ptr("public"), Timestamp: base},
		{Type: Insert, Stream: "orders", Timestamp: base, Data: RawPayload([]byte(`{"id":4}`)),
			Source: &SourceInfo{Connector: "postgresql", Database: "shop", Schema: "sales", Table: "orders", Position: "0/7",
				CommitTS: ptr(base.Add(-time.Second)), Snapshot: true}},
	}
}

func TestDebeziumRoundTrip(t *testing.T) {
	opts := DefaultDebeziumOptions()
	opts.SkippedOperations = "none"
	dbz := fixedDebezium(t, opts, time.Date(2024, 1, 15, 10, 31, 0, 0, time.UTC))
	for _, e := range debeziumRoundTripEvents() {
		t.Run(string(e.Type), func(t *testing.T) {
			b := mustAppend(t, dbz, e)
			var env map[string]any
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatal(err)
			}
			if env["op"] != e.Type.Op() {
				t.Errorf("op %v", env["op"])
			}
			for _, k := range []string{"before", "after", "source", "op", "ts_ms"} {
				if _, ok := env[k]; !ok {
					t.Errorf("envelope lacks %q: %s", k, b)
				}
			}
			d := mustDecode(t, dbz, b)
			wantType := e.Type
			if wantType == Record {
				wantType = Insert // Debezium has no record op
			}
			if d.Type != wantType {
				t.Errorf("type %s, want %s", d.Type, wantType)
			}
			if d.Stream != e.Stream {
				t.Errorf("stream %q, want %q", d.Stream, e.Stream)
			}
			// The event time is the commit time, to the nanosecond (source.ts_ns).
			wantTS := e.Timestamp
			if e.Source != nil && e.Source.CommitTS != nil {
				wantTS = *e.Source.CommitTS
			}
			if !d.Timestamp.Equal(wantTS) {
				t.Errorf("timestamp %v, want %v", d.Timestamp, wantTS)
			}
			wantPos := e.Metadata.Position
			if e.Source != nil && e.Source.Position != "" {
				wantPos = e.Source.Position
			}
			if d.Metadata.Position != wantPos {
				t.Errorf("metadata %+v", d.Metadata)
			}
			if e.NamespaceOr("") != "" && e.Source == nil && d.NamespaceOr("") != e.NamespaceOr("") {
				t.Errorf("namespace %q, want %q", d.NamespaceOr(""), e.NamespaceOr(""))
			}
			if e.Type == Truncate {
				if v, _ := d.Data.Value(); v != nil {
					t.Errorf("truncate data %v", v)
				}
			} else {
				want, _ := e.Data.JSON()
				got, _ := d.Data.JSON()
				jsonEqual(t, want, got)
			}
			if d.Source == nil || d.Source.Snapshot != (e.Type == SnapshotRead || e.Source != nil && e.Source.Snapshot) {
				t.Errorf("source %+v", d.Source)
			}
			if e.Source != nil {
				s := d.Source
				if s.Connector != "postgresql" || s.Database != "shop" || s.Schema != "sales" || s.Table != "orders" ||
					s.CommitTS == nil || !s.CommitTS.Equal(*e.Source.CommitTS) {
					t.Errorf("source %+v", s)
				}
			}
			// Re-encoding the decoded event gives the same envelope.
			if b2 := mustAppend(t, dbz, d); e.Source != nil && !bytes.Equal(b, b2) {
				t.Errorf("re-encode differs\n1 %s\n2 %s", b, b2)
			}
			// Rivven round trip of the decoded event.
			sameEvent(t, d, mustDecode(t, Rivven, mustMarshal(t, d)))
		})
	}
}

func TestDebeziumEncodeShape(t *testing.T) {
	e := &Event{Type: Update, Stream: "orders", Namespace: ptr("public"),
		Timestamp: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC),
		Data:      RawPayload([]byte(`{"after":{"id":3},"before":{"id":2}}`)),
		Metadata:  Metadata{Position: "lsn:1", TransactionID: "t<1>", Sequence: ptr(uint64(9))}}
	opts := DefaultDebeziumOptions()
	opts.ProvideTransactionMetadata = true
	got := string(mustAppend(t, fixedDebezium(t, opts, time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC)), e))
	want := `{"before":{"id":2},"after":{"id":3},"source":{"version":"rivven-connect","connector":"rivven","name":"orders","ts_ms":1705314600000,"ts_us":1705314600000000,"ts_ns":1705314600000000000,"snapshot":"false","db":"","schema":"public","table":"orders","position":"lsn:1"},"op":"u","ts_ms":1705314601000,"ts_us":1705314601000000,"ts_ns":1705314601000000000,"transaction":{"id":"t<1>","total_order":9}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// CDC sources' source blocks carry what Debezium's connector for the same
// database would: sequence, txId, lsn and xmin (PostgreSQL), server_id,
// gtid, file, pos and row (MySQL), and decode back.
func TestDebeziumSourceFields(t *testing.T) {
	ts := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		src     SourceInfo
		txid    string
		want    string
		backPos string
	}{
		{SourceInfo{Connector: "postgres-cdc", Name: "pg1", Database: "shop", Schema: "public", Table: "orders", Position: "0/16B3748", LastCommit: "0/16B3740"}, "771",
			`"name":"pg1","ts_ms":1705314600000,"ts_us":1705314600000000,"ts_ns":1705314600000000000,"snapshot":"false","db":"shop","sequence":"[\"23803712\",\"23803720\"]","schema":"public","table":"orders","txId":771,"lsn":23803720,"xmin":null}`, "0/16B3748"},
		{SourceInfo{Connector: "mysql-cdc", Database: "shop", Table: "orders", Position: "mariadb-bin.000003:4711", Commit: "mariadb-bin.000003:4711"}, "0-1-42",
			`"table":"orders","server_id":0,"gtid":"0-1-42","file":"mariadb-bin.000003","pos":4711,"row":0,"thread":null,"query":null}`, "mariadb-bin.000003:4711"},
		{SourceInfo{Connector: "mysql-cdc", Database: "shop", Table: "orders", Position: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-23", Commit: "binlog.000002:120"}, "3E11FA47-71CA-11E1-9E33-C80AA9429562:23",
			`"gtid":"3E11FA47-71CA-11E1-9E33-C80AA9429562:23","file":"binlog.000002","pos":120,`, "binlog.000002:120"},
	} {
		src := c.src
		e := &Event{Type: Insert, Stream: "orders", Timestamp: ts, Data: RawPayload([]byte(`{"id":1}`)), Source: &src, Metadata: Metadata{TransactionID: c.txid}}
		got := string(mustAppend(t, Debezium, e))
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: %s\nwant it to contain %s", src.Position, got, c.want)
		}
		back, err := Debezium.Decode([]byte(got))
		if err != nil || back.Source.Position != c.backPos || back.Metadata.TransactionID != c.txid {
			t.Errorf("%s: decoded back %+v %+v, %v", src.Position, back, back.Source, err)
		}
	}
}

// With schema_changes_topic, schema events become records of Debezium's
// schema change topic, and come back.
func TestDebeziumSchemaChange(t *testing.T) {
	e := &Event{Type: Schema, Stream: "orders", Namespace: ptr("public"), Timestamp: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC),
		Data:   RawPayload([]byte(`{"schema":"public","table":"orders","columns":[{"name":"id","type":"bigint","key":true,"nullable":false},{"name":"note","type":"character varying(20)","nullable":true}],"primary_key":["id"]}`)),
		Source: &SourceInfo{Connector: "postgres-cdc", Database: "shop", Schema: "public", Table: "orders"}}
	opts := DefaultDebeziumOptions()
	opts.SchemaChangesTopic = "pg1.schema-changes"
	c := fixedDebezium(t, opts, time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC))
	if topic, ok := c.(Diverter).Divert(e); !ok || topic != "pg1.schema-changes" {
		t.Fatalf("divert %q %v", topic, ok)
	}
	got := string(mustAppend(t, c, e))
	for _, want := range []string{`"databaseName":"shop"`, `"schemaName":"public"`, `"ddl":null`,
		`"tableChanges":[{"type":"ALTER","id":"\"public\".\"orders\"","table":{"defaultCharsetName":null,"primaryKeyColumnNames":["id"],"columns":[` +
			`{"name":"id","jdbcType":-5,"typeName":"BIGINT","typeExpression":"BIGINT","position":1,"optional":false},` +
			`{"name":"note","jdbcType":12,"typeName":"CHARACTER VARYING","typeExpression":"CHARACTER VARYING(20)","position":2,"optional":true}]}}]}`} {
		if !strings.Contains(got, want) {
			t.Errorf("%s\nwant it to contain %s", got, want)
		}
	}
	back, err := Debezium.Decode([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if back.Type != Schema || back.Stream != "orders" {
		t.Fatalf("decoded %+v", back)
	}
}

func TestDebeziumEncodeErrors(t *testing.T) {
	for _, typ := range []Type{State, Log, Type("bogus")} {
		e := &Event{Type: typ, Stream: "s", Data: RawPayload([]byte(`{}`))}
		b, err := Debezium.Append([]byte("keep"), e)
		if err == nil {
			t.Errorf("%s: no error", typ)
		} else if !strings.Contains(err.Error(), "Debezium") {
			t.Errorf("%s: %v", typ, err)
		}
		if string(b) != "keep" {
			t.Errorf("%s: dst changed to %q", typ, b)
		}
	}
	e := &Event{Type: Update, Stream: "s", Data: RawPayload([]byte(`[1]`))}
	if _, err := Debezium.Append(nil, e); err == nil {
		t.Error("update with non-object data: no error")
	}
}

// Hand-written from the documented Debezium PostgreSQL connector format.
const (
	pgSchema = `{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"},{"type":"string","optional":true,"field":"event_type"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"first_name"},{"type":"string","optional":false,"field":"last_name"},{"type":"string","optional":false,"field":"email"},{"type":"string","optional":true,"field":"event_type"}],"optional":true,"name":"PostgreSQL_server.inventory.customers.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"boolean","optional":true,"default":false,"field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],"optional":false,"name":"PostgreSQL_server.inventory.customers.Envelope"}`

	pgCreate = `{
  "before": null,
  "after": {"id": 1004, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org", "event_type": "signup"},
  "source": {
    "version": "2.5.0.Final",
    "connector": "postgresql",
    "name": "PostgreSQL_server",
    "ts_ms": 1559033904863,
    "snapshot": "false",
    "db": "postgres",
    "sequence": "[\"24023119\",\"24023128\"]",
    "schema": "inventory",
    "table": "customers",
    "txId": 555,
    "lsn": 24023128,
    "xmin": null
  },
  "op": "c",
  "ts_ms": 1559033904964,
  "transaction": null
}`

	pgUpdate = `{"before":{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org","event_type":"signup"},"after":{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org","event_type":"signup"},"source":{"version":"2.5.0.Final","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"snapshot":"false","db":"postgres","sequence":"[\"24023128\",\"24023200\"]","schema":"inventory","table":"customers","txId":556,"lsn":24023200,"xmin":null},"op":"u","ts_ms":1559033904965,"transaction":{"id":"556:24023200","total_order":2,"data_collection_order":1}}`

	pgDelete = `{"before":{"id":1004,"first_name":null,"last_name":null,"email":null,"event_type":null},"after":null,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033904863,"snapshot":"false","db":"postgres","schema":"inventory","table":"customers","txId":557,"lsn":46523128,"xmin":null},"op":"d","ts_ms":1559033904966}`

	pgRead = `{"before":null,"after":{"id":1001,"first_name":"Sally","last_name":"Thomas","email":"sally.thomas@acme.com","event_type":null},"source":{"version":"2.5.0.Final","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033900000,"snapshot":"last","db":"postgres","schema":"inventory","table":"customers","txId":550,"lsn":24020000,"xmin":null},"op":"r","ts_ms":1559033900100}`

	pgTruncate = `{"before":null,"after":null,"source":{"version":"2.5.0.Final","connector":"postgresql","name":"PostgreSQL_server","ts_ms":1559033905000,"snapshot":"false","db":"postgres","schema":"inventory","table":"customers","txId":560,"lsn":24030000,"xmin":null},"op":"t","ts_ms":1559033905050}`

	mysqlUpdate = `{
  "before": {"id": 1004, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org", "balance": 12345678901234567890.123456789},
  "after": {"id": 1004, "first_name": "Anne Marie", "last_name": "Kretchmar", "email": "annek@noanswer.org", "balance": 12345678901234567890.123456789},
  "source": {
    "version": "2.5.0.Final",
    "name": "mysql-server-1",
    "connector": "mysql",
    "ts_ms": 1465581029100,
    "snapshot": "false",
    "db": "inventory",
    "table": "customers",
    "server_id": 223344,
    "gtid": null,
    "file": "mysql-bin.000003",
    "pos": 484,
    "row": 0,
    "thread": 7,
    "query": "UPDATE customers SET first_name='Anne Marie' WHERE id=1004"
  },
  "op": "u",
  "ts_ms": 1465581029523
}`

	mysqlGTIDCreate = `{"before":null,"after":{"id":1005,"first_name":"Bob"},"source":{"version":"2.5.0.Final","name":"mysql-server-1","connector":"mysql","ts_ms":1465581030000,"snapshot":"false","db":"inventory","table":"customers","server_id":223344,"gtid":"c3a4f5a6-1b2c-11ee-8c99-0242ac120002:23","file":"mysql-bin.000003","pos":805,"row":0,"thread":7,"query":null},"op":"c","ts_ms":1465581030010}`

	mysqlSnapshot = `{"before":null,"after":{"id":1001,"first_name":"Sally"},"source":{"version":"1.9.7.Final","name":"mysql-server-1","connector":"mysql","ts_ms":0,"snapshot":true,"db":"inventory","table":"customers","server_id":0,"gtid":null,"file":"mysql-bin.000003","pos":154,"row":0,"thread":null,"query":null},"op":"r","ts_ms":1465581029000}`
)

func wrap(payload string) string { return `{"schema":` + pgSchema + `,"payload":` + payload + `}` }

func TestDebeziumDecodeRealWorld(t *testing.T) {
	type want struct {
		typ      Type
		stream   string
		ns       string
		tsMs     int64
		pos      string
		txID     string
		seq      *uint64
		snapshot bool
		after    string
		before   string
		source   SourceInfo
	}
	pgSrc := func(lsn string, ms int64) SourceInfo {
		n, _ := strconv.ParseUint(lsn, 10, 64)
		return SourceInfo{Connector: "postgresql", Name: "PostgreSQL_server", Database: "postgres", Schema: "inventory", Table: "customers",
			Position: fmt.Sprintf("%X/%X", n>>32, uint32(n)), CommitTS: ptr(time.UnixMilli(ms).UTC())}
	}
	pgPos := func(lsn string) string { s := pgSrc(lsn, 0); return s.Position }
	cases := []struct {
		name string
		in   string
		want want
	}{
		{"pg create", pgCreate, want{typ: Insert, stream: "customers", ns: "inventory", tsMs: 1559033904964, pos: pgPos("24023128"), txID: "555",
			after:  `{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org","event_type":"signup"}`,
			source: pgSrc("24023128", 1559033904863)}},
		{"pg update", pgUpdate, want{typ: Update, stream: "customers", ns: "inventory", tsMs: 1559033904965, pos: pgPos("24023200"),
			txID: "556:24023200", seq: ptr(uint64(2)),
			after:  `{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org","event_type":"signup"}`,
			before: `{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org","event_type":"signup"}`,
			source: pgSrc("24023200", 1559033904863)}},
		{"pg delete", pgDelete, want{typ: Delete, stream: "customers", ns: "inventory", tsMs: 1559033904966, pos: pgPos("46523128"), txID: "557",
			before: `{"id":1004,"first_name":null,"last_name":null,"email":null,"event_type":null}`,
			source: pgSrc("46523128", 1559033904863)}},
		{"pg read", pgRead, want{typ: SnapshotRead, stream: "customers", ns: "inventory", tsMs: 1559033900100, pos: pgPos("24020000"), txID: "550",
			snapshot: true, after: `{"id":1001,"first_name":"Sally","last_name":"Thomas","email":"sally.thomas@acme.com","event_type":null}`,
			source: pgSrc("24020000", 1559033900000)}},
		{"pg truncate", pgTruncate, want{typ: Truncate, stream: "customers", ns: "inventory", tsMs: 1559033905050, pos: pgPos("24030000"), txID: "560",
			source: pgSrc("24030000", 1559033905000)}},
		{"mysql update", mysqlUpdate, want{typ: Update, stream: "customers", ns: "inventory", tsMs: 1465581029523, pos: "mysql-bin.000003:484",
			after:  `{"id":1004,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org","balance":12345678901234567890.123456789}`,
			before: `{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org","balance":12345678901234567890.123456789}`,
			source: SourceInfo{Connector: "mysql", Name: "mysql-server-1", Database: "inventory", Table: "customers", Position: "mysql-bin.000003:484",
				CommitTS: ptr(time.UnixMilli(1465581029100).UTC())}}},
		{"mysql gtid create", mysqlGTIDCreate, want{typ: Insert, stream: "customers", ns: "inventory", tsMs: 1465581030010,
			pos: "mysql-bin.000003:805", txID: "c3a4f5a6-1b2c-11ee-8c99-0242ac120002:23", after: `{"id":1005,"first_name":"Bob"}`,
			source: SourceInfo{Connector: "mysql", Name: "mysql-server-1", Database: "inventory", Table: "customers", Position: "mysql-bin.000003:805",
				CommitTS: ptr(time.UnixMilli(1465581030000).UTC())}}},
		{"mysql snapshot (boolean, ts_ms 0)", mysqlSnapshot, want{typ: SnapshotRead, stream: "customers", ns: "inventory", tsMs: 1465581029000,
			pos: "mysql-bin.000003:154", snapshot: true, after: `{"id":1001,"first_name":"Sally"}`,
			source: SourceInfo{Connector: "mysql", Name: "mysql-server-1", Database: "inventory", Table: "customers", Position: "mysql-bin.000003:154"}}},
	}
	for _, c := range cases {
		for _, wrapped := range []bool{false, true} {
			in := c.in
			name := c.name
			if wrapped {
				in, name = wrap(c.in), c.name+" (schema+payload)"
			}
			t.Run(name, func(t *testing.T) {
				for _, dec := range []func([]byte) (*Event, error){Debezium.Decode, DecodeAny} {
					e, err := dec([]byte(in))
					if err != nil {
						t.Fatal(err)
					}
					w := c.want
					if e.Type != w.typ || e.Stream != w.stream || e.NamespaceOr("") != w.ns {
						t.Errorf("type %s stream %q namespace %q", e.Type, e.Stream, e.NamespaceOr(""))
					}
					// The event time is the commit time (source.ts_ms), the
					// top-level ts_ms (processing time) only without one.
					wantTS := time.UnixMilli(w.tsMs).UTC()
					if w.source.CommitTS != nil {
						wantTS = *w.source.CommitTS
					}
					if !e.Timestamp.Equal(wantTS) || e.Timestamp.Location() != time.UTC {
						t.Errorf("timestamp %v, want %v", e.Timestamp, wantTS)
					}
					if e.Metadata.Position != w.pos || e.Metadata.TransactionID != w.txID || !reflect.DeepEqual(e.Metadata.Sequence, w.seq) {
						t.Errorf("metadata %+v (sequence %v)", e.Metadata, e.Metadata.Sequence)
					}
					ws := w.source
					ws.Snapshot = w.snapshot
					if e.Source == nil || !reflect.DeepEqual(*e.Source, ws) {
						t.Errorf("source %+v\nwant   %+v", e.Source, ws)
					}
					after, err := e.After()
					if err != nil {
						t.Fatal(err)
					}
					before, err := e.Before()
					if err != nil {
						t.Fatal(err)
					}
					checkRow := func(what string, got map[string]any, want string) {
						t.Helper()
						if want == "" {
							if got != nil {
								t.Errorf("%s = %v, want nil", what, got)
							}
							return
						}
						b, _ := json.Marshal(got)
						jsonEqual(t, []byte(want), b)
					}
					checkRow("after", after, w.after)
					checkRow("before", before, w.before)
					// Rows are kept byte for byte.
					if w.typ != Update && w.typ != Truncate {
						raw, _ := e.Data.JSON()
						if w.after != "" && !bytes.Contains([]byte(in), raw) {
							t.Errorf("row bytes were rewritten: %s", raw)
						}
					}
					// The decoded event travels as Rivven JSON and back.
					sameEvent(t, e, mustDecode(t, Rivven, mustMarshal(t, e)))
				}
			})
		}
	}

	// A snapshot field of "true" or "incremental" marks the event as a snapshot too.
	for _, snap := range []string{`"true"`, `"last"`, `"first"`, `"incremental"`, `true`} {
		in := strings.Replace(pgCreate, `"snapshot": "false"`, `"snapshot": `+snap, 1)
		if e := mustDecode(t, Debezium, []byte(in)); !e.Source.Snapshot {
			t.Errorf("snapshot %s: not a snapshot", snap)
		}
	}
	for _, snap := range []string{`"false"`, `false`, `null`} {
		in := strings.Replace(pgCreate, `"snapshot": "false"`, `"snapshot": `+snap, 1)
		if e := mustDecode(t, Debezium, []byte(in)); e.Source.Snapshot {
			t.Errorf("snapshot %s: a snapshot", snap)
		}
	}
}

func TestDebeziumDecodeMinimal(t *testing.T) {
	e := mustDecode(t, Debezium, []byte(`{"op":"c","after":{"id":1}}`))
	if e.Type != Insert || e.Stream != "default" || e.Namespace != nil || !e.Timestamp.Equal(time.UnixMilli(0)) {
		t.Errorf("%+v", e)
	}
	// ts_ms from the source when the envelope has none.
	e = mustDecode(t, Debezium, []byte(`{"op":"c","after":{"id":1},"source":{"ts_ms":1000,"table":"t"}}`))
	if !e.Timestamp.Equal(time.UnixMilli(1000)) || e.Stream != "t" {
		t.Errorf("%+v", e)
	}
	e = mustDecode(t, Debezium, []byte(`{"op":"c","after":{"id":1},"ts_ms":null,"source":{"ts_ms":1000}}`))
	if !e.Timestamp.Equal(time.UnixMilli(1000)) {
		t.Errorf("null ts_ms: %v", e.Timestamp)
	}
}

func TestDebeziumDecodeErrors(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"unknown op", `{"op":"x","after":{}}`, `unknown op "x" (allowed: c, u, d, r, t)`},
		{"message op", `{"op":"m","after":null}`, `unknown op "m"`},
		{"missing op", `{"after":{}}`, "missing op"},
		{"op number", `{"op":1,"after":{}}`, "op"},
		{"create without row", `{"op":"c","after":null}`, "without row"},
		{"read without row", `{"op":"r"}`, "without row"},
		{"delete without row", `{"op":"d","before":null}`, "without row"},
		{"bad ts_ms", `{"op":"c","after":{},"ts_ms":"now"}`, "ts_ms"},
		{"float ts_ms", `{"op":"c","after":{},"ts_ms":1.5}`, "ts_ms"},
		{"ts_ms out of range", `{"op":"c","after":{},"ts_ms":9223372036854775807}`, "ts_ms"},
		{"source ts_ms out of range", `{"op":"c","after":{},"source":{"ts_ms":-9223372036854775807}}`, "ts_ms"},
		{"bad source", `{"op":"c","after":{},"source":[1]}`, "source"},
		{"bad source field", `{"op":"c","after":{},"source":{"table":1}}`, "source"},
		{"not an object", `[1,2]`, "expected object"},
		{"empty", ``, "expected object"},
		{"tombstone in wrapper", wrap(`null`), "missing op"},
		{"truncated", pgCreate[:100], "unexpected end"},
		{"truncated wrapper", wrap(pgCreate)[:len(wrap(pgCreate))-1], "unexpected end"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Debezium.Decode([]byte(c.in))
			if err == nil {
				t.Fatalf("no error: %+v", e)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "debezium envelope: ") {
				t.Errorf("error %q, want it to mention %q", err, c.want)
			}
		})
	}
}

// ---- CloudEvents -----------------------------------------------------------

func cloudEventsSamples() []*Event {
	seq := uint64(12)
	sid := uint32(3)
	base := time.Date(2024, 1, 15, 10, 30, 0, 123_456_000, time.UTC)
	full := &Event{Type: Update, Stream: "orders.eu", Namespace: ptr("public"), Timestamp: base,
		Data: RawPayload([]byte(`{"before":{"id":1},"after":{"id":1,"s":"<b>"}}`)),
		Metadata: Metadata{Position: "0/16B3748", TransactionID: "771", Sequence: &seq, SchemaID: &sid, SchemaSubject: "orders-value",
			Extra: []Field{{"z", json.RawMessage(`1`)}, {"a", json.RawMessage(`{"x":[1]}`)}}},
		Key: json.RawMessage(`{"id":1,"name":"O'Brien \"x\""}`),
		Source: &SourceInfo{Connector: "postgresql", Database: "shop", Schema: "public", Table: "orders", Position: "lsn:1",
			CommitTS: ptr(base.Add(-time.Second)), Snapshot: true}}
	return []*Event{
		full,
		{Type: Insert, Stream: "users", Timestamp: base, Data: RawPayload([]byte(`{"id":1}`))},
		{Type: Insert, Stream: "users", Namespace: ptr(""), Timestamp: base, Data: RawPayload([]byte(`{"id":2}`)), Key: json.RawMessage(`"user-1"`)},
		{Type: Insert, Stream: "users", Timestamp: base, Data: RawPayload([]byte(`{"id":3}`)), Key: json.RawMessage(`17`)},
		{Type: Delete, Stream: "default", Timestamp: base, Data: RawPayload([]byte(`{"id":1}`))},
		{Type: Truncate, Stream: "users", Timestamp: base},
		{Type: Schema, Stream: "users", Timestamp: base, Data: RawPayload([]byte(`{"ddl":"x"}`))},
		{Type: SnapshotRead, Stream: "a.b.c", Timestamp: base, Data: RawPayload([]byte(`[1,"2"]`))},
		{Type: Log, Stream: "ünïcode \"q\"", Timestamp: base, Data: RawPayload([]byte(`"text"`))},
		{Type: Record, Stream: "s", Timestamp: base, Data: RawPayload([]byte(`{"n":18446744073709551615}`)), Metadata: Metadata{TransactionID: "t"}},
	}
}

func TestCloudEventsEncode(t *testing.T) {
	e := cloudEventsSamples()[0]
	b := mustAppend(t, CloudEvents, e)
	var ce map[string]json.RawMessage
	if err := json.Unmarshal(b, &ce); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string {
		var s string
		if err := json.Unmarshal(ce[k], &s); err != nil {
			t.Errorf("%s: %v (%s)", k, err, ce[k])
		}
		return s
	}
	if str("specversion") != "1.0" {
		t.Errorf("specversion %s", ce["specversion"])
	}
	if str("type") != "io.rivven.orders.eu.update" {
		t.Errorf("type %s", ce["type"])
	}
	if str("source") != "/postgresql/shop" {
		t.Errorf("source %s", ce["source"])
	}
	if str("id") != "orders.eu:0/16B3748:12" {
		t.Errorf("id %s", ce["id"])
	}
	if str("time") != "2024-01-15T10:30:00.123456Z" {
		t.Errorf("time %s", ce["time"])
	}
	if str("datacontenttype") != "application/json" {
		t.Errorf("datacontenttype %s", ce["datacontenttype"])
	}
	if string(ce["data"]) != `{"before":{"id":1},"after":{"id":1,"s":"<b>"}}` {
		t.Errorf("data %s", ce["data"])
	}
	if str("partitionkey") != `{"id":1,"name":"O'Brien \"x\""}` {
		t.Errorf("partitionkey %s", ce["partitionkey"])
	}
	// CloudEvents attribute names are lower-case letters and digits.
	for k := range ce {
		for _, r := range k {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || k == "data_base64") {
				t.Errorf("attribute name %q", k)
			}
		}
	}
	if CloudEvents.ContentType() != "application/cloudevents+json" || CloudEvents.Name() != "cloudevents" {
		t.Error("name/content type")
	}

	// Without a connector the source is still a URI reference.
	b = mustAppend(t, CloudEvents, cloudEventsSamples()[1])
	if !bytes.Contains(b, []byte(`"source":"rivven-connect"`)) {
		t.Errorf("default source: %s", b)
	}
	if bytes.Contains(b, []byte(`rivvenmetadata`)) || bytes.Contains(b, []byte(`rivvennamespace`)) || bytes.Contains(b, []byte(`partitionkey`)) {
		t.Errorf("empty extensions written: %s", b)
	}
}

func TestCloudEventsID(t *testing.T) {
	id := func(e *Event) string {
		var ce struct{ ID string }
		if err := json.Unmarshal(mustAppend(t, CloudEvents, e), &ce); err != nil {
			t.Fatal(err)
		}
		if ce.ID == "" {
			t.Fatal("empty id")
		}
		return ce.ID
	}
	seen := map[string]bool{}
	for _, e := range cloudEventsSamples() {
		a, b, c := id(e), id(e), id(e.Clone())
		if a != b || a != c {
			t.Errorf("id not stable: %s %s %s", a, b, c)
		}
		// Decoding and encoding again keeps the id.
		if d := id(mustDecode(t, CloudEvents, mustAppend(t, CloudEvents, e))); d != a {
			t.Errorf("id changed across a round trip: %s -> %s", a, d)
		}
		if seen[a] {
			t.Errorf("id %s repeated", a)
		}
		seen[a] = true
	}
	// Position-based: the same change at a different time has the same id.
	e := cloudEventsSamples()[0]
	e2 := e.Clone()
	e2.Timestamp = e2.Timestamp.Add(time.Hour)
	e2.Data = RawPayload([]byte(`{"x":1}`))
	if id(e) != id(e2) {
		t.Error("position-based id depends on time or data")
	}
	*e2.Metadata.Sequence = 13
	if id(e) == id(e2) {
		t.Error("the sequence does not change the id")
	}
	// Hash-based: depends on the content.
	h := cloudEventsSamples()[1]
	h2 := h.Clone()
	h2.Data = RawPayload([]byte(`{"id":2}`))
	h3 := h.Clone()
	h3.Timestamp = h3.Timestamp.Add(time.Nanosecond)
	if id(h) == id(h2) || id(h) == id(h3) {
		t.Error("hash-based id ignores data or time")
	}
}

func TestCloudEventsRoundTrip(t *testing.T) {
	for _, e := range cloudEventsSamples() {
		t.Run(string(e.Type)+"/"+e.Stream, func(t *testing.T) {
			b := mustAppend(t, CloudEvents, e)
			for _, dec := range []func([]byte) (*Event, error){CloudEvents.Decode, DecodeAny} {
				d, err := dec(b)
				if err != nil {
					t.Fatalf("%v\n%s", err, b)
				}
				sameEvent(t, e, d)
				if d.Type != e.Type || d.Stream != e.Stream || !d.Timestamp.Equal(e.Timestamp) ||
					!reflect.DeepEqual(d.Namespace, e.Namespace) || string(d.Key) != string(e.Key) ||
					!reflect.DeepEqual(d.Metadata, e.Metadata) {
					t.Errorf("decoded %+v\nwant    %+v", d, e)
				}
				if (d.Source == nil) != (e.Source == nil) || d.Source != nil && !reflect.DeepEqual(*d.Source, *e.Source) {
					t.Errorf("source %+v, want %+v", d.Source, e.Source)
				}
			}
		})
	}
}

func TestCloudEventsForeign(t *testing.T) {
	in := `{"specversion":"1.0","type":"com.example.thing","source":"https://example.com/things","id":"A234-1234-1234","time":"2018-04-05T17:31:00Z","subject":"thing/1","datacontenttype":"application/json","data":{"appinfoA":"abc","appinfoB":123,"appinfoC":true}}`
	e := mustDecode(t, CloudEvents, []byte(in))
	if e.Type != Record || e.Stream != "default" || e.Namespace != nil || e.Key != nil || e.Source != nil {
		t.Errorf("%+v", e)
	}
	if !e.Timestamp.Equal(time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC)) {
		t.Errorf("time %v", e.Timestamp)
	}
	if raw, _ := e.Data.JSON(); string(raw) != `{"appinfoA":"abc","appinfoB":123,"appinfoC":true}` {
		t.Errorf("data %s", raw)
	}
	if e2, err := DecodeAny([]byte(in)); err != nil || e2.Type != Record {
		t.Errorf("DecodeAny: %v", err)
	}

	// data_base64 holding JSON.
	doc := `{"a":[1,2],"b":"x"}`
	in = `{"specversion":"1.0","type":"com.example.bin","source":"/x","id":"1","data_base64":"` + base64.StdEncoding.EncodeToString([]byte(doc)) + `"}`
	e = mustDecode(t, CloudEvents, []byte(in))
	if raw, _ := e.Data.JSON(); string(raw) != doc {
		t.Errorf("data_base64: %s", raw)
	}
	// data_base64 holding bytes that are not JSON: kept as the base64 string,
	// so the event still encodes to valid JSON.
	bin := base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, 'x'})
	in = `{"specversion":"1.0","type":"com.example.bin","source":"/x","id":"1","datacontenttype":"application/octet-stream","data_base64":"` + bin + `"}`
	e = mustDecode(t, CloudEvents, []byte(in))
	out := mustMarshal(t, e)
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %q", out)
	}
	if v, _ := e.Data.Value(); v != bin {
		t.Errorf("binary data_base64: %#v", v)
	}
	// No data at all.
	e = mustDecode(t, CloudEvents, []byte(`{"specversion":"1.0","type":"x","source":"/x","id":"1"}`))
	if v, err := e.Data.Value(); v != nil || err != nil {
		t.Errorf("no data: %v %v", v, err)
	}
	// A foreign partition key that is not JSON becomes a JSON string.
	e = mustDecode(t, CloudEvents, []byte(`{"specversion":"1.0","type":"x","source":"/x","id":"1","partitionkey":"abc\u0001<>"}`))
	if string(e.Key) != `"abc\u0001<>"` {
		t.Errorf("key %s", e.Key)
	}
	// rivven.<stream>.<op> without extensions.
	e = mustDecode(t, CloudEvents, []byte(`{"specversion":"1.0","type":"rivven.a.b.delete","source":"/x","id":"1","data":{"id":1}}`))
	if e.Type != Delete || e.Stream != "a.b" {
		t.Errorf("type %s stream %s", e.Type, e.Stream)
	}
}

func TestCloudEventsDecodeErrors(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"specversion", `{"specversion":"0.3","type":"x"}`, `unsupported specversion "0.3"`},
		{"bad base64", `{"specversion":"1.0","type":"x","data_base64":"!!"}`, "data_base64"},
		{"bad time", `{"specversion":"1.0","type":"x","time":"yesterday"}`, "not RFC 3339"},
		{"bad rivvenop", `{"specversion":"1.0","type":"x","rivvenop":"upsert"}`, `unknown event_type "upsert"`},
		{"bad type op", `{"specversion":"1.0","type":"rivven.s.upsert"}`, `unknown event_type "upsert"`},
		{"type number", `{"specversion":"1.0","type":1}`, "type"},
		{"truncated", `{"specversion":"1.0","type":"x"`, "unexpected end"},
		{"bad metadata", `{"specversion":"1.0","type":"x","rivvenmetadata":[]}`, "rivvenmetadata"},
		{"bad source", `{"specversion":"1.0","type":"x","rivvensource":"s"}`, "rivvensource"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := CloudEvents.Decode([]byte(c.in))
			if err == nil {
				t.Fatalf("no error: %+v", e)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "cloudevent: ") {
				t.Errorf("error %q, want it to mention %q", err, c.want)
			}
		})
	}
}

// ---- DecodeAny and codec lookup --------------------------------------------

func TestDecodeAnyPicksCodec(t *testing.T) {
	rivvenEv := mustDecode(t, Rivven, []byte(rivvenGoldens[1].json))
	ce := string(mustAppend(t, CloudEvents, rivvenEv))
	for _, c := range []struct {
		name, in string
		typ      Type
		stream   string
	}{
		{"rivven", rivvenGoldens[1].json, Update, "orders"},
		{"rivven, event_type not first", `{"stream":"s","timestamp":"2024-01-15T10:30:00Z","event_type":"delete","data":{"specversion":"1.0"}}`, Delete, "s"},
		{"cloudevents", ce, Update, "orders"},
		{"foreign cloudevent", `{"type":"x","specversion":"1.0","data":{"event_type":"insert"}}`, Record, "default"},
		{"debezium", pgCreate, Insert, "customers"},
		{"debezium wrapper", wrap(pgCreate), Insert, "customers"},
		// Column names that look like another codec's fields must not confuse it.
		{"debezium with event_type and specversion columns", `{"before":null,"after":{"event_type":"x","specversion":"1.0"},"source":{"table":"t"},"op":"c","ts_ms":1}`, Insert, "t"},
		{"debezium with key-like strings", `{"before":null,"after":{"note":"\"event_type\": \"specversion\""},"op":"c"}`, Insert, "default"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeAny([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != c.typ || e.Stream != c.stream {
				t.Errorf("type %s stream %s", e.Type, e.Stream)
			}
		})
	}
	for _, in := range []string{``, `x`, `[]`, `{"a":`, `{"event_type":"insert"`, `{}`} {
		if e, err := DecodeAny([]byte(in)); err == nil {
			t.Errorf("DecodeAny(%q) = %+v", in, e)
		}
	}
}

func TestCodecByName(t *testing.T) {
	for name, want := range map[string]Codec{"": Rivven, "json": Rivven, "rivven": Rivven, "debezium": Debezium, "cloudevents": CloudEvents} {
		c, err := CodecByName(name)
		if err != nil || c != want {
			t.Errorf("CodecByName(%q) = %v, %v", name, c, err)
		}
	}
	_, err := CodecByName("avro")
	if err == nil || !strings.Contains(err.Error(), "allowed: rivven, debezium, cloudevents") {
		t.Errorf("unknown codec: %v", err)
	}
	for _, n := range CodecNames {
		c, _ := CodecByName(n)
		if c.Name() != n || c.ContentType() == "" {
			t.Errorf("codec %q: name %q content type %q", n, c.Name(), c.ContentType())
		}
	}
}

func TestEncodeErrorsKeepDst(t *testing.T) {
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	bad := []*Event{
		{Type: Insert, Stream: "s", Timestamp: far},
		{Type: Insert, Stream: "s", Timestamp: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Type: Insert, Stream: "s", Data: ValuePayload(func() {})},
		{Type: Insert, Stream: "s", Source: &SourceInfo{CommitTS: &far}},
	}
	for i, e := range bad {
		for _, c := range []Codec{Rivven, CloudEvents} {
			dst := []byte("keep")
			out, err := c.Append(dst, e)
			if err == nil {
				t.Errorf("%d %s: no error: %s", i, c.Name(), out)
			}
			if string(out) != "keep" {
				t.Errorf("%d %s: dst is %q after an error", i, c.Name(), out)
			}
		}
	}
	if _, err := Marshal(bad[0]); err == nil || !strings.Contains(err.Error(), "0000-9999") {
		t.Errorf("Marshal far future: %v", err)
	}
}

// The allocation-free timestamp parser agrees with time.Parse.
func TestParseRFC3339FastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n, max int) string {
		v := r.IntN(max + 1)
		s := strconv.Itoa(v)
		for len(s) < n {
			s = "0" + s
		}
		return s
	}
	fast := 0
	for i := 0; i < 60000; i++ {
		s := digits(4, 9999) + "-" + digits(2, 13) + "-" + digits(2, 32) + "T" + digits(2, 24) + ":" + digits(2, 60) + ":" + digits(2, 60)
		switch r.IntN(4) {
		case 1:
			s += "." + digits(1+r.IntN(10), 999999999)
		case 2:
			s += "." + digits(3, 999)
		case 3:
			s += "."
		}
		s += "Z"
		got, ok := parseRFC3339UTC([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok {
			fast++
			if err != nil {
				t.Fatalf("fast path accepts %s, time.Parse: %v", s, err)
			}
			if !got.Equal(want) || got.Location() != time.UTC {
				t.Fatalf("%s: fast %v, time.Parse %v", s, got, want)
			}
		}
		if pt, perr := parseTimestamp([]byte(`"` + s + `"`)); (perr == nil) != (err == nil) || err == nil && !pt.Equal(want) {
			t.Fatalf("parseTimestamp(%s) = %v, %v; time.Parse %v, %v", s, pt, perr, want, err)
		}
	}
	if fast < 15000 {
		t.Errorf("only %d inputs took the fast path", fast)
	}
}

func TestEncodeRejectsUnknownType(t *testing.T) {
	e := New(Type("upsert"), "s", RawPayload([]byte(`{}`)))
	if _, err := Marshal(e); err == nil || !strings.Contains(err.Error(), `unknown event_type "upsert"`) {
		t.Fatalf("err = %v", err)
	}
}

// A change's id is its transaction's commit position and its index in
// the transaction, whatever position the stream resumed from (which
// metadata.position carried before); a snapshot row's id is the
// snapshot's position and the row's key.
func TestCloudEventsStableID(t *testing.T) {
	id := func(e *Event) string {
		var ce struct{ ID, Source, Type string }
		if err := json.Unmarshal(mustAppend(t, CloudEvents, e), &ce); err != nil {
			t.Fatal(err)
		}
		return ce.ID
	}
	change := func(resumedAt string, seq uint64) *Event {
		return &Event{Type: Insert, Stream: "orders", Namespace: ptr("public"), Timestamp: time.Unix(1, 0),
			Data:     RawPayload([]byte(`{"id":1}`)),
			Metadata: Metadata{Position: `{"lsn":"` + resumedAt + `","tx":"0/5000","n":2}`, Sequence: &seq},
			Source:   &SourceInfo{Connector: "postgres-cdc", Name: "pg1", Database: "shop", Commit: "0/5000", Position: "0/4F00"}}
	}
	a, b := id(change("0/1000", 2)), id(change("0/3000", 2))
	if a != b || a != "public.orders:0/5000:2" {
		t.Errorf("ids %q and %q: the resume point changes the id", a, b)
	}
	if id(change("0/1000", 3)) == a {
		t.Error("two changes of a transaction share an id")
	}
	snap := func(at string, key string) *Event {
		return &Event{Type: SnapshotRead, Stream: "orders", Namespace: ptr("public"), Timestamp: time.Now(),
			Data: RawPayload([]byte(`{"id":1}`)), Key: json.RawMessage(key),
			Metadata: Metadata{Position: at},
			Source:   &SourceInfo{Connector: "postgres-cdc", Database: "shop", Position: "0/9000", Snapshot: true}}
	}
	x := id(snap(`{"lsn":"0/9000","snapshot":{"at":{"public.orders":["1"]}}}`, `{"id":1}`))
	y := id(snap(`{"lsn":"0/9000","snapshot":{"done":["public.a"]}}`, `{"id":1}`))
	if x != y || x != `public.orders:snapshot@0/9000:{"id":1}` {
		t.Errorf("snapshot row ids %q and %q", x, y)
	}
	if id(snap("x", `{"id":1}`)) == id(snap("x", `{"id":2}`)) {
		t.Error("two snapshot rows share an id")
	}
}

// source names connector, server and database, so that two databases
// never share source + id; type has a reverse-DNS prefix, configurable.
func TestCloudEventsSourceAndType(t *testing.T) {
	e := &Event{Type: Insert, Stream: "orders", Timestamp: time.Unix(1, 0), Data: RawPayload([]byte(`{}`)),
		Source: &SourceInfo{Connector: "postgres-cdc", Name: "pg main", Database: "shop"}}
	c, err := NewCodec(CodecCloudEvents, DefaultDebeziumOptions(), CloudEventsOptions{TypePrefix: "com.example.cdc"})
	if err != nil {
		t.Fatal(err)
	}
	var ce struct{ Source, Type string }
	if err := json.Unmarshal(mustAppend(t, c, e), &ce); err != nil {
		t.Fatal(err)
	}
	if ce.Source != "/postgres-cdc/pg%20main/shop" || ce.Type != "com.example.cdc.orders.insert" {
		t.Errorf("source %q type %q", ce.Source, ce.Type)
	}
	e2 := e.Clone()
	e2.Source.Database = "shop2"
	var ce2 struct{ Source string }
	_ = json.Unmarshal(mustAppend(t, c, e2), &ce2)
	if ce2.Source == ce.Source {
		t.Error("two databases share a source")
	}
	for _, bad := range []string{"io.rivven.", "a b", `x"y`} {
		if _, err := NewCodec(CodecCloudEvents, DebeziumOptions{}, CloudEventsOptions{TypePrefix: bad}); err == nil || !strings.Contains(err.Error(), "cloudevents.type_prefix") {
			t.Errorf("type_prefix %q: %v", bad, err)
		}
	}
}

// Rivven JSON writes only the reference's event types: a snapshot row is
// an insert with metadata.snapshot, a truncate a state event with
// metadata.control; both decode back to what they were.
func TestRivvenWireTypes(t *testing.T) {
	allowed := map[string]bool{"record": true, "insert": true, "update": true, "delete": true, "state": true, "log": true, "schema": true}
	for _, typ := range Types {
		e := &Event{Type: typ, Stream: "s", Timestamp: time.Unix(1, 0).UTC(), Data: RawPayload([]byte(`{"id":1}`))}
		b := mustMarshal(t, e)
		var w struct {
			EventType string                     `json:"event_type"`
			Metadata  map[string]json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatal(err)
		}
		if !allowed[w.EventType] {
			t.Errorf("%s written as event_type %q", typ, w.EventType)
		}
		if back := mustDecode(t, Rivven, b); back.Type != typ {
			t.Errorf("%s came back as %s: %s", typ, back.Type, b)
		}
	}
}
