package mysqlcdc

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/pipeline"
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
		st := &streamer{src: src, emit: emit, c: c, meta: c, tables: map[uint64]*tableInfo{}, schemas: map[string]*tableSchema{}, collations: collations, dec: newDecoder(false), file: file}
		st.m = &streamMetrics{events: &metric.Counter{}, transactions: &metric.Counter{}, reconnects: &metric.Counter{}, schema: &metric.Counter{}, lag: &metric.Gauge{}}
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

// benchTableMap is a TABLE_MAP body (binlog_row_metadata=FULL) for the
// benchmysql table: id BIGINT PRIMARY KEY, customer INT UNSIGNED,
// status VARCHAR(16), amount DECIMAL(12,2), note VARCHAR(64) NULL,
// created DATETIME(6), all utf8mb4.
func benchTableMap() []byte {
	b := []byte{7, 0, 0, 0, 0, 0, 0, 0} // table id (6 bytes), flags
	b = append(b, 4, 't', 'e', 's', 't', 0, 6, 'o', 'r', 'd', 'e', 'r', 's', 0)
	b = append(b, 6, typeLongLong, typeLong, typeVarchar, typeNewDecimal, typeVarchar, typeDatetime2)
	// metadata: VARCHAR(16) = 64 bytes, DECIMAL(12,2), VARCHAR(64) = 256
	// bytes, DATETIME(6)
	b = append(b, 7, 64, 0, 12, 2, 0, 1, 6)
	b = append(b, 0x10)       // nullability: note
	b = append(b, 1, 1, 0x40) // SIGNEDNESS: id, customer (unsigned), amount
	b = append(b, 2, 1, 45)   // DEFAULT_CHARSET utf8mb4_general_ci
	names := []byte{}
	for _, n := range []string{"id", "customer", "status", "amount", "note", "created"} {
		names = append(names, byte(len(n)))
		names = append(names, n...)
	}
	b = append(b, 4, byte(len(names)))
	b = append(b, names...)
	return append(b, 8, 1, 0) // SIMPLE_PRIMARY_KEY: id
}

// benchRowsEvent is a WRITE_ROWS v2 body with rows of benchTableMap's
// table, as many as MariaDB puts in one event (about 8 KiB); every
// fourth row has a NULL note.
func benchRowsEvent() (body []byte, rows int) {
	b := []byte{7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 6, 0x3f}
	statuses := []string{"new", "paid", "shipped", "cancelled"}
	for len(b) < 8000 {
		i := rows
		null := i%4 == 3
		if null {
			b = append(b, 0x10)
		} else {
			b = append(b, 0)
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(1000000+i))
		b = binary.LittleEndian.AppendUint32(b, uint32(i*7919%100000))
		st := statuses[i%4]
		b = append(b, byte(len(st)))
		b = append(b, st...)
		// DECIMAL(12,2) 12345.67: 1 digit (1 byte), 9 digits (4 bytes),
		// 2 fraction digits (1 byte), sign bit set for positive.
		b = append(b, 0x80)
		b = binary.BigEndian.AppendUint32(b, uint32(10000+i%90000))
		b = append(b, byte(i%100))
		if !null {
			note := fmt.Sprintf("note %d", i)
			b = binary.LittleEndian.AppendUint16(b, uint16(len(note)))
			b = append(b, note...)
		}
		// DATETIME(6) 2024-01-01 hh:mm:ss.ffffff
		ymd := uint64((2024*13+1)<<5 | 1)
		hms := uint64((i/3600%24)<<12 | (i/60%60)<<6 | i%60)
		v := 0x8000000000 + (ymd<<17 | hms)
		b = append(b, byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		us := uint32(i * 37 % 1000000)
		b = append(b, byte(us>>16), byte(us>>8), byte(us))
		rows++
	}
	return b, rows
}

func benchEvent(typ byte, body []byte) []byte {
	raw := make([]byte, eventHeaderLen, eventHeaderLen+len(body))
	raw[0] = 1 // timestamp
	raw[4] = typ
	raw[5] = 1 // server id
	binary.LittleEndian.PutUint32(raw[9:], uint32(eventHeaderLen+len(body)))
	binary.LittleEndian.PutUint32(raw[13:], 1000)
	return append(raw, body...)
}

// TestBenchRowsEvent checks that the hand-built benchmark event decodes to
// the rows it was built from.
func TestBenchRowsEvent(t *testing.T) {
	d := newDecoder(false)
	tm, err := d.tableMap(benchTableMap())
	if err != nil {
		t.Fatal(err)
	}
	ti := buildTableInfo(tm, nil, map[uint16]string{45: "utf8mb4"})
	body, n := benchRowsEvent()
	rh, err := d.rowsHeader(evWriteRowsV2, body)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := d.decodeRows(rh, ti)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != n {
		t.Fatalf("%d rows, want %d", len(changes), n)
	}
	want := map[int]string{
		0:  `{"id":1000000,"customer":0,"status":"new","amount":"10000.00","note":"note 0","created":"2024-01-01T00:00:00.000000"}`,
		3:  `{"id":1000003,"customer":23757,"status":"cancelled","amount":"10003.03","note":null,"created":"2024-01-01T00:00:03.000111"}`,
		61: `{"id":1000061,"customer":83059,"status":"paid","amount":"10061.61","note":"note 61","created":"2024-01-01T00:01:01.002257"}`,
	}
	for i, w := range want {
		if got := string(changes[i].After); got != w {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, w)
		}
	}
	if got := string(changes[61].Key); got != `{"id":1000061}` {
		t.Errorf("key %s", got)
	}
}

