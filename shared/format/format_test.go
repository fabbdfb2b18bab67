package format

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

var testTime = time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)

func ev(t events.Type, data string) *events.Event {
	e := events.New(t, "shop.orders", events.RawPayload([]byte(data)))
	e.Timestamp = testTime
	e.Metadata.Position = "0/1"
	return e
}

// mixedBatch covers every event kind a sink sees: the tabular formats
// keep four rows (insert, snapshot read, update's after, delete's
// before) and skip the schema and state events.
func mixedBatch() []*events.Event {
	return []*events.Event{
		ev(events.Insert, `{"id":1,"customer":"Alice","amount":10,"active":true,"mixed":1,"tags":["a","b"],"meta":{"k":"v"},"note":null}`),
		ev(events.SnapshotRead, `{"id":2,"customer":"Bob, \"the\" builder\nsecond line","amount":10.5,"active":false,"mixed":"two","tags":[],"meta":{"k":"w"},"note":" padded "}`),
		ev(events.Schema, `{"ddl":"ALTER TABLE orders ADD note text"}`),
		ev(events.Update, `{"before":{"id":3,"customer":"old"},"after":{"id":3,"customer":"Carol","amount":7,"active":true,"mixed":true,"tags":["c"],"meta":{"k":"x"}}}`),
		ev(events.Delete, `{"id":4,"customer":"Dave","amount":-1.25e2,"active":false,"mixed":4,"tags":null,"meta":{"k":"y"},"note":"gone"}`),
		ev(events.State, `{"cursor":"abc"}`),
	}
}

// Columns of mixedBatch as inferred: sorted, with the promotions the
// reference lists (long+double → double, long+string → string; bool
// mixed in → string) and nested values as JSON text.
var mixedColumns = []string{"active", "amount", "customer", "id", "meta", "mixed", "note", "tags"}

var mixedNullable = map[string]bool{"note": true, "tags": true}

var mixedRows = []map[string]any{
	{"active": true, "amount": 10.0, "customer": "Alice", "id": int64(1), "meta": `{"k":"v"}`, "mixed": "1", "note": nil, "tags": `["a","b"]`},
	{"active": false, "amount": 10.5, "customer": "Bob, \"the\" builder\nsecond line", "id": int64(2), "meta": `{"k":"w"}`, "mixed": "two", "note": " padded ", "tags": `[]`},
	{"active": true, "amount": 7.0, "customer": "Carol", "id": int64(3), "meta": `{"k":"x"}`, "mixed": "true", "note": nil, "tags": `["c"]`},
	{"active": false, "amount": -125.0, "customer": "Dave", "id": int64(4), "meta": `{"k":"y"}`, "mixed": "4", "note": "gone", "tags": nil},
}

func encode(t *testing.T, o Options, batch []*events.Event) (Encoder, []byte) {
	t.Helper()
	enc, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	var buf bytes.Buffer
	if err := enc.Encode(&buf, batch); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return enc, buf.Bytes()
}

func checkMeta(t *testing.T, enc Encoder, ext, ctype, cenc string) {
	t.Helper()
	if enc.Extension() != ext || enc.ContentType() != ctype || enc.ContentEncoding() != cenc {
		t.Errorf("Extension/ContentType/ContentEncoding = %q %q %q, want %q %q %q",
			enc.Extension(), enc.ContentType(), enc.ContentEncoding(), ext, ctype, cenc)
	}
}

var textCodecs = []struct{ name, ext string }{
	{"none", ""}, {"gzip", ".gz"}, {"zstd", ".zst"}, {"snappy", ".snappy"}, {"lz4", ".lz4"},
}

func cenc(codec string) string {
	if codec == "none" {
		return ""
	}
	return codec
}

