package clickhouse

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/timestamp"
)

// colType is a parsed ClickHouse column type.
type colType struct {
	name  string // base name: Int32, Nullable, Array, Decimal, DateTime64, Enum8, ...
	inner []*colType
	// Decimal precision and scale; FixedString length; DateTime64 precision.
	p, s int
	loc  *time.Location // DateTime, DateTime64 time zone (nil: UTC)
	enum map[string]int64
	vals map[int64]bool
}

// parseType parses a type as DESCRIBE TABLE prints it.
func parseType(t string) (*colType, error) {
	c, rest, err := parseTypeAt(strings.TrimSpace(t))
	if err != nil {
		return nil, fmt.Errorf("type %s: %w", t, err)
	}
	if strings.TrimSpace(rest) != "" {
		return nil, fmt.Errorf("type %s: unexpected %q", t, rest)
	}
	return c, nil
}

func parseTypeAt(s string) (*colType, string, error) {
	i := strings.IndexAny(s, "(,)")
	name := strings.TrimSpace(s)
	rest := ""
	if i >= 0 {
		name, rest = strings.TrimSpace(s[:i]), s[i:]
	}
	c := &colType{name: name}
	if !strings.HasPrefix(rest, "(") {
		return c, rest, nil
	}
	rest = rest[1:]
	switch name {
	case "Nullable", "LowCardinality", "Array", "Map", "Tuple":
		for {
			in, r, err := parseTypeAt(strings.TrimLeft(rest, " "))
			if err != nil {
				return nil, "", err
			}
			c.inner = append(c.inner, in)
			r = strings.TrimLeft(r, " ")
			if strings.HasPrefix(r, ",") {
				rest = r[1:]
				continue
			}
			if !strings.HasPrefix(r, ")") {
				return nil, "", fmt.Errorf("missing )")
			}
			return c, r[1:], nil
		}
	}
	// Arguments that are not types: up to the matching ), minding quotes.
	depth, q := 0, false
	j := 0
	for ; j < len(rest); j++ {
		ch := rest[j]
		switch {
		case q && ch == '\\':
			j++
		case ch == '\'':
			q = !q
		case !q && ch == '(':
			depth++
		case !q && ch == ')':
			if depth == 0 {
				goto done
			}
			depth--
		}
	}
	return nil, "", fmt.Errorf("missing )")
done:
	args := rest[:j]
	rest = rest[j+1:]
	var err error
	switch name {
	case "Decimal":
		_, err = fmt.Sscanf(strings.ReplaceAll(args, " ", ""), "%d,%d", &c.p, &c.s)
	case "Decimal32", "Decimal64", "Decimal128", "Decimal256":
		c.s, err = strconv.Atoi(strings.TrimSpace(args))
		c.p = map[string]int{"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}[name]
		c.name = "Decimal"
	case "FixedString":
		c.p, err = strconv.Atoi(strings.TrimSpace(args))
	case "DateTime":
		c.loc, err = loadTZ(args)
	case "DateTime64":
		a := strings.SplitN(args, ",", 2)
		c.p, err = strconv.Atoi(strings.TrimSpace(a[0]))
		if err == nil && len(a) == 2 {
			c.loc, err = loadTZ(a[1])
		}
	case "Enum8", "Enum16":
		c.enum, c.vals = map[string]int64{}, map[int64]bool{}
		for _, part := range splitEnum(args) {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				return nil, "", fmt.Errorf("enum member %q", part)
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, "", err
			}
			name, err := unquoteSQL(strings.TrimSpace(k))
			if err != nil {
				return nil, "", err
			}
			c.enum[name], c.vals[n] = n, true
		}
	}
	if name == "Decimal" && (c.p < 1 || c.p > 76) {
		err = fmt.Errorf("precision %d", c.p)
	}
	return c, rest, err
}

