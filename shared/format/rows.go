package format

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// rowSet holds the decoded rows of one batch, for Avro with an explicit
// schema (the other tabular paths read JSON bytes, see flatTable). A row
// is what Event.Row returns: the data of inserts, records and snapshot
// reads, the after image of updates and the before image of deletes.
// Events that carry no row (schema, state, log, truncate) and data events
// whose row is null are skipped. The slices are reused between batches.
type rowSet struct {
	rows []map[string]any
}

func (s *rowSet) load(batch []*events.Event) error {
	clear(s.rows[:cap(s.rows)]) // let the previous batch's rows be collected
	s.rows = s.rows[:0]
	for i, e := range batch {
		if !e.Type.IsData() {
			continue
		}
		row, err := e.Row()
		if err != nil {
			return fmt.Errorf("event %d (%s %s): %w", i, e.Type, e.Stream, err)
		}
		if row == nil {
			continue
		}
		s.rows = append(s.rows, row)
	}
	return nil
}

// appendText appends a value as text: strings verbatim, numbers as
// written in the JSON, booleans as true/false, objects and arrays as
// compact JSON (keys sorted, as serde_json writes them).
func appendText(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return append(dst, x...), nil
	case json.Number:
		return append(dst, x...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		return appendFloat(dst, x), nil
	case float32:
		return appendFloat(dst, float64(x)), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case time.Time:
		return x.UTC().AppendFormat(dst, time.RFC3339Nano), nil
	case nil:
		return append(dst, "null"...), nil
	}
	p := events.ValuePayload(v)
	return p.AppendJSON(dst)
}

func appendFloat(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// Kind is the inferred type of a column (Avro and Parquet).
type kind uint8

const (
	kindNull   kind = iota // only nulls seen so far
	kindBool               // JSON true/false
	kindLong               // JSON integers that fit in int64
	kindDouble             // other JSON numbers; Long+Double promote here
	kindString             // strings; any other mix promotes here
	kindJSON               // objects and arrays, written as JSON text
)

// kindOf classifies one value. Integers are numbers without a fraction or
// exponent that fit in int64; anything else numeric is a double.
func kindOf(v any) kind {
	switch x := v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case json.Number:
		if isInteger(string(x)) {
			if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return kindLong
			}
		}
		return kindDouble
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		return kindLong
	case uint, uint64:
		if toUint(x) <= math.MaxInt64 {
			return kindLong
		}
		return kindDouble
	case float32, float64:
		return kindDouble
	case string, time.Time:
		return kindString
	case map[string]any, []any:
		return kindJSON
	}
	return kindString
}

func toUint(v any) uint64 {
	switch x := v.(type) {
	case uint:
		return uint64(x)
	case uint64:
		return x
	}
	return 0
}

func isInteger(s string) bool {
	return !strings.ContainsAny(s, ".eE")
}

// promote merges the kinds of two values of one column: null gives way
// to anything, long and double become double, equal kinds stay, and any
// other mix (long and string, bool and long, object and number) becomes
// string, whose values are then the JSON text of the non-strings.
func promote(a, b kind) kind {
	switch {
	case a == b:
		return a
	case a == kindNull:
		return b
	case b == kindNull:
		return a
	case (a == kindLong && b == kindDouble) || (a == kindDouble && b == kindLong):
		return kindDouble
	}
	return kindString
}

// column is one inferred column.
type column struct {
	name     string
	kind     kind
	nullable bool // a row had null or lacked the key
}

// Converters from a JSON value to a column's kind. They are only called
// with values whose kind promotes to the column's kind.

func toLong(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseInt(string(x), 10, 64)
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		return int64(x), nil
	case uint64:
		return int64(x), nil
	}
	return 0, fmt.Errorf("%T is not an integer", v)
}

func toDouble(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(string(x), 64)
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	}
	n, err := toLong(v)
	return float64(n), err
}
