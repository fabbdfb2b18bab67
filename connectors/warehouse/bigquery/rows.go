package bigquery

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Rows are the events' JSON objects; each table column takes the field
// of its name, converted to the protobuf type the adapt package gives the
// column (the Storage Write API's documented encodings):
//
//	STRING, GEOGRAPHY  string (numbers and booleans as their text, objects as JSON)
//	JSON               the value's JSON text
//	INT64              int64 (integers, integral floats, decimal strings)
//	FLOAT64            double (numbers, decimal strings, NaN, Infinity)
//	BOOL               bool (true/false, "true"/"false")
//	BYTES              bytes (a base64 string)
//	TIMESTAMP          int64 microseconds since the epoch (RFC 3339 strings,
//	                   "YYYY-MM-DD HH:MM:SS[.ffffff][zone]", or an integer of microseconds)
//	DATE               int32 days since the epoch ("YYYY-MM-DD" or an integer of days)
//	DATETIME           int64 packed civil datetime ("YYYY-MM-DD[T ]HH:MM:SS[.ffffff]")
//	TIME               int64 packed civil time ("HH:MM:SS[.ffffff]")
//	NUMERIC            bytes: the value × 10^9 as little-endian two's complement
//	BIGNUMERIC         bytes: the value × 10^38 likewise
//	STRUCT             a nested message from an object
//	REPEATED           a list from an array (null: empty)
//
// A null or absent field is a NULL cell; a REQUIRED column without a
// value, or a value that does not convert, fails the row with the
// column's path and the reason (the row is dead-lettered).

// encodeRow fills a message of md from row.
func encodeRow(md protoreflect.MessageDescriptor, fields []*storagepb.TableFieldSchema, row map[string]any, prefix string) (*dynamicpb.Message, error) {
	msg := dynamicpb.NewMessage(md)
	for i, f := range fields {
		fd := md.Fields().ByNumber(protoreflect.FieldNumber(i + 1))
		path := prefix + f.GetName()
		v, ok := lookup(row, f.GetName())
		if !ok || v == nil {
			if f.GetMode() == storagepb.TableFieldSchema_REQUIRED {
				return nil, fmt.Errorf("column %s (%s): required, the row has no value", path, f.GetType())
			}
			continue
		}
		if f.GetMode() == storagepb.TableFieldSchema_REPEATED {
			arr, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("column %s (REPEATED %s): want an array, got %s", path, f.GetType(), kindOf(v))
			}
			list := msg.Mutable(fd).List()
			for j, el := range arr {
				if el == nil {
					return nil, fmt.Errorf("column %s[%d] (%s): BigQuery arrays cannot hold NULL", path, j, f.GetType())
				}
				pv, err := convert(fd, f, el, fmt.Sprintf("%s[%d]", path, j), list.NewElement)
				if err != nil {
					return nil, err
				}
				list.Append(pv)
			}
			continue
		}
		pv, err := convert(fd, f, v, path, func() protoreflect.Value { return msg.NewField(fd) })
		if err != nil {
			return nil, err
		}
		msg.Set(fd, pv)
	}
	return msg, nil
}

