package mysqlcdc

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// BenchmarkStreamDecode measures the per-row cost of turning captured
// binlog events (1000-row INSERT transactions of a typical orders table)
// into events, without the network.
func BenchmarkStreamDecode(b *testing.B) {
	c := testDB(b)
	tbl := uniqueTable(b, c, "benchdec")
	mustExec(b, c, "CREATE TABLE "+tbl+" (id BIGINT PRIMARY KEY, customer INT UNSIGNED NOT NULL, status VARCHAR(16) NOT NULL, amount DECIMAL(12,2) NOT NULL, note VARCHAR(64), created DATETIME(6) NOT NULL)")
	file, start := masterPos(b, c)
	const rows = 10000
	for i := 0; i < rows; i += 1000 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + tbl + " VALUES ")
		for j := range 1000 {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d,%d,'paid',%d.%02d,'note %d','2024-01-01 00:00:%02d.123456')", i+j, j*7, j, j%100, j, j%60)
		}
		mustExec(b, c, sb.String())
	}
	_, end := masterPos(b, c)
	evs := captureBinlog(b, file, start, end)
	cfg := testConfig(tbl)
	src := newSource(b, cfg)
	collations, err := loadCollations(c)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	emit := pipeline.EmitterFunc(func(_ context.Context, batch []*events.Event) error { n += len(batch); return nil })
	b.ResetTimer()
	b.ReportAllocs()
	for range b.N {
		st := &streamer{src: src, emit: emit, m: &streamMetrics{}, tables: map[uint64]*tableInfo{}, schemas: map[string]*tableSchema{}, collations: collations, dec: newDecoder(false), file: file}
		st.m = &streamMetrics{events: &telemetry.Counter{}, transactions: &telemetry.Counter{}, reconnects: &telemetry.Counter{}, schema: &telemetry.Counter{}, lag: &telemetry.Gauge{}}
		st.dec.mysqlJSON = false
		for _, e := range evs {
			if e.h.Type == evFormatDescription || e.h.Type == evRotate {
				continue // captured without checksum: the FDE would announce one
			}
			raw := make([]byte, 0, eventHeaderLen+len(e.body))
			raw = append(raw, make([]byte, eventHeaderLen)...)
			raw[4] = e.h.Type
			binary.LittleEndian.PutUint32(raw[9:], uint32(len(raw)+len(e.body)))
			binary.LittleEndian.PutUint32(raw[13:], e.h.LogPos)
			raw = append(raw, e.body...)
			if err := st.handle(context.Background(), raw); err != nil {
				b.Fatal(err)
			}
			if len(st.batch) >= 1000 {
				if err := st.flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		}
		_ = st.flush(context.Background())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
	if n != rows*b.N {
		b.Fatalf("%d events, want %d", n, rows*b.N)
	}
}
