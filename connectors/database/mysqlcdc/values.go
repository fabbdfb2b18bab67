package mysqlcdc

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// MySQL column type codes as they appear in TABLE_MAP events.
const (
	typeDecimal    = 0
	typeTiny       = 1
	typeShort      = 2
	typeLong       = 3
	typeFloat      = 4
	typeDouble     = 5
	typeNull       = 6
	typeTimestamp  = 7
	typeLongLong   = 8
	typeInt24      = 9
	typeDate       = 10
	typeTime       = 11
	typeDatetime   = 12
	typeYear       = 13
	typeNewDate    = 14
	typeVarchar    = 15
	typeBit        = 16
	typeTimestamp2 = 17
	typeDatetime2  = 18
	typeTime2      = 19
	typeJSON       = 245
	typeNewDecimal = 246
	typeEnum       = 247
	typeSet        = 248
	typeTinyBlob   = 249
	typeMediumBlob = 250
	typeLongBlob   = 251
	typeBlob       = 252
	typeVarString  = 253
	typeString     = 254
	typeGeometry   = 255
)

// kind is how a column's value is rendered in JSON. The binlog decoder and
// the snapshot's text-protocol conversion both map to it, so a row looks
// byte-for-byte the same whichever path read it.
type kind byte

const (
	kInt       kind = iota + 1 // JSON number
	kUint                      // JSON number (full 64-bit range)
	kFloat                     // JSON number, shortest float32 form
	kDouble                    // JSON number, shortest float64 form
	kDecimal                   // JSON string with the exact digits and scale
	kDate                      // "YYYY-MM-DD"
	kDatetime                  // "YYYY-MM-DDTHH:MM:SS[.ffffff]" (no zone)
	kTimestamp                 // "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC)
	kTime                      // "[-]HH:MM:SS[.ffffff]" (a duration, may exceed 24h)
	kYear                      // JSON number
	kText                      // JSON string, converted from the column charset
	kBytes                     // base64 string (binary strings, BLOB, GEOMETRY)
	kEnum                      // member name
	kSet                       // comma-separated member names
	kBit                       // JSON number
	kJSON                      // the JSON document itself (MySQL JSON type)
	// MariaDB's UUID, INET4 and INET6 are logged as their 16 or 4 bytes of
	// storage; they are rendered as the text MariaDB itself shows (what
	// the snapshot's SELECT returns), so both paths agree.
	kUUID  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
	kInet4 // "192.0.2.1"
	kInet6 // "2001:db8::1", "::ffff:192.0.2.1"
)

// colInfo is what decoding needs to know about one column.
type colInfo struct {
	Name    string
	Kind    kind
	Charset string // for kText
	FSP     int    // fractional second digits (time kinds)
	Enum    []string
	Set     []string
}

