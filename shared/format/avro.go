package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/ocf"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// AvroOptions tune format: avro.
type AvroOptions struct {
	Schema      string  `yaml:"schema" doc:"Explicit Avro schema (JSON) of a record; default: inferred from each batch."`
	Compression string  `yaml:"compression" default:"none" enum:"none,null,deflate,snappy" doc:"Block codec of the Object Container File: none (alias null), deflate or snappy. Not used with wire_format."`
	WireFormat  bool    `yaml:"wire_format" default:"false" doc:"Write Confluent wire-format records instead of a container file: each record is a 4-byte big-endian length, then magic byte 0, the 4-byte big-endian schema id and the binary datum."`
	SchemaID    *uint32 `yaml:"schema_id" doc:"Schema registry id written in each wire-format record (required with wire_format)."`
	Namespace   string  `yaml:"namespace" default:"rivven.events" doc:"Namespace of inferred schemas."`
	RecordName  string  `yaml:"record_name" default:"Event" doc:"Record name of inferred schemas."`
}

func (a *AvroOptions) validate() []spec.Problem {
	var ps []spec.Problem
	switch a.Compression {
	case "", "none", "null", "deflate", "snappy":
	default:
		ps = append(ps, spec.Problem{Path: "compression", Message: fmt.Sprintf("unknown avro compression %q (allowed: none, null, deflate, snappy)", a.Compression)})
	}
	if a.WireFormat && a.SchemaID == nil {
		ps = append(ps, spec.Problem{Path: "schema_id", Message: "schema_id is required with wire_format: true"})
	}
	if !a.WireFormat && a.SchemaID != nil {
		ps = append(ps, spec.Problem{Path: "schema_id", Message: "schema_id is only used with wire_format: true"})
	}
	if a.Schema != "" {
		s, err := avro.ParseWithCache(a.Schema, "", &avro.SchemaCache{})
		switch {
		case err != nil:
			ps = append(ps, spec.Problem{Path: "schema", Message: fmt.Sprintf("invalid Avro schema: %v", err)})
		case s.Type() != avro.Record:
			ps = append(ps, spec.Problem{Path: "schema", Message: fmt.Sprintf("schema must be a record (a row is an object), got %s", s.Type())})
		}
	} else {
		if a.RecordName != "" && !validAvroName(a.RecordName) {
			ps = append(ps, spec.Problem{Path: "record_name", Message: fmt.Sprintf("record_name %q is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)", a.RecordName)})
		}
		if a.Namespace != "" {
			for part := range strings.SplitSeq(a.Namespace, ".") {
				if !validAvroName(part) {
					ps = append(ps, spec.Problem{Path: "namespace", Message: fmt.Sprintf("namespace %q is not dotted Avro names", a.Namespace)})
					break
				}
			}
		}
	}
	return ps
}

