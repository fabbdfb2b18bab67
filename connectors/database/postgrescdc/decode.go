package postgrescdc

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rivven/rivven-connect/events"
)

// kind is how a PostgreSQL type is rendered in JSON. Every value arrives
// in PostgreSQL's text format (pgoutput sends text, the snapshot asks for
// text), so snapshot rows and streamed rows go through the same code and
// look the same.
type kind uint8

const (
	kString      kind = iota // text, varchar, char, name, uuid, enums, time, interval, anything unknown
	kInt                     // int2, int4, int8, oid: JSON number
	kNumeric                 // numeric: JSON number written verbatim (exact); NaN/Infinity as strings
	kFloat                   // float4, float8: JSON number; NaN/Infinity as strings
	kBool                    // bool
	kJSON                    // json, jsonb: embedded as JSON
	kBytea                   // bytea: base64 string
	kDate                    // date: "2006-01-02"
	kTimestamp               // timestamp without time zone: "2006-01-02T15:04:05.999999"
	kTimestamptz             // timestamptz: RFC 3339 in UTC
	kArray                   // arrays: JSON arrays of the element kind
)

// typeInfo is what decoding needs about a type OID.
type typeInfo struct {
	kind kind
	elem uint32 // element type of arrays
	name string
}

var pgTypes = pgtype.NewMap()

// builtin maps the OIDs whose rendering differs from a plain string.
var builtin = map[uint32]kind{
	pgtype.Int2OID: kInt, pgtype.Int4OID: kInt, pgtype.Int8OID: kInt, pgtype.OIDOID: kInt,
	pgtype.NumericOID: kNumeric,
	pgtype.Float4OID:  kFloat, pgtype.Float8OID: kFloat,
	pgtype.BoolOID: kBool,
	pgtype.JSONOID: kJSON, pgtype.JSONBOID: kJSON,
	pgtype.ByteaOID:       kBytea,
	pgtype.DateOID:        kDate,
	pgtype.TimestampOID:   kTimestamp,
	pgtype.TimestamptzOID: kTimestamptz,
}

// typeCache resolves type OIDs: built-ins directly, arrays of built-ins
// through pgtype's registry, anything else (enums, domains, arrays of
// enums, extension types) through lookup, which asks pg_type.
type typeCache struct {
	mu     sync.Mutex
	known  map[uint32]typeInfo
	lookup func(oid uint32) (typeInfo, error)
}

func newTypeCache(lookup func(uint32) (typeInfo, error)) *typeCache {
	return &typeCache{known: map[uint32]typeInfo{}, lookup: lookup}
}

func (c *typeCache) get(oid uint32) typeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ti, ok := c.known[oid]; ok {
		return ti
	}
	ti := c.resolve(oid)
	c.known[oid] = ti
	return ti
}

func (c *typeCache) resolve(oid uint32) typeInfo {
	if k, ok := builtin[oid]; ok {
		return typeInfo{kind: k}
	}
	if t, ok := pgTypes.TypeForOID(oid); ok {
		if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok && ac.ElementType != nil {
			return typeInfo{kind: kArray, elem: ac.ElementType.OID, name: t.Name}
		}
		return typeInfo{kind: kString, name: t.Name}
	}
	if c.lookup != nil {
		if ti, err := c.lookup(oid); err == nil {
			return ti
		}
	}
	return typeInfo{kind: kString}
}

// appendValue appends the JSON rendering of one text-format value.
func (c *typeCache) appendValue(dst []byte, oid uint32, text []byte) []byte {
	ti := c.get(oid)
	return c.appendKind(dst, ti, text)
}

func (c *typeCache) appendKind(dst []byte, ti typeInfo, text []byte) []byte {
	switch ti.kind {
	case kInt:
		if isInteger(text) {
			return append(dst, text...)
		}
	case kNumeric, kFloat:
		if isJSONNumber(text) {
			return append(dst, text...)
		}
		// NaN, Infinity, -Infinity have no JSON number form.
	case kBool:
		if len(text) == 1 {
			if text[0] == 't' {
				return append(dst, "true"...)
			}
			if text[0] == 'f' {
				return append(dst, "false"...)
			}
		}
	case kJSON:
		if len(text) > 0 {
			return append(dst, text...)
		}
	case kBytea:
		if b, ok := decodeBytea(text); ok {
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, b)
			return append(dst, '"')
		}
	case kDate:
		var d pgtype.Date
		if err := pgTypes.Scan(pgtype.DateOID, pgtype.TextFormatCode, text, &d); err == nil && d.Valid && d.InfinityModifier == pgtype.Finite {
			dst = append(dst, '"')
			dst = d.Time.AppendFormat(dst, "2006-01-02")
			return append(dst, '"')
		}
	case kTimestamp:
		var ts pgtype.Timestamp
		if err := pgTypes.Scan(pgtype.TimestampOID, pgtype.TextFormatCode, text, &ts); err == nil && ts.Valid && ts.InfinityModifier == pgtype.Finite {
			dst = append(dst, '"')
			dst = ts.Time.AppendFormat(dst, "2006-01-02T15:04:05.999999")
			return append(dst, '"')
		}
	case kTimestamptz:
		var ts pgtype.Timestamptz
		if err := pgTypes.Scan(pgtype.TimestamptzOID, pgtype.TextFormatCode, text, &ts); err == nil && ts.Valid && ts.InfinityModifier == pgtype.Finite {
			dst = append(dst, '"')
			dst = ts.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
			return append(dst, '"')
		}
	case kArray:
		if arr, ok := parseArray(text); ok {
			return c.appendArray(dst, c.get(ti.elem), arr)
		}
	}
	return events.AppendJSONString(dst, text)
}