func appendBase64(b []byte, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// cp1252 maps 0x80..0x9F of MySQL's "latin1" (which is Windows-1252).
var cp1252 = [32]rune{
	0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
	0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
}

// appendText appends a string column's bytes, converted from its charset.
func appendText(b []byte, charset string, v []byte) []byte {
	switch charset {
	case "binary":
		return appendBase64(b, v)
	case "latin1":
		var sb strings.Builder
		sb.Grow(len(v))
		for _, c := range v {
			switch {
			case c < 0x80:
				sb.WriteByte(c)
			case c < 0xa0:
				sb.WriteRune(cp1252[c-0x80])
			default:
				sb.WriteRune(rune(c))
			}
		}
		return events.AppendJSONString(b, sb.String())
	case "ucs2", "utf16":
		return events.AppendJSONString(b, decodeUTF16BE(v))
	case "utf32":
		var sb strings.Builder
		for i := 0; i+4 <= len(v); i += 4 {
			sb.WriteRune(rune(binary.BigEndian.Uint32(v[i:])))
		}
		return events.AppendJSONString(b, sb.String())
	}
	// utf8mb4, utf8mb3, ascii and anything unknown: passed through (invalid
	// UTF-8 becomes U+FFFD).
	return events.AppendJSONString(b, v)
}

func decodeUTF16BE(v []byte) string {
	var sb strings.Builder
	for i := 0; i+2 <= len(v); i += 2 {
		c := rune(binary.BigEndian.Uint16(v[i:]))
		if c >= 0xd800 && c < 0xdc00 && i+4 <= len(v) {
			lo := rune(binary.BigEndian.Uint16(v[i+2:]))
			sb.WriteRune((c-0xd800)<<10 + (lo - 0xdc00) + 0x10000)
			i += 2
			continue
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

// appendFrac appends ".ffffff" cut to fsp digits.
func appendFrac(b []byte, micros int, fsp int) []byte {
	if fsp <= 0 {
		return b
	}
	fsp = min(fsp, 6)
	b = append(b, '.')
	// The first fsp of the six microsecond digits (corrupt data with more
	// than six digits keeps the low six, as the table map allows no more).
	return appendPad(b, micros%1000000/pow10[6-fsp], fsp)
}

func appendPad(b []byte, v, width int) []byte {
	if v >= 0 && width >= 1 && width <= 9 && v < pow10[width] {
		// The common case (date parts, DECIMAL groups): the digits are
		// written in place, right to left, without strconv.
		n := len(b)
		b = append(b, "000000000"[:width]...)
		for i := n + width - 1; v > 0; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
		return b
	}
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

var pow10 = [10]int{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

func appendDate(b []byte, y, m, d int) []byte {
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, m, 2)
	b = append(b, '-')
	return appendPad(b, d, 2)
}

func appendClock(b []byte, h, mi, s int) []byte {
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	return appendPad(b, s, 2)
}

// appendDatetime renders a DATETIME; zero dates (month or day 0, which
// MySQL accepts outside strict mode) have no calendar meaning and become
// null.
func appendDatetime(b []byte, y, m, d, h, mi, s, micros, fsp int) []byte {
	if m == 0 || d == 0 {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = appendDate(b, y, m, d)
	b = append(b, 'T')
	b = appendClock(b, h, mi, s)
	b = appendFrac(b, micros, fsp)
	return append(b, '"')
}

func appendTimestamp(b []byte, sec int64, micros, fsp int) []byte {
	if sec == 0 && micros == 0 {
		return append(b, "null"...) // '0000-00-00 00:00:00'
	}
	t := time.Unix(sec, 0).UTC()
	b = append(b, '"')
	b = appendDate(b, t.Year(), int(t.Month()), t.Day())
	b = append(b, 'T')
	b = appendClock(b, t.Hour(), t.Minute(), t.Second())
	b = appendFrac(b, micros, fsp)
	return append(b, 'Z', '"')
}

func appendTimeOfDay(b []byte, neg bool, h, mi, s, micros, fsp int) []byte {
	b = append(b, '"')
	if neg {
		b = append(b, '-')
	}
	b = appendClock(b, h, mi, s)
	b = appendFrac(b, micros, fsp)
	return append(b, '"')
}

func appendFloat32(b []byte, f float32) []byte {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
}

func appendFloat64(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

func appendSet(b []byte, names []string, mask uint64) []byte {
	var parts []string
	for i, n := range names {
		if i < 64 && mask&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return events.AppendJSONString(b, strings.Join(parts, ","))
}

var dig2bytes = [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}

// decimalSize is the binary size of DECIMAL(precision, scale).
func decimalSize(precision, scale int) int {
	intg := precision - scale
	return intg/9*4 + dig2bytes[intg%9] + scale/9*4 + dig2bytes[scale%9]
}

// appendDecimal decodes MySQL's binary DECIMAL into its exact digits.
func appendDecimal(b []byte, data []byte, precision, scale int) ([]byte, error) {
	if scale > precision || precision > 65 || scale > 30 {
		return b, fmt.Errorf("bad decimal(%d,%d)", precision, scale)
	}
	size := decimalSize(precision, scale)
	if len(data) < size || size == 0 {
		return b, errShort
	}
	var bufArr [32]byte // DECIMAL(65,30) needs 30 bytes
	buf := bufArr[:size]
	copy(buf, data)
	neg := buf[0]&0x80 == 0
	buf[0] ^= 0x80
	if neg {
		for i := range buf {
			buf[i] = ^buf[i]
		}
	}
	intg := precision - scale
	var digitsArr [80]byte
	digits := digitsArr[:0]
	pos := 0
	be := func(n int) uint32 {
		var v uint32
		for _, c := range buf[pos : pos+n] {
			v = v<<8 | uint32(c)
		}
		pos += n
		return v
	}
	if x := intg % 9; x > 0 {
		digits = appendPad(digits, int(be(dig2bytes[x])), x)
	}
	for range intg / 9 {
		digits = appendPad(digits, int(be(4)), 9)
	}
	// Strip leading zeros of the integer part, keeping one.
	i := 0
	for i < len(digits)-1 && digits[i] == '0' {
		i++
	}
	digits = digits[i:]
	if len(digits) == 0 {
		digits = append(digits, '0')
	}
	b = append(b, '"')
	if neg {
		b = append(b, '-')
	}
	b = append(b, digits...)
	if scale > 0 {
		b = append(b, '.')
		for range scale / 9 {
			b = appendPad(b, int(be(4)), 9)
		}
		if x := scale % 9; x > 0 {
			b = appendPad(b, int(be(dig2bytes[x])), x)
		}
	}
	return append(b, '"'), nil
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// fracBytes is the size of the fractional part of TIME2/DATETIME2/TIMESTAMP2.
func fracBytes(fsp int) int { return (fsp + 1) / 2 }

// readFrac reads the fractional part and returns it in microseconds.
func readFrac(r *reader, fsp int) int {
	switch fracBytes(fsp) {
	case 1:
		return int(r.u8()) * 10000
	case 2:
		return int(beUint(r.bytes(2))) * 100
	case 3:
		return int(beUint(r.bytes(3)))
	}
	return 0
}

var errValue = errors.New("malformed column value")

// appendBinlogValue decodes one non-NULL column value from a row image,
// appending its JSON form. unsigned and info come from the table map's
// optional metadata or the schema cache.
func appendBinlogValue(b []byte, r *reader, t byte, meta uint16, unsigned bool, ci *colInfo, mysqlJSON bool) ([]byte, error) {
	t, length := realType(t, meta)
	switch t {
	case typeTiny, typeShort, typeInt24, typeLong, typeLongLong:
		return appendBinlogInt(b, r, t, unsigned)
	case typeFloat:
		return appendFloat32(b, math.Float32frombits(r.u32())), r.err
	case typeDouble:
		return appendFloat64(b, math.Float64frombits(r.u64())), r.err
	case typeNewDecimal:
		p, s := int(meta>>8), int(meta&0xff)
		if s > p || p > 65 {
			return b, errValue
		}
		n := decimalSize(p, s)
		data := r.bytes(n)
		if r.err != nil {
			return b, r.err
		}
		return appendDecimal(b, data, p, s)
	case typeYear, typeDate, typeNewDate, typeTimestamp, typeTimestamp2, typeDatetime, typeDatetime2, typeTime:
		return appendBinlogTemporal(b, r, t, meta)
	case typeTime2:
		return appendBinlogTime2(b, r, int(meta))
	case typeBit:
		// meta is (bits % 8) << 8 | whole bytes
		nbytes := int(meta&0xff) + boolInt(meta>>8 > 0)
		return strconv.AppendUint(b, beUint(r.bytes(nbytes)), 10), r.err
	case typeEnum, typeSet:
		return appendBinlogEnumSet(b, r, t, length, ci)
	case typeString, typeVarchar, typeVarString, typeBlob, typeTinyBlob, typeMediumBlob, typeLongBlob, typeGeometry, typeJSON:
		return appendBinlogBytes(b, r, t, meta, length, ci, mysqlJSON)
	}
	return b, fmt.Errorf("unsupported column type %d", t)
}

// appendBinlogInt writes an integer column: little-endian, 1 to 8 bytes,
// signed unless the table map's SIGNEDNESS says otherwise.
func appendBinlogInt(b []byte, r *reader, t byte, unsigned bool) ([]byte, error) {
	switch t {
	case typeTiny:
		v := r.u8()
		if unsigned {
			return strconv.AppendUint(b, uint64(v), 10), r.err
		}
		return strconv.AppendInt(b, int64(int8(v)), 10), r.err
	case typeShort:
		v := r.u16()
		if unsigned {
			return strconv.AppendUint(b, uint64(v), 10), r.err
		}
		return strconv.AppendInt(b, int64(int16(v)), 10), r.err
	case typeInt24:
		v := uint32(r.uN(3))
		if unsigned {
			return strconv.AppendUint(b, uint64(v), 10), r.err
		}
		return strconv.AppendInt(b, int64(int32(v<<8)>>8), 10), r.err
	case typeLong:
		v := r.u32()
		if unsigned {
			return strconv.AppendUint(b, uint64(v), 10), r.err
		}
		return strconv.AppendInt(b, int64(int32(v)), 10), r.err
	}
	v := r.u64()
	if unsigned {
		return strconv.AppendUint(b, v, 10), r.err
	}
	return strconv.AppendInt(b, int64(v), 10), r.err
}

// appendBinlogTemporal writes YEAR, DATE, TIMESTAMP, DATETIME and the old
// TIME format; TIME2 (fractional seconds) has appendBinlogTime2.
func appendBinlogTemporal(b []byte, r *reader, t byte, meta uint16) ([]byte, error) {
	switch t {
	case typeYear:
		v := int(r.u8())
		if v != 0 {
			v += 1900
		}
		return strconv.AppendInt(b, int64(v), 10), r.err
	case typeDate, typeNewDate:
		v := int(r.uN(3))
		if r.err != nil {
			return b, r.err
		}
		y, m, d := v>>9, (v>>5)&15, v&31
		if m == 0 || d == 0 {
			return append(b, "null"...), nil
		}
		b = append(b, '"')
		b = appendDate(b, y, m, d)
		return append(b, '"'), nil
	case typeTimestamp:
		return appendTimestamp(b, int64(r.u32()), 0, 0), r.err
	case typeTimestamp2:
		sec := int64(beUint(r.bytes(4)))
		fsp := int(meta)
		us := readFrac(r, fsp)
		return appendTimestamp(b, sec, us, fsp), r.err
	case typeDatetime:
		v := r.u64()
		d, tm := int(v/1000000), int(v%1000000)
		return appendDatetime(b, d/10000, d/100%100, d%100, tm/10000, tm/100%100, tm%100, 0, 0), r.err
	case typeDatetime2:
		raw := r.bytes(5)
		fsp := int(meta)
		us := readFrac(r, fsp)
		if r.err != nil {
			return b, r.err
		}
		v := int64(beUint(raw)) - 0x8000000000
		if v < 0 {
			v = -v // DATETIME2 has no negative values; be defensive with corrupt data
		}
		ymd, hms := v>>17, v&(1<<17-1)
		ym := ymd >> 5
		return appendDatetime(b, int(ym/13), int(ym%13), int(ymd&31), int(hms>>12), int(hms>>6&63), int(hms&63), us, fsp), nil
	case typeTime:
		v := int32(uint32(r.uN(3))<<8) >> 8
		neg := v < 0
		if neg {
			v = -v
		}
		return appendTimeOfDay(b, neg, int(v/10000), int(v/100%100), int(v%100), 0, 0), r.err
	}
	return b, fmt.Errorf("unsupported column type %d", t)
}

// appendBinlogTime2 writes a TIME(fsp) column: a big-endian offset value
// with 0 to 3 bytes of fraction by precision.
func appendBinlogTime2(b []byte, r *reader, fsp int) ([]byte, error) {
	var tmp int64
	switch fsp {
	case 1, 2:
		ip := int64(beUint(r.bytes(3))) - 0x800000
		fr := int64(r.u8())
		if ip < 0 && fr != 0 {
			ip++
			fr -= 0x100
		}
		tmp = ip<<24 + fr*10000
	case 3, 4:
		ip := int64(beUint(r.bytes(3))) - 0x800000
		fr := int64(beUint(r.bytes(2)))
		if ip < 0 && fr != 0 {
			ip++
			fr -= 0x10000
		}
		tmp = ip<<24 + fr*100
	case 5, 6:
		tmp = int64(beUint(r.bytes(6))) - 0x800000000000
	default:
		tmp = (int64(beUint(r.bytes(3))) - 0x800000) << 24
	}
	if r.err != nil {
		return b, r.err
	}
	neg := tmp < 0
	if neg {
		tmp = -tmp
	}
	hms := tmp >> 24
	return appendTimeOfDay(b, neg, int(hms>>12%1024), int(hms>>6%64), int(hms%64), int(tmp%(1<<24)), fsp), nil
}

// appendBinlogEnumSet writes an ENUM as its name and a SET as its names
// (numbers when the column's names are unknown).
func appendBinlogEnumSet(b []byte, r *reader, t byte, length int, ci *colInfo) ([]byte, error) {
	if t == typeSet {
		if length < 1 || length > 8 {
			return b, errValue
		}
		mask := r.uN(length)
		if r.err != nil {
			return b, r.err
		}
		if ci != nil && ci.Set != nil {
			return appendSet(b, ci.Set, mask), nil
		}
		return strconv.AppendUint(b, mask, 10), nil
	}
	var idx int
	switch length {
	case 1:
		idx = int(r.u8())
	case 2:
		idx = int(r.u16())
	default:
		return b, errValue
	}
	if r.err != nil {
		return b, r.err
	}
	if ci != nil && idx > 0 && idx <= len(ci.Enum) {
		return events.AppendJSONString(b, ci.Enum[idx-1]), nil
	}
	if idx == 0 {
		return append(b, `""`...), nil
	}
	return strconv.AppendInt(b, int64(idx), 10), nil // names unknown
}

// appendBinlogBytes writes the length-prefixed columns: CHAR, VARCHAR,
// the BLOB and TEXT family, GEOMETRY (base64) and JSON (MySQL's binary
// JSON decoded, or MariaDB's text).
func appendBinlogBytes(b []byte, r *reader, t byte, meta uint16, length int, ci *colInfo, mysqlJSON bool) ([]byte, error) {
	switch t {
	case typeString:
		var n int
		if length < 256 {
			n = int(r.u8())
		} else {
			n = int(r.u16())
		}
		v := r.bytes(n)
		if r.err != nil {
			return b, r.err
		}
		if ci != nil && ci.Charset == "binary" && len(v) < length {
			// BINARY(n) is logged without its trailing 0x00 padding; the
			// column value (and the snapshot's) has it.
			v = append(append(make([]byte, 0, length), v...), make([]byte, length-len(v))...)
		}
		return appendStringValue(b, v, ci), nil
	case typeVarchar, typeVarString:
		var n int
		if meta < 256 {
			n = int(r.u8())
		} else {
			n = int(r.u16())
		}
		return appendStringValue(b, r.bytes(n), ci), r.err
	case typeBlob, typeTinyBlob, typeMediumBlob, typeLongBlob, typeGeometry, typeJSON:
		if meta < 1 || meta > 4 {
			return b, errValue
		}
		n := r.uN(int(meta))
		if n > uint64(len(r.b)) {
			return b, errShort
		}
		data := r.bytes(int(n))
		if r.err != nil {
			return b, r.err
		}
		if t == typeJSON && mysqlJSON {
			return appendBinaryJSON(b, data)
		}
		if t == typeGeometry {
			return appendBase64(b, data), nil
		}
		return appendStringValue(b, data, ci), nil
	}
	return b, fmt.Errorf("unsupported column type %d", t)
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

func appendStringValue(b []byte, v []byte, ci *colInfo) []byte {
	if ci != nil {
		switch {
		case ci.Kind == kUUID && len(v) == 16:
			return appendUUID(b, v)
		case ci.Kind == kInet4 && len(v) == 4:
			return appendInet4(b, v)
		case ci.Kind == kInet6 && len(v) == 16:
			return appendInet6(b, v)
		}
	}
	cs := "binary"
	if ci != nil && ci.Charset != "" {
		cs = ci.Charset
	}
	return appendText(b, cs, v)
}

// appendTextValue converts a text-protocol cell (the snapshot's SELECT, in
// a utf8mb4 session with time_zone '+00:00') to the same JSON the binlog
// decoder produces.
func appendTextValue(b []byte, ci *colInfo, v []byte) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	s := string(v)
	switch ci.Kind {
	case kInt, kUint, kYear:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return b, fmt.Errorf("column %s: %q is not a number", ci.Name, s)
		}
		if ci.Kind == kYear {
			n, _ := strconv.Atoi(s)
			return strconv.AppendInt(b, int64(n), 10), nil
		}
		return append(b, s...), nil
	case kFloat:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return b, fmt.Errorf("column %s: %w", ci.Name, err)
		}
		return appendFloat32(b, float32(f)), nil
	case kDouble:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return b, fmt.Errorf("column %s: %w", ci.Name, err)
		}
		return appendFloat64(b, f), nil
	case kDecimal:
		return events.AppendJSONString(b, s), nil
	case kDate:
		if len(s) < 10 || s[5:7] == "00" || s[8:10] == "00" {
			return append(b, "null"...), nil
		}
		return events.AppendJSONString(b, s), nil
	case kDatetime, kTimestamp:
		if len(s) < 19 || s[5:7] == "00" || s[8:10] == "00" {
			return append(b, "null"...), nil
		}
		b = append(b, '"')
		b = append(b, s[:10]...)
		b = append(b, 'T')
		b = append(b, s[11:]...)
		if ci.Kind == kTimestamp {
			b = append(b, 'Z')
		}
		return append(b, '"'), nil
	case kTime:
		return events.AppendJSONString(b, s), nil
	case kText, kEnum, kSet, kUUID, kInet4, kInet6:
		return events.AppendJSONString(b, s), nil
	case kBytes:
		return appendBase64(b, v), nil
	case kBit:
		return strconv.AppendUint(b, beUint(v), 10), nil
	case kJSON:
		return appendNormalizedJSON(b, v)
	}
	return events.AppendJSONString(b, s), nil
}

// appendNormalizedJSON re-encodes a JSON document with sorted object keys
// and exact numbers, so documents read as text and as MySQL binary JSON
// compare equal, and its strings escaped as every other string of the
// event (and as postgres-cdc writes them).
func appendNormalizedJSON(b []byte, v []byte) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(string(v)))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return b, fmt.Errorf("invalid JSON value: %w", err)
	}
	return events.AppendJSONValue(b, normalizeNumbers(x))
}

// appendUUID writes a MariaDB UUID as MariaDB shows it. The binlog carries
// the 16 bytes in text order (MariaDB's index-friendly swapping of the
// segments is in its record format, not in the replication stream; a test
// against the server checks it).
func appendUUID(b, v []byte) []byte {
	b = append(b, '"')
	for i, c := range v {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func appendInet4(b, v []byte) []byte {
	b = append(b, '"')
	for i, c := range v {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(c), 10)
	}
	return append(b, '"')
}

// appendInet6 writes an INET6 value the way MariaDB's Inet6::to_string
// does, which is not RFC 5952 (nor Go's netip): the longest run of zero
// words is compressed even when it is a single word (the first run wins
// a tie), and an address whose first six words are zero, or five zero
// words and ffff, ends in dotted IPv4 (IPv4-compatible "::1.2.3.4" and
// IPv4-mapped "::ffff:1.2.3.4"), unless the zero run is longer than six
// words ("::1", "::").
func appendInet6(b, v []byte) []byte {
	var w [8]uint16
	for i := range w {
		w[i] = uint16(v[2*i])<<8 | uint16(v[2*i+1])
	}
	gapPos, gapLen := -1, 0
	for i := 0; i < 8; {
		if w[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && w[j] == 0 {
			j++
		}
		if j-i > gapLen {
			gapPos, gapLen = i, j-i
		}
		i = j
	}
	b = append(b, '"')
	for i := 0; i < 8; i++ {
		switch {
		case i == gapPos:
			if i == 0 {
				b = append(b, ':')
			}
			b = append(b, ':')
			i += gapLen - 1
		case i == 6 && gapPos == 0 && (gapLen == 6 || gapLen == 5 && w[5] == 0xffff):
			for k, c := range v[12:] {
				if k > 0 {
					b = append(b, '.')
				}
				b = strconv.AppendUint(b, uint64(c), 10)
			}
			return append(b, '"')
		default:
			b = strconv.AppendUint(b, uint64(w[i]), 16)
			if i != 7 {
				b = append(b, ':')
			}
		}
	}
	return append(b, '"')
}