func splitEnum(s string) []string {
	var out []string
	q, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case q && s[i] == '\\':
			i++
		case s[i] == '\'':
			q = !q
		case !q && s[i] == ',':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquoteSQL(s string) (string, error) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", fmt.Errorf("not a quoted string: %s", s)
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

func loadTZ(arg string) (*time.Location, error) {
	name, err := unquoteSQL(strings.TrimSpace(arg))
	if err != nil {
		return nil, err
	}
	return time.LoadLocation(name)
}

// encoder appends RowBinary values: little-endian fixed-width numbers,
// strings as a LEB128 length and the bytes, Nullable as a 0/1 byte and
// the value, arrays and maps as a LEB128 count and the elements
// (ClickHouse's "Formats: RowBinary" documentation).
type encoder struct{ buf []byte }

func (e *encoder) uvarint(n uint64) { e.buf = binary.AppendUvarint(e.buf, n) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// encode appends v as type t; on error e.buf may hold part of the value
// (the caller truncates to the row's start).
func (e *encoder) encode(t *colType, v any) error {
	if t.name == "Nullable" {
		if v == nil {
			e.buf = append(e.buf, 1)
			return nil
		}
		e.buf = append(e.buf, 0)
		return e.encode(t.inner[0], v)
	}
	if t.name == "LowCardinality" {
		// RowBinary writes LowCardinality(T) as T.
		return e.encode(t.inner[0], v)
	}
	if v == nil {
		return fmt.Errorf("NULL into non-Nullable %s", t)
	}
	switch t.name {
	case "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Bool", "Boolean":
		return e.integer(t, v)
	case "Int128", "Int256", "UInt128", "UInt256":
		return e.bigInt(t, v)
	case "Float32", "Float64":
		f, err := toFloat(v)
		if err != nil {
			return err
		}
		if t.name == "Float32" {
			if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
				return fmt.Errorf("%v overflows Float32", v)
			}
			e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(float32(f)))
		} else {
			e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(f))
		}
		return nil
	case "Decimal":
		return e.decimal(t, v)
	case "String":
		switch x := v.(type) {
		case string:
			e.str(x)
		case map[string]any, []any:
			b, err := json.Marshal(x)
			if err != nil {
				return err
			}
			e.str(string(b))
		default:
			e.str(fmt.Sprint(x))
		}
		return nil
	case "FixedString":
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		if len(s) > t.p {
			return fmt.Errorf("%d bytes do not fit FixedString(%d)", len(s), t.p)
		}
		e.buf = append(e.buf, s...)
		e.buf = append(e.buf, make([]byte, t.p-len(s))...)
		return nil
	case "Date", "Date32":
		d, err := toDays(v)
		if err != nil {
			return err
		}
		if t.name == "Date" {
			if d < 0 || d > math.MaxUint16 {
				return fmt.Errorf("%v is outside Date's range (1970-01-01 to 2149-06-06)", v)
			}
			e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(d))
		} else {
			e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(int32(d)))
		}
		return nil
	case "DateTime":
		tm, err := toTime(v, t.loc, 0)
		if err != nil {
			return err
		}
		s := tm.Unix()
		if s < 0 || s > math.MaxUint32 {
			return fmt.Errorf("%v is outside DateTime's range (1970 to 2106)", v)
		}
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(s))
		return nil
	case "DateTime64":
		tm, err := toTime(v, t.loc, t.p)
		if err != nil {
			return err
		}
		// Ticks of 10^-p seconds.
		ticks := new(big.Int).Mul(big.NewInt(tm.Unix()), pow10(t.p))
		ticks.Add(ticks, new(big.Int).Div(big.NewInt(int64(tm.Nanosecond())), pow10(9-t.p)))
		if !ticks.IsInt64() {
			return fmt.Errorf("%v is outside DateTime64(%d)'s range", v, t.p)
		}
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(ticks.Int64()))
		return nil
	case "UUID":
		s, ok := v.(string)
		h := strings.ReplaceAll(s, "-", "")
		b, err := hex.DecodeString(h)
		if !ok || err != nil || len(b) != 16 {
			return fmt.Errorf("%v is not a UUID", v)
		}
		// Two UInt64 halves, each little-endian.
		for _, half := range [][]byte{b[:8], b[8:]} {
			for i := 7; i >= 0; i-- {
				e.buf = append(e.buf, half[i])
			}
		}
		return nil
	case "Enum8", "Enum16":
		var n int64
		switch x := v.(type) {
		case string:
			var ok bool
			if n, ok = t.enum[x]; !ok {
				return fmt.Errorf("%q is not a value of %s", x, t)
			}
		default:
			i, err := toInt(v)
			if err != nil || !t.vals[i] {
				return fmt.Errorf("%v is not a value of %s", v, t)
			}
			n = i
		}
		if t.name == "Enum8" {
			e.buf = append(e.buf, byte(int8(n)))
		} else {
			e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(int16(n)))
		}
		return nil
	case "Array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s is not an array", jsonKind(v))
		}
		e.uvarint(uint64(len(a)))
		for i, x := range a {
			if err := e.encode(t.inner[0], x); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		return nil
	case "Map":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s is not an object", jsonKind(v))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.uvarint(uint64(len(keys)))
		for _, k := range keys {
			if err := e.encode(t.inner[0], mapKey(t.inner[0], k)); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			if err := e.encode(t.inner[1], m[k]); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return nil
	case "Tuple":
		a, ok := v.([]any)
		if !ok || len(a) != len(t.inner) {
			return fmt.Errorf("%s is not an array of %d", jsonKind(v), len(t.inner))
		}
		for i, x := range a {
			if err := e.encode(t.inner[i], x); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		return nil
	}
	return fmt.Errorf("type %s is not supported", t)
}

// mapKey turns an object key (always a string in JSON) into the value
// the key type reads.
func mapKey(t *colType, k string) any {
	if t.name == "LowCardinality" {
		t = t.inner[0]
	}
	switch t.name {
	case "String", "FixedString", "Enum8", "Enum16", "UUID", "Date", "Date32", "DateTime", "DateTime64":
		return k
	}
	return json.Number(k)
}

func (t *colType) String() string {
	if len(t.inner) == 0 {
		switch t.name {
		case "Decimal":
			return fmt.Sprintf("Decimal(%d, %d)", t.p, t.s)
		case "FixedString":
			return fmt.Sprintf("FixedString(%d)", t.p)
		}
		return t.name
	}
	parts := make([]string, len(t.inner))
	for i, in := range t.inner {
		parts[i] = in.String()
	}
	return t.name + "(" + strings.Join(parts, ", ") + ")"
}

var intRange = map[string][2]*big.Int{}

func init() {
	for _, n := range []struct {
		name   string
		bits   uint
		signed bool
	}{{"Int8", 8, true}, {"Int16", 16, true}, {"Int32", 32, true}, {"Int64", 64, true}, {"Int128", 128, true}, {"Int256", 256, true},
		{"UInt8", 8, false}, {"UInt16", 16, false}, {"UInt32", 32, false}, {"UInt64", 64, false}, {"UInt128", 128, false}, {"UInt256", 256, false}} {
		one := big.NewInt(1)
		if n.signed {
			max := new(big.Int).Sub(new(big.Int).Lsh(one, n.bits-1), one)
			min := new(big.Int).Neg(new(big.Int).Lsh(one, n.bits-1))
			intRange[n.name] = [2]*big.Int{min, max}
		} else {
			intRange[n.name] = [2]*big.Int{big.NewInt(0), new(big.Int).Sub(new(big.Int).Lsh(one, n.bits), one)}
		}
	}
	intRange["Bool"], intRange["Boolean"] = intRange["UInt8"], intRange["UInt8"]
}

// bigOf reads an integer exactly from a JSON number, a bool or a string.
func bigOf(v any) (*big.Int, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
	case bool:
		if x {
			return big.NewInt(1), nil
		}
		return big.NewInt(0), nil
	case float64:
		if x != math.Trunc(x) {
			return nil, fmt.Errorf("%v is not an integer", x)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return big.NewInt(int64(x)), nil
	case int64:
		return big.NewInt(x), nil
	default:
		return nil, fmt.Errorf("%s is not a number", jsonKind(v))
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		// 1e3 or 5.0: exact integers written otherwise.
		r, ok := new(big.Rat).SetString(s)
		if !ok || !r.IsInt() {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		n = r.Num()
	}
	return n, nil
}

func (e *encoder) integer(t *colType, v any) error {
	n, err := bigOf(v)
	if err != nil {
		return err
	}
	r := intRange[t.name]
	if n.Cmp(r[0]) < 0 || n.Cmp(r[1]) > 0 {
		return fmt.Errorf("%s overflows %s", n, t.name)
	}
	switch t.name {
	case "Int8", "UInt8", "Bool", "Boolean":
		e.buf = append(e.buf, byte(n.Int64()))
	case "Int16", "UInt16":
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(n.Int64()))
	case "Int32", "UInt32":
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(n.Int64()))
	case "Int64":
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(n.Int64()))
	case "UInt64":
		e.buf = binary.LittleEndian.AppendUint64(e.buf, n.Uint64())
	}
	return nil
}