func (c *typeCache) appendArray(dst []byte, elem typeInfo, a *pgArray) []byte {
	dst = append(dst, '[')
	for i, e := range a.elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case e.sub != nil:
			dst = c.appendArray(dst, elem, e.sub)
		case e.null:
			dst = append(dst, "null"...)
		default:
			dst = c.appendKind(dst, elem, []byte(e.text))
		}
	}
	return append(dst, ']')
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether b is a valid JSON number literal
// (PostgreSQL writes numerics and floats that way, except for NaN and the
// infinities, and "1e+30" style exponents which JSON also accepts).
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	return i == len(b)
}

// decodeBytea decodes the hex output format (\x...), the default since
// PostgreSQL 9.0, and the escape format as a fallback.
func decodeBytea(text []byte) ([]byte, bool) {
	if len(text) >= 2 && text[0] == '\\' && text[1] == 'x' {
		b := make([]byte, hex.DecodedLen(len(text)-2))
		if _, err := hex.Decode(b, text[2:]); err != nil {
			return nil, false
		}
		return b, true
	}
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text); i++ {
		if text[i] != '\\' {
			out = append(out, text[i])
			continue
		}
		if i+1 < len(text) && text[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+3 < len(text) {
			n, err := strconv.ParseUint(string(text[i+1:i+4]), 8, 8)
			if err != nil {
				return nil, false
			}
			out = append(out, byte(n))
			i += 3
			continue
		}
		return nil, false
	}
	return out, true
}

// pgArray is a parsed array literal such as {1,NULL,"a b",{2,3}}.
type pgArray struct {
	elems []arrayElem
}

type arrayElem struct {
	text string
	null bool
	sub  *pgArray
}

// parseArray parses PostgreSQL's array output syntax. A leading dimension
// decoration ([0:2]={...}) is skipped: JSON arrays have no lower bounds.
func parseArray(text []byte) (*pgArray, bool) {
	s := string(text)
	if len(s) > 0 && s[0] == '[' {
		eq := -1
		for i := 0; i < len(s); i++ {
			if s[i] == '=' {
				eq = i
				break
			}
		}
		if eq < 0 {
			return nil, false
		}
		s = s[eq+1:]
	}
	a, rest, ok := parseArrayAt(s)
	if !ok || rest != "" {
		return nil, false
	}
	return a, true
}

func parseArrayAt(s string) (*pgArray, string, bool) {
	if len(s) == 0 || s[0] != '{' {
		return nil, s, false
	}
	s = s[1:]
	a := &pgArray{}
	if len(s) > 0 && s[0] == '}' {
		return a, s[1:], true
	}
	for {
		if len(s) == 0 {
			return nil, s, false
		}
		switch s[0] {
		case '{':
			sub, rest, ok := parseArrayAt(s)
			if !ok {
				return nil, s, false
			}
			a.elems = append(a.elems, arrayElem{sub: sub})
			s = rest
		case '"':
			var b []byte
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b = append(b, s[i])
			}
			if i >= len(s) {
				return nil, s, false
			}
			a.elems = append(a.elems, arrayElem{text: string(b)})
			s = s[i+1:]
		default:
			i := 0
			for i < len(s) && s[i] != ',' && s[i] != '}' {
				i++
			}
			v := s[:i]
			if v == "NULL" {
				a.elems = append(a.elems, arrayElem{null: true})
			} else {
				a.elems = append(a.elems, arrayElem{text: v})
			}
			s = s[i:]
		}
		if len(s) == 0 {
			return nil, s, false
		}
		if s[0] == '}' {
			return a, s[1:], true
		}
		if s[0] != ',' {
			return nil, s, false
		}
		s = s[1:]
	}
}

// typeName renders a type for Discover and schema events.
func (c *typeCache) typeName(oid uint32) string {
	ti := c.get(oid)
	if ti.name != "" {
		return ti.name
	}
	if t, ok := pgTypes.TypeForOID(oid); ok {
		return t.Name
	}
	return fmt.Sprintf("oid:%d", oid)
}
