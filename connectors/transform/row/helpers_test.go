package row

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // zones without relying on the machine's database

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

func TestParseTime(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal("no time zone database:", err)
	}
	utc := func(s string) time.Time {
		tt, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, tc := range []struct {
		in   any
		loc  *time.Location
		want string
		err  string
	}{
		{"2024-01-15T10:30:00Z", time.UTC, "2024-01-15T10:30:00Z", ""},
		{"2024-01-15T10:30:00.5+05:30", time.UTC, "2024-01-15T05:00:00.5Z", ""},
		{"2024-01-15 10:30:00-0800", time.UTC, "2024-01-15T18:30:00Z", ""},
		{"2024-01-15 10:30:00+00", ny, "2024-01-15T10:30:00Z", ""},
		{"2024-01-15 10:30:00,25", time.UTC, "2024-01-15T10:30:00.25Z", ""},
		{"2024-01-15T10:30", time.UTC, "2024-01-15T10:30:00Z", ""},
		{"2024-01-15", time.UTC, "2024-01-15T00:00:00Z", ""},
		{"2024-01-15", ny, "2024-01-15T05:00:00Z", ""},
		{"2024-07-15 10:30:00", ny, "2024-07-15T14:30:00Z", ""},
		// 2024-11-03 01:30 happened twice in New York: the earlier (EDT).
		{"2024-11-03 01:30:00", ny, "2024-11-03T05:30:00Z", ""},
		// 2024-03-10 02:30 never happened in New York.
		{"2024-03-10 02:30:00", ny, "", "does not exist in America/New_York"},
		{"2024-02-30", time.UTC, "", "no such date"},
		{"2024-13-01", time.UTC, "", "no such date"},
		{"2024-01-15T24:00:00Z", time.UTC, "", "time out of range"},
		{"2024-01-15T10:60:00Z", time.UTC, "", "time out of range"},
		{"2024-01-15T10:30:60Z", time.UTC, "", "time out of range"},
		{"2024-01-15T10:30:00.Z", time.UTC, "", "empty fraction"},
		{"2024-01-15T10:30:0Z", time.UTC, "", "bad seconds"},
		{"2024-01-15X10:30:00Z", time.UTC, "", "separated by T"},
		{"2024-01-15T10:30:00 UTC", time.UTC, "", "unexpected"},
		{"2024-01-15T10:30:00+2400", time.UTC, "", "bad UTC offset"},
		{"15/01/2024", time.UTC, "", "no YYYY-MM-DD date"},
		{"", time.UTC, "", "no YYYY-MM-DD date"},
		{"1705314600", time.UTC, "", "no YYYY-MM-DD"},
		{"0000-01-01T00:00:00+01:00", time.UTC, "", "outside 0000-9999"},
		{json.Number("0"), time.UTC, "1970-01-01T00:00:00Z", ""},
		{json.Number("99999999999"), ny, "5138-11-16T09:46:39Z", ""},
		{json.Number("100000000000"), time.UTC, "1973-03-03T09:46:40Z", ""},
		{json.Number("99999999999999"), time.UTC, "5138-11-16T09:46:39.999Z", ""},
		{json.Number("100000000000000"), time.UTC, "1973-03-03T09:46:40Z", ""},
		{json.Number("100000000000000000"), time.UTC, "1973-03-03T09:46:40Z", ""},
		{json.Number("-9223372036854775808"), time.UTC, "1677-09-21T00:12:43.145224192Z", ""},
		{json.Number("1705314600.123456789"), time.UTC, "2024-01-15T10:30:00.123456789Z", ""},
		{json.Number("1705314600123.5"), time.UTC, "2024-01-15T10:30:00.1235Z", ""},
		{json.Number("-0.5"), time.UTC, "1969-12-31T23:59:59.5Z", ""},
		{json.Number("1.7053146E+12"), time.UTC, "2024-01-15T10:30:00Z", ""},
		{json.Number("253402300800"), time.UTC, "1978-01-11T21:31:40.8Z", ""},
		{json.Number("1e30"), time.UTC, "", "out of range"},
		{json.Number("1/2"), time.UTC, "", "not a number"},
		{json.Number("0x10"), time.UTC, "", "not a number"},
		{1705314600.5, time.UTC, "2024-01-15T10:30:00.5Z", ""},
		{float32(1024), time.UTC, "1970-01-01T00:17:04Z", ""},
		{int64(1705314600000), time.UTC, "2024-01-15T10:30:00Z", ""},
		{int32(60), time.UTC, "1970-01-01T00:01:00Z", ""},
		{60, time.UTC, "1970-01-01T00:01:00Z", ""},
		{uint64(60), time.UTC, "1970-01-01T00:01:00Z", ""},
		{nil, time.UTC, "", "null"},
		{true, time.UTC, "", "a boolean is not a timestamp"},
		{[]any{}, time.UTC, "", "an array is not"},
		{map[string]any{}, time.UTC, "", "an object is not"},
	} {
		got, err := ParseTime(tc.in, tc.loc)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(utc(tc.want)) {
			t.Errorf("%v in %s: %v, %v; want %s", tc.in, tc.loc, got, err, tc.want)
		}
	}
}