func validAvroName(s string) bool {
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

// avroEncoder writes rows as Avro. The binary datum of each row is
// produced here, walking the schema, rather than by hamba/avro's generic
// encoder: that avoids building a typed map per row and gives full
// control over how JSON values map to schema types (unions, logical
// types, promoted columns). hamba/avro parses schemas and writes the
// Object Container File around the datums.
type avroEncoder struct {
	opts   AvroOptions
	codec  ocf.CodecName
	fixed  avro.Schema // explicit schema, nil when inferred
	rows   rowSet      // explicit schema
	table  flatTable   // inferred schema
	cols   []column
	datum  []byte
	frame  []byte
	sigBuf []byte

	inferred    avro.Schema // last inferred schema and its signature
	inferredSig string
	ocf         *ocf.Encoder // container encoder of schema ocfSig, reused via Reset
	ocfSig      string
}

func newAvroEncoder(o AvroOptions) (*avroEncoder, error) {
	if o.Namespace == "" {
		o.Namespace = "rivven.events"
	}
	if o.RecordName == "" {
		o.RecordName = "Event"
	}
	e := &avroEncoder{opts: o}
	switch o.Compression {
	case "", "none", "null":
		e.codec = ocf.Null
	case "deflate":
		e.codec = ocf.Deflate
	case "snappy":
		e.codec = ocf.Snappy
	}
	if o.Schema != "" {
		s, err := avro.ParseWithCache(o.Schema, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("avro.schema: %w", err)
		}
		e.fixed = s
	}
	return e, nil
}

func (a *avroEncoder) Extension() string       { return ".avro" }
func (a *avroEncoder) ContentType() string     { return "application/avro" }
func (a *avroEncoder) ContentEncoding() string { return "" }

func (a *avroEncoder) Encode(w io.Writer, batch []*events.Event) error {
	schema, sig, n, err := a.load(batch)
	if err != nil {
		return err
	}
	if a.opts.WireFormat {
		return a.encodeWire(w, schema, n)
	}
	if a.ocf == nil || sig != a.ocfSig {
		a.ocf = nil
		enc, err := ocf.NewEncoderWithSchema(schema, w, ocf.WithCodec(a.codec),
			// Blocks of ~1 MiB: large enough to compress well, small
			// enough for readers to stream.
			ocf.WithBlockLength(0), ocf.WithBlockSize(1<<20),
			ocf.WithSchemaMarshaler(ocf.FullSchemaMarshaler))
		if err != nil {
			return fmt.Errorf("avro: %w", err)
		}
		a.ocf, a.ocfSig = enc, sig
	} else if err := a.ocf.Reset(w); err != nil {
		a.ocf = nil
		return fmt.Errorf("avro: %w", err)
	}
	for i := 0; i < n; i++ {
		if a.datum, err = a.appendDatum(a.datum[:0], schema, i); err != nil {
			a.ocf = nil // it holds part of this batch
			return fmt.Errorf("avro row %d: %w", i, err)
		}
		if _, err := a.ocf.Write(a.datum); err != nil {
			a.ocf = nil
			return fmt.Errorf("avro: %w", err)
		}
	}
	if err := a.ocf.Flush(); err != nil {
		a.ocf = nil
		return fmt.Errorf("avro: %w", err)
	}
	return nil
}

// encodeWire writes each row as a 4-byte big-endian length followed by
// that many bytes of Confluent wire format: magic byte 0, the schema id
// (4 bytes, big-endian) and the binary datum.
func (a *avroEncoder) encodeWire(w io.Writer, schema avro.Schema, n int) error {
	var err error
	for i := 0; i < n; i++ {
		f := append(a.frame[:0], 0, 0, 0, 0, 0) // length (set below), magic byte
		f = binary.BigEndian.AppendUint32(f, *a.opts.SchemaID)
		if f, err = a.appendDatum(f, schema, i); err != nil {
			return fmt.Errorf("avro row %d: %w", i, err)
		}
		binary.BigEndian.PutUint32(f[:4], uint32(len(f)-4))
		a.frame = f
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	return nil
}

// load reads the batch's rows and returns the schema to write them with,
// its signature (which changes when an inferred schema does) and the
// number of rows. Explicit schemas take decoded rows, since they may
// describe nested records, arrays and maps; inferred schemas are flat
// and read the JSON bytes directly (see flatTable).
func (a *avroEncoder) load(batch []*events.Event) (avro.Schema, string, int, error) {
	if a.fixed != nil {
		if err := a.rows.load(batch); err != nil {
			return nil, "", 0, err
		}
		return a.fixed, "", len(a.rows.rows), nil
	}
	t := &a.table
	if err := t.load(batch, nil); err != nil {
		return nil, "", 0, err
	}
	a.cols = t.infer()
	sig := a.sigBuf[:0]
	for _, c := range a.cols {
		sig = append(sig, c.name...)
		sig = append(sig, 0, byte(c.kind), boolByte(c.nullable))
	}
	a.sigBuf = sig
	if a.inferred == nil || string(sig) != a.inferredSig {
		s, err := avro.ParseWithCache(a.inferredSchemaJSON(), "", &avro.SchemaCache{})
		if err != nil {
			// Column names that are not Avro names end up here.
			return nil, "", 0, fmt.Errorf("avro: inferred schema: %w", err)
		}
		a.inferred, a.inferredSig = s, string(sig)
	}
	return a.inferred, a.inferredSig, t.nrows, nil
}

// appendDatum appends the binary datum of row i.
func (a *avroEncoder) appendDatum(dst []byte, schema avro.Schema, i int) ([]byte, error) {
	if a.fixed != nil {
		return appendAvro(dst, schema, a.rows.rows[i], false)
	}
	t := &a.table
	for j := range a.cols {
		c := &a.cols[j]
		x := t.cell(i, t.order[j])
		null := !x.set || x.kind == kindNull
		if c.nullable {
			// ["null", T]: branch 0 is null.
			if null {
				dst = append(dst, 0)
				continue
			}
			dst = append(dst, 2) // zig-zag 1
		}
		switch c.kind {
		case kindBool:
			dst = append(dst, boolByte(x.raw[0] == 't'))
		case kindLong:
			n, err := x.long()
			if err != nil {
				return dst, fmt.Errorf("field %s: %w", c.name, err)
			}
			dst = appendVarint(dst, n)
		case kindDouble:
			f, err := x.double()
			if err != nil {
				return dst, fmt.Errorf("field %s: %w", c.name, err)
			}
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		default:
			// Strings are their text; promoted numbers and booleans
			// and nested values are their JSON text.
			dst = appendVarint(dst, int64(len(x.raw)))
			dst = append(dst, x.raw...)
		}
	}
	return dst, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func avroTypeName(k kind) string {
	switch k {
	case kindBool:
		return "boolean"
	case kindLong:
		return "long"
	case kindDouble:
		return "double"
	}
	return "string"
}

// inferredSchemaJSON builds the record schema of the inferred columns:
// fields sorted by name, ["null", T] where a row had null or lacked the
// field (with default null, so readers may add such fields freely).
func (a *avroEncoder) inferredSchemaJSON() string {
	type field struct {
		Name    string `json:"name"`
		Doc     string `json:"doc,omitempty"`
		Type    any    `json:"type"`
		Default any    `json:"default"`
	}
	fields := make([]json.RawMessage, 0, len(a.cols))
	// Keys that are Avro names keep them; the others are renamed around
	// them.
	used := make(map[string]bool, len(a.cols))
	for _, c := range a.cols {
		if validAvroName(c.name) {
			used[c.name] = true
		}
	}
	for _, c := range a.cols {
		f := field{Name: avroFieldName(c.name, used), Type: avroTypeName(c.kind)}
		if f.Name != c.name {
			f.Doc = "key " + strconv.Quote(c.name)
		}
		var b []byte
		if c.nullable {
			f.Type = []string{"null", avroTypeName(c.kind)}
			b, _ = json.Marshal(f)
		} else {
			// No default: the reference's inferred schemas have none
			// for fields every row had.
			b, _ = json.Marshal(struct {
				Name string `json:"name"`
				Doc  string `json:"doc,omitempty"`
				Type any    `json:"type"`
			}{f.Name, f.Doc, f.Type})
		}
		fields = append(fields, b)
	}
	b, _ := json.Marshal(map[string]any{
		"type":      "record",
		"name":      a.opts.RecordName,
		"namespace": a.opts.Namespace,
		"fields":    fields,
	})
	return string(b)
}

// avroFieldName makes a row key an Avro name ([A-Za-z_][A-Za-z0-9_]*):
// other characters become '_', a leading digit gets a '_' before it, and
// a name already taken (by a valid key or an earlier renamed one) gets a
// numeric suffix. Keys like "created-at" are
// common in JSON and must not make a batch unwritable.
func avroFieldName(key string, used map[string]bool) string {
	if validAvroName(key) {
		return key // reserved in used by the caller
	}
	var b strings.Builder
	for i, r := range key {
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
	name := b.String()
	if name == "" {
		name = "_"
	}
	for n, base := 2, name; used[name]; n++ {
		name = base + "_" + strconv.Itoa(n)
	}
	used[name] = true
	return name
}

// appendAvro appends the binary encoding of v as schema s. strict (used
// while choosing a union branch) refuses the lenient conversions: any
// value to string as its JSON text, integral doubles to int/long.
func appendAvro(dst []byte, s avro.Schema, v any, strict bool) ([]byte, error) {
	switch s := s.(type) {
	case *avro.RefSchema:
		return appendAvro(dst, s.Schema(), v, strict)
	case *avro.NullSchema:
		if v != nil {
			return dst, fmt.Errorf("%s is not null", describeValue(v))
		}
		return dst, nil
	case *avro.UnionSchema:
		return appendUnion(dst, s, v)
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return dst, fmt.Errorf("%s is not an object (record %s)", describeValue(v), s.FullName())
		}
		for _, f := range s.Fields() {
			fv, present := m[f.Name()]
			var err error
			if !present && f.HasDefault() {
				dst, err = appendDefault(dst, f.Type(), f.Default())
			} else {
				dst, err = appendAvro(dst, f.Type(), fv, strict)
			}
			if err != nil {
				if !present && !f.HasDefault() {
					return dst, fmt.Errorf("field %s: missing and has no default", f.Name())
				}
				return dst, fmt.Errorf("field %s: %w", f.Name(), err)
			}
		}
		return dst, nil
	case *avro.ArraySchema:
		arr, ok := v.([]any)
		if !ok {
			return dst, fmt.Errorf("%s is not an array", describeValue(v))
		}
		if len(arr) > 0 {
			dst = appendVarint(dst, int64(len(arr)))
			for i, x := range arr {
				var err error
				if dst, err = appendAvro(dst, s.Items(), x, strict); err != nil {
					return dst, fmt.Errorf("[%d]: %w", i, err)
				}
			}
		}
		return append(dst, 0), nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return dst, fmt.Errorf("%s is not an object (map)", describeValue(v))
		}
		if len(m) > 0 {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys) // deterministic output
			dst = appendVarint(dst, int64(len(m)))
			for _, k := range keys {
				dst = appendAvroString(dst, k)
				var err error
				if dst, err = appendAvro(dst, s.Values(), m[k], strict); err != nil {
					return dst, fmt.Errorf("[%q]: %w", k, err)
				}
			}
		}
		return append(dst, 0), nil
	case *avro.EnumSchema:
		str, ok := v.(string)
		if !ok {
			return dst, fmt.Errorf("%s is not a string (enum %s)", describeValue(v), s.FullName())
		}
		i := slices.Index(s.Symbols(), str)
		if i < 0 {
			if !s.HasDefault() || strict {
				return dst, fmt.Errorf("%q is not a symbol of enum %s", str, s.FullName())
			}
			i = slices.Index(s.Symbols(), s.Default())
		}
		return appendVarint(dst, int64(i)), nil
	case *avro.FixedSchema:
		if d, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
			return appendDecimal(dst, d, v, s.Size())
		}
		b, ok := bytesOf(v)
		if !ok || len(b) != s.Size() {
			return dst, fmt.Errorf("%s is not %d bytes (fixed %s)", describeValue(v), s.Size(), s.FullName())
		}
		return append(dst, b...), nil
	case *avro.PrimitiveSchema:
		return appendPrimitive(dst, s, v, strict)
	}
	return dst, fmt.Errorf("unsupported schema type %s", s.Type())
}

