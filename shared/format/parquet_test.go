package format

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
)

func inserts(rows ...string) []*events.Event {
	out := make([]*events.Event, len(rows))
	for i, r := range rows {
		out[i] = ev(events.Insert, r)
	}
	return out
}

// promotionBatch exercises each promotion rule in its own column.
var promotionBatch = inserts(
	`{"i":1,"if":1,"is":1,"bl":true,"nul":null,"miss":1,"obj":{"a":1},"huge":1,"neg":-5}`,
	`{"i":2,"if":2.5,"is":"x","bl":3,"nul":null,"obj":"text","huge":99999999999999999999,"neg":null}`,
)

func TestParquetPromotion(t *testing.T) {
	_, b := encode(t, Options{Format: "parquet"}, promotionBatch)
	tbl, _ := readParquet(t, b)
	type col struct {
		typ      string
		nullable bool
		values   []any
	}
	want := map[string]col{
		"i":    {"int64", false, []any{int64(1), int64(2)}},
		"if":   {"float64", false, []any{1.0, 2.5}},       // Int64 + Float64 → Float64
		"is":   {"utf8", false, []any{"1", "x"}},          // Int64 + Utf8 → Utf8
		"bl":   {"utf8", false, []any{"true", "3"}},       // any other mix → Utf8
		"nul":  {"utf8", true, []any{nil, nil}},           // only nulls: nullable string
		"miss": {"int64", true, []any{int64(1), nil}},     // missing → nullable
		"obj":  {"utf8", false, []any{`{"a":1}`, "text"}}, // nested + string → string
		"huge": {"float64", false, []any{1.0, 1e20}},      // beyond int64 → double
		"neg":  {"int64", true, []any{int64(-5), nil}},    // null → nullable, type kept
	}
	if len(tbl.names) != len(want) {
		t.Fatalf("columns %v", tbl.names)
	}
	for name, w := range want {
		// Parquet columns are all OPTIONAL (w.nullable is what Avro,
		// which follows the data, makes of them).
		if tbl.types[name] != w.typ || !tbl.nullable[name] {
			t.Errorf("%s: %s nullable=%v, want %s nullable", name, tbl.types[name], tbl.nullable[name], w.typ)
		}
		got := []any{tbl.rows[0][name], tbl.rows[1][name]}
		if !reflect.DeepEqual(got, w.values) {
			t.Errorf("%s: values %#v, want %#v", name, got, w.values)
		}
	}
}

func TestAvroPromotion(t *testing.T) {
	_, b := encode(t, Options{Format: "avro"}, promotionBatch)
	tbl, _ := readOCF(t, b)
	want := map[string]struct {
		typ      string
		nullable bool
		values   []any
	}{
		"i":    {"long", false, []any{int64(1), int64(2)}},
		"if":   {"double", false, []any{1.0, 2.5}},
		"is":   {"string", false, []any{"1", "x"}},
		"bl":   {"string", false, []any{"true", "3"}},
		"nul":  {"string", true, []any{nil, nil}},
		"miss": {"long", true, []any{int64(1), nil}},
		"obj":  {"string", false, []any{`{"a":1}`, "text"}},
		"huge": {"double", false, []any{1.0, 1e20}},
		"neg":  {"long", true, []any{int64(-5), nil}},
	}
	for name, w := range want {
		if tbl.types[name] != w.typ || tbl.nullable[name] != w.nullable {
			t.Errorf("%s: %s nullable=%v, want %s nullable=%v", name, tbl.types[name], tbl.nullable[name], w.typ, w.nullable)
		}
		got := []any{unwrapField(tbl.rows[0][name]), unwrapField(tbl.rows[1][name])}
		if !reflect.DeepEqual(got, w.values) {
			t.Errorf("%s: values %#v, want %#v", name, got, w.values)
		}
	}
}

// orderRows makes n datagen-like order rows; every string is distinct so
// that a reused or overwritten buffer would show.
func orderRows(n, offset int) []*events.Event {
	out := make([]*events.Event, n)
	statuses := []string{"created", "paid", "shipped", "delivered", "cancelled"}
	for i := range out {
		id := offset + i
		note := fmt.Sprintf(`"note %d"`, id)
		if id%7 == 0 {
			note = "null"
		}
		out[i] = ev(events.Insert, fmt.Sprintf(
			`{"id":%d,"customer":"customer-%05d","amount":%d.%02d,"status":%q,"created_at":"2024-01-15T10:%02d:%02dZ","note":%s,"address":{"city":"city-%d","zip":"%05d"}}`,
			id, id%5000, id%1000, id%100, statuses[id%5], (id/60)%60, id%60, note, id%50, id))
	}
	return out
}

