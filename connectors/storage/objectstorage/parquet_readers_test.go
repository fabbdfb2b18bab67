package objectstorage

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/format/formattest"
)

// TestParquetObjectsReadableByHyparquet: one sink instance writes many
// Parquet objects (its encoder is reused from the second on); every one of
// them is read back with hyparquet, a reader independent of the writer,
// which refuses a column chunk whose path_in_schema does not name a schema
// column. Across the objects every order is there exactly once.
func TestParquetObjectsReadableByHyparquet(t *testing.T) {
	for _, codec := range []string{"snappy", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			root := t.TempDir()
			s := mustSink(t, localConfig(root, "format: parquet\nparquet:\n  compression: "+codec+"\n  row_group_size: 15\n"))
			start := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
			all := orders(300, start, time.Second)
			for from := 0; from < len(all); from += 100 { // three writes of 100: objects of 40, 40, 20
				if err := s.Write(context.Background(), all[from:from+100]); err != nil {
					t.Fatal(err)
				}
			}
			objs := listLocal(t, filepath.Join(root, "lake"))
			if len(objs) < 6 {
				t.Fatalf("%d objects, want at least 6", len(objs))
			}
			dir := t.TempDir()
			var files []string
			for i, o := range objs {
				f := filepath.Join(dir, filepath.Base(o.key))
				if err := os.WriteFile(f, o.body, 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
				if n := countRows(t, o.key, o.body); n == 0 {
					t.Errorf("object %d (%s): arrow-go read no rows", i, o.key)
				}
			}
			want := []string{"created_at", "customer_id", "order_id", "price", "product", "quantity", "status"}
			var ids []string
			for i, f := range formattest.ReadParquet(t, files...) {
				if f.Error != "" {
					t.Errorf("object %d (%s): hyparquet: %s", i, objs[i].key, f.Error)
					continue
				}
				for rg, paths := range f.Paths {
					if got := slices.Sorted(slices.Values(paths)); !slices.Equal(got, want) {
						t.Errorf("object %d (%s) row group %d: path_in_schema %q", i, objs[i].key, rg, paths)
					}
				}
				for _, r := range f.Rows {
					id, _ := r["order_id"].(string) // INT64: decimal text
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			n := len(ids)
			if distinct := slices.Compact(ids); n != 300 || len(distinct) != 300 || distinct[0] != "100000" || distinct[299] != "100299" {
				t.Errorf("hyparquet read %d order ids, %d distinct; want 100000..100299 once each", n, len(distinct))
			}
		})
	}
}
