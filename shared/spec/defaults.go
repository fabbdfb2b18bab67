package spec

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// ApplyDefaults sets every field of the struct ptr points to from its
// default tag, recursing into nested structs.
func ApplyDefaults(ptr any) error {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("ApplyDefaults needs a pointer to a struct, got %T", ptr)
	}
	return applyDefaults(v.Elem())
}

func applyDefaults(v reflect.Value) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		fv := v.Field(i)
		if !sf.IsExported() {
			// The exported fields of an embedded unexported struct are
			// still decoded (yaml ",inline"), so they get defaults too.
			if sf.Anonymous && fv.Kind() == reflect.Struct {
				if err := applyDefaults(fv); err != nil {
					return err
				}
			}
			continue
		}
		if def, ok := sf.Tag.Lookup("default"); ok {
			if err := setDefault(fv, def); err != nil {
				return fmt.Errorf("%s: default %q: %w", sf.Name, def, err)
			}
			continue
		}
		if fv.Kind() == reflect.Struct && fv.Type() != nodeType && fv.Type().PkgPath() != "time" {
			if err := applyDefaults(fv); err != nil {
				return err
			}
		}
	}
	return nil
}

// scalarDefaults holds the decoded default of scalar fields, by field
// type and default text: every decode of a config block applies the same
// defaults, and YAML-decoding each of them every time is most of what
// decoding a small block costs.
var scalarDefaults sync.Map // scalarDefault → reflect.Value

type scalarDefault struct {
	t   reflect.Type
	def string
}

var (
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// setDefault decodes def, as YAML, into fv. The value of a plain scalar
// type (no decoding method of its own) is decoded once and then copied.
func setDefault(fv reflect.Value, def string) error {
	t := fv.Type()
	if !plainScalar(t) {
		return yaml.Unmarshal([]byte(def), fv.Addr().Interface())
	}
	k := scalarDefault{t, def}
	if v, ok := scalarDefaults.Load(k); ok {
		fv.Set(v.(reflect.Value))
		return nil
	}
	v := reflect.New(t)
	if err := yaml.Unmarshal([]byte(def), v.Interface()); err != nil {
		return err
	}
	scalarDefaults.Store(k, v.Elem())
	fv.Set(v.Elem())
	return nil
}

func plainScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return false
	}
	p := reflect.PointerTo(t)
	return !t.Implements(yamlUnmarshalerType) && !p.Implements(yamlUnmarshalerType) &&
		!t.Implements(textUnmarshalerType) && !p.Implements(textUnmarshalerType)
}

