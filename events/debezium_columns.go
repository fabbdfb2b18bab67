package events

import (
	"bytes"
	"encoding/base64"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Debezium's column representations: how its PostgreSQL and MySQL
// connectors write a column of each type (the "Data type mappings" of
// their documentation), chosen from the column types a CDC source sends
// in source.columns, under decimal.handling.mode and time.precision.mode.

// Decimal and time modes, as Debezium names them.
const (
	DecimalPrecise = "precise"
	DecimalDouble  = "double"
	DecimalString  = "string"

	TimeAdaptive             = "adaptive"
	TimeAdaptiveMicroseconds = "adaptive_time_microseconds"
	TimeConnect              = "connect"
)

// conv says how a column's value is rewritten.
type conv uint8

const (
	convPass       conv = iota // written as it is
	convInt                    // numbers as they are, numeric strings as numbers
	convFloat                  // numbers; NaN and the infinities (strings) become null
	convBool                   // BIT(1): 0/1 as false/true
	convBits                   // BIT(n): the bits as little-endian bytes, base64
	convDecimal                // by decimal.handling.mode, scale fixed by the column
	convVarDecimal             // NUMERIC without a scale: VariableScaleDecimal when precise
	convMoney                  // PostgreSQL money text ("$1,000.00") as a decimal of scale 2
	convString                 // strings as they are, anything else as its JSON text
	convJSONText               // an embedded JSON document as a string (io.debezium.data.Json)
	convDate                   // "2006-01-02": days since the epoch
	convTime                   // time of day "15:04:05.999999": ms or µs past midnight
	convDuration               // MySQL TIME "[-]838:59:59.999999": ms or µs
	convTimestamp              // local date-time: ms or µs since the epoch, read as UTC
	convZonedTime              // PostgreSQL timetz: ISO time in UTC
	convInterval               // PostgreSQL interval: µs (io.debezium.time.MicroDuration)
	convArray                  // each element by elem
)

// dbzColumn is how one column is written: its Kafka Connect schema and
// the value conversion.
type dbzColumn struct {
	name     string
	typ      string // Kafka Connect schema type: int8 … int64, float, double, boolean, string, bytes, struct, array
	logical  string // schema name (io.debezium.time.MicroTimestamp, org.apache.kafka.connect.data.Decimal, …)
	params   [][2]string
	doc      string
	fields   string // struct types: their "fields" array
	conv     conv
	scale    int  // decimals: the column's scale; times: unused
	micros   bool // time values in µs (else ms)
	notNull  bool
	inferred bool // no column type: the schema was read off the value
	elem     *dbzColumn
}

// typeArgs returns the numbers in the first parentheses of t:
// "numeric(10,2)" gives [10 2].
func typeArgs(t string) []int {
	i := strings.IndexByte(t, '(')
	if i < 0 {
		return nil
	}
	j := strings.IndexByte(t[i:], ')')
	if j < 0 {
		return nil
	}
	var out []int
	for _, p := range strings.Split(t[i+1:i+j], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// enumValues returns the members of a MySQL enum('a','b') or set(...).
func enumValues(t string) string {
	i, j := strings.IndexByte(t, '('), strings.LastIndexByte(t, ')')
	if i < 0 || j < i {
		return ""
	}
	var vals []string
	s := t[i+1 : j]
	for len(s) > 0 {
		if s[0] != '\'' {
			s = s[1:]
			continue
		}
		var b strings.Builder
		k := 1
		for k < len(s) {
			if s[k] == '\'' {
				if k+1 < len(s) && s[k+1] == '\'' {
					b.WriteByte('\'')
					k += 2
					continue
				}
				break
			}
			b.WriteByte(s[k])
			k++
		}
		vals = append(vals, b.String())
		if k >= len(s) {
			break
		}
		s = s[k+1:]
	}
	return strings.Join(vals, ",")
}

// setTime sets c to Debezium's representation of a time of day
// (Time or MicroTime by precision), a local timestamp or a date under
// mode.
func (c *dbzColumn) setTime(kind conv, precision int, mode string, mysql bool) {
	c.conv = kind
	connect := mode == TimeConnect
	switch kind {
	case convDate:
		c.typ, c.logical = "int32", "io.debezium.time.Date"
		if connect {
			c.logical = "org.apache.kafka.connect.data.Date"
		}
	case convTime, convDuration:
		switch {
		case connect:
			c.typ, c.logical = "int32", "org.apache.kafka.connect.data.Time"
		case precision <= 3 && mode == TimeAdaptive && !mysql:
			// MySQL's default is adaptive_time_microseconds: TIME is
			// always MicroTime there.
			c.typ, c.logical = "int32", "io.debezium.time.Time"
		default:
			c.typ, c.logical, c.micros = "int64", "io.debezium.time.MicroTime", true
		}
	case convTimestamp:
		switch {
		case connect:
			c.typ, c.logical = "int64", "org.apache.kafka.connect.data.Timestamp"
		case precision <= 3:
			c.typ, c.logical = "int64", "io.debezium.time.Timestamp"
		default:
			c.typ, c.logical, c.micros = "int64", "io.debezium.time.MicroTimestamp", true
		}
	}
}

func (c *dbzColumn) setDecimal(kind conv, precision, scale int, mode string) {
	c.conv, c.scale = kind, scale
	switch mode {
	case DecimalDouble:
		c.typ = "double"
	case DecimalString:
		c.typ = "string"
	default:
		if kind == convVarDecimal {
			c.typ, c.logical, c.doc = "struct", "io.debezium.data.VariableScaleDecimal", "Variable scaled decimal"
			c.fields = `[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}]`
			return
		}
		c.typ, c.logical = "bytes", "org.apache.kafka.connect.data.Decimal"
		c.params = [][2]string{{"scale", strconv.Itoa(scale)}}
		if precision > 0 {
			c.params = append(c.params, [2]string{"connect.decimal.precision", strconv.Itoa(precision)})
		}
	}
}

// newDBZColumn maps a column of a PostgreSQL (mysql false) or MySQL
// table to Debezium's representation under the modes.
func newDBZColumn(col Column, mysql bool, decimalMode, timeMode string) *dbzColumn {
	c := &dbzColumn{name: col.Name, notNull: col.NotNull, typ: "string", conv: convString}
	t := strings.ToLower(strings.TrimSpace(col.Type))
	args := typeArgs(t)
	arg := func(i, def int) int {
		if i < len(args) {
			return args[i]
		}
		return def
	}
	base := t
	if i := strings.IndexAny(base, "( "); i > 0 {
		base = base[:i]
	}
	unsigned := strings.Contains(t, "unsigned")
	if !mysql && strings.HasSuffix(t, "[]") {
		elem := newDBZColumn(Column{Type: strings.TrimSuffix(t, "[]")}, false, decimalMode, timeMode)
		c.typ, c.conv, c.elem = "array", convArray, elem
		return c
	}
	setInt := func(typ string) { c.typ, c.conv = typ, convInt }
	switch {
	case base == "boolean" || base == "bool":
		c.typ, c.conv = "boolean", convPass
	case base == "tinyint":
		if unsigned {
			setInt("int16")
		} else {
			setInt("int8")
		}
	case base == "smallint" || base == "smallserial" || base == "int2":
		if unsigned {
			setInt("int32")
		} else {
			setInt("int16")
		}
	case base == "mediumint":
		setInt("int32")
	case base == "integer" || base == "int" || base == "serial" || base == "int4":
		if unsigned {
			setInt("int64")
		} else {
			setInt("int32")
		}
	case base == "bigint" || base == "bigserial" || base == "int8" || base == "oid":
		setInt("int64")
	case base == "year":
		setInt("int32")
		c.logical = "io.debezium.time.Year"
	case base == "real" && !mysql, base == "float4", base == "float" && mysql:
		c.typ, c.conv = "float", convFloat
	case strings.HasPrefix(t, "double") || base == "float8" || base == "real" || base == "float":
		c.typ, c.conv = "double", convFloat
	case base == "numeric" || base == "decimal":
		if len(args) == 0 && !mysql {
			c.setDecimal(convVarDecimal, 0, 0, decimalMode)
		} else {
			c.setDecimal(convDecimal, arg(0, 10), arg(1, 0), decimalMode)
		}
	case base == "money" && !mysql:
		c.setDecimal(convMoney, 0, 2, decimalMode)
	case base == "bit" && !strings.HasPrefix(t, "bit varying"):
		if n := arg(0, 1); n == 1 {
			c.typ, c.conv = "boolean", convBool
		} else {
			c.typ, c.logical, c.conv, c.scale = "bytes", "io.debezium.data.Bits", convBits, n
			c.params = [][2]string{{"length", strconv.Itoa(n)}}
		}
	case strings.HasPrefix(t, "bit varying") || base == "varbit":
		n := arg(0, math.MaxInt32)
		c.typ, c.logical, c.conv, c.scale = "bytes", "io.debezium.data.Bits", convBits, n
		c.params = [][2]string{{"length", strconv.Itoa(n)}}
	case base == "bytea" || mysql && (base == "binary" || base == "varbinary" || strings.HasSuffix(base, "blob")):
		c.typ, c.conv = "bytes", convPass
	case base == "json" || base == "jsonb":
		c.logical, c.conv = "io.debezium.data.Json", convJSONText
	case base == "xml":
		c.logical = "io.debezium.data.Xml"
	case base == "uuid" && !mysql:
		c.logical = "io.debezium.data.Uuid"
	case base == "ltree":
		c.logical = "io.debezium.data.Ltree"
	case base == "enum" && mysql:
		c.logical = "io.debezium.data.Enum"
		c.params = [][2]string{{"allowed", enumValues(col.Type)}}
	case base == "set" && mysql:
		c.logical = "io.debezium.data.EnumSet"
		c.params = [][2]string{{"allowed", enumValues(col.Type)}}
	case base == "date":
		c.setTime(convDate, 0, timeMode, mysql)
	case base == "interval":
		c.typ, c.logical, c.conv, c.micros = "int64", "io.debezium.time.MicroDuration", convInterval, true
	case base == "datetime":
		c.setTime(convTimestamp, arg(0, 0), timeMode, mysql)
	case base == "timestamptz" || strings.HasPrefix(t, "timestamp") && (mysql || strings.Contains(t, "with time zone") && !strings.Contains(t, "without")):
		c.logical, c.conv = "io.debezium.time.ZonedTimestamp", convString
	case strings.HasPrefix(t, "timestamp"):
		c.setTime(convTimestamp, arg(0, 6), timeMode, mysql)
	case base == "timetz" || strings.HasPrefix(t, "time") && !mysql && strings.Contains(t, "with time zone") && !strings.Contains(t, "without"):
		c.logical, c.conv = "io.debezium.time.ZonedTime", convZonedTime
	case base == "time":
		if mysql {
			c.setTime(convDuration, arg(0, 0), timeMode, true)
		} else {
			c.setTime(convTime, arg(0, 6), timeMode, false)
		}
	}
	return c
}

// dbzTable is a table's columns as the Debezium encoding writes them,
// parsed once per distinct source.columns.
type dbzTable struct {
	cols  []*dbzColumn
	index map[string]int
}

// columnToken finds the column of a key token (quotes included) without
// allocating when the name needs no unescaping.
func (t *dbzTable) columnToken(k []byte) *dbzColumn {
	if len(k) >= 2 && bytes.IndexByte(k, '\\') < 0 {
		if i, ok := t.index[string(k[1:len(k)-1])]; ok {
			return t.cols[i]
		}
		return nil
	}
	name, err := unquote(k)
	if err != nil {
		return nil
	}
	return t.column(name)
}

func (t *dbzTable) column(name string) *dbzColumn {
	if t == nil {
		return nil
	}
	if i, ok := t.index[name]; ok {
		return t.cols[i]
	}
	return nil
}

// tableCache keeps the parsed columns of the tables a codec has seen;
// sources share one rendering among a table's events, so the bytes are
// the key.
type tableCache struct {
	mu sync.Mutex
	m  map[tableKey]*dbzTable
}

type tableKey struct {
	mysql   bool
	columns string
}

// maxCachedTables bounds the cache: past it (schema churn), it starts over.
const maxCachedTables = 4096

func (c *debeziumCodec) table(src *SourceInfo) *dbzTable {
	if src == nil || len(src.Columns) == 0 {
		return nil
	}
	mysql := debeziumConnector(src.Connector) == "mysql"
	tc := &c.tables
	tc.mu.Lock()
	defer tc.mu.Unlock()
	key := tableKey{mysql, src.Columns}
	if t, ok := tc.m[key]; ok {
		return t
	}
	cols, err := ParseColumns(src.Columns)
	if err != nil {
		return nil // written as the values are, as for a source without column types
	}
	t := &dbzTable{index: make(map[string]int, len(cols))}
	for i, col := range cols {
		t.cols = append(t.cols, newDBZColumn(col, mysql, c.opts.DecimalHandlingMode, c.opts.TimePrecisionMode))
		t.index[col.Name] = i
	}
	if tc.m == nil || len(tc.m) >= maxCachedTables {
		tc.m = map[tableKey]*dbzTable{}
	}
	tc.m[key] = t
	return t
}

// ---- values ------------------------------------------------------------------

// appendDBZRow writes a row object with each column's value as Debezium
// represents it; fields without a known column are written as they are.
func (c *debeziumCodec) appendDBZRow(dst, row []byte, t *dbzTable) ([]byte, error) {
	if t == nil || isNull(row) {
		return appendRawOrNull(dst, row), nil
	}
	n := len(dst)
	dst = append(dst, '{')
	first := true
	err := objectFields(row, func(k, v []byte) error {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, k...)
		dst = append(dst, ':')
		col := t.columnToken(k)
		if col != nil {
			dst = c.appendDBZValue(dst, col, v)
		} else {
			dst = append(dst, v...)
		}
		return nil
	})
	if err != nil {
		return dst[:n], err
	}
	return append(dst, '}'), nil
}

// appendDBZValue writes one value of col. A value the column's
// representation cannot hold (PostgreSQL's NaN or infinity, a text that
// does not parse) is written as null.
func (c *debeziumCodec) appendDBZValue(dst []byte, col *dbzColumn, v []byte) []byte {
	if isNull(v) {
		return append(dst, "null"...)
	}
	str := func() (string, bool) {
		if v[0] == '"' {
			s, err := unquote(v)
			return s, err == nil
		}
		return string(v), true
	}
	switch col.conv {
	case convPass:
		return append(dst, v...)
	case convInt:
		if v[0] != '"' {
			return append(dst, v...)
		}
		if s, ok := str(); ok {
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				return append(dst, s...)
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				// BIGINT UNSIGNED past int64, as Debezium's long mode wraps it.
				return strconv.AppendInt(dst, int64(u), 10)
			}
		}
	case convFloat:
		if v[0] != '"' {
			return append(dst, v...)
		}
		if s, ok := str(); ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return strconv.AppendFloat(dst, f, 'g', -1, 64)
			}
		}
	case convBool:
		switch s, _ := str(); s {
		case "1", "true":
			return append(dst, "true"...)
		case "0", "false":
			return append(dst, "false"...)
		}
	case convBits:
		if s, ok := str(); ok {
			if b, ok := bitsLE(s, col.scale, v[0] != '"'); ok {
				return appendBase64(dst, b)
			}
		}
	case convDecimal, convVarDecimal, convMoney:
		if s, ok := str(); ok {
			if col.conv == convMoney {
				s = moneyDigits(s)
			}
			return c.appendDecimal(dst, col, s)
		}
	case convString:
		if v[0] == '"' {
			return append(dst, v...)
		}
		return AppendJSONString(dst, v)
	case convJSONText:
		return AppendJSONString(dst, v)
	case convDate:
		if s, ok := str(); ok {
			if d, err := time.Parse("2006-01-02", s); err == nil {
				return strconv.AppendInt(dst, floorDiv(d.Unix(), 86400), 10)
			}
		}
	case convTime, convDuration:
		if s, ok := str(); ok {
			if us, ok := parseClock(s, col.conv == convDuration); ok {
				return appendMicros(dst, us, col.micros)
			}
		}
	case convTimestamp:
		if s, ok := str(); ok {
			if ts, err := time.Parse("2006-01-02T15:04:05.999999999", strings.TrimSuffix(strings.Replace(s, " ", "T", 1), "Z")); err == nil {
				return appendMicros(dst, ts.UnixMicro(), col.micros)
			}
		}
	case convZonedTime:
		if s, ok := str(); ok {
			if z, ok := zonedTime(s); ok {
				return appendString(dst, z)
			}
		}
	case convInterval:
		if s, ok := str(); ok {
			if us, ok := intervalMicros(s); ok {
				return strconv.AppendInt(dst, us, 10)
			}
		}
	case convArray:
		if v[0] != '[' {
			break
		}
		out := append(dst, '[')
		i, first := 1, true
		for {
			i = skipSpace(v, i)
			if i >= len(v) {
				return append(dst, "null"...)
			}
			if v[i] == ']' {
				return append(out, ']')
			}
			if v[i] == ',' {
				i++
				continue
			}
			end, err := skipValue(v, i)
			if err != nil {
				return append(dst, "null"...)
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = c.appendDBZValue(out, col.elem, v[i:end])
			i = end
		}
	}
	return append(dst, "null"...)
}

