package spec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// ---- sample config ---------------------------------------------------------

type sampleAuth struct {
	Mode     string `yaml:"mode" default:"basic" enum:"basic,token" doc:"Auth mode."`
	Password string `yaml:"password" secret:"true" doc:"Password."`
}

type sampleRoute struct {
	Pattern string     `yaml:"pattern" required:"true" doc:"Match pattern."`
	Topic   string     `yaml:"topic" default:"fallback" doc:"Target topic."`
	Auth    sampleAuth `yaml:"auth"`
}

// shape accepts more than one form and describes itself.
type shape struct{ raw any }

func (shape) SpecField() Field {
	return Field{Type: TAny, Doc: "a string or a list", Schema: map[string]any{"oneOf": []any{
		map[string]any{"type": "string"}, map[string]any{"type": "array"},
	}}}
}

func (s *shape) UnmarshalYAML(n *yaml.Node) error { return n.Decode(&s.raw) }

// ptrShape describes itself through a pointer receiver.
type ptrShape struct{}

func (*ptrShape) SpecField() Field { return Field{Type: TString, Doc: "pointer describer"} }

type embedded struct {
	Region string `yaml:"region" default:"eu" doc:"Region."`
}

type sampleConfig struct {
	Name     string                 `yaml:"name" required:"true" doc:"Name of the thing."`
	Count    int                    `yaml:"count" default:"3" min:"1" max:"10" doc:"How many."`
	Ratio    float64                `yaml:"ratio" min:"0" max:"1" doc:"A fraction."`
	Size     uint32                 `yaml:"size" doc:"Unsigned."`
	Enabled  bool                   `yaml:"enabled" default:"true" doc:"On or off."`
	Mode     string                 `yaml:"mode" default:"auto" enum:"fast,slow,auto" doc:"Speed."`
	Timeout  time.Duration          `yaml:"timeout" default:"30s" doc:"Timeout."`
	Token    string                 `yaml:"token" secret:"true" doc:"API token."`
	Pins     []int                  `yaml:"pins" secret:"true" doc:"Secret numbers."`
	Level    string                 `yaml:"level" secret:"true" enum:"low,high" doc:"Secret level."`
	Tags     []string               `yaml:"tags" doc:"Tags."`
	Labels   map[string]string      `yaml:"labels" doc:"Labels."`
	Routes   []sampleRoute          `yaml:"routes" doc:"Routes."`
	ByName   map[string]sampleRoute `yaml:"by_name" doc:"Routes by name."`
	Auth     sampleAuth             `yaml:"auth" doc:"Auth."`
	Optional *sampleAuth            `yaml:"optional" doc:"Optional auth."`
	Retries  *int                   `yaml:"retries" default:"2" doc:"Retries."`
	Extra    yaml.Node              `yaml:"extra" doc:"Anything."`
	Shape    shape                  `yaml:"shape"`
	Shape2   *shape                 `yaml:"shape2"`
	PShape   ptrShape               `yaml:"pshape"`
	Ignored  string                 `yaml:"-"`
	NoTag    string
	hidden   string `yaml:"hidden"` //lint:ignore U1000 checks that unexported fields are skipped
	embedded `yaml:",inline"`
}

// Validate reports cross-field problems at a nested path and at the
// struct itself.
func (c *sampleConfig) Validate() []Problem {
	var ps []Problem
	if len(c.Routes) > 1 && c.Routes[1].Topic == c.Routes[0].Topic {
		ps = append(ps, Problem{Path: "routes[1].topic", Message: "same topic as routes[0]"})
	}
	if c.Name == "whole" {
		ps = append(ps, Problem{Message: "the whole config is wrong"})
	}
	if c.Name == "located" {
		ps = append(ps, Problem{Path: "name", Line: 99, Column: 7, Message: "kept as given"})
	}
	return ps
}

var sampleFields = FieldsOf(reflect.TypeFor[sampleConfig]())

func parse(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	return &n
}

func field(t *testing.T, fields []Field, name string) Field {
	t.Helper()
	f, ok := Lookup(fields, name)
	if !ok {
		t.Fatalf("no field %q in %v", name, fieldNames(fields))
	}
	return f
}

// ---- FieldsOf --------------------------------------------------------------

