package iceberg

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// Rows are JSON objects: their fields map to Iceberg columns as
//
//	boolean          -> boolean
//	integer number   -> long
//	other number     -> double
//	string           -> string (timestamptz for the column of partitioning time)
//	object, array    -> string holding the JSON text
//
// and a null or absent field is a null cell.

// inferType is the column type a value asks for; nil for null.
func inferType(v any, timeCol bool) ice.Type {
	switch x := v.(type) {
	case nil:
		return nil
	case bool:
		return ice.PrimitiveTypes.Bool
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return ice.PrimitiveTypes.Int64
		}
		return ice.PrimitiveTypes.Float64
	case float32, float64:
		return ice.PrimitiveTypes.Float64
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return ice.PrimitiveTypes.Int64
	case string:
		if timeCol {
			return ice.PrimitiveTypes.TimestampTz
		}
		return ice.PrimitiveTypes.String
	case time.Time:
		return ice.PrimitiveTypes.TimestampTz
	}
	return ice.PrimitiveTypes.String
}

// mergeTypes widens a new column's type across rows: long and double make
// double; any other disagreement keeps the first (the later rows then fail
// to convert and are dead-lettered).
func mergeTypes(a, b ice.Type) ice.Type {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if (a.Equals(ice.PrimitiveTypes.Int64) && b.Equals(ice.PrimitiveTypes.Float64)) ||
		(a.Equals(ice.PrimitiveTypes.Float64) && b.Equals(ice.PrimitiveTypes.Int64)) {
		return ice.PrimitiveTypes.Float64
	}
	return a
}

// newColumns returns the fields of rows not in have (nil: none), with the
// type their values ask for, in name order.
func newColumns(have *ice.Schema, rows []row, timeCols map[string]bool) ([]string, map[string]ice.Type) {
	types := map[string]ice.Type{}
	var names []string
	for _, r := range rows {
		for k, v := range r.Cells {
			if have != nil {
				if _, ok := have.FindFieldByName(k); ok {
					continue
				}
			}
			t := inferType(v, timeCols[k])
			cur, seen := types[k]
			if !seen {
				names = append(names, k)
			}
			types[k] = mergeTypes(cur, t)
		}
	}
	sort.Strings(names)
	out := names[:0]
	for _, n := range names {
		if types[n] != nil { // only nulls so far: wait for a value
			out = append(out, n)
		}
	}
	return out, types
}

// inferSchema is the schema of a new table: every field with a value.
func inferSchema(rows []row, timeCols map[string]bool) (*ice.Schema, error) {
	names, types := newColumns(nil, rows, timeCols)
	if len(names) == 0 {
		return nil, resilience.New(resilience.Schema, errors.New("iceberg: cannot create the table: no row of the batch has a non-null field"))
	}
	fields := make([]ice.NestedField, len(names))
	for i, n := range names {
		fields[i] = ice.NestedField{ID: i + 1, Name: n, Type: types[n]}
	}
	return ice.NewSchema(0, fields...), nil
}

// schemaChanges are the columns to add and the promotions to make.
type schemaChanges struct {
	add     []string
	types   map[string]ice.Type
	promote map[string]ice.Type
}

func (c schemaChanges) any() bool { return len(c.add) > 0 || len(c.promote) > 0 }

func (c schemaChanges) apply(us *table.UpdateSchema) {
	for _, n := range c.add {
		us.AddColumn([]string{n}, c.types[n], "", false, nil)
	}
	names := make([]string, 0, len(c.promote))
	for n := range c.promote {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := c.promote[n]
		us.UpdateColumn([]string{n}, table.ColumnUpdate{FieldType: ice.Optional[ice.Type]{Val: t, Valid: true}})
	}
}

// planSchema decides the schema changes the rows need under mode, failing
// (in failed) the rows that the table cannot take: fields unknown under
// strict, values a column cannot hold and no allowed promotion fixes.
// It returns the schema to write with when nothing changes.
func planSchema(have *ice.Schema, rows []row, mode string, timeCols map[string]bool, failed map[int]error) (*ice.Schema, schemaChanges, error) {
	ch := schemaChanges{promote: map[string]ice.Type{}}
	var keep []row
	for _, r := range rows {
		var rowErr error
		for k, v := range r.Cells {
			f, ok := have.FindFieldByName(k)
			if !ok {
				if mode == EvolveStrict && v != nil {
					rowErr = fmt.Errorf("field %q is not a column of the table (schema_evolution strict)", k)
					break
				}
				continue
			}
			if v == nil {
				continue
			}
			if _, err := convert(v, f.Type); err != nil {
				if p := promotion(f.Type, v); mode == EvolveFull && p != nil {
					ch.promote[k] = p
					continue
				}
				rowErr = fmt.Errorf("column %q: %w", k, err)
				break
			}
		}
		if rowErr == nil {
			for _, f := range have.Fields() {
				if f.Required && r.Cells[f.Name] == nil {
					rowErr = fmt.Errorf("column %q is required but the row has no value for it", f.Name)
					break
				}
			}
		}
		if rowErr != nil {
			failed[r.Index] = resilience.New(resilience.Schema, fmt.Errorf("iceberg: %w", rowErr))
			continue
		}
		keep = append(keep, r)
	}
	if mode != EvolveStrict {
		ch.add, ch.types = newColumns(have, keep, timeCols)
	}
	return have, ch, nil
}