func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendMicros writes µs, or ms (rounded down, as Debezium's conversions
// truncate toward the past) when micros is false.
func appendMicros(dst []byte, us int64, micros bool) []byte {
	if !micros {
		us = floorDiv(us, 1000)
	}
	return strconv.AppendInt(dst, us, 10)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// appendDecimal writes a decimal text under decimal.handling.mode:
// precise as the unscaled value in big-endian two's complement bytes
// (base64, what Kafka Connect's Decimal is in JSON), with the scale of
// the column, or {scale, value} for a column without one; double as a
// number; string as the text.
func (c *debeziumCodec) appendDecimal(dst []byte, col *dbzColumn, s string) []byte {
	s = strings.TrimSpace(s)
	if c.opts.DecimalHandlingMode == DecimalPrecise && col.conv == convDecimal {
		if n, ok := unscaledInt64(s, col.scale); ok {
			return appendBase64(dst, twosComplement64(n))
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return append(dst, "null"...) // NaN, Infinity
	}
	switch c.opts.DecimalHandlingMode {
	case DecimalDouble:
		f, _ := r.Float64()
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case DecimalString:
		return appendString(dst, s)
	}
	scale := col.scale
	if col.conv == convVarDecimal {
		scale = decimalScale(s)
	}
	unscaled := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	unscaled.Quo(unscaled, r.Denom()) // exact for a value already at the column's scale
	b := twosComplement(unscaled)
	if col.conv == convVarDecimal {
		dst = append(dst, `{"scale":`...)
		dst = strconv.AppendInt(dst, int64(scale), 10)
		dst = append(dst, `,"value":`...)
		return append(appendBase64(dst, b), '}')
	}
	return appendBase64(dst, b)
}

// unscaledInt64 reads a plain decimal ("-123.4") as its unscaled value at
// scale, when it has at most scale decimals and fits 18 digits: the
// common case, without big.Rat.
func unscaledInt64(s string, scale int) (int64, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" || len(frac) > scale || len(intPart)+scale > 18 {
		return 0, false
	}
	var n int64
	for _, part := range [2]string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
	}
	for i := len(frac); i < scale; i++ {
		n *= 10
	}
	if neg {
		n = -n
	}
	return n, true
}

// twosComplement64 is twosComplement for an int64.
func twosComplement64(n int64) []byte {
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	// Drop leading bytes that only repeat the sign of the next one.
	i := 0
	for i < 7 && (b[i] == 0 && b[i+1]&0x80 == 0 || b[i] == 0xff && b[i+1]&0x80 != 0) {
		i++
	}
	return b[i:]
}

// decimalScale counts the digits after the point of a decimal text
// ("1.50" has 2), less an exponent.
func decimalScale(s string) int {
	s = strings.TrimSpace(s)
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp, _ = strconv.Atoi(s[i+1:])
		s = s[:i]
	}
	scale := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		scale = len(s) - i - 1
	}
	if scale -= exp; scale < 0 {
		scale = 0
	}
	return scale
}

