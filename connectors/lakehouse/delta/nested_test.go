package deltalake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/objstore"
)

// nestedSchema has a column of each type beyond the primitives, as
// PROTOCOL.md serialises them: decimals of each Parquet encoding (INT32,
// INT64, fixed-length bytes), a struct, arrays (one of structs, one whose
// elements may not be null) and a map.
const nestedSchema = `{"type":"struct","fields":[
{"name":"id","type":"long","nullable":false,"metadata":{}},
{"name":"price","type":"decimal(9,2)","nullable":true,"metadata":{}},
{"name":"total","type":"decimal(18,4)","nullable":true,"metadata":{}},
{"name":"big","type":"decimal(38,6)","nullable":true,"metadata":{}},
{"name":"addr","type":{"type":"struct","fields":[
  {"name":"city","type":"string","nullable":true,"metadata":{}},
  {"name":"zip","type":"integer","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},
{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},
{"name":"attrs","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}},
{"name":"lines","type":{"type":"array","elementType":{"type":"struct","fields":[
  {"name":"sku","type":"string","nullable":true,"metadata":{}},
  {"name":"qty","type":"long","nullable":true,"metadata":{}}]},"containsNull":false},"nullable":true,"metadata":{}}
]}`

// TestNestedAndDecimalColumns: to a table created elsewhere with decimal,
// struct, array and map columns, the sink writes rows whose values land in
// those columns: the log follows the protocol's JSON schema (the nested
// types of schemaString included), decimal statistics are exact, and
// hyparquet reads the Parquet file back with every value (nulls, empty
// arrays and maps, null elements and map values) in place. Values that do
// not fit (too many fractional digits, a field the struct lacks, a null
// element where containsNull is false) fail alone.
func TestNestedAndDecimalColumns(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "_delta_log"), 0o755); err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(json.RawMessage(nestedSchema))
	md, _ := json.Marshal(map[string]any{"metaData": map[string]any{
		"id": "nested-test", "format": map[string]any{"provider": "parquet", "options": map[string]any{}},
		"schemaString": string(compact), "partitionColumns": []string{}, "configuration": map[string]any{},
		"createdTime": 1700000000000,
	}})
	commit0 := `{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}` + "\n" + string(md) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "_delta_log", "00000000000000000000.json"), []byte(commit0), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := func(js string) *events.Event { return events.New(events.Insert, "t", events.RawPayload([]byte(js))) }
	batch := []*events.Event{
		ev(`{"id":1,"price":"12.34","total":123456.7891,"big":"-123456789012345678901234.5","addr":{"city":"Paris","zip":75001},"tags":["a",null,"b"],"attrs":{"x":1,"y":null},"lines":[{"sku":"s1","qty":2},{"sku":"s2","qty":null}]}`),
		ev(`{"id":2,"price":-0.5,"big":null,"addr":null,"tags":[],"attrs":{},"lines":null}`),
		ev(`{"id":3,"price":7,"addr":{"city":null},"lines":[{"sku":"s3"}]}`),
		ev(`{"id":4,"price":"1.234"}`),              // 3 fractional digits for a scale of 2
		ev(`{"id":5,"addr":{"country":"FR"}}`),      // not a field of addr
		ev(`{"id":6,"lines":[null]}`),               // containsNull false
		ev(`{"id":7,"price":"12345678.9"}`),         // 10 digits for a precision of 9
		ev(`{"id":8,"attrs":{"x":"not a number"}}`), // map value of type long
	}
	s := newTestSink(t, testConfig(dir, nil))
	err := s.Write(context.Background(), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 5 {
		t.Fatalf("want rows 4 to 8 to fail alone, got %v", err)
	}
	for i := 3; i < 8; i++ {
		if we.Failed[i] == nil {
			t.Errorf("row %d did not fail", i)
		}
	}
	st, _ := objstore.NewLocal(dir)
	log := readLog(t, st)
	if len(log) != 2 {
		t.Fatalf("%d versions, want 2", len(log))
	}
	var stats map[string]any
	for _, a := range liveFiles(log) {
		d := json.NewDecoder(strings.NewReader(a["stats"].(string)))
		d.UseNumber()
		if err := d.Decode(&stats); err != nil {
			t.Fatal(err)
		}
	}
	part := func(k string) map[string]any { m, _ := stats[k].(map[string]any); return m }
	if got := fmt.Sprint(part("minValues")["price"], " ", part("maxValues")["price"], " ", part("maxValues")["total"]); got != "-0.50 12.34 123456.7891" {
		t.Errorf("decimal stats %s: %v", got, stats)
	}
	if _, ok := part("nullCount")["addr"]; ok {
		t.Errorf("stats of a struct column: %v", stats["nullCount"])
	}

	rows := tableRows(t, dir, log)
	byID := map[string]map[string]any{}
	for _, r := range rows {
		byID[fmt.Sprint(r["id"])] = r
	}
	if len(byID) != 3 {
		t.Fatalf("hyparquet read %v", rows)
	}
	r1, r2, r3 := byID["1"], byID["2"], byID["3"]
	check := func(what string, got any, want string) {
		t.Helper()
		if s := fmt.Sprint(got); s != want {
			t.Errorf("%s = %s, want %s", what, s, want)
		}
	}
	check("price 1", r1["price"], "12.34")
	check("price 2", r2["price"], "-0.5")
	check("price 3", r3["price"], "7")
	check("total 1", r1["total"], "123456.7891")
	// hyparquet reads a decimal(38,6) as a JavaScript number: compare it
	// as one (a wrong sign or scale is far off).
	if f, err := strconv.ParseFloat(fmt.Sprint(r1["big"]), 64); err != nil || math.Abs(f/-1.234567890123456789e23-1) > 1e-12 {
		t.Errorf("big 1 = %v", r1["big"])
	}
	check("big 2", r2["big"], "<nil>")
	check("addr 1", r1["addr"], "map[city:Paris zip:75001]")
	check("addr 2", r2["addr"], "<nil>")
	check("addr 3", r3["addr"], "map[city:<nil> zip:<nil>]")
	check("tags 1", r1["tags"], "[a <nil> b]")
	check("tags 2", r2["tags"], "[]")
	check("tags 3", r3["tags"], "<nil>")
	check("attrs 1", r1["attrs"], "map[x:1 y:<nil>]")
	check("attrs 2", r2["attrs"], "map[]")
	check("lines 1", r1["lines"], "[map[qty:2 sku:s1] map[qty:<nil> sku:s2]]")
	check("lines 2", r2["lines"], "<nil>")
	check("lines 3", r3["lines"], "[map[qty:<nil> sku:s3]]")
}