func TestView(t *testing.T) {
	for _, tc := range []struct {
		typ  events.Type
		data string
		n    int
		err  string
	}{
		{events.Insert, `{"a":1}`, 1, ""},
		{events.Update, `{"before":{"a":1},"after":{"a":2}}`, 2, ""},
		{events.Update, `{"before":null,"after":{"a":2}}`, 1, ""},
		{events.Update, `{"after":{"a":2}}`, 1, ""},
		{events.Update, `{"before":1,"after":{"a":2}}`, 0, "data.before is json.Number"},
		{events.Delete, `null`, 0, ""},
		{events.Record, `"x"`, 0, "not an object"},
		{events.Truncate, `{"a":1}`, 0, ""},
		{events.Log, `{"a":1}`, 0, ""},
	} {
		e := events.New(tc.typ, "s", events.RawPayload([]byte(tc.data)))
		var arr [2]map[string]any
		rows, err := View(e, arr[:0])
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: %v", tc.typ, tc.data, err)
			}
			continue
		}
		if err != nil || len(rows) != tc.n || e.Data.Changed() {
			t.Errorf("%s %s: %d rows, %v, changed %v", tc.typ, tc.data, len(rows), err, e.Data.Changed())
		}
		if tc.typ == events.Update && len(rows) == 2 && rows[0]["a"] != json.Number("2") {
			t.Errorf("after must come first, like Mutable: %v", rows)
		}
	}
	e := events.New(events.Insert, "s", events.RawPayload([]byte(`{"a":1}`)))
	rows, _ := View(e, nil)
	Changed(e)
	rows[0]["a"] = "x"
	if b, _ := e.Data.JSON(); string(b) != `{"a":"x"}` {
		t.Errorf("change after Changed: %s", b)
	}
}

func TestEach(t *testing.T) {
	boom := errors.New("boom")
	tr := Each(func(_ context.Context, e *events.Event) error {
		if e.Stream == "bad" {
			return boom
		}
		e.Route = "seen"
		return nil
	})
	a, b, c, d := events.New(events.Insert, "a", events.Payload{}), events.New(events.Insert, "bad", events.Payload{}), events.New(events.Insert, "c", events.Payload{}), events.New(events.Insert, "bad", events.Payload{})
	in := []*events.Event{a, b, c, d}
	out, err := tr.Apply(context.Background(), in)
	var te *connector.TransformError
	if !errors.As(err, &te) || len(te.Failed) != 2 || te.Failed[0].Event != b || te.Failed[1].Event != d || !errors.Is(te.Failed[0].Err, boom) {
		t.Fatalf("err %v", err)
	}
	if len(out) != 2 || out[0] != a || out[1] != c || a.Route != "seen" {
		t.Fatalf("out %v", out)
	}
	if in[1] != b || in[3] != d {
		t.Error("input batch was changed")
	}
	out, err = tr.Apply(context.Background(), []*events.Event{a, c})
	if err != nil || len(out) != 2 {
		t.Fatal(out, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = tr.Apply(context.Background(), []*events.Event{a, c}) }); n > 1 {
		t.Errorf("%v allocations per batch", n)
	}
}

