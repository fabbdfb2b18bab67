// Package spec describes configuration from Go struct tags. One description
// drives validation (with YAML paths and line numbers), defaults, generated
// docs and JSON Schema, so the four never disagree.
//
// Tags on a config struct field:
//
//	yaml:"name"          key in the YAML file (required for a field to count)
//	doc:"..."            one-line description
//	default:"..."        default value, as it would be written in YAML
//	required:"true"      must be present
//	enum:"a,b,c"         allowed values
//	min:"1" max:"100"    numeric range (inclusive)
//	secret:"true"        value is redacted in output and never echoed in errors
//
// A config type may implement Validator for checks that span fields.
package spec

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Type names used by Field.Type (JSON Schema spelling).
const (
	TString   = "string"
	TInteger  = "integer"
	TNumber   = "number"
	TBoolean  = "boolean"
	TArray    = "array"
	TObject   = "object"
	TMap      = "map"
	TAny      = "any"
	TDuration = "duration"
)

// Field describes one configuration key.
type Field struct {
	Name     string
	Type     string
	Doc      string
	Default  string
	Required bool
	Enum     []string
	Min, Max *float64
	Secret   bool
	Fields   []Field // TObject
	Elem     *Field  // TArray, TMap
	// Schema, when set, replaces the generated JSON Schema of the field.
	Schema map[string]any
	// Check, when set, validates a TAny value of a type with several
	// accepted shapes (see Describer).
	Check func(node *yaml.Node, path string) []Problem

	// pointer is set for fields of pointer type: absent means nil, so
	// FillDefaults must not create them to hold their children's defaults.
	pointer bool
}

// Describer is implemented by types that describe themselves, for values
// with more than one accepted shape (the type then validates itself).
type Describer interface {
	SpecField() Field
}

var describerType = reflect.TypeOf((*Describer)(nil)).Elem()

// Validator is implemented by config structs with checks that span fields.
// Returned problems get their Path prefixed with the struct's path.
type Validator interface {
	Validate() []Problem
}

var (
	nodeType     = reflect.TypeOf(yaml.Node{})
	durationType = reflect.TypeOf(time.Duration(0))
)

// fieldsCache holds what FieldsOf found per struct type: a type's fields
// never change, and a cold start asks for the same types (the pipeline
// file's, each connector's config) at registration and again at every
// decode.
var fieldsCache sync.Map // reflect.Type → []Field

// FieldsOf describes the fields of a struct type (or pointer to one).
func FieldsOf(t reflect.Type) []Field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if fs, ok := fieldsCache.Load(t); ok {
		return slices.Clone(fs.([]Field))
	}
	fs := fieldsOfStruct(t)
	fieldsCache.Store(t, fs)
	return slices.Clone(fs)
}

func fieldsOfStruct(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if hasOption(opts, "inline") {
			out = append(out, FieldsOf(sf.Type)...)
			continue
		}
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		// Tags add to what the type says of itself (a Describer).
		f := fieldOf(sf.Type)
		f.Name = name
		if doc := sf.Tag.Get("doc"); doc != "" {
			f.Doc = doc
		}
		if def, ok := sf.Tag.Lookup("default"); ok {
			f.Default = def
		}
		if req, ok := sf.Tag.Lookup("required"); ok {
			f.Required = req == "true"
		}
		if sf.Tag.Get("secret") == "true" {
			f.Secret = true
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.Enum = strings.Split(e, ",")
		}
		if v, err := strconv.ParseFloat(sf.Tag.Get("min"), 64); err == nil {
			f.Min = &v
		}
		if v, err := strconv.ParseFloat(sf.Tag.Get("max"), 64); err == nil {
			f.Max = &v
		}
		out = append(out, f)
	}
	return out
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func fieldOf(t reflect.Type) Field {
	if t.Kind() == reflect.Pointer {
		// A pointer field is optional: absent leaves it nil. Describe what
		// it points to (a nil pointer cannot call a value-receiver
		// SpecField).
		f := fieldOf(t.Elem())
		f.pointer = true
		return f
	}
	if t.Implements(describerType) {
		return reflect.Zero(t).Interface().(Describer).SpecField()
	}
	if reflect.PointerTo(t).Implements(describerType) {
		return reflect.New(t).Interface().(Describer).SpecField()
	}
	if t == nodeType {
		return Field{Type: TAny}
	}
	if t == durationType {
		return Field{Type: TDuration}
	}
	switch t.Kind() {
	case reflect.String:
		return Field{Type: TString}
	case reflect.Bool:
		return Field{Type: TBoolean}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f := Field{Type: TInteger}
		if t.Kind() >= reflect.Uint {
			zero := 0.0
			f.Min = &zero
		}
		return f
	case reflect.Float32, reflect.Float64:
		return Field{Type: TNumber}
	case reflect.Slice, reflect.Array:
		e := fieldOf(t.Elem())
		return Field{Type: TArray, Elem: &e}
	case reflect.Map:
		e := fieldOf(t.Elem())
		return Field{Type: TMap, Elem: &e}
	case reflect.Struct:
		return Field{Type: TObject, Fields: FieldsOf(t)}
	}
	return Field{Type: TAny}
}