func (e *encoder) bigInt(t *colType, v any) error {
	n, err := bigOf(v)
	if err != nil {
		return err
	}
	r := intRange[t.name]
	if n.Cmp(r[0]) < 0 || n.Cmp(r[1]) > 0 {
		return fmt.Errorf("%s overflows %s", n, t.name)
	}
	size := 16
	if strings.HasSuffix(t.name, "256") {
		size = 32
	}
	e.appendTwos(n, size)
	return nil
}

// appendTwos appends n as a little-endian two's complement integer of size bytes.
func (e *encoder) appendTwos(n *big.Int, size int) {
	m := new(big.Int).Set(n)
	if m.Sign() < 0 {
		m.Add(m, new(big.Int).Lsh(big.NewInt(1), uint(size*8)))
	}
	b := m.FillBytes(make([]byte, size))
	for i := size - 1; i >= 0; i-- {
		e.buf = append(e.buf, b[i])
	}
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// decimal writes Decimal(P, S) as the integer value·10^S in 4, 8, 16 or
// 32 bytes by P, parsed from the decimal text exactly (never through a
// float). A value with more than S decimals or more than P digits is an
// error rather than a rounded number.
func (e *encoder) decimal(t *colType, v any) error {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Errorf("%s is not a number", jsonKind(v))
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return fmt.Errorf("%q is not a decimal", s)
	}
	r.Mul(r, new(big.Rat).SetInt(pow10(t.s)))
	if !r.IsInt() {
		return fmt.Errorf("%s has more than %d decimals (Decimal(%d, %d))", s, t.s, t.p, t.s)
	}
	n := r.Num()
	if new(big.Int).Abs(n).Cmp(pow10(t.p)) >= 0 {
		return fmt.Errorf("%s overflows Decimal(%d, %d)", s, t.p, t.s)
	}
	switch {
	case t.p <= 9:
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(int32(n.Int64())))
	case t.p <= 18:
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(n.Int64()))
	case t.p <= 38:
		e.appendTwos(n, 16)
	default:
		e.appendTwos(n, 32)
	}
	return nil
}