func TestFieldsOf(t *testing.T) {
	want := []string{"name", "count", "ratio", "size", "enabled", "mode", "timeout", "token", "pins", "level",
		"tags", "labels", "routes", "by_name", "auth", "optional", "retries", "extra", "shape", "shape2", "pshape", "region"}
	if got := fieldNames(sampleFields); !reflect.DeepEqual(got, want) {
		t.Fatalf("names:\n got %v\nwant %v", got, want)
	}

	name := field(t, sampleFields, "name")
	if name.Type != TString || !name.Required || name.Doc != "Name of the thing." || name.Default != "" {
		t.Errorf("name = %+v", name)
	}
	count := field(t, sampleFields, "count")
	if count.Type != TInteger || count.Default != "3" || *count.Min != 1 || *count.Max != 10 {
		t.Errorf("count = %+v", count)
	}
	if f := field(t, sampleFields, "ratio"); f.Type != TNumber || *f.Min != 0 || *f.Max != 1 {
		t.Errorf("ratio = %+v", f)
	}
	if f := field(t, sampleFields, "size"); f.Type != TInteger || f.Min == nil || *f.Min != 0 || f.Max != nil {
		t.Errorf("uint field should get min 0: %+v", f)
	}
	if f := field(t, sampleFields, "enabled"); f.Type != TBoolean || f.Default != "true" {
		t.Errorf("enabled = %+v", f)
	}
	if f := field(t, sampleFields, "mode"); !reflect.DeepEqual(f.Enum, []string{"fast", "slow", "auto"}) {
		t.Errorf("mode enum = %v", f.Enum)
	}
	if f := field(t, sampleFields, "timeout"); f.Type != TDuration || f.Default != "30s" {
		t.Errorf("timeout = %+v", f)
	}
	if f := field(t, sampleFields, "token"); !f.Secret {
		t.Errorf("token not secret")
	}
	if f := field(t, sampleFields, "tags"); f.Type != TArray || f.Elem.Type != TString {
		t.Errorf("tags = %+v", f)
	}
	if f := field(t, sampleFields, "labels"); f.Type != TMap || f.Elem.Type != TString {
		t.Errorf("labels = %+v", f)
	}
	routes := field(t, sampleFields, "routes")
	if routes.Type != TArray || routes.Elem.Type != TObject {
		t.Fatalf("routes = %+v", routes)
	}
	if got := fieldNames(routes.Elem.Fields); !reflect.DeepEqual(got, []string{"pattern", "topic", "auth"}) {
		t.Errorf("route fields = %v", got)
	}
	if f := field(t, routes.Elem.Fields, "pattern"); !f.Required {
		t.Errorf("routes[].pattern should be required")
	}
	if f := field(t, sampleFields, "by_name"); f.Type != TMap || f.Elem.Type != TObject || len(f.Elem.Fields) != 3 {
		t.Errorf("by_name = %+v", f)
	}
	auth := field(t, sampleFields, "auth")
	if auth.Type != TObject || field(t, auth.Fields, "mode").Default != "basic" || !field(t, auth.Fields, "password").Secret {
		t.Errorf("auth = %+v", auth)
	}
	if f := field(t, sampleFields, "optional"); f.Type != TObject || len(f.Fields) != 2 {
		t.Errorf("pointer to struct should be an object: %+v", f)
	}
	if f := field(t, sampleFields, "retries"); f.Type != TInteger || f.Default != "2" {
		t.Errorf("pointer to int = %+v", f)
	}
	if f := field(t, sampleFields, "extra"); f.Type != TAny {
		t.Errorf("yaml.Node should be any: %+v", f)
	}
	for _, n := range []string{"shape", "shape2"} {
		if f := field(t, sampleFields, n); f.Type != TAny || f.Doc != "a string or a list" || f.Schema == nil {
			t.Errorf("%s: Describer not used: %+v", n, f)
		}
	}
	if f := field(t, sampleFields, "pshape"); f.Type != TString || f.Doc != "pointer describer" {
		t.Errorf("pointer-receiver Describer not used: %+v", f)
	}
	if f := field(t, sampleFields, "region"); f.Default != "eu" {
		t.Errorf("inline field = %+v", f)
	}
	if FieldsOf(reflect.TypeFor[int]()) != nil {
		t.Errorf("FieldsOf(int) should be nil")
	}
	if got := fieldNames(FieldsOf(reflect.TypeFor[**sampleRoute]())); len(got) != 3 {
		t.Errorf("FieldsOf(**T) = %v", got)
	}
}

func TestFieldsOfInlineWithOtherOptions(t *testing.T) {
	type outer struct {
		embedded `yaml:",omitempty,inline"`
		Own      string `yaml:"own,omitempty"`
	}
	if got := fieldNames(FieldsOf(reflect.TypeFor[outer]())); !reflect.DeepEqual(got, []string{"region", "own"}) {
		t.Errorf("got %v", got)
	}
}

// ---- Check -----------------------------------------------------------------

// only returns the single problem of ps, failing otherwise.
func only(t *testing.T, ps []Problem) Problem {
	t.Helper()
	if len(ps) != 1 {
		t.Fatalf("want 1 problem, got %d: %v", len(ps), Problems(ps))
	}
	return ps[0]
}

func assertProblem(t *testing.T, p Problem, path string, line, col int, msg string) {
	t.Helper()
	if p.Path != path || p.Line != line || col != 0 && p.Column != col || !strings.Contains(p.Message, msg) {
		t.Errorf("problem = %q at %s %d:%d\nwant %q at %s %d:%d", p.Message, p.Path, p.Line, p.Column, msg, path, line, col)
	}
}

func TestCheckValid(t *testing.T) {
	doc := `
name: x
count: 10
ratio: 0.5
size: 0
enabled: false
mode: fast
timeout: 1m30s
token: 12345
tags: [a, b]
labels: {a: b}
routes:
  - pattern: p
    auth: {mode: token}
by_name:
  one: {pattern: q}
auth: {password: pw}
optional: ~
retries: 0
extra: {anything: [goes]}
shape: [1, 2]
region: us
`
	if ps := Check(sampleFields, parse(t, doc), "cfg"); len(ps) != 0 {
		t.Fatalf("unexpected problems: %v", Problems(ps))
	}
}