// DurationPattern is the JSON Schema pattern of a duration: what
// ParseDuration accepts ("0", "1h30m", "1.5s", "-5m", "300ms").
const DurationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// JSONSchema returns the JSON Schema (draft 2020-12 vocabulary) of an object
// with these fields.
func JSONSchema(fields []Field) map[string]any {
	props := make(map[string]any, len(fields))
	var required []string
	for _, f := range fields {
		props[f.Name] = f.JSONSchema()
		if f.Required {
			required = append(required, f.Name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// JSONSchema returns the JSON Schema of one field.
func (f Field) JSONSchema() map[string]any {
	if f.Schema != nil {
		return f.Schema
	}
	var s map[string]any
	switch f.Type {
	case TObject:
		s = JSONSchema(f.Fields)
	case TArray:
		s = map[string]any{"type": "array", "items": f.Elem.JSONSchema()}
	case TMap:
		s = map[string]any{"type": "object", "additionalProperties": f.Elem.JSONSchema()}
	case TAny:
		s = map[string]any{}
	case TDuration:
		s = map[string]any{"type": "string", "pattern": DurationPattern}
	default:
		s = map[string]any{"type": f.Type}
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	if len(f.Enum) > 0 {
		s["enum"] = f.Enum
	}
	if f.Min != nil {
		s["minimum"] = *f.Min
	}
	if f.Max != nil {
		s["maximum"] = *f.Max
	}
	if f.Default != "" {
		var d any
		if yaml.Unmarshal([]byte(f.Default), &d) == nil {
			s["default"] = d
		}
	}
	if f.Secret {
		s["writeOnly"] = true
	}
	return s
}

// MarkdownTable renders the fields as the config table of a connector
// README: nested objects are flattened with dotted names.
func MarkdownTable(fields []Field) string {
	var b strings.Builder
	b.WriteString("| Parameter | Type | Required | Default | Description |\n")
	b.WriteString("|:----------|:-----|:---------|:--------|:------------|\n")
	writeRows(&b, "", fields)
	return b.String()
}

func writeRows(b *strings.Builder, prefix string, fields []Field) {
	for _, f := range fields {
		name := prefix + f.Name
		req := ""
		if f.Required {
			req = "✓"
		}
		def := "-"
		if f.Default != "" {
			def = "`" + f.Default + "`"
		}
		doc := f.Doc
		if len(f.Enum) > 0 {
			doc += " One of: `" + strings.Join(f.Enum, "`, `") + "`."
		}
		if f.Min != nil || f.Max != nil {
			doc += " Range: " + strings.TrimPrefix(rangeText(f), "allowed: ") + "."
		}
		if f.Secret {
			doc += " Secret: redacted in output."
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", name, typeName(f), req, cell(def), cell(strings.TrimSpace(doc)))
		if f.Type == TObject {
			writeRows(b, name+".", f.Fields)
		}
	}
}

// cell escapes what would break a table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func typeName(f Field) string {
	switch f.Type {
	case TArray:
		return "list of " + typeName(*f.Elem)
	case TMap:
		return "map of " + typeName(*f.Elem)
	}
	return f.Type
}

// FillDefaults adds the default of every absent field to the mapping node,
// recursing into nested objects, lists and maps. Struct defaults alone
// cannot reach values YAML creates fresh (map entries, list items), so
// defaults are applied to the document before it is decoded. A key given
// as null also takes its default, as it does for a top-level struct, and
// an absent nested object (not a pointer) is added when its fields have
// defaults.
func FillDefaults(fields []Field, node *yaml.Node) {
	node = deref(node)
	if node == nil || node.Kind != yaml.MappingNode {
		return
	}
	present := map[string]entry{}
	for _, e := range entries(node) {
		if _, dup := present[e.k.Value]; !dup {
			present[e.k.Value] = e
		}
	}
	for _, f := range fields {
		e, ok := present[f.Name]
		if ok && !isNull(e.v) {
			fillValue(f, e.v)
			continue
		}
		v := defaultNode(f)
		if v == nil {
			continue
		}
		switch {
		case !ok:
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Name}
			node.Content = append(node.Content, key, v)
		case e.idx >= 0:
			v.Line, v.Column = e.v.Line, e.v.Column
			node.Content[e.idx+1] = v
		default: // null from a merge key: override it, leave the shared node be
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Name}
			node.Content = append(node.Content, key, v)
		}
	}
}

// defaultNode returns a fresh node holding the default of f, or nil when
// f has none.
func defaultNode(f Field) *yaml.Node {
	if f.Default != "" {
		if n, ok := defaultNodes.Load(f.Default); ok {
			return copyNode(n.(*yaml.Node))
		}
		var doc yaml.Node
		if yaml.Unmarshal([]byte(f.Default), &doc) != nil || len(doc.Content) == 0 {
			return nil
		}
		n := doc.Content[0]
		if !hasAliases(n) {
			defaultNodes.Store(f.Default, copyNode(n))
		}
		return n
	}
	if f.Type == TObject && !f.pointer && hasDefaults(f.Fields) {
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		FillDefaults(f.Fields, m)
		return m
	}
	return nil
}

// defaultNodes holds each default text parsed once: the fields of every
// config block are filled from the same few defaults. Callers get a copy,
// which the document it goes into may change.
var defaultNodes sync.Map // default text → *yaml.Node

// copyNode copies a node tree without aliases.
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = copyNode(k)
		}
	}
	return &c
}

func hasAliases(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return true
	}
	for _, c := range n.Content {
		if hasAliases(c) {
			return true
		}
	}
	return false
}

// hasDefaults reports whether any field, or a field of a nested object
// that is always present, has a default.
func hasDefaults(fields []Field) bool {
	for _, f := range fields {
		if f.Default != "" || f.Type == TObject && !f.pointer && hasDefaults(f.Fields) {
			return true
		}
	}
	return false
}

func fillValue(f Field, v *yaml.Node) {
	v = deref(v)
	if v == nil {
		return
	}
	switch f.Type {
	case TObject:
		FillDefaults(f.Fields, v)
	case TArray:
		if v.Kind == yaml.SequenceNode {
			for _, c := range v.Content {
				fillValue(*f.Elem, c)
			}
		}
	case TMap:
		if v.Kind == yaml.MappingNode {
			for _, e := range entries(v) {
				fillValue(*f.Elem, e.v)
			}
		}
	}
}
