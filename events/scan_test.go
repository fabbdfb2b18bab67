package events

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHasStringStop(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			var w uint64
			for i := 7; i >= 0; i-- {
				b := byte('a')
				if i == pos {
					b = byte(c)
				}
				w = w<<8 | uint64(b)
			}
			if got, want := hasStringStop(w), stringStop[c]; got != want {
				t.Errorf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
	// Neighbouring bytes do not hide or fake a hit.
	for _, s := range []string{"\x80\x80\x80\x80\x80\x80\x80\x80", "\xff\xff\xff\xff\xff\xff\xff\xff", "!#[]^_ \x7f", "\x21\x21\x21\x21\x21\x21\x21\x22", "\x1f\x80\x80\x80\x80\x80\x80\x80"} {
		var w uint64
		for i := 7; i >= 0; i-- {
			w = w<<8 | uint64(s[i])
		}
		want := strings.ContainsAny(s, "\"\\") || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 }) >= 0
		if got := hasStringStop(w); got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
}

func TestSkipStringLong(t *testing.T) {
	body := strings.Repeat("abcdefghé", 50)
	for _, tail := range []string{`"`, `\n"`, `\u00e9"`} {
		for cut := 0; cut < 9; cut++ {
			tok := `"` + body[:len(body)-cut] + tail
			j, err := skipString([]byte(tok+",1"), 0)
			if err != nil || j != len(tok) {
				t.Errorf("skipString(%d, %q) = %d, %v; want %d", cut, tail, j, err, len(tok))
			}
		}
	}
	if _, err := skipString([]byte(`"`+body), 0); err != errEOF {
		t.Errorf("unterminated: %v", err)
	}
	if _, err := skipString([]byte(`"`+body+"\x01\""), 0); err == nil || !strings.Contains(err.Error(), "control") {
		t.Errorf("control char after a long run: %v", err)
	}
}

// unquote agrees with encoding/json on every string it accepts.
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, tok := range []string{
		`""`, `"plain"`, `"é中😀"`, `"\"\\\/\b\f\n\r\t"`, `"\u0000\u001f\u007f\u00e9\u4e2d"`,
		`"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`,
		`"\ud83d\ud83d\ude00"`, `"a\ud800"`, `"\udbff\udfff"`, "\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\"",
		"\"\xf4\x90\x80\x80\"", `"é\n"`, "\"\u2028\u2029\"", `"\u2028"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(tok), &want); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", tok, err)
		}
		got, err := unquote([]byte(tok))
		if err != nil || got != want {
			t.Errorf("unquote(%q) = %q, %v; want %q", tok, got, err, want)
		}
		// And the scanner accepts what encoding/json accepts.
		if j, err := skipString([]byte(tok), 0); err != nil || j != len(tok) {
			t.Errorf("skipString(%q) = %d, %v", tok, j, err)
		}
	}
	for _, tok := range []string{``, `"`, `x`, `'a'`, `"a`, `a"`, `"\"`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", `"a"b"`} {
		if got, err := unquote([]byte(tok)); err == nil {
			t.Errorf("unquote(%q) = %q, want an error", tok, got)
		}
	}
}

