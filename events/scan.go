package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
)

// A small strict JSON scanner. The codecs use it to find the extent of each
// top-level value so that payloads can be kept as the bytes they arrived in:
// one pass, no allocations, and it rejects malformed input so that a bad
// event is caught at decode time (and dead-lettered) rather than by a sink.

var errEOF = errors.New("unexpected end of JSON input")

type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.off, e.msg)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the offset just past the JSON value starting at b[i]
// (after leading white space).
func skipValue(b []byte, i int) (int, error) {
	return skipValueDepth(b, i, 0)
}

const maxDepth = 1000

func skipValueDepth(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, &syntaxError{i, "nesting too deep"}
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, errEOF
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, errEOF
			}
			if b[i] != '"' {
				return i, &syntaxError{i, "expected object key"}
			}
			var err error
			if i, err = skipString(b, i); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, errEOF
			}
			if b[i] != ':' {
				return i, &syntaxError{i, "expected ':'"}
			}
			if i, err = skipValueDepth(b, i+1, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, errEOF
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, &syntaxError{i, "expected ',' or '}'"}
			}
			i++
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValueDepth(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, errEOF
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, &syntaxError{i, "expected ',' or ']'"}
			}
			i++
		}
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	default:
		return i, &syntaxError{i, fmt.Sprintf("unexpected character %q", c)}
	}
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, &syntaxError{i, "invalid literal"}
	}
	return i + len(lit), nil
}

func skipNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
		if i < len(b) && b[i] >= '0' && b[i] <= '9' {
			return i, &syntaxError{start, "invalid number (leading zero)"}
		}
	} else if digits() == 0 {
		return i, &syntaxError{start, "invalid number"}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return i, &syntaxError{start, "invalid number"}
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, &syntaxError{start, "invalid number"}
		}
	}
	return i, nil
}

// stringStop marks the bytes that end the fast scan through a string
// body: the closing quote, a backslash and control characters.
var stringStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// hasStringStop reports whether any of the eight bytes in w is a
// stringStop byte (SWAR: a byte is flagged when it is below 0x20, or when
// it XORed with '"' or '\\' is zero).
func hasStringStop(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := w ^ (lo * '"')
	bs := w ^ (lo * '\\')
	return ((w-lo*0x20)&^w|(q-lo)&^q|(bs-lo)&^bs)&hi != 0
}

// skipString returns the offset just past the string starting at b[i]=='"'.
func skipString(b []byte, i int) (int, error) {
	start := i
	i++
	for {
		// Eight bytes at a time while none of them needs attention.
		for i+8 <= len(b) && !hasStringStop(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && !stringStop[b[i]] {
			i++
		}
		if i >= len(b) {
			return start, errEOF
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, errEOF
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, errEOF
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, &syntaxError{i, "invalid \\u escape"}
					}
				}
				i += 6
			default:
				return i, &syntaxError{i, "invalid escape"}
			}
		default:
			return i, &syntaxError{i, "control character in string"}
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unquote decodes a JSON string token (quotes included) the way
// encoding/json does: surrogate pairs are combined, and lone surrogates and
// invalid UTF-8 become U+FFFD. The fast path (no escapes, valid UTF-8)
// allocates only the resulting string.
func unquote(tok []byte) (string, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", errNotString
	}
	body := tok[1 : len(tok)-1]
	i := 0
	for i < len(body) {
		c := body[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
			continue
		}
		if c == '\\' || c == '"' || c < 0x20 {
			break
		}
		i++
	}
	if i == len(body) {
		return string(body), nil
	}
	return unescape(body, i)
}

var errNotString = errors.New("expected a string")

