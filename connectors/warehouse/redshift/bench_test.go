package redshift

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

const benchTable = `CREATE TABLE $T (id BIGINT PRIMARY KEY, customer VARCHAR(64), amount NUMERIC(12,2), status VARCHAR(16), created TIMESTAMPTZ, note VARCHAR(256))`

func benchBatches(n, size int, tp events.Type) [][]*events.Event {
	var out [][]*events.Event
	for i := 0; i < n; i += size {
		evs := make([]*events.Event, min(size, n-i))
		for j := range evs {
			id := i + j
			row := fmt.Sprintf(`{"id":%d,"customer":"customer-%d","amount":%d.%02d,"status":"shipped","created":"2024-05-01T12:%02d:%02dZ","note":"order %d of the benchmark"}`,
				id, id%1000, id%10000, id%100, id%60, id%60, id)
			if tp == events.Update {
				row = `{"after":` + row + `}`
			}
			evs[j] = keyed(tp, fmt.Sprintf(`{"id":%d}`, id), row)
		}
		out = append(out, evs)
	}
	return out
}

// BenchmarkWrite writes batches of 10,000 order rows to the real
// PostgreSQL: plain inserts, and upserts (each row's key new, then the
// same batches again as updates) with MERGE and with delete+insert, by
// multi-row INSERT and through the COPY path (staged to an in-process
// S3, COPY emulated by PostgreSQL's json_populate_recordset). It reports
// rows/s, the JSON bytes a row stages as, and the gzip bytes it costs in
// S3.
func BenchmarkWrite(b *testing.B) {
	for _, c := range []struct{ name, cfg string }{
		{"insert", "mode: insert\n"},
		{"upsert-merge", "mode: upsert\nupsert_method: merge\n"},
		{"upsert-delete_insert", "mode: upsert\nupsert_method: delete_insert\n"},
		{"insert-copy", "mode: insert\ncopy_threshold: 1\n"},
		{"upsert-merge-copy", "mode: upsert\nupsert_method: merge\ncopy_threshold: 1\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			table, _ := pgTable(b, benchTable)
			y := "url: " + pgURL + "\ntable: " + table + "\n" + c.cfg
			var s *Sink
			if strings.Contains(c.cfg, "copy_threshold") {
				url, client := fakeS3(b)
				s = newSink(b, y+s3Block(url))
				emulateCopy(b, s, client)
			} else {
				s = newSink(b, y)
			}
			const size = 10000
			inserts := benchBatches(b.N, size, events.Insert)
			var updates [][]*events.Event
			if strings.Contains(c.cfg, "upsert") {
				updates = benchBatches(b.N, size, events.Update)
			}
			jsonBytes, gzBytes := stagedSize(b, s, inserts[0])
			b.ResetTimer()
			start := time.Now()
			rows := 0
			for _, set := range [][][]*events.Event{inserts, updates} {
				for _, evs := range set {
					if err := s.Write(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
					rows += len(evs)
				}
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(jsonBytes, "json-bytes/row")
			b.ReportMetric(gzBytes, "gzip-bytes/row")
		})
	}
}

// stagedSize is what the rows of batch stage as: JSON bytes per row, and
// gzip bytes per row of the whole file.
func stagedSize(b *testing.B, s *Sink, batch []*events.Event) (float64, float64) {
	t, err := s.loadTable(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var raw bytes.Buffer
	for i, e := range batch {
		ops, err := s.plan(t, i, e, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range ops {
			j, _ := json.Marshal(o.vals)
			raw.Write(j)
			raw.WriteByte('\n')
		}
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(raw.Bytes())
	w.Close()
	n := float64(len(batch))
	return float64(raw.Len()) / n, float64(gz.Len()) / n
}
