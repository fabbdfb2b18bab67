package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rivven/rivven-connect/shared/format"
)

// Formats.
const (
	Avro     = "avro"
	JSON     = "json"
	Protobuf = "protobuf"
)

func srType(f string) sr.SchemaType {
	switch f {
	case JSON:
		return sr.TypeJSON
	case Protobuf:
		return sr.TypeProtobuf
	}
	return sr.TypeAvro
}

// Avro renders the record as an Avro schema: fields in key order, a
// nullable one as ["null", T] with default null (so that adding it is a
// compatible change).
func (r *Record) Avro() string {
	type field struct {
		Name    string `json:"name"`
		Doc     string `json:"doc,omitempty"`
		Type    any    `json:"type"`
		Default *any   `json:"default,omitempty"`
	}
	var null any
	fields := make([]field, 0, len(r.Cols))
	for _, c := range r.Cols {
		f := field{Name: c.Name, Type: avroType(c.Kind)}
		if c.Name != c.Key {
			f.Doc = "key " + strconv.Quote(c.Key)
		}
		if c.Nullable || c.Kind == KindNull {
			f.Type = []string{"null", avroType(c.Kind)}
			f.Default = &null
		}
		fields = append(fields, f)
	}
	b, _ := json.Marshal(struct {
		Type      string  `json:"type"`
		Name      string  `json:"name"`
		Namespace string  `json:"namespace,omitempty"`
		Fields    []field `json:"fields"`
	}{"record", r.Name, r.Namespace, fields})
	return string(b)
}

func avroType(k Kind) string {
	switch k {
	case KindBool:
		return "boolean"
	case KindInt:
		return "int"
	case KindLong:
		return "long"
	case KindDouble:
		return "double"
	}
	return "string"
}

// JSONSchema renders the record as a JSON Schema (draft-07) of an
// object: integers as integer, nullable properties as [T, "null"], the
// others required.
func (r *Record) JSONSchema() string {
	props := map[string]any{}
	required := []string{}
	for _, c := range r.Cols {
		t := jsonType(c.Kind)
		if c.Nullable || c.Kind == KindNull {
			props[c.Key] = map[string]any{"type": []string{t, "null"}}
		} else {
			props[c.Key] = map[string]any{"type": t}
			required = append(required, c.Key)
		}
	}
	title := r.Name
	if r.Namespace != "" {
		title = r.Namespace + "." + r.Name
	}
	b, _ := json.Marshal(map[string]any{
		"$schema":    "http://json-schema.org/draft-07/schema#",
		"title":      title,
		"type":       "object",
		"properties": props,
		"required":   required,
	})
	return string(b)
}

func jsonType(k Kind) string {
	switch k {
	case KindBool:
		return "boolean"
	case KindInt, KindLong:
		return "integer"
	case KindDouble:
		return "number"
	}
	return "string"
}

// Proto renders the record as a proto3 file of one message whose fields
// are all optional (null is absence), numbered in the order they were
// first seen, so a later version keeps every number.
func (r *Record) Proto() string {
	var b strings.Builder
	b.WriteString("syntax = \"proto3\";\n")
	if r.Namespace != "" {
		fmt.Fprintf(&b, "package %s;\n", r.Namespace)
	}
	fmt.Fprintf(&b, "\nmessage %s {\n", r.Name)
	for _, c := range r.Cols {
		fmt.Fprintf(&b, "  optional %s %s = %d;\n", protoType(c.Kind), c.Name, c.Number)
	}
	b.WriteString("}\n")
	return b.String()
}

func protoType(k Kind) string {
	switch k {
	case KindBool:
		return "bool"
	case KindInt:
		return "int32"
	case KindLong:
		return "int64"
	case KindDouble:
		return "double"
	}
	return "string"
}

// Render is the schema text of r in format f.
func (r *Record) Render(f string) string {
	switch f {
	case JSON:
		return r.JSONSchema()
	case Protobuf:
		return r.Proto()
	}
	return r.Avro()
}

// RecordFromAvro reads back a schema Avro renders (a record of
// primitive and ["null", T] fields), so that a restarted sink widens the
// subject's latest version instead of starting over. ok is false for any
// other schema.
func RecordFromAvro(text string) (*Record, bool) {
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, false
	}
	rs, isRec := s.(*avro.RecordSchema)
	if !isRec {
		return nil, false
	}
	r := &Record{Namespace: rs.Namespace(), Name: rs.Name()}
	for i, f := range rs.Fields() {
		c := Column{Key: f.Name(), Name: f.Name(), Number: i + 1}
		if doc := f.Doc(); strings.HasPrefix(doc, "key ") {
			if k, err := strconv.Unquote(strings.TrimPrefix(doc, "key ")); err == nil {
				c.Key = k
			}
		}
		t := f.Type()
		if u, isUnion := t.(*avro.UnionSchema); isUnion {
			if len(u.Types()) != 2 || u.Types()[0].Type() != avro.Null {
				return nil, false
			}
			c.Nullable = true
			t = u.Types()[1]
		}
		switch t.Type() {
		case avro.Boolean:
			c.Kind = KindBool
		case avro.Int:
			c.Kind = KindInt
		case avro.Long:
			c.Kind = KindLong
		case avro.Double:
			c.Kind = KindDouble
		case avro.String:
			c.Kind = KindString
		default:
			return nil, false
		}
		r.Cols = append(r.Cols, c)
	}
	// Columns are kept in key order.
	sortCols(r)
	return r, true
}