// promotion is the wider type Iceberg allows a column of type t to become
// so that it holds v (int to long, float to double), or nil.
func promotion(t ice.Type, v any) ice.Type {
	switch {
	case t.Equals(ice.PrimitiveTypes.Int32):
		if _, err := convert(v, ice.PrimitiveTypes.Int64); err == nil {
			return ice.PrimitiveTypes.Int64
		}
	case t.Equals(ice.PrimitiveTypes.Float32):
		if _, err := convert(v, ice.PrimitiveTypes.Float64); err == nil {
			return ice.PrimitiveTypes.Float64
		}
	}
	return nil
}

// convert turns a JSON value into the Go value of an Iceberg column type.
func convert(v any, t ice.Type) (any, error) {
	switch t.(type) {
	case ice.BooleanType:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case ice.Int32Type:
		if n, ok := toInt(v); ok {
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, fmt.Errorf("%d does not fit type int (a promotion to long needs schema_evolution full)", n)
			}
			return int32(n), nil
		}
	case ice.Int64Type:
		if n, ok := toInt(v); ok {
			return n, nil
		}
	case ice.Float32Type:
		if f, ok := toFloat(v); ok {
			if float64(float32(f)) != f && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return nil, fmt.Errorf("%v does not fit type float (a promotion to double needs schema_evolution full)", f)
			}
			return float32(f), nil
		}
	case ice.Float64Type:
		if f, ok := toFloat(v); ok {
			return f, nil
		}
	case ice.StringType:
		switch x := v.(type) {
		case string:
			return x, nil
		case map[string]any, []any:
			b, err := json.Marshal(x)
			if err != nil {
				return nil, err
			}
			return string(b), nil
		}
	case ice.DateType:
		if s, ok := v.(string); ok {
			for _, layout := range []string{time.DateOnly, time.RFC3339Nano} {
				if tm, err := time.Parse(layout, s); err == nil {
					return int32(tm.UTC().Unix() / 86400), nil
				}
			}
			return nil, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
		}
	case ice.TimestampType, ice.TimestampTzType:
		switch x := v.(type) {
		case time.Time:
			return x.UnixMicro(), nil
		case string:
			tm, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				if tm, err = time.Parse("2006-01-02T15:04:05.999999999", x); err != nil {
					return nil, fmt.Errorf("%q is not an RFC 3339 timestamp", x)
				}
			}
			return tm.UnixMicro(), nil
		}
	default:
		return nil, fmt.Errorf("columns of type %s are not written by this sink", t)
	}
	return nil, fmt.Errorf("a %s value does not fit type %s", jsonKind(v), t)
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, true
		}
		// 1e3 or 5.0: integral values written as floats.
		if f, err := x.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), true
		}
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case json.Number, float64, float32, int, int64, int32:
		return "number"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// buildRecord converts the rows that fit schema into one Arrow record
// (nil when none does), failing the others in failed. It returns the rows
// written.
func buildRecord(schema *ice.Schema, rows []row, failed map[int]error) (arrow.RecordBatch, []row, error) {
	asc, err := table.SchemaToArrowSchema(schema, nil, true, false)
	if err != nil {
		return nil, nil, err
	}
	fields := schema.Fields()
	b := array.NewRecordBuilder(alloc, asc)
	defer b.Release()
	cells := make([]any, len(fields))
	var written []row
	for _, r := range rows {
		if _, bad := failed[r.Index]; bad {
			continue
		}
		var rowErr error
		for j, f := range fields {
			v := r.Cells[f.Name]
			if v == nil {
				if f.Required {
					rowErr = fmt.Errorf("column %q is required but the row has no value for it", f.Name)
					break
				}
				cells[j] = nil
				continue
			}
			if cells[j], err = convert(v, f.Type); err != nil {
				rowErr = fmt.Errorf("column %q: %w", f.Name, err)
				break
			}
		}
		if rowErr != nil {
			failed[r.Index] = resilience.New(resilience.Schema, fmt.Errorf("iceberg: %w", rowErr))
			continue
		}
		for j := range fields {
			if err := appendCell(b.Field(j), cells[j]); err != nil {
				return nil, nil, fmt.Errorf("iceberg: column %q: %w", fields[j].Name, err)
			}
		}
		written = append(written, r)
	}
	if len(written) == 0 {
		return nil, nil, nil
	}
	return b.NewRecordBatch(), written, nil
}

func appendCell(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.BooleanBuilder:
		bb.Append(v.(bool))
	case *array.Int32Builder:
		bb.Append(v.(int32))
	case *array.Int64Builder:
		bb.Append(v.(int64))
	case *array.Float32Builder:
		bb.Append(v.(float32))
	case *array.Float64Builder:
		bb.Append(v.(float64))
	case *array.StringBuilder:
		bb.Append(v.(string))
	case *array.LargeStringBuilder:
		bb.Append(v.(string))
	case *array.Date32Builder:
		bb.Append(arrow.Date32(v.(int32)))
	case *array.TimestampBuilder:
		bb.Append(arrow.Timestamp(v.(int64)))
	default:
		return fmt.Errorf("arrow builder %T is not supported", b)
	}
	return nil
}
