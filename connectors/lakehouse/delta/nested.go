package deltalake

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// dtype is a column's Delta type (PROTOCOL.md, "Schema Serialization
// Format"): a primitive name, decimal(p,s), or a struct, array or map of
// further types.
type dtype struct {
	name             string // a primitive name, or "decimal", "struct", "array", "map"
	precision, scale int    // decimal
	fields           []sfield
	elem             *dtype // array
	elemNull         bool   // containsNull
	key, val         *dtype // map
	valNull          bool   // valueContainsNull
}

// sfield is a field of a struct type.
type sfield struct {
	name     string
	typ      *dtype
	nullable bool
}

var decimalType = regexp.MustCompile(`^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)

// parseType reads a type as the schemaString holds it: a string for
// primitives and decimals, an object for struct, array and map.
func parseType(raw json.RawMessage) (*dtype, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if m := decimalType.FindStringSubmatch(s); m != nil {
			p, _ := strconv.Atoi(m[1])
			sc, _ := strconv.Atoi(m[2])
			if p < 1 || p > 38 || sc > p {
				return nil, fmt.Errorf("%s: precision must be 1 to 38 and scale at most the precision", s)
			}
			return &dtype{name: "decimal", precision: p, scale: sc}, nil
		}
		if s == "decimal" {
			return &dtype{name: "decimal", precision: 10, scale: 0}, nil
		}
		if !writable(s) {
			return nil, fmt.Errorf("type %s is not supported by this sink", s)
		}
		return &dtype{name: s}, nil
	}
	var obj struct {
		Type              string          `json:"type"`
		Fields            []field         `json:"fields"`
		ElementType       json.RawMessage `json:"elementType"`
		ContainsNull      bool            `json:"containsNull"`
		KeyType           json.RawMessage `json:"keyType"`
		ValueType         json.RawMessage `json:"valueType"`
		ValueContainsNull bool            `json:"valueContainsNull"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("type %s: %w", raw, err)
	}
	t := &dtype{name: obj.Type}
	var err error
	switch obj.Type {
	case "struct":
		for _, f := range obj.Fields {
			ft, err := parseType(f.Type)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name, err)
			}
			t.fields = append(t.fields, sfield{name: f.Name, typ: ft, nullable: f.Nullable})
		}
		if len(t.fields) == 0 {
			return nil, fmt.Errorf("struct without fields")
		}
	case "array":
		t.elemNull = obj.ContainsNull
		t.elem, err = parseType(obj.ElementType)
	case "map":
		t.valNull = obj.ValueContainsNull
		if t.key, err = parseType(obj.KeyType); err == nil {
			t.val, err = parseType(obj.ValueType)
		}
	default:
		return nil, fmt.Errorf("type %s is not supported by this sink", raw)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *dtype) primitive() bool { return t.name != "decimal" && !t.complex() }
func (t *dtype) complex() bool {
	return t.name == "struct" || t.name == "array" || t.name == "map"
}

// leaves is the number of Parquet leaf columns of the type.
func (t *dtype) leaves() int {
	switch t.name {
	case "struct":
		n := 0
		for _, f := range t.fields {
			n += f.typ.leaves()
		}
		return n
	case "array":
		return t.elem.leaves()
	case "map":
		return t.key.leaves() + t.val.leaves()
	}
	return 1
}

// sortedFields are a struct's fields in the order of a parquet.Group
// (by name), which is the order of their leaf columns.
func (t *dtype) sortedFields() []int {
	idx := make([]int, len(t.fields))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return t.fields[idx[a]].name < t.fields[idx[b]].name })
	return idx
}

func optional(n parquet.Node, nullable bool) parquet.Node {
	if nullable {
		return parquet.Optional(n)
	}
	return parquet.Required(n)
}