// unescape decodes body (a string token without its quotes) whose first i
// bytes need no decoding.
func unescape(body []byte, i int) (string, error) {
	var sb strings.Builder
	sb.Grow(len(body))
	sb.Write(body[:i])
	for i < len(body) {
		c := body[i]
		switch {
		case c == '\\':
			if i+1 >= len(body) {
				return "", &syntaxError{i, "invalid escape"}
			}
			switch e := body[i+1]; e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := hex4(body, i+2)
				if !ok {
					return "", &syntaxError{i, "invalid \\u escape"}
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
						r2, ok = hex4(body, i+2)
					}
					if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				sb.WriteRune(r)
				continue
			default:
				return "", &syntaxError{i, "invalid escape"}
			}
			i += 2
		case c == '"':
			return "", &syntaxError{i, "unescaped quote in string"}
		case c < 0x20:
			return "", &syntaxError{i, "control character in string"}
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && size == 1 {
				sb.WriteString("\uFFFD")
			} else {
				sb.Write(body[i : i+size])
			}
			i += size
		}
	}
	return sb.String(), nil
}

// hex4 reads the four hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// objectFields calls fn for every key/value of the JSON object in b, in order.
// Values are sub-slices of b.
func objectFields(b []byte, fn func(key []byte, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return &syntaxError{i, "expected object"}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		if j := skipSpace(b, i+1); j != len(b) {
			return &syntaxError{j, "trailing data"}
		}
		return nil
	}
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return &syntaxError{i, "expected object key"}
		}
		ks := i
		ke, err := skipString(b, i)
		if err != nil {
			return err
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return &syntaxError{i, "expected ':'"}
		}
		vs := skipSpace(b, i+1)
		ve, err := skipValue(b, vs)
		if err != nil {
			return err
		}
		key := b[ks:ke]
		if bytes.IndexByte(key, '\\') >= 0 {
			// Escaped key: hand fn the canonical spelling so that keyIs
			// matches "event\u005ftype" as serde would.
			k, err := unquote(key)
			if err != nil {
				return err
			}
			key = appendString(nil, k)
		}
		if err := fn(key, b[vs:ve]); err != nil {
			return err
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return errEOF
		}
		if b[i] == '}' {
			if j := skipSpace(b, i+1); j != len(b) {
				return &syntaxError{j, "trailing data"}
			}
			return nil
		}
		if b[i] != ',' {
			return &syntaxError{i, "expected ',' or '}'"}
		}
		i++
	}
}

// lastField returns the value of the top-level field name (a plain key) of
// the JSON object b, validating all of it; of a key named twice, the last,
// as a decoded map holds it. val is nil when the field is absent.
func lastField(b []byte, name string) (val []byte, err error) {
	err = objectFields(b, func(k, v []byte) error {
		if keyIs(k, name) {
			val = v
		}
		return nil
	})
	return val, err
}

// keyIs compares a raw key token with a plain name without allocating.
func keyIs(tok []byte, name string) bool {
	return len(tok) == len(name)+2 && string(tok[1:len(tok)-1]) == name
}