func TestAppendStringLikeSerde(t *testing.T) {
	for in, want := range map[string]string{
		"":                `""`,
		"plain":           `"plain"`,
		`"\`:              `"\"\\"`,
		"\b\f\n\r\t":      `"\b\f\n\r\t"`,
		"\x00\x01\x1f":    `"\u0000\u0001\u001f"`,
		"\x7f":            "\"\x7f\"",
		"<>&'/":           `"<>&'/"`,
		"é中😀":             `"é中😀"`,
		"\u2028\u2029":    "\"\u2028\u2029\"",
		"a\xffb":          `"a\ufffdb"`,
		"\ufffd":          "\"\ufffd\"",
		"ends with \\":    `"ends with \\"`,
		"tab\tin\tmiddle": `"tab\tin\tmiddle"`,
	} {
		got := string(appendString([]byte("x"), in))
		if got != "x"+want {
			t.Errorf("appendString(%q) = %s, want %s", in, got[1:], want)
		}
		// What it writes decodes back (invalid UTF-8 aside).
		if back, err := unquote([]byte(want)); err != nil || (back != in && in != "a\xffb") {
			t.Errorf("unquote(appendString(%q)) = %q, %v", in, back, err)
		}
	}
}

func TestSkipNumber(t *testing.T) {
	for _, ok := range []string{"0", "-0", "1", "-1", "10", "0.5", "-0.5", "1e5", "1E+5", "1e-5", "0e0", "123.456e-789", "18446744073709551615", "12345678901234567890.123456789"} {
		if j, err := skipNumber([]byte(ok+","), 0); err != nil || j != len(ok) {
			t.Errorf("skipNumber(%s) = %d, %v", ok, j, err)
		}
		if !json.Valid([]byte(ok)) {
			t.Errorf("encoding/json rejects %s", ok)
		}
	}
	for _, bad := range []string{"-", "01", "-01", "00", "1.", "1.e5", "1e", "1e+", "-.5", "--1"} {
		if _, err := skipNumber([]byte(bad), 0); err == nil {
			t.Errorf("skipNumber(%s): no error", bad)
		}
		if json.Valid([]byte(bad)) {
			t.Errorf("encoding/json accepts %s", bad)
		}
	}
}

func TestParseUint(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "1": 1, "4294967295": math.MaxUint32, "18446744073709551615": math.MaxUint64} {
		if got, err := parseUint([]byte(in), 64); err != nil || got != want {
			t.Errorf("parseUint(%s) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "01", "1.0", "1e3", "18446744073709551616", "99999999999999999999", "123456789012345678901", `"1"`, "null", "+1"} {
		if got, err := parseUint([]byte(in), 64); err == nil {
			t.Errorf("parseUint(%s) = %d, want an error", in, got)
		}
	}
	if _, err := parseUint([]byte("4294967296"), 32); err == nil {
		t.Error("parseUint 32 bits: no overflow error")
	}
	for i := uint64(1); i < math.MaxUint64/7; i *= 7 {
		s := strconv.FormatUint(i, 10)
		if got, err := parseUint([]byte(s), 64); err != nil || got != i {
			t.Errorf("parseUint(%s) = %d, %v", s, got, err)
		}
	}
}

func TestAppendValue(t *testing.T) {
	type point struct {
		X int    `json:"x"`
		S string `json:"s"`
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{nil, `null`},
		{true, `true`},
		{"<a&b>", `"<a&b>"`},
		{json.Number("1.50"), `1.50`},
		{json.Number(""), `0`},
		{map[string]any{"b": 1.5, "a": nil, "c": []any{}, "é": map[string]any{}}, `{"a":null,"b":1.5,"c":[],"é":{}}`},
		{map[string]any(nil), `null`},
		{[]any(nil), `null`},
		{[]any{json.Number("18446744073709551615"), "x", false}, `[18446744073709551615,"x",false]`},
		{point{1, "<>"}, `{"x":1,"s":"<>"}`},
		{map[string]string{"z": "&", "a": "b"}, `{"a":"b","z":"&"}`},
		{int64(math.MinInt64), `-9223372036854775808`},
		{json.RawMessage(`{"raw" : 1}`), `{"raw":1}`},
		{time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), `"2024-01-15T10:30:00Z"`},
	} {
		got, err := appendValue(nil, c.v, 0)
		if err != nil || string(got) != c.want {
			t.Errorf("appendValue(%#v) = %s, %v; want %s", c.v, got, err, c.want)
		}
	}
	for _, bad := range []any{json.Number("1.2.3"), json.Number("01"), func() {}, math.Inf(1), map[string]any{"x": make(chan int)}, []any{json.Number("x")}} {
		if got, err := appendValue(nil, bad, 0); err == nil {
			t.Errorf("appendValue(%#v) = %s, want an error", bad, got)
		}
	}
	// Cycles end in an error, not a stack overflow.
	m := map[string]any{}
	m["self"] = m
	if _, err := appendValue(nil, m, 0); err == nil {
		t.Error("cyclic value: no error")
	}
}

func TestDecodeValueDepth(t *testing.T) {
	ok := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := decodeValue([]byte(ok)); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
	deep := strings.Repeat(`{"a":`, maxDepth+5) + "1" + strings.Repeat("}", maxDepth+5)
	if _, err := decodeValue([]byte(deep)); err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Errorf("too deep: %v", err)
	}
	for _, bad := range []string{``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{1:2}`, `nul`, `tru`, `"a`, `1 1`, `{}x`, `01`} {
		if v, err := decodeValue([]byte(bad)); err == nil {
			t.Errorf("decodeValue(%q) = %#v, want an error", bad, v)
		}
	}
}