// appendDefault encodes a field default as hamba/avro parsed it; a union
// default belongs to the union's first branch.
func appendDefault(dst []byte, s avro.Schema, def any) ([]byte, error) {
	if u, ok := s.(*avro.UnionSchema); ok {
		dst = appendVarint(dst, 0)
		return appendAvro(dst, u.Types()[0], def, false)
	}
	return appendAvro(dst, s, def, false)
}

// appendUnion writes the index of the first branch that takes v exactly,
// else of the first that takes it leniently (a number for a string
// branch, say).
func appendUnion(dst []byte, u *avro.UnionSchema, v any) ([]byte, error) {
	n := len(dst)
	for _, strict := range []bool{true, false} {
		for i, t := range u.Types() {
			if v == nil {
				if t.Type() == avro.Null {
					return appendVarint(dst, int64(i)), nil
				}
				continue
			}
			if t.Type() == avro.Null {
				continue
			}
			out, err := appendAvro(appendVarint(dst[:n], int64(i)), t, v, strict)
			if err == nil {
				return out, nil
			}
		}
	}
	return dst[:n], fmt.Errorf("%s matches no branch of union %s", describeValue(v), u.String())
}

func appendPrimitive(dst []byte, s *avro.PrimitiveSchema, v any, strict bool) ([]byte, error) {
	var logical avro.LogicalType
	if l := s.Logical(); l != nil {
		logical = l.Type()
	}
	switch s.Type() {
	case avro.Boolean:
		b, ok := v.(bool)
		if !ok {
			return dst, fmt.Errorf("%s is not a boolean", describeValue(v))
		}
		return append(dst, boolByte(b)), nil
	case avro.Int, avro.Long:
		n, err := avroInteger(v, logical, strict)
		if err != nil {
			return dst, err
		}
		if s.Type() == avro.Int && (n < math.MinInt32 || n > math.MaxInt32) {
			return dst, fmt.Errorf("%d does not fit an Avro int", n)
		}
		return appendVarint(dst, n), nil
	case avro.Float, avro.Double:
		if kindOf(v) != kindLong && kindOf(v) != kindDouble {
			return dst, fmt.Errorf("%s is not a number", describeValue(v))
		}
		f, err := toDouble(v)
		if err != nil {
			return dst, err
		}
		if s.Type() == avro.Float {
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f))), nil
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case avro.String:
		if str, ok := v.(string); ok {
			return appendAvroString(dst, str), nil
		}
		if strict || v == nil {
			return dst, fmt.Errorf("%s is not a string", describeValue(v))
		}
		// Lenient: promoted columns hold numbers, booleans and nested
		// values as their JSON text.
		n := len(dst)
		dst = append(dst, make([]byte, binary.MaxVarintLen64)...)
		start := len(dst)
		dst, err := appendText(dst, v)
		if err != nil {
			return dst[:n], err
		}
		text := dst[start:]
		hdr := appendVarint(nil, int64(len(text)))
		copy(dst[n:], hdr)
		copy(dst[n+len(hdr):], text)
		return dst[:n+len(hdr)+len(text)], nil
	case avro.Bytes:
		if d, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
			return appendDecimal(dst, d, v, 0)
		}
		b, ok := bytesOf(v)
		if !ok {
			return dst, fmt.Errorf("%s is not bytes (a string)", describeValue(v))
		}
		dst = appendVarint(dst, int64(len(b)))
		return append(dst, b...), nil
	case avro.Null:
		if v != nil {
			return dst, fmt.Errorf("%s is not null", describeValue(v))
		}
		return dst, nil
	}
	return dst, fmt.Errorf("unsupported primitive %s", s.Type())
}