func TestCheckUnknownKeyDidYouMean(t *testing.T) {
	ps := Check(sampleFields, parse(t, "name: x\ncuont: 3\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.cuont", 2, 1, `unknown key "cuont" (did you mean "count"?)`)

	ps = Check(sampleFields, parse(t, "name: x\nzzzzzzzz: 3\n"), "cfg")
	p := only(t, ps)
	assertProblem(t, p, "cfg.zzzzzzzz", 2, 1, `unknown key "zzzzzzzz"`)
	if strings.Contains(p.Message, "did you mean") {
		t.Errorf("no suggestion expected for a far-off key: %q", p.Message)
	}
}

func TestCheckMissingRequired(t *testing.T) {
	ps := Check(sampleFields, parse(t, "\ncount: 3\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.name", 2, 1, `required key "name" is missing`)

	// Nested: a list item lacking its required key is located at the item.
	ps = Check(sampleFields, parse(t, "name: x\nroutes:\n  - topic: t\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.routes[0].pattern", 3, 5, `required key "pattern" is missing`)

	// A required key given as null.
	ps = Check(sampleFields, parse(t, "name:\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.name", 1, 6, `"name" must have a value`)

	// No document at all.
	ps = Check(sampleFields, nil, "cfg")
	assertProblem(t, only(t, ps), "cfg.name", 0, 0, `required key "name" is missing`)
}

func TestCheckZeroNodeIsAbsent(t *testing.T) {
	// A yaml.Node field whose key was absent holds the zero Node; checking
	// it must mean "no config", not "expected a mapping, got \"\"".
	type opt struct {
		A int `yaml:"a" default:"1"`
	}
	var zero yaml.Node
	if ps := Check(FieldsOf(reflect.TypeFor[opt]()), &zero, "x.config"); len(ps) != 0 {
		t.Fatalf("zero node: %v", Problems(ps))
	}
	v, ps := Decode[opt](&zero, "x.config")
	if len(ps) != 0 || v.A != 1 {
		t.Fatalf("Decode(zero) = %+v, %v", v, Problems(ps))
	}
	ps = Check(sampleFields, &zero, "x.config")
	assertProblem(t, only(t, ps), "x.config.name", 0, 0, `required key "name" is missing`)
	if ps := CheckValue(field(t, sampleFields, "count"), nil, "x"); len(ps) != 0 {
		t.Errorf("CheckValue(nil) = %v", Problems(ps))
	}
}

func TestCheckWrongType(t *testing.T) {
	cases := []struct {
		doc, path, msg string
		line, col      int
	}{
		{"name: x\ncount: many\n", "cfg.count", `expected an integer, got "many"`, 2, 8},
		{"name: x\ncount: \"3\"\n", "cfg.count", `expected an integer, got "3"`, 2, 8},
		{"name: x\ncount: 2.5\n", "cfg.count", `expected an integer, got number 2.5`, 2, 8},
		{"name: [a, b]\n", "cfg.name", `expected a string, got a list`, 1, 7},
		{"name: {a: b}\n", "cfg.name", `expected a string, got a mapping`, 1, 7},
		{"name: x\nenabled: yes\n", "cfg.enabled", `expected true or false, got "yes"`, 2, 10},
		{"name: x\nratio: half\n", "cfg.ratio", `expected a number, got "half"`, 2, 8},
		{"name: x\ntimeout: 30\n", "cfg.timeout", `expected a duration such as "30s" or "5m", got integer 30`, 2, 10},
		{"name: x\ntags: a\n", "cfg.tags", `expected a list, got "a"`, 2, 7},
		{"name: x\ntags: [a, [b]]\n", "cfg.tags[1]", `expected a string, got a list`, 2, 11},
		{"name: x\nlabels: [a]\n", "cfg.labels", `expected a mapping, got a list`, 2, 9},
		{"name: x\nlabels: {k: [v]}\n", "cfg.labels.k", `expected a string, got a list`, 2, 13},
		{"name: x\nauth: basic\n", "cfg.auth", `expected a mapping of keys, got "basic"`, 2, 7},
		{"name: x\nroutes: [{pattern: p, auth: {mode: tokn}}]\n", "cfg.routes[0].auth.mode", `"tokn" is not allowed (allowed: basic, token) (did you mean "token"?)`, 2, 36},
	}
	for _, c := range cases {
		ps := Check(sampleFields, parse(t, c.doc), "cfg")
		if len(ps) != 1 {
			t.Errorf("%q: want 1 problem, got %v", c.doc, Problems(ps))
			continue
		}
		assertProblem(t, ps[0], c.path, c.line, c.col, c.msg)
	}
}

func TestCheckEnum(t *testing.T) {
	ps := Check(sampleFields, parse(t, "name: x\nmode: fsat\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.mode", 2, 7, `"fsat" is not allowed (allowed: fast, slow, auto) (did you mean "fast"?)`)

	ps = Check(sampleFields, parse(t, "name: x\nmode: turbo-charged\n"), "cfg")
	p := only(t, ps)
	if p.Message != `"turbo-charged" is not allowed (allowed: fast, slow, auto)` {
		t.Errorf("message = %q", p.Message)
	}
}

func TestCheckRange(t *testing.T) {
	cases := []struct{ doc, path, msg string }{
		{"name: x\ncount: 11\n", "cfg.count", "11 is out of range (allowed: 1 to 10)"},
		{"name: x\ncount: 0\n", "cfg.count", "0 is out of range (allowed: 1 to 10)"},
		{"name: x\nratio: 1.5\n", "cfg.ratio", "1.5 is out of range (allowed: 0 to 1)"},
		{"name: x\nsize: -1\n", "cfg.size", "-1 is out of range (allowed: at least 0)"},
	}
	for _, c := range cases {
		p := only(t, Check(sampleFields, parse(t, c.doc), "cfg"))
		if p.Path != c.path || p.Message != c.msg || p.Line != 2 {
			t.Errorf("%q: got %s (line %d): %q, want %s: %q", c.doc, p.Path, p.Line, p.Message, c.path, c.msg)
		}
	}
	max := 5.5
	f := Field{Name: "n", Type: TNumber, Max: &max}
	p := only(t, CheckValue(f, parse(t, "6"), "n"))
	if p.Message != "6 is out of range (allowed: at most 5.5)" {
		t.Errorf("message = %q", p.Message)
	}
	// Number spellings YAML accepts as integers.
	for _, v := range []string{"0x0A", "1_0", "+7", "0o7"} {
		if ps := Check(sampleFields, parse(t, "name: x\ncount: "+v+"\n"), "cfg"); len(ps) != 0 {
			t.Errorf("count: %s: %v", v, Problems(ps))
		}
	}
}

func TestCheckDuplicateKey(t *testing.T) {
	ps := Check(sampleFields, parse(t, "name: x\ncount: 1\ncount: 2\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.count", 3, 1, `duplicate key "count"`)

	// Also between the entries of a map.
	ps = Check(sampleFields, parse(t, "name: x\nby_name:\n  a: {pattern: p}\n  a: {pattern: q}\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.by_name.a", 4, 3, `duplicate key "a"`)
}

func TestCheckSecretsNeverEchoed(t *testing.T) {
	const secret = "hunter2"
	docs := []string{
		"name: x\ntoken: [hunter2]\n",
		"name: x\ntoken: {user: hunter2}\n",
		"name: x\ntoken: [{k: hunter2}]\n",
		"name: x\npins: [hunter2]\n",
		"name: x\npins: hunter2\n",
		"name: x\nlevel: hunter2\n",
		"name: x\nlevel: [hunter2]\n",
		"name: x\nauth: {password: [hunter2]}\n",
		"name: x\nauth: {password: {hunter: hunter2}}\n",
	}
	p := only(t, Check(sampleFields, parse(t, "name: x\ntoken: [hunter2]\n"), "cfg"))
	if p.Message != "expected a string, got a list" {
		t.Errorf("message = %q", p.Message)
	}
	p = only(t, Check(sampleFields, parse(t, "name: x\npins: [7, hunter2]\n"), "cfg"))
	if p.Path != "cfg.pins[1]" || p.Message != "expected an integer, got a value" {
		t.Errorf("message = %s", p.Error())
	}
	for _, doc := range docs {
		ps := Check(sampleFields, parse(t, doc), "cfg")
		if len(ps) == 0 {
			t.Errorf("%q: expected a problem", doc)
		}
		for _, p := range ps {
			if strings.Contains(p.Error(), secret) {
				t.Errorf("%q: secret leaked: %s", doc, p.Error())
			}
		}
	}
	p = only(t, Check(sampleFields, parse(t, "name: x\nlevel: hihg\n"), "cfg"))
	if strings.Contains(p.Message, "hihg") || !strings.Contains(p.Message, "allowed: low, high") {
		t.Errorf("secret enum message = %q", p.Message)
	}
	max := 1000.0
	p = only(t, CheckValue(Field{Name: "pin", Type: TInteger, Max: &max, Secret: true}, parse(t, "4321"), "pin"))
	if strings.Contains(p.Message, "4321") || !strings.Contains(p.Message, "out of range") {
		t.Errorf("secret range message = %q", p.Message)
	}
}

func TestCheckMergeKeys(t *testing.T) {
	doc := `
base: &base
  pattern: p
  topic: shared
  auth: {mode: token}
routes:
  - <<: *base
    topic: own
  - <<: [*base]
`
	type withRoutes struct {
		Base   yaml.Node     `yaml:"base"`
		Routes []sampleRoute `yaml:"routes"`
	}
	v, ps := Decode[withRoutes](parse(t, doc), "")
	if len(ps) != 0 {
		t.Fatalf("merge keys: %v", Problems(ps))
	}
	if v.Routes[0].Pattern != "p" || v.Routes[0].Topic != "own" || v.Routes[0].Auth.Mode != "token" || v.Routes[1].Topic != "shared" {
		t.Errorf("decoded %+v", v.Routes)
	}
	if n := Find(parse(t, doc), "routes[1].pattern"); n == nil || n.Line != 3 {
		t.Errorf("Find through a merge key = %v", n)
	}

	bad := "routes:\n  - <<: {patern: p}\n  - <<: scalar\n    pattern: q\n"
	ps = Check(FieldsOf(reflect.TypeFor[withRoutes]()), parse(t, bad), "")
	if len(ps) != 3 {
		t.Fatalf("want 3 problems, got %v", Problems(ps))
	}
	Problems(ps).Sort()
	assertProblem(t, ps[0], "routes[0].pattern", 2, 5, `required key "pattern" is missing`)
	assertProblem(t, ps[1], "routes[0].patern", 2, 10, `unknown key "patern" (did you mean "pattern"?)`)
	assertProblem(t, ps[2], "routes[1].<<", 3, 9, "merge key")
}

// ---- Decode and defaults ---------------------------------------------------

func TestDecodeDefaults(t *testing.T) {
	doc := `
name: x
routes:
  - pattern: a
  - pattern: b
    topic: own
    auth: {password: pw}
  - pattern: c
    topic:
    auth:
by_name:
  first: {pattern: f}
  second: {pattern: s, auth: {mode: token}}
`
	v, ps := Decode[sampleConfig](parse(t, doc), "cfg")
	if len(ps) != 0 {
		t.Fatalf("problems: %v", Problems(ps))
	}
	if v.Count != 3 || !v.Enabled || v.Mode != "auto" || v.Timeout != 30*time.Second || v.Region != "eu" {
		t.Errorf("top-level defaults: %+v", v)
	}
	if v.Auth.Mode != "basic" {
		t.Errorf("nested struct default: %q", v.Auth.Mode)
	}
	if v.Retries == nil || *v.Retries != 2 {
		t.Errorf("pointer default: %v", v.Retries)
	}
	if v.Optional != nil {
		t.Errorf("absent pointer struct should stay nil: %+v", v.Optional)
	}
	want := []sampleRoute{
		{Pattern: "a", Topic: "fallback", Auth: sampleAuth{Mode: "basic"}},
		{Pattern: "b", Topic: "own", Auth: sampleAuth{Mode: "basic", Password: "pw"}},
		{Pattern: "c", Topic: "fallback", Auth: sampleAuth{Mode: "basic"}},
	}
	if !reflect.DeepEqual(v.Routes, want) {
		t.Errorf("list items:\n got %+v\nwant %+v", v.Routes, want)
	}
	if got := v.ByName["first"]; got.Topic != "fallback" || got.Auth.Mode != "basic" {
		t.Errorf("map entry defaults: %+v", got)
	}
	if got := v.ByName["second"]; got.Topic != "fallback" || got.Auth.Mode != "token" {
		t.Errorf("map entry given values: %+v", got)
	}
}

func TestDecodeExplicitValuesWin(t *testing.T) {
	doc := "name: x\ncount: 1\nenabled: false\nmode: slow\ntimeout: 2s\nretries: 0\nregion: us\nauth: {mode: token}\noptional: {}\n"
	v, ps := Decode[sampleConfig](parse(t, doc), "")
	if len(ps) != 0 {
		t.Fatal(Problems(ps))
	}
	if v.Count != 1 || v.Enabled || v.Mode != "slow" || v.Timeout != 2*time.Second || *v.Retries != 0 || v.Region != "us" || v.Auth.Mode != "token" {
		t.Errorf("got %+v", v)
	}
	if v.Optional == nil || v.Optional.Mode != "basic" {
		t.Errorf("present pointer struct gets its defaults: %+v", v.Optional)
	}
}

func TestDecodeNullTakesDefault(t *testing.T) {
	v, ps := Decode[sampleConfig](parse(t, "name: x\ncount:\nmode: ~\n"), "")
	if len(ps) != 0 {
		t.Fatal(Problems(ps))
	}
	if v.Count != 3 || v.Mode != "auto" {
		t.Errorf("null should mean default: count=%d mode=%q", v.Count, v.Mode)
	}
}

func TestDecodeCheckProblemsStopDecoding(t *testing.T) {
	v, ps := Decode[sampleConfig](parse(t, "count: x\n"), "cfg")
	if v != nil || len(ps) != 2 {
		t.Fatalf("got %v, %v", v, Problems(ps))
	}
}

// A wrong type in a block does not hide what the block's Validate finds
// about its other keys (port: "abc" and a bad slot name are both
// reported); what Validate would say about the values the check already
// named, or about the block as a whole, is left out: it would repeat them
// or be wrong.
func TestDecodeValidatesTheRestOfABlockWithProblems(t *testing.T) {
	doc := "name: x\ncount: abc\nroutes:\n  - pattern: a\n    topic: t\n  - pattern: b\n    topic: t\nmode: sometimes\nbogus: 1\n"
	v, ps := Decode[sampleConfig](parse(t, doc), "cfg")
	if v != nil || len(ps) != 4 {
		t.Fatalf("got %v:\n%v", v, Problems(ps))
	}
	assertProblem(t, ps[0], "cfg.count", 2, 8, "expected an integer")
	assertProblem(t, ps[1], "cfg.routes[1].topic", 7, 12, "same topic as routes[0]")
	assertProblem(t, ps[2], "cfg.mode", 8, 7, "not allowed")
	assertProblem(t, ps[3], "cfg.bogus", 9, 1, "unknown key")

	// Validate's problem about the whole block is not reported next to
	// one about a key.
	_, ps = Decode[sampleConfig](parse(t, "name: whole\ncount: abc\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.count", 2, 8, "expected an integer")
	// Nor one about the value that was wrong: left out, routes[1].topic
	// takes its default, the same as routes[0]'s.
	_, ps = Decode[sampleConfig](parse(t, "name: x\nroutes:\n  - pattern: a\n  - pattern: b\n    topic: [t]\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.routes[1].topic", 5, 12, "expected a string")
}

// However many problems a block has, at most MaxProblems are listed, the
// first by position, and one more entry counts the rest.
func TestCheckListsTheFirstProblemsAndCountsTheRest(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: x\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "unknown_%d: 1\n", i)
	}
	ps := Problems(Check(sampleFields, parse(t, b.String()), "cfg"))
	listed := ps.Listed()
	if len(listed) != MaxProblems || len(ps) != MaxProblems+1 || ps.Count() != 5000 {
		t.Fatalf("listed %d, entries %d, count %d", len(listed), len(ps), ps.Count())
	}
	for i, p := range listed {
		if p.Line != i+2 {
			t.Fatalf("problem %d is at line %d, want the first ones by position: %v", i, p.Line, p)
		}
	}
	last := ps[len(ps)-1]
	if last.Omitted != 4900 || !strings.Contains(last.Error(), "4900 more") {
		t.Errorf("last entry %+v", last)
	}
	// Decode does not try to validate what it cannot list.
	if v, dps := Decode[sampleConfig](parse(t, b.String()), "cfg"); v != nil || Problems(dps).Count() != 5000 {
		t.Errorf("Decode: %v, %d problems", v, Problems(dps).Count())
	}
}

// The collector keeps the first problems by position whatever the order
// they come in, in memory bounded by its limit, and adds up counts of
// problems left out of lists capped elsewhere.
func TestCollector(t *testing.T) {
	c := Collector{Max: 3}
	for _, line := range []int{9, 4, 7, 1, 8, 4, 2} {
		c.Add(Problem{Line: line, Message: fmt.Sprint(line)})
	}
	c.Add(Problem{Omitted: 10, Message: "ten more"})
	if len(c.kept) != 3 {
		t.Fatalf("kept %d", len(c.kept))
	}
	ps := c.Problems()
	var got []int
	for _, p := range ps.Listed() {
		got = append(got, p.Line)
	}
	if !reflect.DeepEqual(got, []int{1, 2, 4}) || ps.Count() != 17 || c.Len() != 17 {
		t.Fatalf("listed %v, count %d, len %d", got, ps.Count(), c.Len())
	}
	// Equal positions keep the order they were added in.
	c = Collector{Max: 2}
	c.Add(Problem{Line: 1, Message: "a"}, Problem{Line: 1, Message: "b"}, Problem{Line: 1, Message: "c"})
	if ps := c.Problems(); ps[0].Message != "a" || ps[1].Message != "b" || ps[2].Omitted != 1 {
		t.Errorf("got %v", ps)
	}
	// Sort puts a count of omitted problems last.
	ps = Problems{{Omitted: 2, Message: "more"}, {Line: 5}, {Line: 0}}
	ps.Sort()
	if ps[0].Line != 0 || ps[1].Line != 5 || ps[2].Omitted != 2 {
		t.Errorf("sorted %v", ps)
	}
	if (&Collector{}).Problems() != nil {
		t.Errorf("an empty collector has problems")
	}
}

func TestDecodeValidatorProblemsAreLocated(t *testing.T) {
	doc := "name: x\nroutes:\n  - pattern: a\n    topic: t\n  - pattern: b\n    topic: t\n"
	_, ps := Decode[sampleConfig](parse(t, doc), "sources.s.config")
	assertProblem(t, only(t, ps), "sources.s.config.routes[1].topic", 6, 12, "same topic as routes[0]")

	// A problem about the struct as a whole gets the struct's path (no
	// trailing dot) and its line.
	_, ps = Decode[sampleConfig](parse(t, "\n\nname: whole\n"), "sources.s.config")
	assertProblem(t, only(t, ps), "sources.s.config", 3, 1, "the whole config is wrong")

	// At the root.
	_, ps = Decode[sampleConfig](parse(t, "name: whole\n"), "")
	assertProblem(t, only(t, ps), "", 1, 1, "the whole config is wrong")

	// A location the validator gives is kept.
	_, ps = Decode[sampleConfig](parse(t, "name: located\n"), "cfg")
	assertProblem(t, only(t, ps), "cfg.name", 99, 7, "kept as given")
}

func TestFillDefaultsDocument(t *testing.T) {
	n := parse(t, "routes:\n  - pattern: a\n")
	FillDefaults(sampleFields, n)
	if got := Find(n, "routes[0].topic"); got == nil || got.Value != "fallback" {
		t.Errorf("routes[0].topic = %v", got)
	}
	if got := Find(n, "routes[0].auth.mode"); got == nil || got.Value != "basic" {
		t.Errorf("routes[0].auth.mode = %v", got)
	}
	if got := Find(n, "count"); got == nil || got.Value != "3" || got.ShortTag() != "!!int" {
		t.Errorf("count = %+v", got)
	}
	if Find(n, "optional") != nil {
		t.Errorf("an absent pointer struct must not be created")
	}
	if Find(n, "name") != nil {
		t.Errorf("a field without a default must not be created")
	}
}

func TestApplyDefaults(t *testing.T) {
	var c sampleConfig
	if err := ApplyDefaults(&c); err != nil {
		t.Fatal(err)
	}
	if c.Count != 3 || !c.Enabled || c.Mode != "auto" || c.Timeout != 30*time.Second || c.Auth.Mode != "basic" || *c.Retries != 2 || c.Region != "eu" {
		t.Errorf("got %+v", c)
	}
	if err := ApplyDefaults(c); err == nil {
		t.Errorf("a non-pointer must be refused")
	}
	type badDefault struct {
		N int `yaml:"n" default:"many"`
	}
	if err := ApplyDefaults(&badDefault{}); err == nil {
		t.Errorf("a bad default must be an error")
	}
	_, ps := Decode[badDefault](parse(t, "{}"), "x")
	if p := only(t, ps); !strings.Contains(p.Message, "bad default") {
		t.Errorf("got %v", p)
	}
}

// ---- Find, Join, Problem ---------------------------------------------------

func TestFind(t *testing.T) {
	n := parse(t, "a:\n  b: [x, {c: 1}]\n  cdc.orders:\n    topic: t\n  cdc: &x {orders: {topic: u}}\nalias: *x\n")
	cases := map[string]string{
		"a.b[0]":              "x",
		"a.b[1].c":            "1",
		"a.cdc.orders.topic":  "t",
		"alias.orders.topic":  "u",
		"a.cdc.orders[0]":     "",
		"a.b[2]":              "",
		"a.b[x]":              "",
		"a.missing":           "",
		"a.b.c":               "",
		"a.b[1].c.d":          "",
		"a.cdc.orders.topic.": "",
	}
	for path, want := range cases {
		got := Find(n, path)
		switch {
		case want == "" && got != nil:
			t.Errorf("Find(%q) = %q, want nil", path, got.Value)
		case want != "" && (got == nil || got.Value != want):
			t.Errorf("Find(%q) = %v, want %q", path, got, want)
		}
	}
	if got := Find(n, ""); got == nil || got.Kind != yaml.MappingNode {
		t.Errorf("Find(\"\") should be the node itself")
	}
	if Find(nil, "a") != nil {
		t.Errorf("Find(nil)")
	}
}

func TestJoinIndexAndProblemText(t *testing.T) {
	if Join("", "a") != "a" || Join("a", "b") != "a.b" || Join("a", "") != "a" {
		t.Error("Join")
	}
	if Index("a", 2) != "a[2]" {
		t.Error("Index")
	}
	cases := map[string]Problem{
		"a.b (line 3:4): bad": {Path: "a.b", Line: 3, Column: 4, Message: "bad"},
		"a.b: bad":            {Path: "a.b", Message: "bad"},
		"bad":                 {Message: "bad"},
		"line 2:1: bad":       {Line: 2, Column: 1, Message: "bad"},
	}
	for want, p := range cases {
		if p.Error() != want {
			t.Errorf("Error() = %q, want %q", p.Error(), want)
		}
	}
	ps := Problems{{Line: 5, Message: "e"}, {Line: 2, Column: 9, Message: "c"}, {Message: "a"}, {Line: 2, Column: 3, Message: "b"}, {Line: 5, Message: "f"}}
	ps.Sort()
	var order string
	for _, p := range ps {
		order += p.Message
	}
	if order != "abcef" {
		t.Errorf("sorted order %q", order)
	}
	if ps.Error() != "a\nline 2:3: b\nline 2:9: c\nline 5:0: e\nline 5:0: f" {
		t.Errorf("Problems.Error() = %q", ps.Error())
	}
	n := &yaml.Node{Line: 4, Column: 2}
	if p := At(n, "x", "got %d", 7); p.Line != 4 || p.Column != 2 || p.Message != "got 7" {
		t.Errorf("At = %+v", p)
	}
	if p := At(nil, "x", "m"); p.Line != 0 {
		t.Errorf("At(nil) = %+v", p)
	}
}

// ---- JSON Schema -----------------------------------------------------------

func TestJSONSchema(t *testing.T) {
	s := JSONSchema(sampleFields)
	// It must survive a JSON round trip (that is how it is published).
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["type"] != "object" || got["additionalProperties"] != false {
		t.Errorf("root = %v", got)
	}
	if !reflect.DeepEqual(got["required"], []any{"name"}) {
		t.Errorf("required = %v", got["required"])
	}
	props := got["properties"].(map[string]any)
	prop := func(path ...string) map[string]any {
		m := props
		var p map[string]any
		for i, k := range path {
			p = m[k].(map[string]any)
			if i < len(path)-1 {
				switch {
				case p["items"] != nil:
					p = p["items"].(map[string]any)
				case p["properties"] == nil:
					p = p["additionalProperties"].(map[string]any)
				}
				m = p["properties"].(map[string]any)
			}
		}
		return p
	}
	count := prop("count")
	if count["type"] != "integer" || count["minimum"] != 1.0 || count["maximum"] != 10.0 || count["default"] != 3.0 || count["description"] != "How many." {
		t.Errorf("count = %v", count)
	}
	if m := prop("mode"); !reflect.DeepEqual(m["enum"], []any{"fast", "slow", "auto"}) || m["default"] != "auto" {
		t.Errorf("mode = %v", m)
	}
	if m := prop("size"); m["minimum"] != 0.0 {
		t.Errorf("size = %v", m)
	}
	if m := prop("enabled"); m["type"] != "boolean" || m["default"] != true {
		t.Errorf("enabled = %v", m)
	}
	if m := prop("token"); m["writeOnly"] != true || m["type"] != "string" {
		t.Errorf("token = %v", m)
	}
	if m := prop("name"); m["writeOnly"] != nil {
		t.Errorf("name is not secret: %v", m)
	}
	if m := prop("tags"); m["type"] != "array" || m["items"].(map[string]any)["type"] != "string" {
		t.Errorf("tags = %v", m)
	}
	if m := prop("labels"); m["type"] != "object" || m["additionalProperties"].(map[string]any)["type"] != "string" {
		t.Errorf("labels = %v", m)
	}
	routes := prop("routes")["items"].(map[string]any)
	if routes["additionalProperties"] != false || !reflect.DeepEqual(routes["required"], []any{"pattern"}) {
		t.Errorf("routes items = %v", routes)
	}
	if m := prop("routes", "auth", "password"); m["writeOnly"] != true {
		t.Errorf("routes[].auth.password = %v", m)
	}
	if m := prop("by_name", "topic"); m["default"] != "fallback" {
		t.Errorf("by_name.*.topic = %v", m)
	}
	if m := prop("extra"); len(m) != 1 || m["description"] == nil {
		t.Errorf("extra (any) = %v", m)
	}
	if m := prop("shape"); m["oneOf"] == nil {
		t.Errorf("Schema override not used: %v", m)
	}
	if m := prop("timeout"); m["type"] != "string" || m["pattern"] != DurationPattern || m["default"] != "30s" {
		t.Errorf("timeout = %v", m)
	}
	if m := prop("auth"); m["required"] != nil {
		t.Errorf("auth has no required keys: %v", m)
	}
}

func TestDurationPatternMatchesParseDuration(t *testing.T) {
	re := regexp.MustCompile(DurationPattern)
	for _, s := range []string{"0", "30s", "1h30m", "1.5h", ".5s", "300ms", "10us", "10µs", "10μs", "5ns", "-5m", "+1s", "2h45m30.5s", "1.s",
		"", "5", "s", "1d", "1 s", "1h 30m", "--1s", "0.0", "abc", "1e3s"} {
		_, err := ParseDuration(s)
		if got, want := re.MatchString(s), err == nil; got != want {
			t.Errorf("%q: pattern says %v, ParseDuration says %v (%v)", s, got, want, err)
		}
	}
}

// ---- Markdown --------------------------------------------------------------

func TestMarkdownTable(t *testing.T) {
	md := MarkdownTable(sampleFields)
	lines := strings.Split(strings.TrimSpace(md), "\n")
	if lines[0] != "| Parameter | Type | Required | Default | Description |" || !strings.HasPrefix(lines[1], "|:--") {
		t.Fatalf("header: %q", lines[:2])
	}
	rows := map[string]string{}
	for _, l := range lines[2:] {
		name := strings.Trim(strings.SplitN(l, "|", 3)[1], " `")
		rows[name] = l
	}
	want := map[string]string{
		"name":          "| `name` | string | ✓ | - | Name of the thing. |",
		"count":         "| `count` | integer |  | `3` | How many. Range: 1 to 10. |",
		"size":          "| `size` | integer |  | - | Unsigned. Range: at least 0. |",
		"mode":          "| `mode` | string |  | `auto` | Speed. One of: `fast`, `slow`, `auto`. |",
		"token":         "| `token` | string |  | - | API token. Secret: redacted in output. |",
		"tags":          "| `tags` | list of string |  | - | Tags. |",
		"labels":        "| `labels` | map of string |  | - | Labels. |",
		"routes":        "| `routes` | list of object |  | - | Routes. |",
		"auth":          "| `auth` | object |  | - | Auth. |",
		"auth.mode":     "| `auth.mode` | string |  | `basic` | Auth mode. One of: `basic`, `token`. |",
		"auth.password": "| `auth.password` | string |  | - | Password. Secret: redacted in output. |",
		"optional.mode": "| `optional.mode` | string |  | `basic` | Auth mode. One of: `basic`, `token`. |",
		"timeout":       "| `timeout` | duration |  | `30s` | Timeout. |",
		"region":        "| `region` | string |  | `eu` | Region. |",
	}
	for name, row := range want {
		if rows[name] != row {
			t.Errorf("row %s:\n got %q\nwant %q", name, rows[name], row)
		}
	}
	if len(rows) != len(sampleFields)+4 { // + auth.*, optional.*
		t.Errorf("%d rows:\n%s", len(rows), md)
	}
	// A pipe in a doc string must not break the table.
	md = MarkdownTable([]Field{{Name: "x", Type: TString, Doc: "a | b\nc"}})
	if !strings.Contains(md, "| `x` | string |  | - | a \\| b c |\n") {
		t.Errorf("escaping: %q", md)
	}
}

// ---- did-you-mean ----------------------------------------------------------

func TestLevenshtein(t *testing.T) {
	cases := []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"sources", "sourcs", 1}, {"topic", "topik", 1}, {"flaw", "lawn", 2}, {"abc", "abc", 0},
	}
	for _, c := range cases {
		if got := levenshtein(c.a, c.b); got != c.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
		if got := levenshtein(c.b, c.a); got != c.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d (symmetry)", c.b, c.a, got, c.d)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"sources", "sinks", "settings", "broker", "version", "secrets"}
	cases := map[string]string{
		"sourcs":   "sources",
		"Sources":  "sources",
		"sink":     "sinks",
		"brokers":  "broker",
		"setings":  "settings",
		"verison":  "version",
		"xyz":      "",
		"a":        "",
		"pipeline": "",
	}
	for in, want := range cases {
		if got := Closest(in, names); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
	if Closest("x", nil) != "" {
		t.Error("no candidates")
	}
	if got := suggest("datagn", []string{"datagen", "stdout"}); got != ` (did you mean "datagen"?)` {
		t.Errorf("suggest = %q", got)
	}
}

// CheckValue validates one value against a field description, for tests
// of the checks one value gets.
func CheckValue(f Field, node *yaml.Node, path string) []Problem {
	c := newChecker()
	c.value(f, node, path)
	return c.out.Problems()
}
