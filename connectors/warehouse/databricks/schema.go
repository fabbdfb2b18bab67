package databricks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// kind is a Unity Catalog column type as this sink converts it.
type kind int

const (
	kString kind = iota
	kVariant
	kLong
	kInt
	kShort
	kByte
	kDouble
	kFloat
	kBool
	kBinary
	kTimestamp
	kTimestampNTZ
	kDate
	kDecimal
	kComplex // ARRAY, STRUCT, MAP: passed through as JSON (json records only)
)

// ucColumn is a column as the Unity Catalog tables API returns it
// (GET /api/2.1/unity-catalog/tables/{full_name}).
type ucColumn struct {
	Name          string `json:"name"`
	TypeName      string `json:"type_name"`
	TypeText      string `json:"type_text"`
	TypeJSON      string `json:"type_json"`
	TypePrecision int    `json:"type_precision"`
	TypeScale     int    `json:"type_scale"`
	Nullable      *bool  `json:"nullable"`
	Position      int32  `json:"position"`
}

// column is one column of the target table.
type column struct {
	name     string
	typeText string
	kind     kind
	nullable bool
	number   protowire.Number // field number: UC position + 1, as Databricks' SDKs number them
	prec     int
	scale    int
}

// tableSchema is the target table's columns and, for proto records, the
// descriptor sent when a stream is created.
type tableSchema struct {
	cols       []column
	byName     map[string]int
	descriptor []byte // serialized DescriptorProto; nil for json records
}

var decimalTextRE = regexp.MustCompile(`(?i)^decimal\((\d+),\s*(\d+)\)$`)

// newSchema builds the table's schema from its Unity Catalog columns.
func newSchema(table string, ucCols []ucColumn, proto bool) (*tableSchema, error) {
	cols := slices.Clone(ucCols)
	slices.SortStableFunc(cols, func(a, b ucColumn) int { return int(a.Position) - int(b.Position) })
	s := &tableSchema{byName: map[string]int{}}
	for _, uc := range cols {
		c := column{name: uc.Name, typeText: uc.TypeText, nullable: uc.Nullable == nil || *uc.Nullable, number: protowire.Number(uc.Position + 1)}
		if c.typeText == "" {
			c.typeText = strings.ToLower(uc.TypeName)
		}
		switch strings.ToUpper(uc.TypeName) {
		case "STRING", "CHAR":
			c.kind = kString
		case "VARIANT":
			c.kind = kVariant
		case "LONG", "BIGINT":
			c.kind = kLong
		case "INT", "INTEGER":
			c.kind = kInt
		case "SHORT", "SMALLINT":
			c.kind = kShort
		case "BYTE", "TINYINT":
			c.kind = kByte
		case "DOUBLE":
			c.kind = kDouble
		case "FLOAT":
			c.kind = kFloat
		case "BOOLEAN", "BOOL":
			c.kind = kBool
		case "BINARY":
			c.kind = kBinary
		case "TIMESTAMP":
			c.kind = kTimestamp
		case "TIMESTAMP_NTZ":
			c.kind = kTimestampNTZ
		case "DATE":
			c.kind = kDate
		case "DECIMAL":
			c.kind = kDecimal
			c.prec, c.scale = uc.TypePrecision, uc.TypeScale
			if m := decimalTextRE.FindStringSubmatch(strings.TrimSpace(uc.TypeText)); m != nil {
				c.prec, _ = strconv.Atoi(m[1])
				c.scale, _ = strconv.Atoi(m[2])
			}
			if c.prec <= 0 {
				c.prec, c.scale = 10, 0 // Databricks' DECIMAL default
			}
		case "ARRAY", "STRUCT", "MAP":
			if proto {
				return nil, fmt.Errorf("column %s (%s): record_type proto supports primitive columns only; use record_type json for this table", uc.Name, c.typeText)
			}
			c.kind = kComplex
		default:
			return nil, fmt.Errorf("column %s: unsupported Databricks type %q", uc.Name, uc.TypeName)
		}
		if c.number < 1 || c.number > protowire.MaxValidNumber || (c.number >= protowire.FirstReservedNumber && c.number <= protowire.LastReservedNumber) {
			return nil, fmt.Errorf("column %s: position %d gives no valid protobuf field number", uc.Name, uc.Position)
		}
		if _, dup := s.byName[c.name]; dup {
			return nil, fmt.Errorf("column %s appears twice", c.name)
		}
		s.byName[c.name] = len(s.cols)
		s.cols = append(s.cols, c)
	}
	if len(s.cols) == 0 {
		return nil, fmt.Errorf("table %s has no columns", table)
	}
	if proto {
		d, err := s.descriptorProto(table)
		if err != nil {
			return nil, err
		}
		s.descriptor = d
	}
	return s, nil
}