func checkOrderRows(t *testing.T, rows []map[string]any, offset int) {
	t.Helper()
	for i, r := range rows {
		id := offset + i
		if r["id"] != int64(id) || r["customer"] != fmt.Sprintf("customer-%05d", id%5000) ||
			r["address"] != fmt.Sprintf(`{"city":"city-%d","zip":"%05d"}`, id%50, id) {
			t.Fatalf("row %d: %#v", i, r)
		}
		wantNote := any(fmt.Sprintf("note %d", id))
		if id%7 == 0 {
			wantNote = nil
		}
		if r["note"] != wantNote {
			t.Fatalf("row %d note %#v, want %#v", i, r["note"], wantNote)
		}
	}
}

func TestParquetLargeBatchRowGroupsStatistics(t *testing.T) {
	// 2500 rows: several internal chunks of rows, row groups of 1000.
	batch := orderRows(2500, 0)
	for _, stats := range []bool{true, false} {
		t.Run(fmt.Sprintf("statistics=%v", stats), func(t *testing.T) {
			o := ParquetOptions{Compression: "zstd", RowGroupSize: 1000, EnableStatistics: stats, DataPageSize: 4096, DictionaryPageSize: 1024}
			_, b := encode(t, Options{Format: "parquet", Parquet: &o}, batch)
			tbl, rdr := readParquet(t, b)
			if len(tbl.rows) != 2500 {
				t.Fatalf("%d rows", len(tbl.rows))
			}
			checkOrderRows(t, tbl.rows, 0)
			if n := rdr.NumRowGroups(); n != 3 {
				t.Fatalf("%d row groups, want 3", n)
			}
			for c := 0; c < rdr.MetaData().Schema.NumColumns(); c++ {
				cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(c)
				if err != nil {
					t.Fatal(err)
				}
				st, err := cc.Statistics()
				if err != nil {
					t.Fatal(err)
				}
				if st == nil || st.HasMinMax() != stats {
					t.Errorf("column %d: statistics %v, want min/max %v", c, st, stats)
				}
			}
		})
	}
}

func TestEncoderReuse(t *testing.T) {
	a := orderRows(50, 0)
	b := orderRows(30, 1000)
	other := inserts(`{"x":"different schema"}`)
	for _, f := range []string{"parquet", "avro", "csv", "jsonl"} {
		t.Run(f, func(t *testing.T) {
			enc, err := New(Options{Format: f})
			if err != nil {
				t.Fatal(err)
			}
			for round, batch := range [][]*events.Event{a, b, other, a} {
				var buf bytes.Buffer
				if err := enc.Encode(&buf, batch); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				offset := 0
				if round == 1 {
					offset = 1000
				}
				switch f {
				case "parquet":
					tbl, _ := readParquet(t, buf.Bytes())
					if round == 2 {
						if len(tbl.rows) != 1 || tbl.rows[0]["x"] != "different schema" {
							t.Fatalf("round 2: %v", tbl.rows)
						}
						continue
					}
					if len(tbl.rows) != len(batch) {
						t.Fatalf("round %d: %d rows", round, len(tbl.rows))
					}
					checkOrderRows(t, tbl.rows, offset)
				case "avro":
					tbl, _ := readOCF(t, buf.Bytes())
					for _, r := range tbl.rows {
						for k, v := range r {
							r[k] = unwrapField(v)
						}
					}
					if round == 2 {
						if len(tbl.rows) != 1 || tbl.rows[0]["x"] != "different schema" {
							t.Fatalf("round 2: %v", tbl.rows)
						}
						continue
					}
					if len(tbl.rows) != len(batch) {
						t.Fatalf("round %d: %d rows", round, len(tbl.rows))
					}
					checkOrderRows(t, tbl.rows, offset)
				case "csv":
					recs := readCSV(t, buf.Bytes(), ',')
					if len(recs) != len(batch)+1 {
						t.Fatalf("round %d: %d records", round, len(recs))
					}
				case "jsonl":
					if n := strings.Count(buf.String(), "\n"); n != len(batch) {
						t.Fatalf("round %d: %d lines", round, n)
					}
				}
			}
		})
	}
}

func TestEmptyBatch(t *testing.T) {
	only := []*events.Event{ev(events.Schema, `{"ddl":"x"}`), ev(events.Log, `{"msg":"y"}`)}
	_, b := encode(t, Options{Format: "parquet"}, only)
	if tbl, _ := readParquet(t, b); len(tbl.rows) != 0 || len(tbl.names) != 0 {
		t.Fatalf("parquet: %+v", tbl)
	}
	_, b = encode(t, Options{Format: "avro"}, only)
	if tbl, _ := readOCF(t, b); len(tbl.rows) != 0 {
		t.Fatalf("avro: %+v", tbl)
	}
	_, b = encode(t, Options{Format: "json", Envelope: "row"}, only)
	if got := readJSONValues(t, b, true); len(got) != 0 {
		t.Fatalf("json: %s", b)
	}
	_, b = encode(t, Options{Format: "jsonl", Envelope: "row", Compression: "gzip"}, nil)
	if got := decompress(t, "gzip", b); len(got) != 0 {
		t.Fatalf("jsonl: %q", got)
	}
}