// twosComplement is Java's BigInteger.toByteArray: the shortest
// big-endian two's complement form.
func twosComplement(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -n = ^(n-1): take the magnitude minus one and invert its bytes.
	m := new(big.Int).Sub(new(big.Int).Neg(n), big.NewInt(1)).Bytes()
	b := make([]byte, len(m))
	for i := range m {
		b[i] = ^m[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xff}, b...)
	}
	return b
}

// moneyDigits reduces PostgreSQL's money text ("-$1,234.56", "($1.00)")
// to a decimal.
func moneyDigits(s string) string {
	var b strings.Builder
	neg := strings.Contains(s, "-") || strings.HasPrefix(strings.TrimSpace(s), "(")
	if neg {
		b.WriteByte('-')
	}
	for _, r := range s {
		if r >= '0' && r <= '9' || r == '.' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// bitsLE turns a bit string ("0101", most significant first, as
// PostgreSQL writes it) or a number (MySQL's BIT, number true) into
// Debezium's Bits: little-endian bytes, n/8 rounded up of them for n
// bits (as many as the value needs for BIT VARYING without a length).
func bitsLE(s string, n int, number bool) ([]byte, bool) {
	base := 2
	if number {
		base = 10
	}
	v, ok := new(big.Int).SetString(s, base)
	if !ok || v.Sign() < 0 {
		return nil, false
	}
	be := v.Bytes()
	size := (n + 7) / 8
	if n == math.MaxInt32 {
		size = max((len(s)+7)/8, 1)
		if number {
			size = max(len(be), 1)
		}
	}
	if len(be) > size {
		return nil, false
	}
	out := make([]byte, size)
	for i, b := range be {
		out[len(be)-1-i] = b
	}
	return out, true
}

// parseClock reads "15:04:05[.999999]" into µs past midnight; a
// duration (MySQL TIME) may be negative and exceed 24 hours.
func parseClock(s string, duration bool) (int64, bool) {
	neg := false
	if duration && strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 64)
	m, err2 := strconv.ParseInt(parts[1], 10, 64)
	sec, frac, _ := strings.Cut(parts[2], ".")
	sc, err3 := strconv.ParseInt(sec, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || m < 0 || m > 59 || sc < 0 || sc > 60 {
		return 0, false
	}
	us := ((h*60+m)*60 + sc) * 1e6
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		f, err := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil {
			return 0, false
		}
		us += f
	}
	if neg {
		us = -us
	}
	return us, true
}

// zonedTime turns PostgreSQL's timetz text ("10:15:30.5+02",
// "23:00:00-05:30") into Debezium's ZonedTime: the time in UTC, ISO
// format ("08:15:30.5Z").
func zonedTime(s string) (string, bool) {
	i := strings.LastIndexAny(s, "+-")
	if i <= 0 {
		return "", false
	}
	us, ok := parseClock(s[:i], false)
	if !ok {
		return "", false
	}
	off := s[i+1:]
	var oh, om, os int64
	parts := strings.Split(off, ":")
	vals := []*int64{&oh, &om, &os}
	for k, p := range parts {
		if k >= 3 {
			return "", false
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return "", false
		}
		*vals[k] = n
	}
	offUS := ((oh*60+om)*60 + os) * 1e6
	if s[i] == '-' {
		offUS = -offUS
	}
	const day = 86400 * 1e6
	us = ((us-offUS)%day + day) % day
	t := time.UnixMicro(us).UTC()
	out := t.Format("15:04:05.999999")
	return out + "Z", true
}

// intervalMicros reads a PostgreSQL interval as Debezium's
// MicroDuration, months of 365.25/12 days: the ISO 8601 form postgres-cdc
// asks for (IntervalStyle iso_8601: "P1Y2M3DT4H5M6.78S", each part
// signed) or the postgres style ("1 year 2 mons -3 days 04:05:06.5").
func intervalMicros(s string) (int64, bool) {
	var years, months, days, hours, minutes, seconds float64
	if strings.HasPrefix(s, "P") {
		inTime := false
		num := ""
		for _, r := range s[1:] {
			switch {
			case r == 'T':
				inTime = true
			case r >= '0' && r <= '9' || r == '.' || r == '-' || r == '+':
				num += string(r)
			default:
				n, err := strconv.ParseFloat(num, 64)
				if err != nil {
					return 0, false
				}
				num = ""
				switch {
				case r == 'Y' && !inTime:
					years += n
				case r == 'M' && !inTime:
					months += n
				case r == 'W' && !inTime:
					days += 7 * n
				case r == 'D' && !inTime:
					days += n
				case r == 'H' && inTime:
					hours += n
				case r == 'M' && inTime:
					minutes += n
				case r == 'S' && inTime:
					seconds += n
				default:
					return 0, false
				}
			}
		}
		if num != "" {
			return 0, false
		}
		return durationMicros(years, months, days, hours, minutes, seconds), true
	}
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		tok := f[i]
		if strings.Contains(tok, ":") {
			neg := strings.HasPrefix(tok, "-")
			p := strings.Split(strings.TrimLeft(tok, "+-"), ":")
			if len(p) < 2 || len(p) > 3 {
				return 0, false
			}
			var hms [3]float64
			for k, part := range p {
				n, err := strconv.ParseFloat(part, 64)
				if err != nil {
					return 0, false
				}
				hms[k] = n
			}
			if neg {
				hms[0], hms[1], hms[2] = -hms[0], -hms[1], -hms[2]
			}
			hours, minutes, seconds = hours+hms[0], minutes+hms[1], seconds+hms[2]
			continue
		}
		n, err := strconv.ParseFloat(tok, 64)
		if err != nil || i+1 >= len(f) {
			return 0, false
		}
		i++
		switch strings.TrimSuffix(f[i], "s") {
		case "year":
			years += n
		case "mon":
			months += n
		case "day":
			days += n
		case "hour":
			hours += n
		case "min":
			minutes += n
		case "sec":
			seconds += n
		default:
			return 0, false
		}
	}
	return durationMicros(years, months, days, hours, minutes, seconds), true
}