// wantEvents is what the event envelope must hold: each event as the
// Rivven codec writes it.
func wantEvents(t *testing.T, batch []*events.Event) []any {
	t.Helper()
	var out []any
	for _, e := range batch {
		b, err := events.Rivven.Append(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestJSONEveryCodec(t *testing.T) {
	for _, f := range []struct {
		name, ext, ctype string
		array            bool
	}{
		{"json", ".json", "application/json", true},
		{"jsonl", ".jsonl", "application/x-ndjson", false},
	} {
		for _, c := range textCodecs {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				batch := mixedBatch()
				enc, b := encode(t, Options{Format: f.name, Compression: c.name}, batch)
				checkMeta(t, enc, f.ext+c.ext, f.ctype, cenc(c.name))
				got := readJSONValues(t, decompress(t, c.name, b), f.array)
				if want := wantEvents(t, batch); !reflect.DeepEqual(got, want) {
					t.Fatalf("events differ:\n got %v\nwant %v", got, want)
				}
				// Rows envelope: the four rows, numbers verbatim.
				enc, b = encode(t, Options{Format: f.name, Compression: c.name, Envelope: "row"}, batch)
				got = readJSONValues(t, decompress(t, c.name, b), f.array)
				if len(got) != 4 {
					t.Fatalf("rows envelope: %d values, want 4", len(got))
				}
				ids := []string{"1", "2", "3", "4"}
				for i, v := range got {
					m := v.(map[string]any)
					if m["id"] != json.Number(ids[i]) {
						t.Errorf("row %d id = %v", i, m["id"])
					}
				}
				if got[3].(map[string]any)["amount"] != json.Number("-1.25e2") {
					t.Errorf("delete row amount = %v, want the original -1.25e2", got[3].(map[string]any)["amount"])
				}
				if _, ok := got[2].(map[string]any)["before"]; ok {
					t.Errorf("update row is the whole data, want only after: %v", got[2])
				}
				_ = enc
			})
		}
	}
}

func TestCSVEveryCodec(t *testing.T) {
	for _, c := range textCodecs {
		t.Run(c.name, func(t *testing.T) {
			enc, b := encode(t, Options{Format: "csv", Compression: c.name}, mixedBatch())
			checkMeta(t, enc, ".csv"+c.ext, "text/csv", cenc(c.name))
			recs := readCSV(t, decompress(t, c.name, b), ',')
			want := [][]string{
				mixedColumns,
				{"true", "10", "Alice", "1", `{"k":"v"}`, "1", "NULL", `["a","b"]`},
				{"false", "10.5", "Bob, \"the\" builder\nsecond line", "2", `{"k":"w"}`, "two", " padded ", `[]`},
				{"true", "7", "Carol", "3", `{"k":"x"}`, "true", "NULL", `["c"]`},
				{"false", "-1.25e2", "Dave", "4", `{"k":"y"}`, "4", "gone", "NULL"},
			}
			if !reflect.DeepEqual(recs, want) {
				t.Fatalf("csv:\n got %q\nwant %q", recs, want)
			}
		})
	}
}

func TestParquetEveryCodec(t *testing.T) {
	for _, codec := range []string{"none", "snappy", "gzip", "lz4", "zstd", "brotli"} {
		t.Run(codec, func(t *testing.T) {
			enc, b := encode(t, Options{Format: "parquet", Parquet: &ParquetOptions{Compression: codec}}, mixedBatch())
			checkMeta(t, enc, ".parquet", "application/vnd.apache.parquet", "")
			tbl, rdr := readParquet(t, b)
			if !reflect.DeepEqual(tbl.names, mixedColumns) {
				t.Fatalf("columns %v, want %v", tbl.names, mixedColumns)
			}
			wantTypes := map[string]string{"active": "bool", "amount": "float64", "customer": "utf8", "id": "int64", "meta": "utf8", "mixed": "utf8", "note": "utf8", "tags": "utf8"}
			for name, typ := range wantTypes {
				if got := tbl.types[name]; got != typ {
					t.Errorf("%s: type %s, want %s", name, tbl.types[name], typ)
				}
				if !tbl.nullable[name] {
					t.Errorf("%s: not nullable; every Parquet column is", name)
				}
			}
			if !reflect.DeepEqual(tbl.rows, mixedRows) {
				t.Fatalf("rows:\n%s\nwant\n%s", fmtRows(tbl.rows), fmtRows(mixedRows))
			}
			wantCodec := map[string]string{"none": "UNCOMPRESSED", "snappy": "SNAPPY", "gzip": "GZIP", "lz4": "LZ4_RAW", "zstd": "ZSTD", "brotli": "BROTLI"}[codec]
			cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(0)
			if err != nil {
				t.Fatal(err)
			}
			if got := cc.Compression().String(); !strings.EqualFold(got, wantCodec) {
				t.Errorf("column chunk codec %s, want %s", got, wantCodec)
			}
		})
	}
}

func TestAvroEveryCodec(t *testing.T) {
	for _, codec := range []string{"none", "null", "deflate", "snappy"} {
		t.Run(codec, func(t *testing.T) {
			enc, b := encode(t, Options{Format: "avro", Avro: &AvroOptions{Compression: codec}}, mixedBatch())
			checkMeta(t, enc, ".avro", "application/avro", "")
			tbl, r := readOCF(t, b)
			want := map[string]string{"none": "null", "null": "null", "deflate": "deflate", "snappy": "snappy"}[codec]
			if r.CompressionName() != want {
				t.Errorf("codec %s, want %s", r.CompressionName(), want)
			}
			if !reflect.DeepEqual(tbl.names, mixedColumns) {
				t.Fatalf("fields %v, want %v", tbl.names, mixedColumns)
			}
			wantTypes := map[string]string{"active": "boolean", "amount": "double", "customer": "string", "id": "long", "meta": "string", "mixed": "string", "note": "string", "tags": "string"}
			for name, typ := range wantTypes {
				if tbl.types[name] != typ || tbl.nullable[name] != mixedNullable[name] {
					t.Errorf("%s: %s nullable=%v, want %s nullable=%v", name, tbl.types[name], tbl.nullable[name], typ, mixedNullable[name])
				}
			}
			for _, row := range tbl.rows {
				for k, v := range row {
					row[k] = unwrapField(v)
				}
			}
			if !reflect.DeepEqual(tbl.rows, mixedRows) {
				t.Fatalf("rows:\n%s\nwant\n%s", fmtRows(tbl.rows), fmtRows(mixedRows))
			}
			schema := r.Codec().Schema()
			if !strings.Contains(schema, `"rivven.events.Event"`) && !strings.Contains(schema, `"namespace":"rivven.events"`) {
				t.Errorf("schema name: %s", schema)
			}
		})
	}
}

func TestJSONLinesStayLines(t *testing.T) {
	pretty := ev(events.Insert, "{\n  \"id\": 1,\r\n  \"text\": \"a\\nb\"\n}")
	for _, env := range []string{"event", "row"} {
		_, b := encode(t, Options{Format: "jsonl", Envelope: env}, []*events.Event{pretty, ev(events.Insert, `{"id":2}`)})
		got := readJSONValues(t, b, false)
		if len(got) != 2 {
			t.Fatalf("%s: %d lines in %q", env, len(got), b)
		}
		row := got[0].(map[string]any)
		if env == "event" {
			row = row["data"].(map[string]any)
		}
		if row["text"] != "a\nb" {
			t.Fatalf("%s: %v", env, row)
		}
	}
}

func TestJSONRowEnvelopeValues(t *testing.T) {
	batch := []*events.Event{
		ev(events.Record, `"just a string"`),
		ev(events.Record, `[1,2]`),
		ev(events.Update, `{"before":{"id":1},"after":null}`),
		ev(events.Insert, `null`),
		ev(events.Truncate, `{}`),
		ev(events.Delete, `{"id":9}`),
	}
	_, b := encode(t, Options{Format: "json", Envelope: "row"}, batch)
	got := readJSONValues(t, b, true)
	want := []any{"just a string", []any{json.Number("1"), json.Number("2")}, map[string]any{"id": json.Number("9")}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The tabular formats need objects.
	if err := mustNew(t, Options{Format: "csv"}).Encode(&bytes.Buffer{}, batch[:1]); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("csv with a string row: %v", err)
	}
}

func mustNew(t *testing.T, o Options) Encoder {
	t.Helper()
	enc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// A failed batch leaves the encoder (and its compressor) usable.
func TestEncodeAfterError(t *testing.T) {
	for _, o := range []Options{{Format: "jsonl", Compression: "zstd", Envelope: "row"}, {Format: "csv", Compression: "gzip"}, {Format: "parquet"}, {Format: "avro"}} {
		enc := mustNew(t, o)
		bad := []*events.Event{ev(events.Update, `{"after":{"a":1`)}
		if err := enc.Encode(&bytes.Buffer{}, bad); err == nil {
			t.Fatalf("%s: invalid JSON accepted", o.Format)
		}
		var buf bytes.Buffer
		if err := enc.Encode(&buf, mixedBatch()); err != nil {
			t.Fatalf("%s after an error: %v", o.Format, err)
		}
		switch o.Format {
		case "jsonl":
			if got := readJSONValues(t, decompress(t, "zstd", buf.Bytes()), false); len(got) != 4 {
				t.Fatalf("jsonl: %d rows", len(got))
			}
		case "csv":
			if got := readCSV(t, decompress(t, "gzip", buf.Bytes()), ','); len(got) != 5 {
				t.Fatalf("csv: %d records", len(got))
			}
		case "parquet":
			if tbl, _ := readParquet(t, buf.Bytes()); !reflect.DeepEqual(tbl.rows, mixedRows) {
				t.Fatalf("parquet rows:\n%s", fmtRows(tbl.rows))
			}
		case "avro":
			if tbl, _ := readOCF(t, buf.Bytes()); len(tbl.rows) != 4 {
				t.Fatalf("avro: %d rows", len(tbl.rows))
			}
		}
	}
}
