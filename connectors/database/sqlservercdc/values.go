package sqlservercdc

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// appendValue writes a value as go-mssqldb returns it as JSON, by the
// column's SQL Server type:
//
//   - decimal, numeric, money, smallmoney: the driver's exact decimal
//     text as a JSON number (never through a float);
//   - datetime2, time: local date-times with exactly the column's
//     fractional digits; datetimeoffset: the same with its offset;
//     datetime and smalldatetime: 3 and 0 digits; date: the date;
//   - uniqueidentifier: the canonical text SQL Server shows, from its
//     wire byte order (the first three groups little-endian);
//   - binary, varbinary, image, rowversion: base64;
//   - char, varchar, nchar, nvarchar, text, ntext, xml: strings;
//   - bit: true/false; integers and floats: numbers.
func appendValue(dst []byte, c *column, v any) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	switch c.Type {
	case "decimal", "numeric", "money", "smallmoney":
		b, ok := v.([]byte)
		if !ok {
			if s, isStr := v.(string); isStr {
				b = []byte(s)
			} else {
				return nil, fmt.Errorf("%s value of Go type %T", c.Type, v)
			}
		}
		if !isDecimalText(b) {
			return nil, fmt.Errorf("%s value %q is not a decimal", c.Type, b)
		}
		return append(dst, b...), nil
	case "uniqueidentifier":
		b, ok := v.([]byte)
		if !ok || len(b) != 16 {
			return nil, fmt.Errorf("uniqueidentifier value of Go type %T", v)
		}
		return events.AppendJSONString(dst, guidString(b)), nil
	case "date", "datetime2", "datetime", "smalldatetime", "datetimeoffset", "time":
		t, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("%s value of Go type %T", c.Type, v)
		}
		return events.AppendJSONString(dst, formatTime(c, t)), nil
	case "binary", "varbinary", "image", "timestamp", "rowversion":
		b, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("%s value of Go type %T", c.Type, v)
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	}
	switch x := v.(type) {
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s value %v has no JSON form", c.Type, x)
		}
		bits := 64
		if c.Type == "real" {
			bits = 32 // the shortest text that reads back as the same float32
		}
		return strconv.AppendFloat(dst, x, 'g', -1, bits), nil
	case string:
		return events.AppendJSONString(dst, x), nil
	case []byte:
		// Types the driver hands as bytes without a text form here
		// (sql_variant, hierarchyid, geometry, geography, CLR types).
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x)
		return append(dst, '"'), nil
	case time.Time:
		return events.AppendJSONString(dst, x.Format(time.RFC3339Nano)), nil
	}
	return nil, fmt.Errorf("%s value of unexpected Go type %T", c.Type, v)
}

// isDecimalText reports whether b is a plain decimal (sign, digits, one
// point), which is valid JSON number text once a leading point is absent.
func isDecimalText(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits, point := 0, false
	for ; i < len(b); i++ {
		switch {
		case b[i] >= '0' && b[i] <= '9':
			digits++
		case b[i] == '.' && !point && digits > 0:
			point = true
		default:
			return false
		}
	}
	return digits > 0 && b[len(b)-1] != '.'
}

// guidString is a uniqueidentifier's text from its 16 bytes in SQL
// Server's order: Data1 (4 bytes), Data2 and Data3 (2 each) little-endian,
// then 8 bytes as they are.
func guidString(b []byte) string {
	var s [36]byte
	u := [16]byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	out := s[:]
	for i, ch := range out {
		if ch >= 'a' && ch <= 'f' {
			out[i] = ch - 'a' + 'A'
		}
	}
	return string(out)
}

// formatTime writes a date/time column's value with the column's
// precision: datetime2(n), time(n) and datetimeoffset(n) with n fraction
// digits (SQL Server's own text), datetime with 3, smalldatetime and
// date without. Local types carry no offset; datetimeoffset keeps the
// offset it was stored with.
func formatTime(c *column, t time.Time) string {
	digits := c.Scale
	switch c.Type {
	case "date":
		return t.Format("2006-01-02")
	case "datetime":
		digits = 3
	case "smalldatetime":
		digits = 0
	}
	frac := ""
	if digits > 0 {
		ns := fmt.Sprintf("%09d", t.Nanosecond())
		if digits > 9 {
			digits = 9
		}
		frac = "." + ns[:digits]
	}
	switch c.Type {
	case "time":
		return t.Format("15:04:05") + frac
	case "datetimeoffset":
		return t.Format("2006-01-02T15:04:05") + frac + t.Format("-07:00")
	}
	return t.Format("2006-01-02T15:04:05") + frac
}
