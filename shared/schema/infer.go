// Package schema gives events a schema in a schema registry that follows
// Confluent's REST API, and encodes and decodes them in Confluent's wire
// format (magic byte 0, the 4-byte big-endian schema id, for Protobuf the
// message indexes, then the datum) with Avro, JSON Schema or Protobuf.
//
// Schemas are given, or inferred from the rows of the events: a column's
// type is promoted as rows come (int → long → double; null, or a row
// lacking the column, makes it nullable; any other mix is a string), and
// each widened schema is registered as a new version of its subject, so
// the registry's compatibility rules decide whether the change is
// allowed. Subjects are named by strategy: topic (<topic>-value), record
// (<namespace>.<record>) or topic_record (<topic>-<namespace>.<record>).
package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the inferred type of a column.
type Kind uint8

// Kinds in promotion order of the numbers.
const (
	KindNull   Kind = iota // only nulls seen so far
	KindBool               // true/false
	KindInt                // integers within int32
	KindLong               // integers within int64
	KindDouble             // other numbers
	KindString             // strings, and any mix that is not numeric
	KindJSON               // objects and arrays (as JSON text in Avro and Protobuf)
)

func (k Kind) String() string {
	return [...]string{"null", "boolean", "int", "long", "double", "string", "json"}[k]
}

// KindOf classifies a JSON-decoded value.
func KindOf(v any) Kind {
	switch x := v.(type) {
	case nil:
		return KindNull
	case bool:
		return KindBool
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return intKind(n)
			}
		}
		return KindDouble
	case int:
		return intKind(int64(x))
	case int8, int16, int32, uint8, uint16:
		return KindInt
	case int64:
		return intKind(x)
	case uint32:
		return intKind(int64(x))
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return intKind(int64(x))
		}
		return KindDouble
	case float32:
		return KindDouble
	case string, time.Time:
		return KindString
	case map[string]any, []any:
		return KindJSON
	}
	return KindString
}

func intKind(n int64) Kind {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		return KindInt
	}
	return KindLong
}

// Promote is the kind of a column that has held values of kinds a and b.
func Promote(a, b Kind) Kind {
	switch {
	case a == b:
		return a
	case a == KindNull:
		return b
	case b == KindNull:
		return a
	case numeric(a) && numeric(b):
		return max(a, b)
	}
	return KindString
}

func numeric(k Kind) bool { return k == KindInt || k == KindLong || k == KindDouble }

// Column is one field of an inferred record.
type Column struct {
	Key      string // the row's key
	Name     string // the key as an Avro / Protobuf name
	Kind     Kind
	Nullable bool
	Number   int // Protobuf field number: stable across versions
}

// Record is an inferred record type: columns sorted by key.
type Record struct {
	Namespace, Name string
	Cols            []Column
}

func (r *Record) col(key string) (int, bool) {
	return slices.BinarySearchFunc(r.Cols, key, func(c Column, k string) int { return strings.Compare(c.Key, k) })
}

// Fits reports whether row can be written with r as it is.
func (r *Record) Fits(row map[string]any) bool {
	if r == nil {
		return false
	}
	seen := 0
	for k, v := range row {
		i, ok := r.col(k)
		if !ok {
			return false
		}
		seen++
		c := r.Cols[i]
		kv := KindOf(v)
		if kv == KindNull {
			if !c.Nullable {
				return false
			}
			continue
		}
		if Promote(c.Kind, kv) != c.Kind {
			return false
		}
	}
	if seen < len(r.Cols) {
		for _, c := range r.Cols {
			if _, ok := row[c.Key]; !ok && !c.Nullable {
				return false
			}
		}
	}
	return true
}

// Widen returns the record that fits both r's rows and row: a new record
// (r may be nil, for the first row); r is left unchanged.
func (r *Record) Widen(namespace, name string, row map[string]any) *Record {
	out := &Record{Namespace: namespace, Name: name}
	first := r == nil
	if !first {
		out.Cols = slices.Clone(r.Cols)
	}
	next := 1
	for _, c := range out.Cols {
		next = max(next, c.Number+1)
	}
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv := KindOf(row[k])
		if i, ok := out.col(k); ok {
			c := &out.Cols[i]
			c.Kind = Promote(c.Kind, kv)
			c.Nullable = c.Nullable || kv == KindNull
			continue
		}
		c := Column{Key: k, Kind: kv, Nullable: !first || kv == KindNull, Number: next}
		next++
		i, _ := out.col(k)
		out.Cols = slices.Insert(out.Cols, i, c)
	}
	for i := range out.Cols {
		if _, ok := row[out.Cols[i].Key]; !ok {
			out.Cols[i].Nullable = true
		}
	}
	out.name()
	return out
}

// name gives every column a valid, unique Avro / Protobuf name.
func (r *Record) name() {
	used := map[string]bool{}
	for _, c := range r.Cols {
		if validName(c.Key) {
			used[c.Key] = true
		}
	}
	for i := range r.Cols {
		c := &r.Cols[i]
		if validName(c.Key) {
			c.Name = c.Key
			continue
		}
		c.Name = uniqueName(SanitizeName(c.Key), used)
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// SanitizeName makes s an Avro / Protobuf name ([A-Za-z_][A-Za-z0-9_]*):
// other characters become '_' and a leading digit gets a '_' before it.
func SanitizeName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

func uniqueName(name string, used map[string]bool) string {
	for n, base := 2, name; used[name]; n++ {
		name = base + "_" + strconv.Itoa(n)
	}
	used[name] = true
	return name
}

// Normalize converts row into the values the record's columns hold, keyed
// by column name: integers as int64, doubles as float64, strings as is,
// and anything else in a string column (objects, arrays, numbers mixed
// with strings) as its JSON text. Columns the row lacks are null.
func (r *Record) Normalize(row map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(r.Cols))
	for _, c := range r.Cols {
		v, ok := row[c.Key]
		if !ok || v == nil {
			out[c.Name] = nil
			continue
		}
		var err error
		if out[c.Name], err = convert(c.Kind, v); err != nil {
			return nil, fmt.Errorf("field %s: %w", c.Key, err)
		}
	}
	return out, nil
}

func convert(k Kind, v any) (any, error) {
	switch k {
	case KindBool:
		return v, nil
	case KindInt, KindLong:
		switch x := v.(type) {
		case json.Number:
			return x.Int64()
		case float64:
			return int64(x), nil
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		}
		return nil, fmt.Errorf("%T is not an integer", v)
	case KindDouble:
		switch x := v.(type) {
		case json.Number:
			return x.Float64()
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		}
		return nil, fmt.Errorf("%T is not a number", v)
	case KindString, KindNull, KindJSON:
		switch x := v.(type) {
		case string:
			return x, nil
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	return v, nil
}