// node is the Parquet node of the type as Spark writes it: decimals as
// INT32 (precision up to 9), INT64 (up to 18) or a fixed-length byte
// array; arrays as 3-level LIST (list.element), maps as MAP (key_value.key,
// key_value.value).
func (t *dtype) node() parquet.Node {
	switch t.name {
	case "decimal":
		switch {
		case t.precision <= 9:
			return parquet.Decimal(t.scale, t.precision, parquet.Int32Type)
		case t.precision <= 18:
			return parquet.Decimal(t.scale, t.precision, parquet.Int64Type)
		}
		return parquet.Decimal(t.scale, t.precision, parquet.FixedLenByteArrayType(decimalBytes(t.precision)))
	case "struct":
		g := parquet.Group{}
		for _, f := range t.fields {
			g[f.name] = optional(f.typ.node(), f.nullable)
		}
		return g
	case "array":
		return parquet.List(optional(t.elem.node(), t.elemNull))
	case "map":
		return parquet.Map(t.key.node(), optional(t.val.node(), t.valNull))
	}
	return leaf(t.name)
}

// decimalBytes is the length of the smallest two's complement byte array
// holding every unscaled value of the precision.
func decimalBytes(precision int) int {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	return (limit.BitLen() + 1 + 7) / 8
}

// convertTo turns a JSON value into a cell of type t.
func convertTo(v any, t *dtype) (value, error) {
	if v == nil {
		return value{null: true}, nil
	}
	switch t.name {
	case "decimal":
		return convertDecimal(v, t)
	case "struct":
		m, ok := v.(map[string]any)
		if !ok {
			return value{}, fmt.Errorf("%s is not an object (the column is a struct)", describe(v))
		}
		vals := make([]value, len(t.fields))
		for k := range m {
			if !hasField(t.fields, k) {
				return value{}, fmt.Errorf("field %q is not in the struct", k)
			}
		}
		for i, f := range t.fields {
			var fv any
			for k, x := range m {
				if strings.EqualFold(k, f.name) {
					fv = x
				}
			}
			cv, err := convertTo(fv, f.typ)
			if err != nil {
				return value{}, fmt.Errorf("field %q: %w", f.name, err)
			}
			if cv.null && !f.nullable {
				return value{}, fmt.Errorf("field %q is not nullable and has no value", f.name)
			}
			vals[i] = cv
		}
		return value{x: vals}, nil
	case "array":
		items, ok := v.([]any)
		if !ok {
			return value{}, fmt.Errorf("%s is not an array", describe(v))
		}
		vals := make([]value, len(items))
		for i, it := range items {
			cv, err := convertTo(it, t.elem)
			if err != nil {
				return value{}, fmt.Errorf("element %d: %w", i, err)
			}
			if cv.null && !t.elemNull {
				return value{}, fmt.Errorf("element %d is null and the array does not contain nulls", i)
			}
			vals[i] = cv
		}
		return value{x: vals}, nil
	case "map":
		m, ok := v.(map[string]any)
		if !ok {
			return value{}, fmt.Errorf("%s is not an object (the column is a map)", describe(v))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kvs := make([][2]value, 0, len(keys))
		for _, k := range keys {
			var kin any = k
			if t.key.name != tString {
				kin = json.Number(k) // JSON object keys are strings
			}
			kv, err := convertTo(kin, t.key)
			if err != nil {
				return value{}, fmt.Errorf("key %q: %w", k, err)
			}
			vv, err := convertTo(m[k], t.val)
			if err != nil {
				return value{}, fmt.Errorf("value of %q: %w", k, err)
			}
			if vv.null && !t.valNull {
				return value{}, fmt.Errorf("value of %q is null and the map does not contain nulls", k)
			}
			kvs = append(kvs, [2]value{kv, vv})
		}
		return value{x: kvs}, nil
	}
	return convert(v, t.name)
}

func hasField(fields []sfield, name string) bool {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

// convertDecimal takes a JSON number or a numeric string, exactly: a value
// with more fractional digits than the scale, or more digits than the
// precision, is refused rather than rounded.
func convertDecimal(v any, t *dtype) (value, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return value{}, fmt.Errorf("%s is not a decimal", describe(v))
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return value{}, fmt.Errorf("%q is not a decimal", s)
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.scale)), nil)))
	if !scaled.IsInt() {
		return value{}, fmt.Errorf("%s has more than %d fractional digits (decimal(%d,%d))", s, t.scale, t.precision, t.scale)
	}
	u := scaled.Num()
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.precision)), nil)
	if new(big.Int).Abs(u).Cmp(limit) >= 0 {
		return value{}, fmt.Errorf("%s does not fit decimal(%d,%d)", s, t.precision, t.scale)
	}
	return value{x: u}, nil
}