// RecordFromJSONSchema reads back a schema JSONSchema renders.
func RecordFromJSONSchema(text string) (*Record, bool) {
	var s struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Properties map[string]struct {
			Type json.RawMessage `json:"type"`
		} `json:"properties"`
	}
	if json.Unmarshal([]byte(text), &s) != nil || s.Type != "object" {
		return nil, false
	}
	r := &Record{}
	if i := strings.LastIndexByte(s.Title, '.'); i >= 0 {
		r.Namespace, r.Name = s.Title[:i], s.Title[i+1:]
	} else {
		r.Name = s.Title
	}
	n := 1
	for k, p := range s.Properties {
		var t string
		var ts []string
		c := Column{Key: k, Number: n}
		n++
		switch {
		case json.Unmarshal(p.Type, &t) == nil:
		case json.Unmarshal(p.Type, &ts) == nil && len(ts) == 2 && ts[1] == "null":
			t, c.Nullable = ts[0], true
		default:
			return nil, false
		}
		switch t {
		case "boolean":
			c.Kind = KindBool
		case "integer":
			c.Kind = KindLong
		case "number":
			c.Kind = KindDouble
		case "string":
			c.Kind = KindString
		default:
			return nil, false
		}
		r.Cols = append(r.Cols, c)
	}
	sortCols(r)
	r.name()
	return r, true
}

func sortCols(r *Record) {
	cols := r.Cols
	for i := 1; i < len(cols); i++ {
		for j := i; j > 0 && cols[j].Key < cols[j-1].Key; j-- {
			cols[j], cols[j-1] = cols[j-1], cols[j]
		}
	}
}

// codec encodes rows with one registered schema.
type codec struct {
	format string
	id     int
	rec    *Record // nil for a given schema
	avro   avro.Schema
	msg    protoreflect.MessageDescriptor
}

// newCodec compiles schema text of format f.
func newCodec(f, text string, rec *Record) (*codec, error) {
	c := &codec{format: f, rec: rec}
	switch f {
	case Avro:
		s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("avro schema: %w", err)
		}
		c.avro = s
	case JSON:
		if !json.Valid([]byte(text)) {
			return nil, fmt.Errorf("json schema: not JSON")
		}
	case Protobuf:
		md, err := compileProto(context.Background(), text, nil)
		if err != nil {
			return nil, err
		}
		c.msg = md
	default:
		return nil, fmt.Errorf("unknown format %q", f)
	}
	return c, nil
}

// compileProto compiles a .proto schema and returns the message at the
// given indexes (nil: the first message).
func compileProto(ctx context.Context, text string, index []int) (protoreflect.MessageDescriptor, error) {
	comp := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(map[string]string{"schema.proto": text}),
		}),
	}
	files, err := comp.Compile(ctx, "schema.proto")
	if err != nil {
		return nil, fmt.Errorf("protobuf schema: %w", err)
	}
	msgs := files[0].Messages()
	if len(index) == 0 {
		index = []int{0}
	}
	var md protoreflect.MessageDescriptor
	for _, i := range index {
		if i < 0 || i >= msgs.Len() {
			return nil, fmt.Errorf("protobuf schema: no message at index %v", index)
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	return md, nil
}

// appendDatum appends the wire-format record of row: header, then the
// datum.
func (c *codec) appendDatum(dst []byte, row map[string]any) ([]byte, error) {
	var h sr.ConfluentHeader
	var index []int
	if c.format == Protobuf {
		index = []int{0}
	}
	dst, err := h.AppendEncode(dst, c.id, index)
	if err != nil {
		return nil, err
	}
	switch c.format {
	case Avro:
		v := any(row)
		if c.rec != nil {
			if v, err = c.rec.Normalize(row); err != nil {
				return nil, err
			}
		}
		return format.AppendAvroDatum(dst, c.avro, v)
	case JSON:
		v := any(row)
		if c.rec != nil {
			n, err := c.rec.Normalize(row)
			if err != nil {
				return nil, err
			}
			byKey := make(map[string]any, len(n))
			for _, col := range c.rec.Cols {
				if n[col.Name] != nil {
					byKey[col.Key] = n[col.Name]
				}
			}
			v = byKey
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return append(dst, bytes.TrimRight(buf.Bytes(), "\n")...), nil
	case Protobuf:
		m := dynamicpb.NewMessage(c.msg)
		if c.rec != nil {
			n, err := c.rec.Normalize(row)
			if err != nil {
				return nil, err
			}
			b, err := json.Marshal(n)
			if err != nil {
				return nil, err
			}
			if err := (protojson.UnmarshalOptions{}).Unmarshal(b, m); err != nil {
				return nil, fmt.Errorf("protobuf: %w", err)
			}
		} else {
			b, err := json.Marshal(row)
			if err != nil {
				return nil, err
			}
			if err := (protojson.UnmarshalOptions{}).Unmarshal(b, m); err != nil {
				return nil, fmt.Errorf("protobuf: %w", err)
			}
		}
		return proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, m)
	}
	return nil, fmt.Errorf("unknown format %q", c.format)
}
