package rdbc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// benchEvents makes n order rows as a CDC source would send them, and
// their JSON size.
func benchEvents(n, from int) ([]*events.Event, int) {
	out := make([]*events.Event, n)
	size := 0
	for i := range out {
		id := from + i
		data := fmt.Sprintf(`{"id":%d,"customer":"customer-%d","amount":%d.%02d,"status":"shipped","created":"2024-05-01T12:%02d:%02d.123456Z","note":"a short note of about forty characters."}`,
			id, id%1000, id%10000, id%100, id%60, id%60)
		size += len(data)
		out[i] = events.New(events.Insert, "orders", events.RawPayload([]byte(data)))
		out[i].Key = []byte(fmt.Sprintf(`{"id":%d}`, id))
	}
	return out, size
}

var benchDDL = map[string]string{
	"postgres": `CREATE TABLE $T_b (id bigint PRIMARY KEY, customer text, amount numeric(12,2), status varchar(20), created timestamptz, note text)`,
	"mariadb":  `CREATE TABLE $T_b (id bigint PRIMARY KEY, customer varchar(50), amount decimal(12,2), status varchar(20), created datetime(6), note text)`,
}

const benchBatch = 1000

// BenchmarkSink writes batches of 1000 rows (insert, and upsert of the
// same keys again) and reports rows/s and the event bytes per row.
func BenchmarkSink(b *testing.B) {
	for _, tg := range targets() {
		for _, mode := range []string{"insert", "upsert"} {
			b.Run(tg.name+"/"+mode, func(b *testing.B) {
				h := newDBs(b, tg.name == "mariadb")
				db := tg.db(h)
				h.exec(db, benchDDL[tg.name])
				s := h.sink("url: " + tg.url + "\ntable: $T_b\nmode: " + mode + "\n")
				ctx := context.Background()
				var batches [][]*events.Event
				size := 0
				for i := 0; i < b.N; i += benchBatch {
					evs, n := benchEvents(min(benchBatch, b.N-i), i)
					batches, size = append(batches, evs), size+n
				}
				if mode == "upsert" {
					for _, evs := range batches {
						if err := s.Write(ctx, evs); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ResetTimer()
				start := time.Now()
				for _, evs := range batches {
					if err := s.Write(ctx, evs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
				b.ReportMetric(float64(size)/float64(b.N), "bytes/row")
			})
		}
	}
}

// BenchmarkSource reads a table in incrementing mode, batches of 1000.
func BenchmarkSource(b *testing.B) {
	for _, tg := range targets() {
		b.Run(tg.name, func(b *testing.B) {
			h := newDBs(b, tg.name == "mariadb")
			db := tg.db(h)
			h.exec(db, benchDDL[tg.name])
			s := h.sink("url: " + tg.url + "\ntable: $T_b\n")
			for i := 0; i < b.N; i += benchBatch {
				evs, _ := benchEvents(min(benchBatch, b.N-i), i)
				if err := s.Write(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			src := h.source("url: " + tg.url + "\ntables: [$T_b]\nmode: incrementing\nincrementing_column: id\npoll_interval_ms: 0\n")
			n := 0
			b.ResetTimer()
			start := time.Now()
			err := src.Read(context.Background(), nil, emitFunc(func(batch []*events.Event) { n += len(batch) }))
			if err != nil {
				b.Fatal(err)
			}
			if n != b.N {
				b.Fatalf("read %d rows, want %d", n, b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

type emitFunc func([]*events.Event)

func (f emitFunc) Emit(_ context.Context, b []*events.Event) error { f(b); return nil }