// lookup finds a field by name; BigQuery column names are case-insensitive.
func lookup(row map[string]any, name string) (any, bool) {
	if v, ok := row[name]; ok {
		return v, true
	}
	for k, v := range row {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// convert turns one JSON value into the protobuf value of a column.
func convert(fd protoreflect.FieldDescriptor, f *storagepb.TableFieldSchema, v any, path string, newMsg func() protoreflect.Value) (protoreflect.Value, error) {
	fail := func(err error) (protoreflect.Value, error) {
		return protoreflect.Value{}, fmt.Errorf("column %s (%s): %w", path, f.GetType(), err)
	}
	switch f.GetType() {
	case storagepb.TableFieldSchema_STRING, storagepb.TableFieldSchema_GEOGRAPHY:
		s, err := asText(v)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfString(s), nil
	case storagepb.TableFieldSchema_JSON:
		b, err := json.Marshal(v)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfString(string(b)), nil
	case storagepb.TableFieldSchema_INT64:
		n, err := asInt(v)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfInt64(n), nil
	case storagepb.TableFieldSchema_DOUBLE:
		x, err := asFloat(v)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfFloat64(x), nil
	case storagepb.TableFieldSchema_BOOL:
		switch b := v.(type) {
		case bool:
			return protoreflect.ValueOfBool(b), nil
		case string:
			if p, err := strconv.ParseBool(b); err == nil {
				return protoreflect.ValueOfBool(p), nil
			}
		}
		return fail(fmt.Errorf("want a boolean, got %s", kindOf(v)))
	case storagepb.TableFieldSchema_BYTES:
		s, ok := v.(string)
		if !ok {
			return fail(fmt.Errorf("want a base64 string, got %s", kindOf(v)))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err != nil {
				return fail(errors.New("not base64"))
			}
		}
		return protoreflect.ValueOfBytes(b), nil
	case storagepb.TableFieldSchema_TIMESTAMP:
		us, err := asTimestamp(v)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfInt64(us), nil
	case storagepb.TableFieldSchema_DATE:
		d, err := asDate(v)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfInt32(d), nil
	case storagepb.TableFieldSchema_DATETIME:
		s, ok := v.(string)
		if !ok {
			return fail(fmt.Errorf("want a datetime string, got %s", kindOf(v)))
		}
		p, err := packDatetime(s)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfInt64(p), nil
	case storagepb.TableFieldSchema_TIME:
		s, ok := v.(string)
		if !ok {
			return fail(fmt.Errorf("want a time string, got %s", kindOf(v)))
		}
		p, err := packTime(s)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfInt64(p), nil
	case storagepb.TableFieldSchema_NUMERIC:
		b, err := encodeDecimal(v, 9, numericMax)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfBytes(b), nil
	case storagepb.TableFieldSchema_BIGNUMERIC:
		b, err := encodeDecimal(v, 38, bigNumericMax)
		if err != nil {
			return fail(err)
		}
		return protoreflect.ValueOfBytes(b), nil
	case storagepb.TableFieldSchema_STRUCT:
		obj, ok := v.(map[string]any)
		if !ok {
			return fail(fmt.Errorf("want an object, got %s", kindOf(v)))
		}
		sub, err := encodeRow(fd.Message(), f.GetFields(), obj, path+".")
		if err != nil {
			return protoreflect.Value{}, err
		}
		nv := newMsg()
		proto2Merge(nv.Message(), sub)
		return nv, nil
	}
	return fail(errors.New("this column type is not supported by the sink"))
}

// proto2Merge copies the set fields of src into dst (same descriptor).
func proto2Merge(dst protoreflect.Message, src *dynamicpb.Message) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, float32, int, int64, int32, uint64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

func asText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func asInt(v any) (int64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 9.2e18 {
			return 0, fmt.Errorf("%v is not an INT64", x)
		}
		return int64(x), nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	default:
		return 0, fmt.Errorf("want an integer, got %s", kindOf(v))
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	// 12.0 or 1e3: integral values in another notation.
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("%s is not an INT64", s)
	}
	return r.Num().Int64(), nil
}

func asFloat(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(x.String(), 64)
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %s", kindOf(v))
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// BigQuery's TIMESTAMP range: 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999 UTC.
var (
	minTimestamp = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTimestamp = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

func asTimestamp(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number, float64, int, int64:
		n, err := asInt(x)
		if err != nil {
			return 0, fmt.Errorf("a numeric timestamp is integer microseconds since the epoch: %w", err)
		}
		return n, nil
	case string:
		for _, l := range timestampLayouts {
			t, err := time.Parse(l, strings.TrimSpace(x))
			if err != nil {
				continue
			}
			if t.Before(minTimestamp) || t.After(maxTimestamp) {
				return 0, fmt.Errorf("%q is outside BigQuery's TIMESTAMP range (years 1 to 9999)", x)
			}
			return t.UnixMicro(), nil
		}
		return 0, fmt.Errorf("%q is not a timestamp (RFC 3339)", x)
	}
	return 0, fmt.Errorf("want a timestamp string, got %s", kindOf(v))
}

func asDate(v any) (int32, error) {
	switch x := v.(type) {
	case json.Number, float64, int, int64:
		n, err := asInt(x)
		if err != nil || n < -719162 || n > 2932896 {
			return 0, fmt.Errorf("a numeric DATE is days since 1970-01-01 within years 1 to 9999, got %v", x)
		}
		return int32(n), nil
	case string:
		t, err := time.Parse("2006-01-02", strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a date (YYYY-MM-DD)", x)
		}
		return int32(t.Unix() / 86400), nil
	}
	return 0, fmt.Errorf("want a date string, got %s", kindOf(v))
}

// packDatetime is BigQuery's packed 64-bit civil datetime with
// microseconds: year(14) month(4) day(5) hour(5) minute(6) second(6)
// then 20 bits of microseconds, as its CivilTimeEncoding documents.
func packDatetime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	var t time.Time
	var err error
	for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err = time.Parse(l, s); err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a datetime (YYYY-MM-DD HH:MM:SS[.ffffff], no zone)", s)
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return 0, fmt.Errorf("%q is outside BigQuery's DATETIME range", s)
	}
	secs := int64(t.Year())<<26 | int64(t.Month())<<22 | int64(t.Day())<<17 | int64(t.Hour())<<12 | int64(t.Minute())<<6 | int64(t.Second())
	return secs<<20 | int64(t.Nanosecond()/1000), nil
}

