package format

// Independent readers: every object the encoders write is read back with a
// library other than the one that wrote it (arrow-go for Parquet written
// by parquet-go, goavro for Avro written by hamba/avro and this package,
// encoding/csv and encoding/json for the text formats, klauspost's gzip
// and snappy for the stdlib and golang/snappy writers).

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	kgzip "github.com/klauspost/compress/gzip"
	ksnappy "github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/linkedin/goavro/v2"
	"github.com/pierrec/lz4/v4"
)

// decompress undoes a text format's compression. zstd and lz4 are read
// with the same packages that wrote them (no second pure-Go
// implementation is in the module graph); the frames are standard, and
// the README shows the zstd and lz4 command-line tools reading them.
func decompress(t *testing.T, codec string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch codec {
	case "none", "":
		return b
	case "gzip":
		r, err = kgzip.NewReader(bytes.NewReader(b))
	case "zstd":
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
			r = d
		}
	case "snappy":
		r = ksnappy.NewReader(bytes.NewReader(b))
	case "lz4":
		r = lz4.NewReader(bytes.NewReader(b))
	default:
		t.Fatalf("unknown codec %s", codec)
	}
	if err != nil {
		t.Fatalf("%s reader: %v", codec, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s decompress: %v", codec, err)
	}
	return out
}

// table is what a reader found: column names in file order, their types
// as the reader reports them, nullability, and the rows.
type table struct {
	names    []string
	types    map[string]string
	nullable map[string]bool
	rows     []map[string]any
}

// readParquet reads a file with arrow-go and returns Go values: int64,
// float64, bool, string, nil.
func readParquet(t *testing.T, b []byte) (table, *file.Reader) {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("arrow parquet reader: %v", err)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("pqarrow: %v", err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("read table: %v", err)
	}
	defer tbl.Release()
	out := table{types: map[string]string{}, nullable: map[string]bool{}}
	n := int(tbl.NumRows())
	for i := 0; i < n; i++ {
		out.rows = append(out.rows, map[string]any{})
	}
	for c := 0; c < int(tbl.NumCols()); c++ {
		f := tbl.Schema().Field(c)
		out.names = append(out.names, f.Name)
		out.types[f.Name] = f.Type.String()
		out.nullable[f.Name] = f.Nullable
		row := 0
		for _, chunk := range tbl.Column(c).Data().Chunks() {
			for i := 0; i < chunk.Len(); i++ {
				out.rows[row][f.Name] = arrowValue(t, chunk, i)
				row++
			}
		}
	}
	return out, rdr
}

func arrowValue(t *testing.T, a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case array.ExtensionArray:
		return arrowValue(t, a.Storage(), i)
	}
	t.Fatalf("unexpected arrow array %T", a)
	return nil
}

// readOCF reads an Object Container File with goavro and unwraps its
// union values ({"long": 1} → int64(1)).
func readOCF(t *testing.T, b []byte) (table, *goavro.OCFReader) {
	t.Helper()
	r, err := goavro.NewOCFReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("goavro OCF reader: %v", err)
	}
	out := avroSchemaTable(t, r.Codec().Schema())
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			t.Fatalf("goavro read: %v", err)
		}
		out.rows = append(out.rows, unwrapUnions(v).(map[string]any))
	}
	if err := r.Err(); err != nil {
		t.Fatalf("goavro: %v", err)
	}
	return out, r
}

func avroSchemaTable(t *testing.T, schema string) table {
	t.Helper()
	var s struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		t.Fatalf("schema %s: %v", schema, err)
	}
	out := table{types: map[string]string{}, nullable: map[string]bool{}}
	for _, f := range s.Fields {
		out.names = append(out.names, f.Name)
		var union []string
		if json.Unmarshal(f.Type, &union) == nil && len(union) == 2 && union[0] == "null" {
			out.types[f.Name] = union[1]
			out.nullable[f.Name] = true
			continue
		}
		var name string
		if json.Unmarshal(f.Type, &name) == nil {
			out.types[f.Name] = name
		} else {
			out.types[f.Name] = string(f.Type)
		}
	}
	return out
}

func unwrapUnions(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = unwrapUnions(e)
		}
		return out
	case []any:
		for i := range x {
			x[i] = unwrapUnions(x[i])
		}
	}
	return v
}

// unwrapField unwraps a goavro union value of a known nullable field.
func unwrapField(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, e := range m {
			return e
		}
	}
	return v
}

// readCSV parses with encoding/csv (which knows only the default quote
// character; other quote characters are tested on the raw text).
func readCSV(t *testing.T, b []byte, delim rune) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.Comma = delim
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv: %v\n%s", err, b)
	}
	return recs
}

// readWire splits a wire-format object into its records and checks each
// Confluent header.
func readWire(t *testing.T, b []byte, schemaID uint32) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("truncated length prefix: % x", b)
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if int(n) > len(b) || n < 5 {
			t.Fatalf("record length %d, %d bytes left", n, len(b))
		}
		rec := b[:n]
		b = b[n:]
		if rec[0] != 0 {
			t.Fatalf("magic byte %#x", rec[0])
		}
		if id := binary.BigEndian.Uint32(rec[1:5]); id != schemaID {
			t.Fatalf("schema id %d, want %d", id, schemaID)
		}
		out = append(out, rec[5:])
	}
	return out
}

// readJSONValues decodes json (one array) or jsonl (one value per line)
// with encoding/json, numbers as json.Number.
func readJSONValues(t *testing.T, b []byte, array bool) []any {
	t.Helper()
	if array {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v []any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("json: %v\n%s", err, b)
		}
		if d.More() {
			t.Fatalf("data after the array")
		}
		return v
	}
	var out []any
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("jsonl does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" && len(b) == 0 {
			break
		}
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("jsonl line %d: %v: %s", i+1, err, line)
		}
		if d.More() {
			t.Fatalf("jsonl line %d holds more than one value", i+1)
		}
		out = append(out, v)
	}
	return out
}

func fmtRows(rows []map[string]any) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%#v\n", r)
	}
	return b.String()
}
