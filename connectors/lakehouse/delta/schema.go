package deltalake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Delta primitive type names (PROTOCOL.md, "Primitive Types").
const (
	tString    = "string"
	tLong      = "long"
	tInteger   = "integer"
	tShort     = "short"
	tByte      = "byte"
	tFloat     = "float"
	tDouble    = "double"
	tBoolean   = "boolean"
	tBinary    = "binary"
	tDate      = "date"
	tTimestamp = "timestamp"
)

// field is one top-level column of the table schema (a struct field of
// the schemaString). Type is a primitive name, or the raw JSON of a
// complex type (struct, array, map, decimal) this sink does not write.
type field struct {
	Name     string          `json:"name"`
	Type     json.RawMessage `json:"type"`
	Nullable bool            `json:"nullable"`
	Metadata map[string]any  `json:"metadata"`
}

type structType struct {
	Type   string  `json:"type"`
	Fields []field `json:"fields"`
}

// primitive returns the field's primitive type name, "" for complex types.
func (f field) primitive() string {
	var s string
	if json.Unmarshal(f.Type, &s) != nil {
		return ""
	}
	return s
}

// typeName is the type for messages.
func (f field) typeName() string {
	if p := f.primitive(); p != "" {
		return p
	}
	return string(f.Type)
}

func newField(name, typ string) field {
	t, _ := json.Marshal(typ)
	return field{Name: name, Type: t, Nullable: true, Metadata: map[string]any{}}
}

func parseSchema(s string) (*structType, error) {
	var st structType
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return nil, fmt.Errorf("schemaString: %w", err)
	}
	if st.Type != "struct" {
		return nil, fmt.Errorf("schemaString: type %q, want struct", st.Type)
	}
	return &st, nil
}

func (st *structType) String() string {
	b, _ := json.Marshal(st) // fields of strings, bools and raw JSON
	return string(b)
}

// find looks a column up; Delta column names are case-insensitive.
func (st *structType) find(name string) (int, bool) {
	for i, f := range st.Fields {
		if strings.EqualFold(f.Name, name) {
			return i, true
		}
	}
	return -1, false
}

// writable says whether this sink can write values of a type.
func writable(t string) bool {
	switch t {
	case tString, tLong, tInteger, tShort, tByte, tFloat, tDouble, tBoolean, tBinary, tDate, tTimestamp:
		return true
	}
	return false
}

// inferType is the Delta type of a JSON value for a new column: integers
// are long, other numbers double, objects and arrays their JSON text
// (string). nil for JSON null, which says nothing.
func inferType(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		return tBoolean
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return tLong
		}
		return tDouble
	case float64, float32:
		return tDouble
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		return tLong
	default:
		return tString
	}
}

// widen merges two inferred types of one new column within a batch: long
// and double make double; anything else mixed makes string.
func widen(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "":
		return a
	case (a == tLong && b == tDouble) || (a == tDouble && b == tLong):
		return tDouble
	}
	return tString
}

// value is one cell converted to its column's type: i for the integer
// types, date (days) and timestamp (microseconds), f for float and double,
// s for string and binary, b for boolean; x for a decimal (*big.Int, the
// unscaled value), a struct ([]value by field), an array ([]value) and a
// map ([][2]value of key and value).
type value struct {
	null bool
	i    int64
	f    float64
	s    string
	b    bool
	x    any
}

// convert turns a JSON value into a cell of type t, or says why it cannot.
func convert(v any, t string) (value, error) {
	if v == nil {
		return value{null: true}, nil
	}
	switch t {
	case tString:
		switch x := v.(type) {
		case string:
			return value{s: x}, nil
		case json.Number:
			return value{s: x.String()}, nil
		case bool:
			return value{s: strconv.FormatBool(x)}, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return value{}, err
		}
		return value{s: string(b)}, nil
	case tLong, tInteger, tShort, tByte:
		n, err := toInt(v)
		if err != nil {
			return value{}, err
		}
		lo, hi := intRange(t)
		if n < lo || n > hi {
			return value{}, fmt.Errorf("%d is out of the range of %s", n, t)
		}
		return value{i: n}, nil
	case tFloat, tDouble:
		switch x := v.(type) {
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return value{}, fmt.Errorf("%s is not a number", x)
			}
			return value{f: f}, nil
		case float64:
			return value{f: x}, nil
		}
		return value{}, fmt.Errorf("%s is not a number", describe(v))
	case tBoolean:
		if x, ok := v.(bool); ok {
			return value{b: x}, nil
		}
		return value{}, fmt.Errorf("%s is not a boolean", describe(v))
	case tBinary:
		if x, ok := v.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(x); err == nil {
				return value{s: string(b)}, nil
			}
			return value{s: x}, nil
		}
		return value{}, fmt.Errorf("%s is not a string (binary takes base64 or text)", describe(v))
	case tDate:
		switch x := v.(type) {
		case string:
			d, err := time.Parse("2006-01-02", x)
			if err != nil {
				return value{}, fmt.Errorf("%q is not a date (YYYY-MM-DD)", x)
			}
			return value{i: d.Unix() / 86400}, nil
		case json.Number:
			n, err := x.Int64()
			if err != nil {
				return value{}, fmt.Errorf("%s is not a day number", x)
			}
			return value{i: n}, nil
		}
		return value{}, fmt.Errorf("%s is not a date", describe(v))
	case tTimestamp:
		switch x := v.(type) {
		case string:
			ts, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return value{}, fmt.Errorf("%q is not an RFC 3339 timestamp", x)
			}
			return value{i: ts.UnixMicro()}, nil
		case json.Number:
			n, err := x.Int64()
			if err != nil {
				return value{}, fmt.Errorf("%s is not microseconds since the epoch", x)
			}
			return value{i: n}, nil
		}
		return value{}, fmt.Errorf("%s is not a timestamp", describe(v))
	}
	return value{}, fmt.Errorf("type %s is not supported by this sink", t)
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return 0, fmt.Errorf("%s is not an integer", x)
		}
		return n, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int64(x), nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	}
	return 0, fmt.Errorf("%s is not an integer", describe(v))
}

func intRange(t string) (int64, int64) {
	switch t {
	case tInteger:
		return math.MinInt32, math.MaxInt32
	case tShort:
		return math.MinInt16, math.MaxInt16
	case tByte:
		return math.MinInt8, math.MaxInt8
	}
	return math.MinInt64, math.MaxInt64
}

func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// partitionString serializes a partition value (PROTOCOL.md, "Partition
// Value Serialization"); ok is false for null.
func partitionString(v value, dt *dtype) (string, bool) {
	if v.null {
		return "", false
	}
	t := dt.name
	switch t {
	case "decimal":
		return decimalString(v.x.(*big.Int), dt.scale), true
	case tLong, tInteger, tShort, tByte:
		return strconv.FormatInt(v.i, 10), true
	case tFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 32), true
	case tDouble:
		return strconv.FormatFloat(v.f, 'g', -1, 64), true
	case tBoolean:
		return strconv.FormatBool(v.b), true
	case tDate:
		return time.Unix(v.i*86400, 0).UTC().Format("2006-01-02"), true
	case tTimestamp:
		return time.UnixMicro(v.i).UTC().Format("2006-01-02T15:04:05.000000Z"), true
	}
	return v.s, true
}
