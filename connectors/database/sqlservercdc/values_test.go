package sqlservercdc

import (
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"
)

// TestValues renders each SQL Server type from the Go value go-mssqldb
// returns for it (its types.go: decimal and money as the exact decimal
// text, uniqueidentifier as the 16 bytes in wire order, datetimeoffset as
// a time.Time in a fixed zone of the stored offset, datetime2 in UTC,
// rowversion and varbinary as bytes, xml and nvarchar as strings).
func TestValues(t *testing.T) {
	// Microsoft's uniqueidentifier example (Transact-SQL docs on
	// converting binary to uniqueidentifier): the bytes
	// 0xFF19966F868B11D0B42D00C04FC964FF are 6F9619FF-8B86-D011-B42D-00C04FC964FF.
	guid, _ := hex.DecodeString("ff19966f868b11d0b42d00c04fc964ff")
	ist := time.FixedZone("", 5*3600+30*60)
	for _, c := range []struct {
		col  column
		v    any
		want string
	}{
		{column{Type: "decimal", Precision: 38, Scale: 10}, []byte("12345678901234567890123456.1234567890"), `12345678901234567890123456.1234567890`},
		{column{Type: "numeric", Precision: 5, Scale: 2}, []byte("-0.10"), `-0.10`},
		{column{Type: "money"}, []byte("922337203685477.5807"), `922337203685477.5807`},
		{column{Type: "smallmoney"}, []byte("-214748.3648"), `-214748.3648`},
		{column{Type: "uniqueidentifier"}, guid, `"6F9619FF-8B86-D011-B42D-00C04FC964FF"`},
		{column{Type: "datetime2", Scale: 7}, time.Date(2026, 3, 4, 5, 6, 7, 123456700, time.UTC), `"2026-03-04T05:06:07.1234567"`},
		{column{Type: "datetime2", Scale: 3}, time.Date(2026, 3, 4, 5, 6, 7, 120000000, time.UTC), `"2026-03-04T05:06:07.120"`},
		{column{Type: "datetime2", Scale: 0}, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), `"0001-01-01T00:00:00"`},
		{column{Type: "datetimeoffset", Scale: 7}, time.Date(2026, 3, 4, 10, 36, 7, 100, ist), `"2026-03-04T10:36:07.0000001+05:30"`},
		{column{Type: "datetimeoffset", Scale: 2}, time.Date(2026, 3, 4, 0, 0, 0, 0, time.FixedZone("", -8*3600)), `"2026-03-04T00:00:00.00-08:00"`},
		{column{Type: "datetime"}, time.Date(2026, 3, 4, 5, 6, 7, 3333333, time.UTC), `"2026-03-04T05:06:07.003"`},
		{column{Type: "smalldatetime"}, time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC), `"2026-03-04T05:06:00"`},
		{column{Type: "date"}, time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), `"2026-03-04"`},
		{column{Type: "time", Scale: 4}, time.Date(1, 1, 1, 23, 59, 59, 999900000, time.UTC), `"23:59:59.9999"`},
		{column{Type: "timestamp"}, []byte{0, 0, 0, 0, 0, 0, 0x07, 0xd1}, `"AAAAAAAAB9E="`},
		{column{Type: "varbinary", MaxLength: -1}, []byte{0xde, 0xad, 0xbe, 0xef}, `"3q2+7w=="`},
		{column{Type: "xml"}, `<a b="1">x</a>`, `"\u003ca b=\"1\"\u003ex\u003c/a\u003e"`},
		{column{Type: "nvarchar"}, "naïve ☃ \U0001F600", `"naïve ☃ 😀"`},
		{column{Type: "bit"}, true, `true`},
		{column{Type: "bigint"}, int64(-9223372036854775808), `-9223372036854775808`},
		{column{Type: "real"}, float64(float32(0.1)), `0.1`},
		{column{Type: "float"}, 0.1, `0.1`},
		{column{Type: "int"}, nil, `null`},
	} {
		got, err := appendValue(nil, &c.col, c.v)
		if err != nil {
			t.Errorf("%s: %v", c.col.Type, err)
			continue
		}
		if !json.Valid(got) {
			t.Errorf("%s: not JSON: %s", c.col.Type, got)
		}
		var a, b any
		_ = json.Unmarshal(got, &a)
		_ = json.Unmarshal([]byte(c.want), &b)
		if string(got) != c.want && !(isString(a) && a == b) {
			t.Errorf("%s: %s, want %s", c.col.declared(), got, c.want)
		}
	}
	for _, bad := range []struct {
		col column
		v   any
	}{
		{column{Type: "decimal"}, []byte("1e5")},
		{column{Type: "decimal"}, 1.5},
		{column{Type: "uniqueidentifier"}, []byte{1, 2}},
		{column{Type: "float"}, func() float64 { z := 0.0; return 1 / z }()},
	} {
		if _, err := appendValue(nil, &bad.col, bad.v); err == nil {
			t.Errorf("%s %v: accepted", bad.col.Type, bad.v)
		}
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

func TestDeclared(t *testing.T) {
	for c, want := range map[column]string{
		{Type: "decimal", Precision: 12, Scale: 4}: "decimal(12,4)",
		{Type: "nvarchar", MaxLength: 200}:         "nvarchar(100)",
		{Type: "nvarchar", MaxLength: -1}:          "nvarchar(max)",
		{Type: "datetime2", Scale: 7}:              "datetime2(7)",
		{Type: "timestamp"}:                        "rowversion",
		{Type: "uniqueidentifier"}:                 "uniqueidentifier",
	} {
		if got := c.declared(); got != want {
			t.Errorf("%+v: %s, want %s", c, got, want)
		}
	}
}

func TestLSNText(t *testing.T) {
	var l lsn
	if err := l.UnmarshalText([]byte("0x0000002A000001F80003")); err != nil {
		t.Fatal(err)
	}
	if l.String() != "0x0000002a000001f80003" {
		t.Fatal(l)
	}
	if err := l.UnmarshalText([]byte("0x12")); err == nil {
		t.Fatal("short LSN accepted")
	}
	p, err := parsePosition([]byte(`{"lsn":"0x0000002a000001f80003","seq":"0x0000002a000001f80002","tables":["orders"]}`))
	if err != nil || p.LSN != l || p.Tables[0] != "orders" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := parsePosition([]byte(`{"lsn":"zz"}`)); err == nil {
		t.Fatal("bad position accepted")
	}
}
