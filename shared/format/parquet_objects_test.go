package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/format/formattest"
)

// sameValue compares a value arrow-go read with the one hyparquet read
// (INT64 as decimal text, doubles as JSON numbers).
func sameValue(arrow, hy any) bool {
	switch a := arrow.(type) {
	case nil:
		return hy == nil
	case int64:
		n, ok := hy.(json.Number)
		if !ok {
			s, isStr := hy.(string)
			return isStr && s == fmt.Sprint(a)
		}
		return n.String() == fmt.Sprint(a)
	case float64:
		n, ok := hy.(json.Number)
		if !ok {
			return false
		}
		f, err := n.Float64()
		return err == nil && f == a
	default:
		return reflect.DeepEqual(arrow, hy)
	}
}

// TestParquetEveryObjectReadable writes a sequence of objects with one
// encoder, as one sink instance does for its whole life — several with
// the same schema (the writer is reused), one with a different schema,
// files of several row groups — and reads every one of them back with two
// readers other than the writer: arrow-go and hyparquet. Each column
// chunk's path_in_schema must name its column in every row group of every
// file; the readers must agree on every value.
func TestParquetEveryObjectReadable(t *testing.T) {
	type object struct {
		batch  []*events.Event
		offset int // of orderRows, -1 for another shape
	}
	objects := []object{
		{orderRows(50, 0), 0},
		{orderRows(250, 1000), 1000}, // three row groups of 100
		{orderRows(30, 2000), 2000},
		{inserts(`{"x":"different schema","n":1}`, `{"x":"second","n":2}`), -1},
		{orderRows(120, 3000), 3000}, // the first schema again, after a change
		{orderRows(10, 4000), 4000},
	}
	for _, codec := range []string{"snappy", "none", "gzip", "brotli"} {
		t.Run(codec, func(t *testing.T) {
			enc, err := New(Options{Format: "parquet", Parquet: &ParquetOptions{Compression: codec, RowGroupSize: 100}})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var files []string
			var arrowRows [][]map[string]any
			for i, o := range objects {
				var buf bytes.Buffer
				if err := enc.Encode(&buf, o.batch); err != nil {
					t.Fatalf("object %d: %v", i, err)
				}
				tbl, rdr := readParquet(t, buf.Bytes())
				if len(tbl.rows) != len(o.batch) {
					t.Fatalf("object %d: arrow-go read %d rows, want %d", i, len(tbl.rows), len(o.batch))
				}
				if o.offset >= 0 {
					checkOrderRows(t, tbl.rows, o.offset)
				}
				md := rdr.MetaData()
				for rg := 0; rg < md.NumRowGroups(); rg++ {
					for c := 0; c < md.Schema.NumColumns(); c++ {
						cc, err := md.RowGroup(rg).ColumnChunk(c)
						if err != nil {
							t.Fatal(err)
						}
						if got, want := strings.Join(cc.PathInSchema(), "."), md.Schema.Column(c).Name(); got != want {
							t.Errorf("object %d row group %d column %d: path_in_schema %q, want %q", i, rg, c, got, want)
						}
					}
				}
				f := filepath.Join(dir, fmt.Sprintf("object-%d.parquet", i))
				if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
				arrowRows = append(arrowRows, tbl.rows)
			}
			for i, hy := range formattest.ReadParquet(t, files...) {
				if hy.Error != "" {
					t.Errorf("object %d: hyparquet: %s", i, hy.Error)
					continue
				}
				for rg, paths := range hy.Paths {
					var want []string
					for name := range arrowRows[i][0] {
						want = append(want, name)
					}
					slices.Sort(want)
					if got := slices.Sorted(slices.Values(paths)); !slices.Equal(got, want) {
						t.Errorf("object %d row group %d: hyparquet sees path_in_schema %q, want %q", i, rg, got, want)
					}
				}
				if len(hy.Rows) != len(arrowRows[i]) {
					t.Errorf("object %d: hyparquet read %d rows, arrow-go %d", i, len(hy.Rows), len(arrowRows[i]))
					continue
				}
				for r, row := range arrowRows[i] {
					for col, v := range row {
						if !sameValue(v, hy.Rows[r][col]) {
							t.Errorf("object %d row %d %s: arrow-go %#v, hyparquet %#v", i, r, col, v, hy.Rows[r][col])
						}
					}
				}
			}
		})
	}
}
