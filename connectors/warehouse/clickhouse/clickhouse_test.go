package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const chAddr = "127.0.0.1:8123"

// chTable gives a test a table name and drops it afterwards.
func chTable(t *testing.T, ddl string) string { return chTableB(t, ddl) }

func chTableB(t testing.TB, ddl string) string {
	t.Helper()
	testenv.RequireService(t, "clickhouse", chAddr)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rivven_" + hex.EncodeToString(b[:])
	if _, err := chQuery(strings.ReplaceAll(ddl, "$T", name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = chQuery("DROP TABLE IF EXISTS " + name) })
	return name
}

func chQuery(q string) (string, error) {
	resp, err := http.Post("http://"+chAddr+"/?"+url.Values{"allow_experimental_low_cardinality_type": {"1"}}.Encode(), "text/plain", strings.NewReader(q))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", errors.New(string(b))
	}
	return string(b), nil
}

func chExec(t *testing.T, q string) string {
	t.Helper()
	out, err := chQuery(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func chRows(t *testing.T, q string) []string {
	t.Helper()
	out := strings.TrimSuffix(chExec(t, q+" FORMAT TabSeparated"), "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func newSink(t *testing.T, y string) *Sink { return newSinkB(t, y) }

func newSinkB(t testing.TB, y string) *Sink {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](y, "config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ev(tp events.Type, data string) *events.Event {
	return events.New(tp, "t", events.RawPayload([]byte(data)))
}

// allTypes is a table with every type ClickHouse 18.16 has.
const allTypes = `CREATE TABLE $T (
	id UInt32, i8 Int8, i16 Int16, i32 Int32, i64 Int64, u8 UInt8, u16 UInt16, u64 UInt64,
	f32 Float32, f64 Float64, d9 Decimal(9, 2), d18 Decimal(18, 4), d38 Decimal(38, 10),
	s String, fs FixedString(4), lc LowCardinality(String), d Date, dt DateTime, dtz DateTime('Asia/Tokyo'),
	u UUID, e8 Enum8('new' = 1, 'paid' = 2, 'it''s' = -3), e16 Enum16('x' = 1000),
	ni Nullable(Int32), ns Nullable(String), ai Array(Int32), ans Array(Nullable(String)), obj String
) ENGINE = MergeTree() ORDER BY id`

// TestInsertEveryTypeAndDeadLetterBadRows writes rows of every 18.16 type
// with each compression, and bad rows among them: each bad row is
// reported with its column and reason, the good rows are stored with
// exactly the values sent.
func TestInsertEveryTypeAndDeadLetterBadRows(t *testing.T) {
	for _, comp := range []string{"lz4", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			table := chTable(t, allTypes)
			s := newSink(t, "url: http://"+chAddr+"\ntable: "+table+"\ncompression: "+comp+"\n")
			if err := s.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			good := `{"id":1,"i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"u8":255,"u16":65535,"u64":18446744073709551615,
				"f32":1.5,"f64":0.1,"d9":-9999999.99,"d18":12345678901234.5678,"d38":1234567890123456789012345678.0123456789,
				"s":"tab\there ünï","fs":"ab","lc":"low","d":"2024-02-29","dt":"2024-02-29T23:59:59Z","dtz":"2024-03-01 08:59:59",
				"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","e8":"it's","e16":1000,"ni":null,"ns":"x","ai":[1,-2,3],"ans":["a",null],"obj":{"k":[1,2]}}`
			batch := []*events.Event{
				0:  ev(events.Insert, good),
				1:  ev(events.Insert, `{"id":2,"i8":300}`),
				2:  ev(events.Insert, `{"id":3,"e8":"refunded"}`),
				3:  ev(events.Insert, `{"id":4,"s":null}`),
				4:  ev(events.Insert, `{"id":5,"d9":1.005}`),
				5:  ev(events.Insert, `{"id":6,"fs":"toolong"}`),
				6:  ev(events.Insert, `{"id":7,"u":"not-a-uuid"}`),
				7:  ev(events.Insert, `{"id":8,"d18":"99999999999999.99999"}`),
				8:  ev(events.Insert, `{"id":9,"u64":-1}`),
				9:  ev(events.Insert, `{"id":10}`),
				10: ev(events.Insert, `{"id":11,"ai":[1,"x"]}`),
				11: ev(events.Update, `{"before":{"id":12},"after":{"id":12,"ns":null,"d":"1970-01-01"}}`),
				12: ev(events.Delete, `{"id":1}`),
			}
			err := s.Write(context.Background(), batch)
			var we *connector.WriteError
			if !errors.As(err, &we) {
				t.Fatalf("Write: %v, want a WriteError", err)
			}
			want := map[int]string{
				1:  "column i8 (Int8): 300 overflows Int8",
				2:  `column e8 (Enum8): "refunded" is not a value of Enum8`,
				3:  "column s (String): NULL into non-Nullable String",
				4:  "column d9 (Decimal(9, 2)): 1.005 has more than 2 decimals",
				5:  "column fs (FixedString(4)): 7 bytes do not fit FixedString(4)",
				6:  `column u (UUID): not-a-uuid is not a UUID`,
				7:  "column d18 (Decimal(18, 4)): 99999999999999.99999 has more than 4 decimals",
				8:  "column u64 (UInt64): -1 overflows UInt64",
				10: `column ai (Array(Int32)): element 1: "x" is not an integer`,
			}
			var got []int
			for i, e := range we.Failed {
				got = append(got, i)
				if !strings.HasPrefix(e.Error(), want[i]) {
					t.Errorf("event %d: %v, want %s", i, e, want[i])
				}
			}
			sort.Ints(got)
			if wantIdx := []int{1, 2, 3, 4, 5, 6, 7, 8, 10}; !slices.Equal(got, wantIdx) {
				t.Errorf("failed %v, want %v", got, wantIdx)
			}
			rows := chRows(t, "SELECT id, i8, i16, i32, i64, u8, u16, u64, f32, f64, d9, d18, d38, s, hex(fs), lc, d, dt, dtz, u, e8, e16, ni, ns, ai, ans, obj FROM "+table+" ORDER BY id")
			// 18.16 prints day and second 0 as zeros in every zone.
			wantRows := []string{
				`1	-128	32767	-2147483648	9223372036854775807	255	65535	18446744073709551615	1.5	0.1	-9999999.99	12345678901234.5678	1234567890123456789012345678.0123456789	tab\there ünï	61620000	low	2024-02-29	2024-02-29 23:59:59	2024-03-01 08:59:59	a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11	it\'s	x	\N	x	[1,-2,3]	['a',NULL]	{"k":[1,2]}`,
				"10	0	0	0	0	0	0	0	0	0	0.00	0.0000	0.0000000000		00000000		0000-00-00	0000-00-00 00:00:00	0000-00-00 00:00:00	00000000-0000-0000-0000-000000000000	it\\'s	x	\\N	\\N	[]	[]	",
				"12	0	0	0	0	0	0	0	0	0	0.00	0.0000	0.0000000000		00000000		0000-00-00	0000-00-00 00:00:00	0000-00-00 00:00:00	00000000-0000-0000-0000-000000000000	it\\'s	x	\\N	\\N	[]	[]	",
			}
			if !slices.Equal(rows, wantRows) {
				t.Errorf("rows:\n got %q\nwant %q", rows, wantRows)
			}
		})
	}
}