// descriptorProto is the proto2 message describing a row: one field per
// column numbered by position, required unless the column is nullable,
// with the types Databricks documents for Zerobus (TIMESTAMP as int64
// microseconds, DATE as int32 days, DECIMAL as string).
func (s *tableSchema) descriptorProto(table string) ([]byte, error) {
	_, _, t, _ := splitTable(table)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, t)
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		name = "T_" + name
	}
	d := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	for _, c := range s.cols {
		label := descriptorpb.FieldDescriptorProto_LABEL_REQUIRED
		if c.nullable {
			label = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		}
		d.Field = append(d.Field, &descriptorpb.FieldDescriptorProto{
			Name: proto.String(c.name), JsonName: proto.String(c.name), Number: proto.Int32(int32(c.number)),
			Label: label.Enum(), Type: protoType(c.kind).Enum(),
		})
	}
	return proto.Marshal(d)
}

func protoType(k kind) descriptorpb.FieldDescriptorProto_Type {
	switch k {
	case kLong, kTimestamp, kTimestampNTZ:
		return descriptorpb.FieldDescriptorProto_TYPE_INT64
	case kInt, kShort, kByte, kDate:
		return descriptorpb.FieldDescriptorProto_TYPE_INT32
	case kDouble:
		return descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
	case kFloat:
		return descriptorpb.FieldDescriptorProto_TYPE_FLOAT
	case kBool:
		return descriptorpb.FieldDescriptorProto_TYPE_BOOL
	case kBinary:
		return descriptorpb.FieldDescriptorProto_TYPE_BYTES
	}
	return descriptorpb.FieldDescriptorProto_TYPE_STRING
}

// value is a converted column value: int64 (integers, timestamps in
// microseconds, dates in days), float64, bool, string (strings,
// decimals, variants), []byte, or json.RawMessage (complex columns).
type value = any

// convert turns one field of an event's row into the column's value, or
// says why it does not fit.
func convert(c *column, v any) (value, error) {
	switch c.kind {
	case kString:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	case kVariant:
		b, err := json.Marshal(v)
		return string(b), err
	case kLong, kInt, kShort, kByte:
		return convertInt(c.kind, v)
	case kDouble, kFloat:
		var f float64
		switch x := v.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(x.String(), 64); err != nil {
				return nil, fmt.Errorf("%q is not a number", x)
			}
		case float64:
			f = x
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
				return nil, fmt.Errorf("%q is not a number", x)
			}
		default:
			return nil, fmt.Errorf("%s is not a number", describe(v))
		}
		if c.kind == kFloat && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("%v overflows FLOAT", f)
		}
		return f, nil
	case kBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		case json.Number:
			switch x.String() {
			case "0":
				return false, nil
			case "1":
				return true, nil
			}
		}
		return nil, fmt.Errorf("%s is not a boolean", describe(v))
	case kBinary:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s is not base64 text", describe(v))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not base64: %v", trunc(s), err)
		}
		return b, nil
	case kTimestamp, kTimestampNTZ:
		return convertTimestamp(v)
	case kDate:
		return convertDate(v)
	case kDecimal:
		return convertDecimal(c, v)
	case kComplex:
		want := "an array"
		switch {
		case strings.HasPrefix(strings.ToLower(c.typeText), "struct"), strings.HasPrefix(strings.ToLower(c.typeText), "map"):
			want = "an object"
			if _, ok := v.(map[string]any); !ok {
				return nil, fmt.Errorf("%s is not %s", describe(v), want)
			}
		default:
			if _, ok := v.([]any); !ok {
				return nil, fmt.Errorf("%s is not %s", describe(v), want)
			}
		}
		b, err := json.Marshal(v)
		return json.RawMessage(b), err
	}
	return nil, fmt.Errorf("unsupported column type %s", c.typeText)
}