func toInt(v any) (int64, error) {
	n, err := bigOf(v)
	if err != nil {
		return 0, err
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("%s is out of range", n)
	}
	return n.Int64(), nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(string(x), 64)
	case float64:
		return x, nil
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity", "inf", "+inf":
			return math.Inf(1), nil
		case "-Infinity", "-inf":
			return math.Inf(-1), nil
		}
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("%s is not a number", jsonKind(v))
}

// toDays reads a date ("2006-01-02", a timestamp, or days since 1970).
func toDays(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number, float64:
		return toInt(x)
	case string:
		t, err := timestamp.Parse(x, time.UTC)
		if err != nil {
			return 0, err
		}
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400, nil
	}
	return 0, fmt.Errorf("%s is not a date", jsonKind(v))
}

// toTime reads a timestamp: ISO text (without a zone: in the column's
// zone, else UTC), or a number of seconds (DateTime) or of 10^-p seconds
// (DateTime64), as ClickHouse reads numbers for these types.
func toTime(v any, loc *time.Location, p int) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	switch x := v.(type) {
	case json.Number, float64:
		r, ok := new(big.Rat).SetString(fmt.Sprint(x))
		if !ok {
			return time.Time{}, fmt.Errorf("%v is not a timestamp", x)
		}
		r.Quo(r, new(big.Rat).SetInt(pow10(p)))
		ns := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
		n := new(big.Int).Quo(ns.Num(), ns.Denom())
		if !n.IsInt64() {
			return time.Time{}, fmt.Errorf("%v is out of range", x)
		}
		return time.Unix(0, n.Int64()).UTC(), nil
	case string:
		return timestamp.Parse(x, loc)
	}
	return time.Time{}, fmt.Errorf("%s is not a timestamp", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