// BenchmarkDecodeRows measures one rows event of the benchmysql table
// without a server: "decode" is the row images to JSON, "events" the
// whole path of a binlog event (checksum-free split, decode, event
// building, batching) into a counting emitter.
func BenchmarkDecodeRows(b *testing.B) {
	body, rows := benchRowsEvent()
	b.Run("decode", func(b *testing.B) {
		d := newDecoder(false)
		tm, err := d.tableMap(benchTableMap())
		if err != nil {
			b.Fatal(err)
		}
		ti := buildTableInfo(tm, nil, map[uint16]string{45: "utf8mb4"})
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			rh, err := d.rowsHeader(evWriteRowsV2, body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.decodeRows(rh, ti); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
	})
	b.Run("events", func(b *testing.B) {
		cfg := testConfig("orders")
		cfg.Database = "test"
		src := newSource(b, cfg)
		n := 0
		emit := pipeline.EmitterFunc(func(_ context.Context, batch []*events.Event) error { n += len(batch); return nil })
		// No server behind it: the column types a captured table's
		// events carry (source.columns) come from information_schema, so
		// the table's are given here as the server would answer.
		schemas := map[string]*tableSchema{"test.orders": {
			DB: "test", Table: "orders",
			Cols:      []colInfo{{Name: "id"}, {Name: "customer"}, {Name: "status"}, {Name: "amount"}, {Name: "note"}, {Name: "created"}},
			DataTypes: []string{"bigint", "int", "varchar", "decimal", "varchar", "datetime"},
			ColTypes:  []string{"bigint(20)", "int(10) unsigned", "varchar(16)", "decimal(12,2)", "varchar(64)", "datetime(6)"},
			Nullable:  []bool{false, false, false, false, true, false},
			PK:        []int{0},
		}}
		st := &streamer{src: src, emit: emit, tables: map[uint64]*tableInfo{}, schemas: schemas,
			collations: map[uint16]string{45: "utf8mb4"}, dec: newDecoder(false), file: "mariadb-bin.000001",
			c: &conn{serverVersion: "10.11.19-MariaDB"}}
		st.m = &streamMetrics{events: &metric.Counter{}, transactions: &metric.Counter{}, reconnects: &metric.Counter{}, schema: &metric.Counter{}, lag: &metric.Gauge{}}
		st.dec.mysqlJSON = false
		st.setBoundary(position{File: st.file, Pos: 4, GTID: "0-1-100"})
		ctx := context.Background()
		if err := st.handle(ctx, benchEvent(evTableMap, benchTableMap())); err != nil {
			b.Fatal(err)
		}
		ev := benchEvent(evWriteRowsV2, body)
		b.ReportAllocs()
		b.SetBytes(int64(len(ev)))
		for b.Loop() {
			if err := st.handle(ctx, ev); err != nil {
				b.Fatal(err)
			}
			if len(st.batch) >= cfg.MaxBatchSize {
				if err := st.flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := st.flush(ctx); err != nil {
			b.Fatal(err)
		}
		if n != rows*b.N {
			b.Fatalf("%d events, want %d", n, rows*b.N)
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
	})
}