var intRange = map[kind][2]int64{
	kLong:  {math.MinInt64, math.MaxInt64},
	kInt:   {math.MinInt32, math.MaxInt32},
	kShort: {math.MinInt16, math.MaxInt16},
	kByte:  {math.MinInt8, math.MaxInt8},
}
var intName = map[kind]string{kLong: "BIGINT", kInt: "INT", kShort: "SMALLINT", kByte: "TINYINT"}

func convertInt(k kind, v any) (value, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		if x != math.Trunc(x) {
			return nil, fmt.Errorf("%v is not an integer", x)
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	default:
		return nil, fmt.Errorf("%s is not an integer", describe(v))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1e3 or 12.0: exact integers written as decimals.
		r, ok := new(big.Rat).SetString(s)
		if !ok || !r.IsInt() {
			return nil, fmt.Errorf("%q is not an integer", trunc(s))
		}
		if !r.Num().IsInt64() {
			return nil, fmt.Errorf("%s overflows %s", trunc(s), intName[k])
		}
		n = r.Num().Int64()
	}
	if r := intRange[k]; n < r[0] || n > r[1] {
		return nil, fmt.Errorf("%s overflows %s", trunc(s), intName[k])
	}
	return n, nil
}

var timestampLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"}

// convertTimestamp gives microseconds since the epoch: from RFC 3339 (or
// the same with a space; without a zone UTC), or a number taken as
// microseconds (Debezium's MicroTimestamp).
func convertTimestamp(v any) (value, error) {
	switch x := v.(type) {
	case string:
		for _, l := range timestampLayouts {
			if t, err := time.Parse(l, strings.TrimSpace(x)); err == nil {
				if t.Year() < 1 || t.Year() > 9999 {
					break
				}
				return t.UnixMicro(), nil
			}
		}
		return nil, fmt.Errorf("%q is not an RFC 3339 timestamp", trunc(x))
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a timestamp (microseconds since 1970)", x)
		}
		return n, nil
	}
	return nil, fmt.Errorf("%s is not a timestamp", describe(v))
}

// convertDate gives days since 1970-01-01: from 2006-01-02, a timestamp
// (its UTC date), or a number of days (Debezium's Date).
func convertDate(v any) (value, error) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			ts, err2 := convertTimestamp(s)
			if err2 != nil {
				return nil, fmt.Errorf("%q is not a date", trunc(x))
			}
			t = time.UnixMicro(ts.(int64)).UTC()
		}
		if t.Year() < 1 || t.Year() > 9999 {
			return nil, fmt.Errorf("%q is outside DATE's range", x)
		}
		return int64(math.Floor(float64(t.Unix()) / 86400)), nil
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date (days since 1970)", x)
		}
		return n, nil
	}
	return nil, fmt.Errorf("%s is not a date", describe(v))
}