// packTime is the packed 64-bit civil time: hour(5) minute(6) second(6)
// then 20 bits of microseconds.
func packTime(s string) (int64, error) {
	t, err := time.Parse("15:04:05.999999999", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a time (HH:MM:SS[.ffffff])", s)
	}
	secs := int64(t.Hour())<<12 | int64(t.Minute())<<6 | int64(t.Second())
	return secs<<20 | int64(t.Nanosecond()/1000), nil
}

// NUMERIC holds 29 digits before the point and 9 after; BIGNUMERIC about
// 5.79e38 with 38 after the point.
var (
	numericMax, _    = new(big.Rat).SetString("99999999999999999999999999999.999999999")
	bigNumericMax, _ = new(big.Rat).SetString("578960446186580977117854925043439539266.34992332820282019728792003956564819967")
)

// encodeDecimal is the Storage Write API's bytes encoding of NUMERIC and
// BIGNUMERIC: the value scaled by 10^scale as a two's complement integer,
// little-endian (Java's BigDecimalByteStringEncoder).
func encodeDecimal(v any, scale int, limit *big.Rat) ([]byte, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		s = strconv.Itoa(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	default:
		return nil, fmt.Errorf("want a decimal number or string, got %s", kindOf(v))
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	if new(big.Rat).Abs(r).Cmp(limit) > 0 {
		return nil, fmt.Errorf("%s is out of range", s)
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !scaled.IsInt() {
		return nil, fmt.Errorf("%s has more than %d digits after the point", s, scale)
	}
	return twosComplementLE(scaled.Num()), nil
}

// twosComplementLE is n's minimal two's complement, least significant
// byte first.
func twosComplementLE(n *big.Int) []byte {
	var be []byte
	if n.Sign() >= 0 {
		be = n.Bytes()
		if len(be) == 0 || be[0]&0x80 != 0 {
			be = append([]byte{0}, be...)
		}
	} else {
		// -n - 1, bits inverted.
		m := new(big.Int).Neg(n)
		m.Sub(m, big.NewInt(1))
		be = m.Bytes()
		for i := range be {
			be[i] = ^be[i]
		}
		if len(be) == 0 || be[0]&0x80 == 0 {
			be = append([]byte{0xff}, be...)
		}
	}
	for i, j := 0, len(be)-1; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return be
}