// durationMicros is Debezium's MicroDuration.durationMicros, with its
// average month of 365.25/12 days and its order of operations (so that
// the float rounding is the same).
func durationMicros(years, months, days, hours, minutes, seconds float64) int64 {
	const daysPerMonth = 365.25 / 12
	d := (years*12+months)*daysPerMonth + days
	secs := ((d*24+hours)*60+minutes)*60 + seconds
	return int64(secs * 1e6)
}

// ---- schemas -----------------------------------------------------------------

// appendFieldSchema writes col's schema as Kafka Connect's JsonConverter
// does (type, fields or items, optional, name, version, doc,
// parameters), as field name of a struct unless field is "".
func appendFieldSchema(dst []byte, col *dbzColumn, optional bool, field string) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, col.typ)
	switch {
	case col.fields != "":
		dst = append(dst, `,"fields":`...)
		dst = append(dst, col.fields...)
	case col.elem != nil:
		dst = append(dst, `,"items":`...)
		dst = appendFieldSchema(dst, col.elem, true, "")
	}
	dst = append(dst, `,"optional":`...)
	dst = strconv.AppendBool(dst, optional)
	if col.logical != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, col.logical)
		dst = append(dst, `,"version":1`...)
	}
	if col.doc != "" {
		dst = append(dst, `,"doc":`...)
		dst = appendString(dst, col.doc)
	}
	if len(col.params) > 0 {
		dst = append(dst, `,"parameters":{`...)
		for i, p := range col.params {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, p[0])
			dst = append(dst, ':')
			dst = appendString(dst, p[1])
		}
		dst = append(dst, '}')
	}
	if field != "" {
		dst = append(dst, `,"field":`...)
		dst = appendString(dst, field)
	}
	return append(dst, '}')
}

