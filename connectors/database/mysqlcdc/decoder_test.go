package mysqlcdc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// capturedEvent is one raw binlog event body (checksum removed).
type capturedEvent struct {
	h    header
	body []byte
}

// captureBinlog reads the binlog from file:pos as a replica until an event
// ending at or after end, with its own connection.
func captureBinlog(t testing.TB, file string, pos, end uint32) []capturedEvent {
	t.Helper()
	c, err := dial(context.Background(), connParams{Addr: testAddr, User: "root", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExec(t, c, "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @mariadb_slave_capability = 4")
	res, err := c.query("SELECT @@global.binlog_checksum")
	if err != nil {
		t.Fatal(err)
	}
	dec := newDecoder(string(res.Rows[0][0]) == "CRC32")
	if err := c.binlogDump(uint32(900000+time.Now().UnixNano()%90000), file, pos); err != nil {
		t.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []capturedEvent
	for {
		pkt, err := c.readPacket()
		if err != nil {
			t.Fatal(err)
		}
		if pkt[0] != 0 {
			t.Fatalf("binlog packet %x", pkt[:min(len(pkt), 40)])
		}
		h, body, err := dec.split(pkt[1:])
		if err != nil {
			t.Fatal(err)
		}
		if h.Type == evFormatDescription {
			if err := dec.formatDescription(body); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, capturedEvent{h, append([]byte(nil), body...)})
		if h.LogPos >= end {
			return out
		}
	}
}

func masterPos(t testing.TB, c *conn) (string, uint32) {
	t.Helper()
	p, err := currentPosition(c)
	if err != nil {
		t.Fatal(err)
	}
	return p.File, p.Pos
}

// typesEvents writes the type rows and returns the binlog events of it:
// table maps and write/update/delete rows events.
func typesEvents(t testing.TB) (*conn, string, []capturedEvent) {
	c := testDB(t)
	tbl := uniqueTable(t, c, "dec")
	mustExec(t, c, "SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'", "CREATE TABLE "+tbl+" "+typesDDL+" DEFAULT CHARSET=utf8mb4")
	file, start := masterPos(t, c)
	for _, r := range typeRows {
		mustExec(t, c, "INSERT INTO "+tbl+" VALUES "+r)
	}
	mustExec(t, c, "UPDATE "+tbl+" SET id = id + 10", "DELETE FROM "+tbl)
	_, end := masterPos(t, c)
	return c, tbl, captureBinlog(t, file, start, end)
}

// TestDecoderMinimalMetadataFallback: without the optional metadata of
// binlog_row_metadata=FULL (names, signedness, charsets, enum values,
// primary key) the decoder falls back to information_schema and produces
// the same rows.
func TestDecoderMinimalMetadataFallback(t *testing.T) {
	c, tbl, evs := typesEvents(t)
	collations, err := loadCollations(c)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := loadTableSchema(c, "test", tbl)
	if err != nil {
		t.Fatal(err)
	}
	dec := newDecoder(false)
	dec.mysqlJSON = false
	var full, minimal *tableInfo
	rowsSeen := 0
	for _, e := range evs {
		switch e.h.Type {
		case evTableMap:
			tm, err := dec.tableMap(e.body)
			if err != nil {
				t.Fatal(err)
			}
			if tm.Table != tbl {
				continue
			}
			if tm.Names == nil || tm.PK == nil || tm.Unsigned == nil {
				t.Fatal("server did not send full row metadata (binlog_row_metadata=FULL expected)")
			}
			full = buildTableInfo(tm, nil, collations)
			bare := *tm
			bare.Names, bare.Unsigned, bare.Collation, bare.Enums, bare.Sets, bare.PK = nil, nil, nil, nil, nil, nil
			minimal = buildTableInfo(&bare, ts, collations)
		case evWriteRowsV1, evUpdateRowsV1, evDeleteRowsV1, evWriteRowsV2, evUpdateRowsV2, evDeleteRowsV2:
			if full == nil {
				continue
			}
			rh, err := dec.rowsHeader(e.h.Type, e.body)
			if err != nil {
				t.Fatal(err)
			}
			a, err := dec.decodeRows(rh, full)
			if err != nil {
				t.Fatal(err)
			}
			b, err := dec.decodeRows(rh, minimal)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				for i := range a {
					t.Errorf("full:    %s %s\nminimal: %s %s", a[i].After, a[i].Before, b[i].After, b[i].Before)
				}
			}
			for _, rc := range a {
				for _, img := range [][]byte{rc.Before, rc.After, rc.Key} {
					if img != nil && !json.Valid(img) {
						t.Fatalf("invalid JSON %s", img)
					}
				}
			}
			rowsSeen += len(a)
		}
	}
	if rowsSeen != 3*len(typeRows) {
		t.Fatalf("decoded %d rows, want %d", rowsSeen, 3*len(typeRows))
	}
}

// TestFuzzCorpus checks that the captured seed corpus of FuzzRowEvent
// (testdata/fuzz/FuzzRowEvent) still decodes without error, so the fuzzer
// starts from real, valid events. With MYSQLCDC_WRITE_CORPUS=1 it first
// regenerates the corpus from the live server.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRowEvent")
	if os.Getenv("MYSQLCDC_WRITE_CORPUS") == "1" {
		writeFuzzCorpus(t, dir)
	}
	files, err := filepath.Glob(filepath.Join(dir, "captured-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured seeds in %s: %v", dir, err)
	}
	kinds := map[rowsKind]int{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 5 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: unexpected format", f)
		}
		unquote := func(l string) []byte {
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(l, "[]byte("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			return []byte(s)
		}
		typ, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(lines[2], "byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d := newDecoder(false)
		d.mysqlJSON = false
		tm, err := d.tableMap(unquote(lines[1]))
		if err != nil {
			t.Fatalf("%s: table map: %v", f, err)
		}
		rh, err := d.rowsHeader(byte(typ), unquote(lines[3]))
		if err != nil {
			t.Fatalf("%s: rows header: %v", f, err)
		}
		changes, err := d.decodeRows(rh, buildTableInfo(tm, nil, map[uint16]string{45: "utf8mb4", 63: "binary", 8: "latin1", 46: "utf8mb4"}))
		if err != nil || len(changes) == 0 {
			t.Fatalf("%s: %d rows, %v", f, len(changes), err)
		}
		kinds[rh.Kind]++
	}
	if kinds[rowsInsert] == 0 || kinds[rowsUpdate] == 0 || kinds[rowsDelete] == 0 {
		t.Fatalf("corpus lacks a rows event kind: %v", kinds)
	}
}

func writeFuzzCorpus(t *testing.T, dir string) {
	_, tbl, evs := typesEvents(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var tmBody []byte
	n := 0
	for _, e := range evs {
		if e.h.Type == evTableMap {
			if bytes.Contains(e.body, []byte(tbl)) {
				tmBody = e.body
			}
			continue
		}
		if _, ok := rowsKindOf(e.h.Type); !ok || tmBody == nil {
			continue
		}
		var buf bytes.Buffer
		buf.WriteString("go test fuzz v1\n")
		fmt.Fprintf(&buf, "[]byte(%s)\n", strconv.Quote(string(tmBody)))
		fmt.Fprintf(&buf, "byte(%d)\n", e.h.Type)
		fmt.Fprintf(&buf, "[]byte(%s)\n", strconv.Quote(string(e.body)))
		fmt.Fprintf(&buf, "bool(false)\n")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("captured-%02d", n)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	t.Logf("wrote %d seeds", n)
}
