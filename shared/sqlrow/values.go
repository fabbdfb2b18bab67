package sqlrow

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/timestamp"
)

// Values travel as the CDC sources render them (connectors/database/
// postgrescdc, mysqlcdc), so that an event reads the same whether a CDC
// source or the rdbc source produced it and whichever database it goes
// to: integers and decimals as JSON numbers written verbatim, bytes as
// base64, dates as 2006-01-02, zone-less timestamps as
// 2006-01-02T15:04:05.999999, zoned ones as RFC 3339 in UTC, JSON
// embedded, arrays as JSON arrays.
const (
	LayoutDate      = "2006-01-02"
	LayoutTimestamp = "2006-01-02T15:04:05.999999"
	LayoutTSTZ      = "2006-01-02T15:04:05.999999Z07:00"
	LayoutMySQL     = "2006-01-02 15:04:05.999999"
)

// Kind is the kind of a column's values.
type Kind int

const (
	KString Kind = iota
	KInt
	KNumber // decimal and float: verbatim when a number, else a string (NaN)
	KBool
	KJSON
	KBytes
	KDate
	KTimestamp
	KTimestampTZ
	KArray
)

// KindOf maps a type name, as database/sql's DatabaseTypeName or the
// catalog spells it, to its kind.
func KindOf(d Dialect, typ string) Kind {
	t := strings.ToLower(strings.TrimSpace(typ))
	t = strings.TrimPrefix(t, "unsigned ")
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = t[:i]
	}
	switch t {
	case "int2", "int4", "int8", "smallint", "integer", "int", "bigint", "tinyint", "mediumint", "year", "oid", "serial", "bigserial":
		return KInt
	case "numeric", "decimal", "float4", "float8", "real", "double precision", "float", "double":
		return KNumber
	case "bool", "boolean":
		return KBool
	case "json", "jsonb":
		return KJSON
	case "bytea", "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary":
		return KBytes
	case "date":
		return KDate
	case "timestamp", "timestamp without time zone", "datetime":
		if d == MySQL && t == "timestamp" {
			// MySQL's TIMESTAMP is an instant shown in the session's
			// zone, which is UTC here.
			return KTimestampTZ
		}
		return KTimestamp
	case "timestamptz", "timestamp with time zone":
		return KTimestampTZ
	}
	if strings.HasPrefix(t, "_") || strings.HasSuffix(t, "[]") || t == "array" {
		return KArray
	}
	return KString
}

// Render turns a scanned value into the event's JSON value.
func Render(d Dialect, typ string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	k := KindOf(d, typ)
	if t, ok := v.(time.Time); ok {
		switch k {
		case KDate:
			return t.Format(LayoutDate), nil
		case KTimestampTZ:
			return t.UTC().Format(LayoutTSTZ), nil
		default:
			return t.Format(LayoutTimestamp), nil
		}
	}
	var text string
	switch x := v.(type) {
	case []byte:
		if k == KBytes {
			return base64.StdEncoding.EncodeToString(x), nil
		}
		text = string(x)
	case string:
		text = x
	case int64:
		if k == KBool {
			return x != 0, nil
		}
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case float64:
		return floatValue(strconv.FormatFloat(x, 'g', -1, 64)), nil
	case float32:
		return floatValue(strconv.FormatFloat(float64(x), 'g', -1, 32)), nil
	case bool:
		return x, nil
	default:
		text = fmt.Sprint(x)
	}
	switch k {
	case KInt, KNumber:
		return floatValue(text), nil
	case KBool:
		switch strings.ToLower(text) {
		case "t", "true", "1", "y", "yes", "on":
			return true, nil
		case "f", "false", "0", "n", "no", "off":
			return false, nil
		}
		return text, nil
	case KJSON:
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		var out any
		if err := dec.Decode(&out); err != nil {
			return text, nil
		}
		return out, nil
	case KTimestamp:
		// MySQL's text form has a space where ISO has a T.
		return strings.Replace(trimFraction(text), " ", "T", 1), nil
	case KTimestampTZ:
		if t, err := ParseTime(text); err == nil {
			return t.UTC().Format(LayoutTSTZ), nil
		}
		return text, nil
	case KArray:
		if a, ok := ParsePGArray(text); ok {
			et := strings.TrimPrefix(strings.ToLower(typ), "_")
			return renderArray(d, et, a)
		}
	}
	return text, nil
}