// avroInteger converts v for an int or long, honouring the logical types
// whose JSON form is a string: date ("2024-01-15") and the timestamps
// (RFC 3339).
func avroInteger(v any, logical avro.LogicalType, strict bool) (int64, error) {
	if str, ok := v.(string); ok {
		switch logical {
		case avro.Date:
			t, err := time.Parse(time.DateOnly, str)
			if err != nil {
				return 0, fmt.Errorf("%q is not a date (YYYY-MM-DD)", str)
			}
			return t.Unix() / 86400, nil
		case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return 0, fmt.Errorf("%q is not an RFC 3339 timestamp", str)
			}
			if logical == avro.TimestampMillis || logical == avro.LocalTimestampMillis {
				return t.UnixMilli(), nil
			}
			return t.UnixMicro(), nil
		}
		return 0, fmt.Errorf("%q is not an integer", str)
	}
	if t, ok := v.(time.Time); ok {
		switch logical {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			return t.UnixMilli(), nil
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			return t.UnixMicro(), nil
		}
	}
	switch kindOf(v) {
	case kindLong:
		return toLong(v)
	case kindDouble:
		f, err := toDouble(v)
		if err == nil && !strict && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("%s is not an integer", describeValue(v))
}

// appendDecimal writes a decimal (bytes, or fixed of size > 0) from a
// JSON number or numeric string, as the two's-complement big-endian
// unscaled value.
func appendDecimal(dst []byte, d *avro.DecimalLogicalSchema, v any, size int) ([]byte, error) {
	var text string
	switch x := v.(type) {
	case json.Number:
		text = string(x)
	case string:
		text = x
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		if kindOf(v) != kindLong {
			return dst, fmt.Errorf("%s is not a decimal", describeValue(v))
		}
		n, _ := toLong(v)
		text = strconv.FormatInt(n, 10)
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return dst, fmt.Errorf("%q is not a decimal", text)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale())), nil)))
	if !r.IsInt() {
		return dst, fmt.Errorf("%s has more than %d decimal places", text, d.Scale())
	}
	b := twosComplement(r.Num())
	if size > 0 {
		if len(b) > size {
			return dst, fmt.Errorf("%s does not fit fixed(%d)", text, size)
		}
		pad := byte(0)
		if r.Num().Sign() < 0 {
			pad = 0xff
		}
		for i := len(b); i < size; i++ {
			dst = append(dst, pad)
		}
		return append(dst, b...), nil
	}
	dst = appendVarint(dst, int64(len(b)))
	return append(dst, b...), nil
}

func twosComplement(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -n = ^(n-1): take the magnitude minus one and invert every byte.
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	b := m.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	for i := range b {
		b[i] = ^b[i]
	}
	return b
}

func bytesOf(v any) ([]byte, bool) {
	switch x := v.(type) {
	case string:
		return []byte(x), true
	case []byte:
		return x, true
	}
	return nil, false
}

func appendVarint(dst []byte, n int64) []byte {
	return binary.AppendVarint(dst, n) // zig-zag, as Avro's int and long
}

func appendAvroString(dst []byte, s string) []byte {
	dst = appendVarint(dst, int64(len(s)))
	return append(dst, s...)
}

func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return strconv.Quote(x)
	case json.Number:
		return "number " + string(x)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%v (%T)", v, v)
	return b.String()
}

// AppendAvroDatum appends the Avro binary encoding of v (a JSON-decoded
// value: map[string]any for records, json.Number or float64 for numbers)
// as schema s, converting as the avro format does (any value to a string
// field as its JSON text, integral numbers to int and long, unions by the
// first branch that takes the value). The schema registry encoder uses it.
func AppendAvroDatum(dst []byte, s avro.Schema, v any) ([]byte, error) {
	return appendAvro(dst, s, v, false)
}
