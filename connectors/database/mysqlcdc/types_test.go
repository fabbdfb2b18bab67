package mysqlcdc

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

const typesDDL = `(
 id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
 i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 f FLOAT, d DOUBLE,
 dec1 DECIMAL(10,2), dec2 DECIMAL(65,30), dec3 DECIMAL(5,0), dec4 DECIMAL(20,10) UNSIGNED,
 dt DATE, dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, ts0 TIMESTAMP NULL DEFAULT NULL,
 tm TIME, tm3 TIME(3), tm6 TIME(6), yr YEAR,
 c CHAR(10), vc VARCHAR(300), tx TEXT, lt LONGTEXT, l1 VARCHAR(20) CHARACTER SET latin1,
 bn BINARY(4), vb VARBINARY(10), bl BLOB,
 e ENUM('a','b','c d'), st SET('x','y','z'),
 bt BIT(1), bt64 BIT(64), bt10 BIT(10),
 js JSON,
 g POINT NULL
)`

// typeRows are inserted before the snapshot; the stream gets the same
// values through INSERT ... SELECT.
var typeRows = []string{
	`(1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
	  3.1415927, 1.7976931348623157e308,
	  99999999.99, '12345678901234567890123456789012345.123456789012345678901234567890', 99999, 1234567890.0123456789,
	  '9999-12-31', '9999-12-31 23:59:59', '1000-01-01 00:00:00.001', '2024-02-29 12:34:56.123456', '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01',
	  '838:59:59', '-838:59:58.999', '-00:00:00.000001', 2155,
	  'abc', 'smile 😀 ü 漢', 'line\nbreak "q" \\ tab\t', REPEAT('x', 70000), 'café €',
	  'ab', X'00ff', X'deadbeef',
	  'c d', 'x,z',
	  b'1', X'ffffffffffffffff', b'1000000001',
	  '{"b":[1,2.5,"x"],"a":null}',
	  ST_GeomFromText('POINT(1 2)'))`,
	`(2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
	  -1.5, -2.5e-300,
	  -12345678.91, -0.000000000000000000000000000001, -99999, 0.0000000001,
	  '1000-01-01', '1000-01-01 00:00:00', '2000-01-01 00:00:00.100', '2000-01-01 00:00:00.000001', '2001-02-03 04:05:06.5', '2001-02-03 04:05:06',
	  '-838:59:59', '00:00:00.5', '12:00:00.000010', 1901,
	  '', '', '', '', '',
	  '', X'', X'',
	  'a', '',
	  b'0', X'00', b'0',
	  '[]',
	  NULL)`,
	`(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	// zero dates (allowed outside strict mode) become null by policy
	`(4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  '0000-00-00', '0000-00-00 00:00:00', '2020-00-10 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', NULL,
	  '00:00:00', '00:00:00', '00:00:00', 0,
	  'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '', '', b'0', 0, 0, 'null', NULL)`,
}

func point12() string {
	// SRID 0 + WKB little-endian POINT(1 2)
	b := []byte{0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40}
	return base64.StdEncoding.EncodeToString(b)
}

var typeWant = map[int]string{
	1: `{"id":1,"ti":127,"tiu":255,"si":32767,"siu":65535,"mi":8388607,"miu":16777215,"i":2147483647,"iu":4294967295,
	 "bi":9223372036854775807,"biu":18446744073709551615,"f":3.1415927,"d":1.7976931348623157e+308,
	 "dec1":"99999999.99","dec2":"12345678901234567890123456789012345.123456789012345678901234567890","dec3":"99999","dec4":"1234567890.0123456789",
	 "dt":"9999-12-31","dtm":"9999-12-31T23:59:59","dtm3":"1000-01-01T00:00:00.001","dtm6":"2024-02-29T12:34:56.123456",
	 "ts":"2038-01-19T03:14:07.999999Z","ts0":"1970-01-01T00:00:01Z",
	 "tm":"838:59:59","tm3":"-838:59:58.999","tm6":"-00:00:00.000001","yr":2155,
	 "c":"abc","vc":"smile 😀 ü 漢","tx":"line\nbreak \"q\" \\ tab\t","lt":"` + strings.Repeat("x", 70000) + `","l1":"café €",
	 "bn":"YWIAAA==","vb":"AP8=","bl":"3q2+7w==","e":"c d","st":"x,z","bt":1,"bt64":18446744073709551615,"bt10":513,
	 "js":"{\"b\":[1,2.5,\"x\"],\"a\":null}","g":"` + point12() + `"}`,
	2: `{"id":2,"ti":-128,"tiu":0,"si":-32768,"siu":0,"mi":-8388608,"miu":0,"i":-2147483648,"iu":0,
	 "bi":-9223372036854775808,"biu":0,"f":-1.5,"d":-2.5e-300,
	 "dec1":"-12345678.91","dec2":"-0.000000000000000000000000000001","dec3":"-99999","dec4":"0.0000000001",
	 "dt":"1000-01-01","dtm":"1000-01-01T00:00:00","dtm3":"2000-01-01T00:00:00.100","dtm6":"2000-01-01T00:00:00.000001",
	 "ts":"2001-02-03T04:05:06.500000Z","ts0":"2001-02-03T04:05:06Z",
	 "tm":"-838:59:59","tm3":"00:00:00.500","tm6":"12:00:00.000010","yr":1901,
	 "c":"","vc":"","tx":"","lt":"","l1":"","bn":"AAAAAA==","vb":"","bl":"","e":"a","st":"","bt":0,"bt64":0,"bt10":0,
	 "js":"[]","g":null}`,
	3: `{"id":3,"ti":null,"tiu":null,"si":null,"siu":null,"mi":null,"miu":null,"i":null,"iu":null,"bi":null,"biu":null,"f":null,"d":null,
	 "dec1":null,"dec2":null,"dec3":null,"dec4":null,"dt":null,"dtm":null,"dtm3":null,"dtm6":null,"ts":null,"ts0":null,
	 "tm":null,"tm3":null,"tm6":null,"yr":null,"c":null,"vc":null,"tx":null,"lt":null,"l1":null,"bn":null,"vb":null,"bl":null,
	 "e":null,"st":null,"bt":null,"bt64":null,"bt10":null,"js":null,"g":null}`,
	4: `{"id":4,"ti":0,"tiu":0,"si":0,"siu":0,"mi":0,"miu":0,"i":0,"iu":0,"bi":0,"biu":0,"f":0,"d":0,
	 "dec1":"0.00","dec2":"0.000000000000000000000000000000","dec3":"0","dec4":"0.0000000000",
	 "dt":null,"dtm":null,"dtm3":null,"dtm6":null,"ts":null,"ts0":null,
	 "tm":"00:00:00","tm3":"00:00:00.000","tm6":"00:00:00.000000","yr":0,
	 "c":"x","vc":"x","tx":"x","lt":"x","l1":"x","bn":"eAAAAA==","vb":"eA==","bl":"eA==","e":"","st":"","bt":0,"bt64":0,"bt10":0,
	 "js":"null","g":null}`,
}

func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// mariaTypes are MariaDB's own column types (UUID since 10.7, INET6 since
// 10.5, INET4 since 10.10): the binlog carries their storage bytes, which
// must come out as the text MariaDB shows, as from the snapshot. Values
// per row of typeRows, and the JSON wanted for each.
var mariaTypes = []struct {
	name, ddl string
	vals      [4]string
	want      [4]string
}{
	{"u", "UUID", [4]string{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'6ccd780c-baba-1026-9564-5b8c656024db'", "NULL", "'00000000-0000-0000-0000-000000000000'"},
		[4]string{`"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, `"6ccd780c-baba-1026-9564-5b8c656024db"`, "null", `"00000000-0000-0000-0000-000000000000"`}},
	{"u2", "UUID", [4]string{"'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'00112233-4455-6677-c899-aabbccddeeff'", "NULL", "'00112233-4455-1677-8899-aabbccddee00'"},
		[4]string{`"ffffffff-ffff-ffff-ffff-ffffffffffff"`, `"00112233-4455-6677-c899-aabbccddeeff"`, "null", `"00112233-4455-1677-8899-aabbccddee00"`}},
	{"i4", "INET4", [4]string{"'192.0.2.1'", "'0.0.0.0'", "NULL", "'255.255.255.0'"},
		[4]string{`"192.0.2.1"`, `"0.0.0.0"`, "null", `"255.255.255.0"`}},
	{"i6", "INET6", [4]string{"'2001:db8::1'", "'::ffff:192.0.2.128'", "NULL", "'::'"},
		[4]string{`"2001:db8::1"`, `"::ffff:192.0.2.128"`, "null", `"::"`}},
	{"i6b", "INET6", [4]string{"'2001:db8:0:1:1:1:1:1'", "'::1.2.3.4'", "NULL", "'fe80::'"},
		[4]string{`"2001:db8::1:1:1:1:1"`, `"::1.2.3.4"`, "null", `"fe80::"`}},
}

// hasMariaTypes reports whether the server has every type of mariaTypes.
func hasMariaTypes(t testing.TB, c *conn) bool {
	t.Helper()
	if !c.isMariaDB() {
		return false
	}
	var major, minor int
	// MariaDB before 11 announces itself as "5.5.5-10.11.6-MariaDB..."
	// for the sake of old clients.
	v := strings.TrimPrefix(c.serverVersion, "5.5.5-")
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("server version %q: %v", c.serverVersion, err)
	}
	return major > 10 || major == 10 && minor >= 10
}

// TestTypesRoundTrip: every column type the server has, read by the
// snapshot (text protocol) and by the binlog decoder, gives exactly the
// expected JSON, and the snapshot image of a row is byte for byte its
// streamed image.
func TestTypesRoundTrip(t *testing.T) {
	c := testDB(t)
	tbl := uniqueTable(t, c, "types")
	ddl, rows := typesDDL, append([]string(nil), typeRows...)
	cols := "id + 10 AS id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, f, d, dec1, dec2, dec3, dec4, dt, dtm, dtm3, dtm6, ts, ts0, tm, tm3, tm6, yr, c, vc, tx, lt, l1, bn, vb, bl, e, st, bt, bt64, bt10, js, g"
	wants := map[int]map[string]any{}
	for id, w := range typeWant {
		wants[id] = decodeJSON(t, []byte(w)).(map[string]any)
	}
	if hasMariaTypes(t, c) {
		for _, mt := range mariaTypes {
			ddl = strings.TrimSuffix(ddl, ")") + ", " + mt.name + " " + mt.ddl + " NULL)"
			cols += ", " + mt.name
			for i := range rows {
				rows[i] = strings.TrimSuffix(strings.TrimSpace(rows[i]), ")") + ", " + mt.vals[i] + ")"
				wants[i+1][mt.name] = decodeJSON(t, []byte(mt.want[i]))
			}
		}
	} else {
		t.Logf("server %s lacks MariaDB's UUID/INET4/INET6: those columns are not checked", c.serverVersion)
	}
	mustExec(t, c, "SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'", "CREATE TABLE "+tbl+" "+ddl+" DEFAULT CHARSET=utf8mb4")
	for _, r := range rows {
		mustExec(t, c, "INSERT INTO "+tbl+" VALUES "+r)
	}
	cfg := testConfig(tbl)
	em := newRecorder()
	_, stop := runRead(t, newSource(t, cfg), nil, em)
	defer stop()
	waitFor(t, 20*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= len(rows) })
	mustExec(t, c, "INSERT INTO "+tbl+" SELECT * FROM (SELECT "+cols+" FROM "+tbl+") AS x",
		"UPDATE "+tbl+" SET id = id + 10 WHERE id > 10",
		"DELETE FROM "+tbl+" WHERE id > 20")
	n := len(rows)
	waitFor(t, 20*time.Second, "stream", func() bool { ev, _ := em.snapshot(); return len(ev) >= 4*n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ev, _ := em.snapshot()
	check := func(what string, id int, got []byte) {
		t.Helper()
		want := wants[id]
		g := decodeJSON(t, got).(map[string]any)
		g["id"] = json.Number(string(rune('0' + id)))
		if !reflect.DeepEqual(g, want) {
			for k := range want {
				if !reflect.DeepEqual(g[k], want[k]) {
					gs := truncate(toJSONText(g[k]), 100)
					ws := truncate(toJSONText(want[k]), 100)
					t.Errorf("%s row %d column %s: got %s, want %s", what, id, k, gs, ws)
				}
			}
			for k := range g {
				if _, ok := want[k]; !ok {
					t.Errorf("%s row %d: unexpected column %s", what, id, k)
				}
			}
		}
	}
	// The same row's bytes: snapshot row id vs streamed insert id+10.
	images := map[string]string{}
	for _, e := range ev {
		raw, _ := e.Data.JSON()
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if id, ok := m["id"].(float64); ok && (e.Type == events.SnapshotRead || e.Type == events.Insert) {
			images[string(e.Type)+strconv.Itoa(int(id)%10)] = strings.TrimPrefix(string(raw), `{"id":`+strconv.Itoa(int(id)))
		}
	}
	for id := 1; id <= n; id++ {
		k := strconv.Itoa(id)
		if s, i := images[string(events.SnapshotRead)+k], images[string(events.Insert)+k]; s != i || s == "" {
			t.Errorf("row %d: snapshot image %s\nstreamed image %s", id, truncate(s, 400), truncate(i, 400))
		}
	}
	seen := map[events.Type]int{}
	for _, e := range ev {
		seen[e.Type]++
		raw, _ := e.Data.JSON()
		switch e.Type {
		case events.SnapshotRead, events.Insert:
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			id := int(m["id"].(float64)) % 10
			check(string(e.Type), id, raw)
		case events.Update:
			var m map[string]json.RawMessage
			_ = json.Unmarshal(raw, &m)
			var b map[string]any
			_ = json.Unmarshal(m["before"], &b)
			id := int(b["id"].(float64)) % 10
			check("update before", id, m["before"])
			check("update after", id, m["after"])
			if got := string(e.Key); got != `{"id":`+string(rune('0'+id+20))+`}` && !strings.HasPrefix(got, `{"id":2`) {
				t.Errorf("update key %s", got)
			}
		case events.Delete:
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			check("delete", int(m["id"].(float64))%10, raw)
		}
	}
	for _, typ := range []events.Type{events.SnapshotRead, events.Insert, events.Update, events.Delete} {
		if seen[typ] != n {
			t.Errorf("%d %s events, want %d", seen[typ], typ, n)
		}
	}
}

func toJSONText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestInet6TextAsMariaDB: the INET6 text written for the binlog's 16 bytes
// is the text MariaDB itself gives for the same address, for the shapes
// where its formatting differs from RFC 5952 and Go's netip (a single
// zero word compressed, ties, IPv4-compatible and -mapped tails).
func TestInet6TextAsMariaDB(t *testing.T) {
	c := testDB(t)
	if !hasMariaTypes(t, c) {
		t.Skipf("server %s has no INET6", c.serverVersion)
	}
	for _, a := range []string{"::", "::1", "1::", "::1.2.3.4", "::0.0.1.0", "::ffff:0.0.0.0", "::ffff:1.2.3.4", "::fffe:1.2.3.4",
		"1:0:0:2:0:0:3:4", "1:0:0:2:0:0:0:4", "1:0:2:0:3:0:4:0", "2001:db8:0:1:1:1:1:1", "0:0:0:0:0:1:0:0",
		"0:0:0:0:0:0:1:0", "fe80::abcd:ef01:2345:6789", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0:1::"} {
		res, err := c.query("SELECT CAST(CAST(" + quoteString(a) + " AS INET6) AS CHAR), HEX(CAST(CAST(" + quoteString(a) + " AS INET6) AS BINARY(16)))")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := hex.DecodeString(string(res.Rows[0][1]))
		if err != nil || len(raw) != 16 {
			t.Fatalf("%s: binary %s", a, res.Rows[0][1])
		}
		want := `"` + string(res.Rows[0][0]) + `"`
		if got := string(appendInet6(nil, raw)); got != want {
			t.Errorf("%s: wrote %s, MariaDB shows %s", a, got, want)
		}
	}
}