// appendString appends s as a JSON string, escaping exactly what serde_json
// escapes so that re-encoded Rivven events match byte for byte.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// AppendJSONString appends s as a quoted JSON string, invalid UTF-8 as
// U+FFFD: how every codec here writes strings, for connectors that build
// their JSON directly (CDC row images).
func AppendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// AppendJSONValue appends v (nil, bool, string, json.Number, float64 and
// the like, []any, map[string]any) as JSON the way AppendJSONString writes
// strings: object keys sorted, nothing HTML-escaped. Connectors that
// re-encode a JSON document (a MySQL JSON column) use it so the document's
// strings come out as the rest of the event's.
func AppendJSONValue(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

// appendEscaped appends the body of s as a JSON string, without quotes.
func appendEscaped[T string | []byte](dst []byte, s T) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		// At most UTFMax bytes: the conversion stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

const hexDigits = "0123456789abcdef"

// decodeValue parses the single JSON value in b (white space around it is
// allowed, anything else is not) into what encoding/json with UseNumber
// gives: map[string]any, []any, string, json.Number, bool and nil.
func decodeValue(b []byte) (any, error) {
	v, i, err := parseValue(b, 0, 0)
	if err != nil {
		return nil, err
	}
	if i = skipSpace(b, i); i != len(b) {
		return nil, &syntaxError{i, "trailing data"}
	}
	return v, nil
}

func parseValue(b []byte, i, depth int) (any, int, error) {
	if depth > maxDepth {
		return nil, i, &syntaxError{i, "nesting too deep"}
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return nil, i, errEOF
	}
	switch c := b[i]; {
	case c == '"':
		j, err := skipString(b, i)
		if err != nil {
			return nil, j, err
		}
		s, err := unquote(b[i:j])
		return s, j, err
	case c == '{':
		// Entries are gathered first so the map is made once with room to
		// spare: transforms that add a field or two then never regrow it.
		var small [16]kv
		entries := small[:0]
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return make(map[string]any, 4), i + 1, nil
		}
		for {
			i = skipSpace(b, i)
			if i >= len(b) {
				return nil, i, errEOF
			}
			if b[i] != '"' {
				return nil, i, &syntaxError{i, "expected object key"}
			}
			j, err := skipString(b, i)
			if err != nil {
				return nil, j, err
			}
			k, err := internKey(b[i:j])
			if err != nil {
				return nil, i, err
			}
			i = skipSpace(b, j)
			if i >= len(b) {
				return nil, i, errEOF
			}
			if b[i] != ':' {
				return nil, i, &syntaxError{i, "expected ':'"}
			}
			var v any
			if v, i, err = parseValue(b, i+1, depth+1); err != nil {
				return nil, i, err
			}
			entries = append(entries, kv{k, v})
			i = skipSpace(b, i)
			if i >= len(b) {
				return nil, i, errEOF
			}
			if b[i] == '}' {
				m := make(map[string]any, len(entries)+4)
				for _, e := range entries {
					m[e.k] = e.v
				}
				return m, i + 1, nil
			}
			if b[i] != ',' {
				return nil, i, &syntaxError{i, "expected ',' or '}'"}
			}
			i++
		}
	case c == '[':
		a := []any{}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1, nil
		}
		for {
			v, j, err := parseValue(b, i, depth+1)
			if err != nil {
				return nil, j, err
			}
			a = append(a, v)
			i = skipSpace(b, j)
			if i >= len(b) {
				return nil, i, errEOF
			}
			if b[i] == ']' {
				return a, i + 1, nil
			}
			if b[i] != ',' {
				return nil, i, &syntaxError{i, "expected ',' or ']'"}
			}
			i++
		}
	case c == 't':
		j, err := skipLiteral(b, i, "true")
		return true, j, err
	case c == 'f':
		j, err := skipLiteral(b, i, "false")
		return false, j, err
	case c == 'n':
		j, err := skipLiteral(b, i, "null")
		return nil, j, err
	case c == '-' || (c >= '0' && c <= '9'):
		j, err := skipNumber(b, i)
		if err != nil {
			return nil, j, err
		}
		return json.Number(b[i:j]), j, nil
	default:
		return nil, i, &syntaxError{i, fmt.Sprintf("unexpected character %q", c)}
	}
}

// appendValue appends v as JSON the way serde_json writes a Value: object
// keys sorted (serde_json's default Map is a BTreeMap), nothing HTML-escaped,
// numbers as written. Types other than those decodeValue produces go through
// encoding/json (without HTML escaping).
func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, errors.New("value nested too deep")
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case string:
		return appendString(dst, v), nil
	case json.Number:
		if v == "" {
			return append(dst, '0'), nil // as encoding/json
		}
		if j, err := skipNumber([]byte(v), 0); err != nil || j != len(v) {
			return dst, fmt.Errorf("invalid number literal %q", string(v))
		}
		return append(dst, v...), nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendValue(dst, v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...), nil
}

type kv struct {
	k string
	v any
}

// keyCache interns object keys: rows of one table repeat the same column
// names in every event, so most keys are found here instead of allocated.
// It is lossy (a slot holds the last key hashed to it) and lock-free.
var keyCache [1024]atomic.Pointer[string]

// internKey unquotes a key token, reusing a cached string when it has one.
func internKey(tok []byte) (string, error) {
	body := tok[1 : len(tok)-1]
	if len(body) > 32 || bytes.IndexByte(body, '\\') >= 0 {
		return unquote(tok)
	}
	h := uint32(2166136261)
	for _, c := range body {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &keyCache[h%uint32(len(keyCache))]
	if p := slot.Load(); p != nil && *p == string(body) {
		return *p, nil
	}
	s, err := unquote(tok)
	if err == nil {
		slot.Store(&s)
	}
	return s, err
}
