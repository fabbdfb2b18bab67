package format

import (
	"io"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// countingWriter measures the output without keeping it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkEncode encodes batches of 10,000 datagen-like order rows (id,
// customer, amount, status, created_at, nested address, a sometimes-null
// note). Every iteration starts from the raw JSON bytes, as a sink gets
// them, so decoding is part of the cost. Run with -benchtime=100x for the
// 1M rows of the README table.
func BenchmarkEncode(b *testing.B) {
	const batchSize = 10000
	src := orderRows(batchSize, 0)
	raws := make([][]byte, len(src))
	for i, e := range src {
		raws[i], _ = e.Data.JSON()
	}
	cases := []struct {
		name string
		o    Options
	}{}
	for _, f := range []string{"json", "jsonl", "csv"} {
		for _, c := range []string{"none", "gzip", "zstd", "snappy", "lz4"} {
			cases = append(cases, struct {
				name string
				o    Options
			}{f + "/" + c, Options{Format: f, Compression: c}})
		}
	}
	for _, c := range []string{"null", "deflate", "snappy"} {
		cases = append(cases, struct {
			name string
			o    Options
		}{"avro/" + c, Options{Format: "avro", Avro: &AvroOptions{Compression: c}}})
	}
	for _, c := range []string{"none", "snappy", "gzip", "lz4", "zstd", "brotli"} {
		p := *orDefaults[ParquetOptions](nil)
		p.Compression = c
		cases = append(cases, struct {
			name string
			o    Options
		}{"parquet/" + c, Options{Format: "parquet", Parquet: &p}})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			enc, err := New(c.o)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]*events.Event, batchSize)
			for i := range batch {
				e := *src[i]
				batch[i] = &e
			}
			reset := func() {
				for i := range batch {
					batch[i].Data = events.RawPayload(raws[i])
				}
			}
			var cw countingWriter
			reset()
			if err := enc.Encode(&cw, batch); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(cw.n)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				reset()
				if err := enc.Encode(io.Discard, batch); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(batchSize)*float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(cw.n)/batchSize, "out-B/event")
		})
	}
}