func TestUndo(t *testing.T) {
	r1 := map[string]any{"a": json.Number("1"), "n": map[string]any{"x": "y"}, "s": "str"}
	r2 := map[string]any{"a": json.Number("2")}
	orig1, orig2 := DeepCopy(r1), DeepCopy(r2)
	var u Undo
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // more changes than the inline buffer holds
		must(u.Set(r1, Path{"a"}, "changed"))
		must(u.Set(r1, Path{"new"}, true))
		must(u.Set(r1, Path{"n", "x"}, "z"))
		must(u.Set(r1, Path{"n", "deep", "er"}, 1))
		must(u.Set(r2, Path{"a"}, nil))
		must(u.Set(r2, Path{"b", "c"}, 1))
	}
	if err := u.Set(r1, Path{"s", "x"}, 1); err == nil {
		t.Error("setting inside a string worked")
	}
	if reflect.DeepEqual(r1, orig1) {
		t.Fatal("nothing changed")
	}
	u.Rollback()
	if !reflect.DeepEqual(r1, orig1) || !reflect.DeepEqual(r2, orig2) {
		t.Errorf("after rollback: %v %v", r1, r2)
	}
	u.Rollback() // nothing left to undo
	if !reflect.DeepEqual(r1, orig1) {
		t.Errorf("second rollback: %v", r1)
	}
}

func TestDeepCopy(t *testing.T) {
	v := map[string]any{"a": []any{map[string]any{"b": "c"}, json.Number("1")}, "d": nil}
	c := DeepCopy(v).(map[string]any)
	if !reflect.DeepEqual(v, c) {
		t.Fatal(c)
	}
	c["a"].([]any)[0].(map[string]any)["b"] = "x"
	if v["a"].([]any)[0].(map[string]any)["b"] != "c" {
		t.Error("copy shares a nested object")
	}
}

func TestAppendTime(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	kolkata := time.FixedZone("IST", 5*3600+1800)
	for i, ts := range []time.Time{
		time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC),
		time.Date(2024, 1, 15, 10, 30, 0, 120_000_000, time.UTC),
		time.Date(2024, 1, 15, 10, 30, 0, 123_456_000, time.UTC),
		time.Date(2024, 1, 15, 10, 30, 0, 123_456_789, time.UTC),
		time.Date(1, 2, 3, 4, 5, 6, 7, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2024, 7, 1, 0, 0, 0, 5, ny),
		time.Date(2024, 12, 1, 0, 0, 0, 0, ny),
		time.Date(2024, 12, 1, 0, 0, 0, 0, kolkata),
		time.Date(2024, 12, 1, 0, 0, 0, 0, time.FixedZone("", -(9*3600+30*60))),
	} {
		got := string(AppendTime([]byte("x"), ts))
		frac := ""
		switch ns := ts.Nanosecond(); {
		case ns == 0:
		case ns%1_000_000 == 0:
			frac = fmt.Sprintf(".%03d", ns/1_000_000)
		case ns%1000 == 0:
			frac = fmt.Sprintf(".%06d", ns/1000)
		default:
			frac = fmt.Sprintf(".%09d", ns)
		}
		want := "x" + ts.Format("2006-01-02T15:04:05") + frac + ts.Format("Z07:00")
		if got != want {
			t.Errorf("%d: %s, want %s", i, got, want)
		}
		if ts.Location() == time.UTC {
			if ref := "x" + string(events.AppendTimestamp(nil, ts)); got != ref {
				t.Errorf("%d: %s, events.AppendTimestamp gives %s", i, got, ref)
			}
		}
	}
}