// inferColumn reads a schema off a value, for fields no column type
// describes (sources without column types, fields a transform added):
// what Kafka Connect's JsonConverter assumes of schemaless JSON (integers
// int64, other numbers double), every field optional.
func inferColumn(name string, v []byte) *dbzColumn {
	c := &dbzColumn{name: name, typ: "string", conv: convPass, inferred: true}
	if len(v) == 0 {
		return c
	}
	switch v[0] {
	case 't', 'f':
		c.typ = "boolean"
	case '"', 'n':
	case '[':
		c.typ = "array"
		c.elem = &dbzColumn{typ: "string", inferred: true}
		i := skipSpace(v, 1)
		for i < len(v) && v[i] != ']' {
			end, err := skipValue(v, i)
			if err != nil {
				break
			}
			if !isNull(v[i:end]) {
				c.elem = inferColumn("", v[i:end])
				break
			}
			i = skipSpace(v, end)
			if i < len(v) && v[i] == ',' {
				i = skipSpace(v, i+1)
			}
		}
	case '{':
		c.typ = "struct"
		var b []byte
		b = append(b, '[')
		first := true
		_ = objectFields(v, func(k, fv []byte) error {
			name, err := unquote(k)
			if err != nil {
				return err
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendFieldSchema(b, inferColumn(name, fv), true, name)
			return nil
		})
		c.fields = string(append(b, ']'))
	default:
		c.typ = "int64"
		for _, ch := range v {
			if ch == '.' || ch == 'e' || ch == 'E' {
				c.typ = "double"
				break
			}
		}
	}
	return c
}