// decimalString is the plain text of a decimal cell, as partition values
// and statistics hold it.
func decimalString(u *big.Int, scale int) string {
	neg := u.Sign() < 0
	digits := new(big.Int).Abs(u).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// leafValue is a primitive or decimal cell as a Parquet value.
func leafValue(v value, t *dtype) parquet.Value {
	if t.name != "decimal" {
		return pvalue(v, t.name)
	}
	u := v.x.(*big.Int)
	switch {
	case t.precision <= 9:
		return parquet.Int32Value(int32(u.Int64()))
	case t.precision <= 18:
		return parquet.Int64Value(u.Int64())
	}
	// Big-endian two's complement, sign-extended to the fixed length.
	n := decimalBytes(t.precision)
	b := make([]byte, n)
	x := new(big.Int).Set(u)
	if x.Sign() < 0 {
		x.Add(x, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	x.FillBytes(b)
	return parquet.FixedLenByteArrayValue(b)
}

// leveler shreds cells into Parquet leaf values with their repetition and
// definition levels (the Dremel encoding Parquet files use for nested
// and optional data).
type leveler struct {
	cols [][]parquet.Value // per leaf column
}

// put writes v, of type t, whose leaf columns start at col. rep is the
// repetition level of its first value, def the definition level of the
// node holding it, depth the number of repeated levels above it.
func (w *leveler) put(t *dtype, nullable bool, v value, col, rep, def, depth int) {
	if nullable {
		if v.null {
			w.nulls(t, col, rep, def)
			return
		}
		def++
	}
	switch t.name {
	case "struct":
		vals := v.x.([]value)
		c := col
		for _, i := range t.sortedFields() {
			f := t.fields[i]
			w.put(f.typ, f.nullable, vals[i], c, rep, def, depth)
			c += f.typ.leaves()
		}
	case "array":
		items := v.x.([]value)
		if len(items) == 0 {
			w.nulls(t.elem, col, rep, def)
			return
		}
		for i, it := range items {
			r := rep
			if i > 0 {
				r = depth + 1
			}
			w.put(t.elem, t.elemNull, it, col, r, def+1, depth+1)
		}
	case "map":
		kvs := v.x.([][2]value)
		if len(kvs) == 0 {
			w.nulls(t.key, col, rep, def)
			w.nulls(t.val, col+t.key.leaves(), rep, def)
			return
		}
		for i, kv := range kvs {
			r := rep
			if i > 0 {
				r = depth + 1
			}
			w.put(t.key, false, kv[0], col, r, def+1, depth+1)
			w.put(t.val, t.valNull, kv[1], col+t.key.leaves(), r, def+1, depth+1)
		}
	default:
		w.cols[col] = append(w.cols[col], leafValue(v, t).Level(rep, def, col))
	}
}

// nulls writes an absent value (null, or an empty list or map) of t: one
// null at each of its leaf columns, defined down to def.
func (w *leveler) nulls(t *dtype, col, rep, def int) {
	for c := col; c < col+t.leaves(); c++ {
		w.cols[c] = append(w.cols[c], parquet.NullValue().Level(rep, def, c))
	}
}