func renderArray(d Dialect, elem string, a []any) (any, error) {
	out := make([]any, len(a))
	for i, e := range a {
		switch x := e.(type) {
		case nil:
		case []any:
			v, err := renderArray(d, elem, x)
			if err != nil {
				return nil, err
			}
			out[i] = v
		case string:
			v, err := Render(d, elem, x)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
	}
	return out, nil
}

// trimFraction drops the trailing zeros of a fraction of seconds (and the
// dot when nothing is left), as the time layouts above write them.
func trimFraction(s string) string {
	i := strings.LastIndexByte(s, '.')
	if i < 0 || strings.ContainsAny(s[i:], "+-Z: ") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// floatValue is a JSON number when text is one, else the string (NaN,
// Infinity have no JSON number form).
func floatValue(text string) any {
	if json.Valid([]byte(text)) && text != "" && (text[0] == '-' || text[0] >= '0' && text[0] <= '9') {
		return json.Number(text)
	}
	return text
}

// ParseTime reads the ISO forms this package and the CDC sources write,
// and MySQL's space-separated form; without a zone the time is UTC.
func ParseTime(s string) (time.Time, error) { return timestamp.Parse(s, time.UTC) }

// Bind turns an event's value into the parameter for column c: text the
// server converts by the column's type, with what it cannot read from
// JSON converted here (base64 to bytes, ISO timestamps to MySQL's form,
// JSON arrays to PostgreSQL array literals, objects to JSON text).
func Bind(d Dialect, c *Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	k := KindOf(d, c.Type)
	switch k {
	case KBytes:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("column %s (%s): expected a base64 string, got %s", c.Name, c.Type, JSONType(v))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("column %s (%s): not base64: %v", c.Name, c.Type, err)
		}
		return b, nil
	case KArray:
		if a, ok := v.([]any); ok && d == Postgres {
			var buf bytes.Buffer
			if err := appendPGArray(&buf, a); err != nil {
				return nil, fmt.Errorf("column %s (%s): %v", c.Name, c.Type, err)
			}
			return buf.String(), nil
		}
	case KTimestamp, KTimestampTZ, KDate:
		if s, ok := v.(string); ok && d == MySQL {
			t, err := ParseTime(s)
			if err != nil {
				return nil, fmt.Errorf("column %s (%s): %v", c.Name, c.Type, err)
			}
			if k == KDate {
				return t.Format(LayoutDate), nil
			}
			return t.UTC().Format(LayoutMySQL), nil
		}
	case KBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	}
	switch x := v.(type) {
	case json.Number:
		return string(x), nil
	case string, bool, float64, int64, int:
		return x, nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("column %s: %v", c.Name, err)
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("column %s: unsupported value %T", c.Name, v)
}

// JSONType names the JSON type of a decoded value for messages.
func JSONType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64, int64, int:
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

// appendPGArray writes a PostgreSQL array literal: {1,"a b",NULL,{2,3}}.
func appendPGArray(buf *bytes.Buffer, a []any) error {
	buf.WriteByte('{')
	for i, e := range a {
		if i > 0 {
			buf.WriteByte(',')
		}
		switch x := e.(type) {
		case nil:
			buf.WriteString("NULL")
		case []any:
			if err := appendPGArray(buf, x); err != nil {
				return err
			}
		case json.Number:
			buf.WriteString(string(x))
		case bool:
			buf.WriteString(strconv.FormatBool(x))
		case float64:
			buf.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		case string:
			buf.WriteByte('"')
			for _, r := range x {
				if r == '"' || r == '\\' {
					buf.WriteByte('\\')
				}
				buf.WriteRune(r)
			}
			buf.WriteByte('"')
		case map[string]any:
			b, err := json.Marshal(x)
			if err != nil {
				return err
			}
			buf.WriteByte('"')
			buf.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(string(b)))
			buf.WriteByte('"')
		default:
			return fmt.Errorf("unsupported array element %T", e)
		}
	}
	buf.WriteByte('}')
	return nil
}

// ParsePGArray parses PostgreSQL's array output ({1,NULL,"a b",{2,3}}):
// elements are strings (unquoted), nil (NULL) or nested []any.
func ParsePGArray(s string) ([]any, bool) {
	if i := strings.Index(s, "={"); i >= 0 && strings.HasPrefix(s, "[") {
		s = s[i+1:] // drop dimension decoration [0:2]=
	}
	a, rest, ok := parseArrayAt(s)
	return a, ok && rest == ""
}

func parseArrayAt(s string) ([]any, string, bool) {
	if s == "" || s[0] != '{' {
		return nil, s, false
	}
	s = s[1:]
	out := []any{}
	if strings.HasPrefix(s, "}") {
		return out, s[1:], true
	}
	for {
		switch {
		case strings.HasPrefix(s, "{"):
			sub, rest, ok := parseArrayAt(s)
			if !ok {
				return nil, s, false
			}
			out, s = append(out, sub), rest
		case strings.HasPrefix(s, `"`):
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, s, false
			}
			out, s = append(out, b.String()), s[i+1:]
		default:
			i := strings.IndexAny(s, ",}")
			if i < 0 {
				return nil, s, false
			}
			if e := s[:i]; e == "NULL" {
				out = append(out, nil)
			} else {
				out = append(out, e)
			}
			s = s[i:]
		}
		if s == "" {
			return nil, s, false
		}
		if s[0] == '}' {
			return out, s[1:], true
		}
		if s[0] != ',' {
			return nil, s, false
		}
		s = s[1:]
	}
}