// Lookup returns the field with that name.
func Lookup(fields []Field, name string) (Field, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Problem is one configuration error, located in the YAML file.
type Problem struct {
	Path    string // e.g. sources.orders.config.pattern
	Line    int    // 1-based; 0 when unknown
	Column  int
	Message string
	// Omitted, when above 0, makes this entry no problem of its own: it
	// says how many more problems were found than a capped list holds
	// (see Collector). It sorts last.
	Omitted int
}

func (p Problem) Error() string {
	if p.Omitted > 0 {
		return p.Message
	}
	if p.Line > 0 {
		if p.Path == "" {
			return fmt.Sprintf("line %d:%d: %s", p.Line, p.Column, p.Message)
		}
		return fmt.Sprintf("%s (line %d:%d): %s", p.Path, p.Line, p.Column, p.Message)
	}
	if p.Path == "" {
		return p.Message
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Message)
}

// At returns a problem located at node.
func At(node *yaml.Node, path, format string, args ...any) Problem {
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	if node != nil {
		p.Line, p.Column = node.Line, node.Column
	}
	return p
}

// Problems is a list of problems that is also an error.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Sort orders problems by position in the file; a count of omitted ones
// comes last.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool { return before(ps[i], ps[j]) })
}

func before(a, b Problem) bool {
	if (a.Omitted > 0) != (b.Omitted > 0) {
		return b.Omitted > 0
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Column < b.Column
}

// Count is the number of problems found: those listed plus those omitted.
func (ps Problems) Count() int {
	n := 0
	for _, p := range ps {
		if p.Omitted > 0 {
			n += p.Omitted
		} else {
			n++
		}
	}
	return n
}

// Listed is the problems without the count of omitted ones.
func (ps Problems) Listed() Problems {
	out := ps[:0:0]
	for _, p := range ps {
		if p.Omitted == 0 {
			out = append(out, p)
		}
	}
	return out
}

// MaxProblems is how many problems a check lists. A file with millions of
// mistakes (a generated file gone wrong) is reported in bounded memory and
// output: the first MaxProblems by position, and how many there were.
const MaxProblems = 100

// Collector keeps the first Max problems by position (MaxProblems when
// Max is 0) and counts the rest, in memory bounded by Max whatever the
// number added. An added entry that counts omitted problems (Omitted > 0,
// from a list capped elsewhere) adds to the count.
type Collector struct {
	Max     int
	kept    []ranked // a max-heap on position: kept[0] is the last kept
	omitted int
	seq     int
}

type ranked struct {
	p   Problem
	seq int // insertion order, so that equal positions keep it
}

func (r ranked) after(o ranked) bool {
	if before(r.p, o.p) || before(o.p, r.p) {
		return before(o.p, r.p)
	}
	return r.seq > o.seq
}

// Add records problems.
func (c *Collector) Add(ps ...Problem) {
	limit := c.Max
	if limit <= 0 {
		limit = MaxProblems
	}
	for _, p := range ps {
		if p.Omitted > 0 {
			c.omitted += p.Omitted
			continue
		}
		c.seq++
		r := ranked{p, c.seq}
		if len(c.kept) < limit {
			c.kept = append(c.kept, r)
			c.up(len(c.kept) - 1)
			continue
		}
		c.omitted++
		if c.kept[0].after(r) {
			c.kept[0] = r
			c.down(0)
		}
	}
}

func (c *Collector) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !c.kept[i].after(c.kept[parent]) {
			return
		}
		c.kept[i], c.kept[parent] = c.kept[parent], c.kept[i]
		i = parent
	}
}

func (c *Collector) down(i int) {
	for {
		l, r, top := 2*i+1, 2*i+2, i
		if l < len(c.kept) && c.kept[l].after(c.kept[top]) {
			top = l
		}
		if r < len(c.kept) && c.kept[r].after(c.kept[top]) {
			top = r
		}
		if top == i {
			return
		}
		c.kept[i], c.kept[top] = c.kept[top], c.kept[i]
		i = top
	}
}

// Len is the number of problems added, listed or not.
func (c *Collector) Len() int { return len(c.kept) + c.omitted }

// Problems returns the kept problems by position, followed, when some
// were left out, by one entry counting them; nil when there are none.
func (c *Collector) Problems() Problems {
	if c.Len() == 0 {
		return nil
	}
	rs := make([]ranked, len(c.kept))
	copy(rs, c.kept)
	sort.Slice(rs, func(i, j int) bool { return rs[j].after(rs[i]) })
	out := make(Problems, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, r.p)
	}
	if c.omitted > 0 {
		out = append(out, Problem{Omitted: c.omitted,
			Message: fmt.Sprintf("… and %d more problem(s) not listed (%d in all; only the first %d by position are listed)", c.omitted, c.Len(), len(rs))})
	}
	return out
}

// Join appends a child key to a YAML path. An empty key leaves the path
// as it is.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	if key == "" {
		return path
	}
	return path + "." + key
}

// Index appends a list index to a YAML path.
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