// convertDecimal checks a number against DECIMAL(p,s) exactly (never
// through a float) and gives its canonical text with s decimals.
func convertDecimal(c *column, v any) (value, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return nil, fmt.Errorf("%s is not a decimal number", describe(v))
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", trunc(s))
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(c.scale)), nil)))
	if !scaled.IsInt() {
		return nil, fmt.Errorf("%s has more than %d decimals (%s)", trunc(s), c.scale, c.typeText)
	}
	digits := new(big.Int).Abs(scaled.Num()).String()
	if len(digits) > c.prec && digits != "0" {
		return nil, fmt.Errorf("%s has more than %d digits (%s)", trunc(s), c.prec, c.typeText)
	}
	return r.FloatString(c.scale), nil
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return trunc(string(b))
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// rowValues converts an event's row to the values of the table's columns
// (nil for an absent or null nullable column). A field that is not a
// column of the table is left out, as the table would not keep it.
func (s *tableSchema) rowValues(row map[string]any, out []value) ([]value, error) {
	out = out[:0]
	for i := range s.cols {
		c := &s.cols[i]
		v, ok := row[c.name]
		if !ok || v == nil {
			if !c.nullable {
				if !ok {
					return nil, fmt.Errorf("column %s (%s): missing, and the column is NOT NULL", c.name, c.typeText)
				}
				return nil, fmt.Errorf("column %s (%s): null into a NOT NULL column", c.name, c.typeText)
			}
			out = append(out, nil)
			continue
		}
		cv, err := convert(c, v)
		if err != nil {
			return nil, fmt.Errorf("column %s (%s): %w", c.name, c.typeText, err)
		}
		out = append(out, cv)
	}
	return out, nil
}

// appendJSON writes a row as the JSON object Zerobus takes for a json
// record: the values as the protobuf JSON mapping of the column's type
// (numbers, strings for decimals, base64 for binary).
func (s *tableSchema) appendJSON(b *bytes.Buffer, vals []value) {
	b.WriteByte('{')
	first := true
	for i, v := range vals {
		if v == nil {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSONString(b, s.cols[i].name)
		b.WriteByte(':')
		switch x := v.(type) {
		case int64:
			b.WriteString(strconv.FormatInt(x, 10))
		case float64:
			switch {
			case math.IsNaN(x):
				b.WriteString(`"NaN"`)
			case math.IsInf(x, 1):
				b.WriteString(`"Infinity"`)
			case math.IsInf(x, -1):
				b.WriteString(`"-Infinity"`)
			default:
				b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
			}
		case bool:
			b.WriteString(strconv.FormatBool(x))
		case string:
			writeJSONString(b, x)
		case []byte:
			writeJSONString(b, base64.StdEncoding.EncodeToString(x))
		case json.RawMessage:
			b.Write(x)
		}
	}
	b.WriteByte('}')
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

// appendProto writes a row as the protobuf message of descriptorProto.
func (s *tableSchema) appendProto(b []byte, vals []value) []byte {
	for i, v := range vals {
		if v == nil {
			continue
		}
		c := &s.cols[i]
		switch protoType(c.kind) {
		case descriptorpb.FieldDescriptorProto_TYPE_INT64, descriptorpb.FieldDescriptorProto_TYPE_INT32:
			b = protowire.AppendTag(b, c.number, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v.(int64)))
		case descriptorpb.FieldDescriptorProto_TYPE_DOUBLE:
			b = protowire.AppendTag(b, c.number, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(v.(float64)))
		case descriptorpb.FieldDescriptorProto_TYPE_FLOAT:
			b = protowire.AppendTag(b, c.number, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(float32(v.(float64))))
		case descriptorpb.FieldDescriptorProto_TYPE_BOOL:
			b = protowire.AppendTag(b, c.number, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeBool(v.(bool)))
		case descriptorpb.FieldDescriptorProto_TYPE_BYTES:
			b = protowire.AppendTag(b, c.number, protowire.BytesType)
			b = protowire.AppendBytes(b, v.([]byte))
		default:
			b = protowire.AppendTag(b, c.number, protowire.BytesType)
			b = protowire.AppendString(b, v.(string))
		}
	}
	return b
}
