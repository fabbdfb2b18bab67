package events

import (
	"errors"
	"fmt"
	"strconv"
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

// skipString returns the offset just past the string starting at b[i]=='"'.
func skipString(b []byte, i int) (int, error) {
	start := i
	i++
	for i < len(b) {
		c := b[i]
		switch {
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
		case c < 0x20:
			return i, &syntaxError{i, "control character in string"}
		default:
			i++
		}
	}
	return start, errEOF
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unquote decodes a JSON string token (quotes included). The fast path (no
// escapes) allocates only the resulting string.
func unquote(tok []byte) (string, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", &syntaxError{0, "expected string"}
	}
	body := tok[1 : len(tok)-1]
	simple := true
	for _, c := range body {
		if c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		return string(body), nil
	}
	return strconv.Unquote(jsonToGoQuote(tok))
}

// jsonToGoQuote rewrites the few JSON escapes that Go's syntax lacks ("\/").
func jsonToGoQuote(tok []byte) string {
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		if tok[i] == '\\' && i+1 < len(tok) {
			if tok[i+1] == '/' {
				out = append(out, '/')
				i++
				continue
			}
			out = append(out, tok[i], tok[i+1])
			i++
			continue
		}
		out = append(out, tok[i])
	}
	return string(out)
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
		if err := fn(b[ks:ke], b[vs:ve]); err != nil {
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

// keyIs compares a raw key token with a plain name without allocating.
func keyIs(tok []byte, name string) bool {
	return len(tok) == len(name)+2 && string(tok[1:len(tok)-1]) == name
}

// appendString appends s as a JSON string, escaping exactly what serde_json
// escapes so that re-encoded Rivven events match byte for byte.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
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
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"
