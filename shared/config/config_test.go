package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

// ---- a small fake catalog ----------------------------------------------------

type datagenConfig struct {
	Pattern         string `yaml:"pattern" required:"true" enum:"orders,users,pageviews" doc:"Data pattern."`
	EventsPerSecond int    `yaml:"events_per_second" default:"1" min:"0" doc:"Rate."`
	MaxEvents       uint64 `yaml:"max_events" default:"0" doc:"0 = unlimited."`
	StreamName      string `yaml:"stream_name" default:"datagen" doc:"Stream name."`
}

type postgresConfig struct {
	Host     string `yaml:"host" default:"localhost"`
	Port     int    `yaml:"port" default:"5432" min:"1" max:"65535"`
	Database string `yaml:"database"`
	User     string `yaml:"user"`
	Password string `yaml:"password" secret:"true"`
}

type stdoutConfig struct {
	Format string `yaml:"format" default:"json" enum:"json,pretty,text" doc:"Output format."`
	Pretty bool   `yaml:"pretty" doc:"Indent JSON."`
}

type filterConfig struct {
	Condition string `yaml:"condition" required:"true" doc:"Expression."`
	Action    string `yaml:"action" default:"keep" enum:"keep,drop" doc:"Keep or drop matches."`
}

type maskConfig struct {
	Fields   []string `yaml:"fields" required:"true"`
	MaskChar string   `yaml:"mask_char" default:"'*'"`
}

type component struct {
	check  func(node *yaml.Node, path string) []spec.Problem
	fields []spec.Field
}

func comp[T any]() component {
	return component{
		check: func(node *yaml.Node, path string) []spec.Problem {
			_, ps := spec.Decode[T](node, path)
			return ps
		},
		fields: spec.FieldsOf(reflect.TypeFor[T]()),
	}
}

// fakeCatalog implements Catalog and ComponentSchemas.
type fakeCatalog struct {
	kinds map[string]map[string]component
	// seen records the config nodes CheckConfig was given, by path.
	seen map[string]*yaml.Node
}

func newCatalog() *fakeCatalog {
	return &fakeCatalog{
		kinds: map[string]map[string]component{
			"source": {
				"datagen":      comp[datagenConfig](),
				"postgres-cdc": comp[postgresConfig](),
			},
			"sink": {
				"stdout": comp[stdoutConfig](),
			},
			"transform": {
				"Filter":                comp[filterConfig](),
				"MaskField":             comp[maskConfig](),
				"ExtractNewRecordState": comp[struct{}](),
			},
		},
		seen: map[string]*yaml.Node{},
	}
}

func (c *fakeCatalog) CheckConfig(kind, name string, node *yaml.Node, path string) ([]spec.Problem, bool) {
	e, ok := c.kinds[kind][name]
	if !ok {
		return nil, false
	}
	c.seen[path] = node
	return e.check(node, path), true
}

func (c *fakeCatalog) Names(kind string) []string {
	var out []string
	for n := range c.kinds[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (c *fakeCatalog) ConfigSchema(kind, name string) (map[string]any, bool) {
	e, ok := c.kinds[kind][name]
	if !ok {
		return nil, false
	}
	return spec.JSONSchema(e.fields), true
}

// ---- helpers ---------------------------------------------------------------

// doc drops the newline after the opening backquote, so that line 1 is the
// first line of the literal.
func doc(s string) []byte { return []byte(strings.TrimPrefix(s, "\n")) }

// noEnv is an environment with nothing set.
var noEnv = Options{Env: func(string) (string, bool) { return "", false }}

func envOf(vars map[string]string) Options {
	return Options{Env: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

func mustParse(t *testing.T, src string, opts Options) *Pipeline {
	t.Helper()
	p, err := Parse(doc(src), newCatalog(), opts)
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	return p
}

func mustFail(t *testing.T, src string, opts Options) spec.Problems {
	t.Helper()
	p, err := Parse(doc(src), newCatalog(), opts)
	if err == nil {
		t.Fatalf("expected problems, got a pipeline: %+v", p.File)
	}
	if p != nil {
		t.Errorf("a failed Parse must not return a pipeline")
	}
	ps := Problems(err)
	if ps == nil {
		t.Fatalf("error is not spec.Problems: %T %v", err, err)
	}
	return ps
}

// expect asserts that ps holds exactly one problem per want, in order.
func expect(t *testing.T, ps spec.Problems, want ...spec.Problem) {
	t.Helper()
	if len(ps) != len(want) {
		t.Fatalf("want %d problem(s), got %d:\n%v", len(want), len(ps), ps)
	}
	for i, w := range want {
		p := ps[i]
		if p.Path != w.Path || p.Line != w.Line || w.Column != 0 && p.Column != w.Column || !strings.Contains(p.Message, w.Message) {
			t.Errorf("problem %d:\n got %s: %q at %d:%d\nwant %s: %q at %d:%d", i, p.Path, p.Message, p.Line, p.Column, w.Path, w.Message, w.Line, w.Column)
		}
	}
}

// ---- one test per error class ----------------------------------------------

const valid = `
version: "1.0"
sources:
  gen:
    connector: datagen
    topic: orders
    config:
      pattern: orders
sinks:
  out:
    connector: stdout
    topics: [orders]
`

func TestValidMinimalFile(t *testing.T) {
	p := mustParse(t, valid, noEnv)
	if p.Version != "1.0" || p.Sources["gen"].Connector != "datagen" || p.Sources["gen"].Topic != "orders" {
		t.Errorf("sources = %+v", p.Sources["gen"])
	}
	if got := p.Sinks["out"].Topics; !reflect.DeepEqual(got, []string{"orders"}) {
		t.Errorf("topics = %v", got)
	}
	if p.Root == nil || p.Path != "" {
		t.Errorf("Root = %v, Path = %q", p.Root, p.Path)
	}
	if spec.Find(&p.Sources["gen"].Config, "pattern").Value != "orders" {
		t.Errorf("config block not kept")
	}
}

func TestUnknownTopLevelKey(t *testing.T) {
	ps := mustFail(t, `
version: "1.0"
sourcs:
  gen: {connector: datagen, topic: t, config: {pattern: orders}}
sinks:
  out: {connector: stdout, topics: [t]}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sourcs", Line: 2, Column: 1, Message: `unknown key "sourcs" (did you mean "sources"?)`})
}

func TestUnknownKeyInSource(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topik: orders
    config: {pattern: orders}
`, noEnv)
	expect(t, ps,
		spec.Problem{Path: "sources.gen.topic", Line: 3, Column: 5, Message: `required key "topic" is missing`},
		spec.Problem{Path: "sources.gen.topik", Line: 4, Column: 5, Message: `unknown key "topik" (did you mean "topic"?)`},
	)
}

func TestMissingRequiredConnector(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    topic: orders
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.gen.connector", Line: 3, Column: 5, Message: `required key "connector" is missing`})
}

func TestMissingRequiredSinkTopics(t *testing.T) {
	ps := mustFail(t, `
sinks:
  out:
    connector: stdout
    config: {format: json}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.out.topics", Line: 3, Column: 5, Message: `required key "topics" is missing`})
}

func TestMissingRequiredConnectorConfigKey(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: orders
    config:
      events_per_second: 5
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.gen.config.pattern", Line: 6, Column: 7, Message: `required key "pattern" is missing`})
}

func TestMissingConfigBlockIsLocated(t *testing.T) {
	// No config block at all: the problem is placed at the source.
	cat := newCatalog()
	_, err := Parse(doc(`
sources:
  gen:
    connector: datagen
    topic: orders
`), cat, noEnv)
	expect(t, Problems(err), spec.Problem{Path: "sources.gen.config.pattern", Line: 3, Column: 5, Message: `required key "pattern" is missing`})
	if n := cat.seen["sources.gen.config"]; n == nil || n.ShortTag() != "!!null" {
		t.Errorf("the catalog should get a null node for a missing config block, got %+v", n)
	}

	// A connector whose config needs nothing may leave the block out.
	p := mustParse(t, `
sinks:
  out:
    connector: stdout
    topics: [t]
`, noEnv)
	if !p.Sinks["out"].Config.IsZero() {
		t.Errorf("absent config block should stay zero: %+v", p.Sinks["out"].Config)
	}
}

func TestBadEnumLogLevel(t *testing.T) {
	ps := mustFail(t, valid+`settings:
  log_level: inof
`, noEnv)
	expect(t, ps, spec.Problem{Path: "settings.log_level", Line: 13, Column: 14,
		Message: `"inof" is not allowed (allowed: debug, info, warn, error) (did you mean "info"?)`})
}

func TestBadEnumConnectorConfig(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: orders
    config:
      pattern: order
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.gen.config.pattern", Line: 6, Column: 16,
		Message: `"order" is not allowed (allowed: orders, users, pageviews) (did you mean "orders"?)`})
}

func TestBadType(t *testing.T) {
	cases := []struct {
		name, src string
		want      spec.Problem
	}{
		{"string for int", valid + "settings:\n  health: {port: eighty}\n",
			spec.Problem{Path: "settings.health.port", Line: 13, Column: 18, Message: `expected an integer, got "eighty"`}},
		{"scalar for list", valid + "broker:\n  bootstrap_servers: localhost:9092\n",
			spec.Problem{Path: "broker.bootstrap_servers", Line: 13, Column: 22, Message: `expected a list, got "localhost:9092"`}},
		{"list for scalar", valid + "settings:\n  log_level: [debug]\n",
			spec.Problem{Path: "settings.log_level", Line: 13, Column: 14, Message: "expected a string, got a list"}},
		{"list for map", "sources:\n  - connector: datagen\n",
			spec.Problem{Path: "sources", Line: 2, Column: 3, Message: "expected a mapping, got a list"}},
		{"bool", valid + "settings:\n  topic: {auto_create: maybe}\n",
			spec.Problem{Path: "settings.topic.auto_create", Line: 13, Column: 24, Message: `expected true or false, got "maybe"`}},
		{"range", valid + "settings:\n  topic: {default_partitions: 0}\n",
			spec.Problem{Path: "settings.topic.default_partitions", Line: 13, Column: 31, Message: "0 is out of range (allowed: 1 to 10000)"}},
		{"connector config type", strings.Replace(valid, "pattern: orders", "pattern: orders\n      events_per_second: fast", 1),
			spec.Problem{Path: "sources.gen.config.events_per_second", Line: 8, Column: 26, Message: `expected an integer, got "fast"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "\n" + strings.TrimPrefix(c.src, "\n")
			expect(t, mustFail(t, src, noEnv), c.want)
		})
	}
}

func TestUnknownConnector(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagn
    topic: orders
    config: {pattern: whatever}
sinks:
  out:
    connector: kafka-sink
    topics: [orders]
`, noEnv)
	expect(t, ps,
		spec.Problem{Path: "sources.gen.connector", Line: 3, Column: 16, Message: `unknown source connector "datagn" (did you mean "datagen"?)`},
		spec.Problem{Path: "sinks.out.connector", Line: 8, Column: 16, Message: `unknown sink connector "kafka-sink"`},
	)
	if strings.Contains(ps[1].Message, "did you mean") {
		t.Errorf("no suggestion expected: %q", ps[1].Message)
	}
	// A source connector is not a sink.
	ps = mustFail(t, `
sinks:
  out:
    connector: datagen
    topics: [orders]
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.out.connector", Line: 3, Column: 16, Message: `unknown sink connector "datagen"`})
}

func TestUnsetVariable(t *testing.T) {
	src := `
sources:
  db:
    connector: postgres-cdc
    topic: cdc.orders
    config:
      user: app
      password: ${DB_PASSWORD}
`
	ps := mustFail(t, src, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.db.config.password", Line: 7, Column: 17, Message: "environment variable DB_PASSWORD is not set"})

	// The real environment is used when Options.Env is nil.
	t.Setenv("DB_PASSWORD", "s3cret")
	p := mustParse(t, src, Options{})
	if got := spec.Find(&p.Sources["db"].Config, "password").Value; got != "s3cret" {
		t.Errorf("password = %q", got)
	}
	// Set but empty is a value, not an error.
	t.Setenv("DB_PASSWORD", "")
	p = mustParse(t, src, Options{})
	if n := spec.Find(&p.Sources["db"].Config, "password"); n.Value != "" || n.ShortTag() != "!!str" {
		t.Errorf("password = %+v", n)
	}
}

func TestUnsetVariableSeveralInOneValue(t *testing.T) {
	ps := mustFail(t, `
sources:
  db:
    connector: postgres-cdc
    topic: ${PREFIX}.${TABLE}
`, envOf(map[string]string{"TABLE": "orders"}))
	expect(t, ps, spec.Problem{Path: "sources.db.topic", Line: 4, Column: 12, Message: "environment variable PREFIX is not set"})
}

func TestVariableSubstitution(t *testing.T) {
	src := `
settings:
  health:
    enabled: ${HEALTH_ON}
    port: ${PORT}
    path: ${HEALTH_PATH:-/healthz}
  metrics:
    port: ${METRICS_PORT:-9999}
  retry:
    backoff_multiplier: ${MULT}
sources:
  gen:
    connector: datagen
    topic: ${TOPIC:-fallback}
    config:
      pattern: ${PATTERN}
      stream_name: "price$$usd and $${NOT_A_VAR}"
sinks:
  out:
    connector: stdout
    topics: ["${TOPIC:-fallback}"]
    consumer_group: ${GROUP:-}
`
	p := mustParse(t, src, envOf(map[string]string{"PORT": "9000", "HEALTH_ON": "true", "PATTERN": "users", "MULT": "1.5"}))
	h := p.Settings.Health
	if h.Port != 9000 || !h.Enabled || h.Path != "/healthz" {
		t.Errorf("health = %+v", h)
	}
	if n := spec.Find(p.Root, "settings.health.port"); n.ShortTag() != "!!int" || n.Value != "9000" {
		t.Errorf("port node = %+v", n)
	}
	if p.Settings.Metrics.Port != 9999 || p.Settings.Retry.BackoffMultiplier != 1.5 {
		t.Errorf("metrics port %d, multiplier %v", p.Settings.Metrics.Port, p.Settings.Retry.BackoffMultiplier)
	}
	if p.Sources["gen"].Topic != "fallback" || !reflect.DeepEqual(p.Sinks["out"].Topics, []string{"fallback"}) {
		t.Errorf("topic %q, topics %v", p.Sources["gen"].Topic, p.Sinks["out"].Topics)
	}
	if p.Sinks["out"].ConsumerGroup != "" {
		t.Errorf("consumer_group = %q", p.Sinks["out"].ConsumerGroup)
	}
	cfg := &p.Sources["gen"].Config
	if got := spec.Find(cfg, "pattern").Value; got != "users" {
		t.Errorf("pattern = %q", got)
	}
	if got := spec.Find(cfg, "stream_name").Value; got != "price$usd and ${NOT_A_VAR}" {
		t.Errorf("$$ escaping: %q", got)
	}
}

func TestVariableKeepsQuotedAndTaggedStrings(t *testing.T) {
	env := envOf(map[string]string{"PORT": "9000"})
	for _, v := range []string{`"${PORT}"`, `'${PORT}'`, `!!str ${PORT}`} {
		ps := mustFail(t, "\nsettings:\n  health:\n    port: "+v+"\n", env)
		if len(ps) != 2 { // + no sources and no sinks
			t.Fatalf("%s: %v", v, ps)
		}
		if p := ps[1]; p.Path != "settings.health.port" || p.Line != 3 || p.Message != `expected an integer, got "9000"` {
			t.Errorf("%s: %s", v, p.Error())
		}
	}
	// A value that only looks numeric in part stays a string.
	p := mustParse(t, `
sources:
  gen: {connector: datagen, topic: "${T}", config: {pattern: orders}}
`, envOf(map[string]string{"T": "123 # not a comment"}))
	if p.Sources["gen"].Topic != "123 # not a comment" {
		t.Errorf("topic = %q", p.Sources["gen"].Topic)
	}
	p = mustParse(t, `
sources:
  gen:
    connector: datagen
    topic: ${T}
    config: {pattern: orders}
`, envOf(map[string]string{"T": "123"}))
	if p.Sources["gen"].Topic != "123" {
		t.Errorf("topic = %q", p.Sources["gen"].Topic)
	}
}

func TestResolveTag(t *testing.T) {
	cases := map[string]string{
		"9000": "!!int", "0x1F": "!!int", "-3": "!!int", "1.5": "!!float", "1e3": "!!float", ".inf": "!!float",
		"true": "!!bool", "false": "!!bool", "yes": "!!str", "~": "!!null", "null": "!!null", "": "!!str",
		"abc": "!!str", "a: b": "!!str", "[1, 2]": "!!str", "- x": "!!str", "123 # c": "!!str", "!!int 5": "!!str",
		"2024-01-01": "!!str", "<<": "!!str", "*x": "!!str",
	}
	for in, want := range cases {
		if got := resolveTag(in); got != want {
			t.Errorf("resolveTag(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBadTransformType(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders}
    transforms:
      - type: Filtr
        config: {condition: "value.amount > 100"}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.gen.transforms[0].type", Line: 7, Column: 15, Message: `unknown transform "Filtr" (did you mean "Filter"?)`})
}

const transformsList = `
sources:
  orders:
    connector: postgres-cdc
    topic: cdc.orders
    transforms:
      - type: ExtractNewRecordState
      - type: MaskField
        config:
          fields: [credit_card]
          mask_char: "X"
      - transform: Filter
        config:
          condition: "value.amount > 100"
          action: keep
`

func TestTransformsListForm(t *testing.T) {
	p := mustParse(t, transformsList, noEnv)
	ts := p.Sources["orders"].Transforms
	if len(ts) != 3 {
		t.Fatalf("%d transforms", len(ts))
	}
	want := []struct{ kind, name, path string }{
		{"ExtractNewRecordState", "ExtractNewRecordState#0", "sources.orders.transforms[0]"},
		{"MaskField", "MaskField#1", "sources.orders.transforms[1]"},
		{"Filter", "Filter#2", "sources.orders.transforms[2]"},
	}
	for i, w := range want {
		if ts[i].Kind() != w.kind || ts[i].Name != w.name || ts[i].Path != w.path {
			t.Errorf("transform %d = kind %q name %q path %q", i, ts[i].Kind(), ts[i].Name, ts[i].Path)
		}
	}
	if ts[2].Alias != "Filter" || ts[2].Type != "" || ts[2].Node == nil || ts[2].Node.Line != 11 {
		t.Errorf("transform 2 = %+v", ts[2])
	}
	if got := spec.Find(&ts[1].Config, "mask_char").Value; got != "X" {
		t.Errorf("mask_char = %q", got)
	}

	ps := mustFail(t, strings.Replace(transformsList, `condition: "value.amount > 100"`, `drop: true`, 1), noEnv)
	expect(t, ps,
		spec.Problem{Path: "sources.orders.transforms[2].config.drop", Line: 13, Column: 11, Message: `unknown key "drop"`},
		spec.Problem{Path: "sources.orders.transforms[2].config.condition", Line: 13, Column: 11, Message: `required key "condition" is missing`},
	)
}

const transformsNamed = `
sources:
  orders:
    connector: postgres-cdc
    topic: cdc.orders
sinks:
  out:
    connector: stdout
    topics: [cdc.orders]
    transforms:
      unwrap:
        type: ExtractNewRecordState
      big_only:
        transform: Filter
        config:
          condition: "value.amount > 100"
`

func TestTransformsNamedMapForm(t *testing.T) {
	p := mustParse(t, transformsNamed, noEnv)
	ts := p.Sinks["out"].Transforms
	if len(ts) != 2 {
		t.Fatalf("%d transforms", len(ts))
	}
	if ts[0].Name != "unwrap" || ts[0].Kind() != "ExtractNewRecordState" || ts[0].Path != "sinks.out.transforms.unwrap" {
		t.Errorf("transform 0 = %q %q %q", ts[0].Name, ts[0].Kind(), ts[0].Path)
	}
	if ts[1].Name != "big_only" || ts[1].Kind() != "Filter" || ts[1].Path != "sinks.out.transforms.big_only" || ts[1].Node.Line != 13 {
		t.Errorf("transform 1 = %q %q %q line %d", ts[1].Name, ts[1].Kind(), ts[1].Path, ts[1].Node.Line)
	}

	ps := mustFail(t, strings.Replace(transformsNamed, `condition: "value.amount > 100"`, `action: drop`, 1), noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.out.transforms.big_only.config.condition", Line: 15, Column: 11, Message: `required key "condition" is missing`})

	// A step with no config block at all is located at the step.
	ps = mustFail(t, strings.Replace(transformsNamed, "        config:\n          condition: \"value.amount > 100\"\n", "", 1), noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.out.transforms.big_only.config.condition", Line: 13, Column: 9, Message: `required key "condition" is missing`})
}

func TestTransformTypeAndTransformBoth(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders}
    transforms:
      - type: Filter
        transform: MaskField
        config: {condition: x}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.gen.transforms[0].transform", Line: 8, Column: 20, Message: "give either type or transform, not both"})
}

func TestTransformStepProblems(t *testing.T) {
	cases := []struct {
		name, steps string
		want        []spec.Problem
	}{
		{"no type", "      - config: {condition: x}\n",
			[]spec.Problem{{Path: "sources.gen.transforms[0].type", Line: 7, Column: 9, Message: "transform step needs a type"}}},
		{"empty step", "      -\n      - type: Filter\n        config: {condition: x}\n",
			[]spec.Problem{{Path: "sources.gen.transforms[0]", Line: 7, Column: 8, Message: "transform step is empty"}}},
		{"scalar step", "      - Filter\n",
			[]spec.Problem{{Path: "sources.gen.transforms[0]", Line: 7, Column: 9, Message: `expected a mapping of keys, got "Filter"`}}},
		{"unknown step key", "      - type: Filter\n        confg: {condition: x}\n",
			[]spec.Problem{
				{Path: "sources.gen.transforms[0].config.condition", Line: 7, Column: 9, Message: `required key "condition" is missing`},
				{Path: "sources.gen.transforms[0].confg", Line: 8, Column: 9, Message: `unknown key "confg" (did you mean "config"?)`},
			}},
		{"not a list or map", "        Filter\n",
			[]spec.Problem{{Path: "sources.gen.transforms", Line: 7, Column: 9, Message: "expected a list of transform steps or a map of named steps"}}},
		{"duplicate name", "        a: {type: ExtractNewRecordState}\n        a: {type: ExtractNewRecordState}\n",
			[]spec.Problem{{Path: "sources.gen.transforms.a", Line: 8, Column: 9, Message: `duplicate transform name "a"`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := `
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders}
    transforms:
` + c.steps
			expect(t, mustFail(t, src, noEnv), c.want...)
		})
	}
}

func TestBadStartOffset(t *testing.T) {
	src := `
sinks:
  out:
    connector: stdout
    topics: [t]
    start_offset: %s
`
	ps := mustFail(t, strings.Replace(src, "%s", "yesterday", 1), noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.out.start_offset", Line: 5, Column: 19, Message: `"yesterday" is not allowed (allowed: earliest, latest, or an RFC 3339 timestamp`})

	for _, ok := range []string{"earliest", "latest", "2024-01-01T00:00:00Z", `"2024-06-30T12:00:00+02:00"`} {
		p := mustParse(t, strings.Replace(src, "%s", ok, 1), noEnv)
		if got := p.Sinks["out"].StartOffset; got != strings.Trim(ok, `"`) {
			t.Errorf("start_offset %s decoded as %q", ok, got)
		}
	}
	// A sink name with dots is still located.
	ps = mustFail(t, `
sinks:
  cdc.out:
    connector: stdout
    topics: [t]
    start_offset: 2024-13-01
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.cdc.out.start_offset", Line: 5, Column: 19, Message: `"2024-13-01" is not allowed`})
}

func TestEmptyTopicsAndTopic(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: "  "
    config: {pattern: orders}
sinks:
  out:
    connector: stdout
    topics: []
`, noEnv)
	expect(t, ps,
		spec.Problem{Path: "sources.gen.topic", Line: 4, Column: 12, Message: "topic must not be empty"},
		spec.Problem{Path: "sinks.out.topics", Line: 9, Column: 13, Message: "a sink needs at least one topic"},
	)
}

func TestNoSourcesAndNoSinks(t *testing.T) {
	for _, src := range []string{"version: \"1.0\"\n", "sources: {}\nsinks:\n"} {
		ps := mustFail(t, "\n"+src, noEnv)
		expect(t, ps, spec.Problem{Message: "the pipeline defines no sources and no sinks"})
	}
}

func TestEmptyFile(t *testing.T) {
	for _, src := range []string{"", "\n", "# only a comment\n"} {
		_, err := Parse([]byte(src), newCatalog(), noEnv)
		ps := Problems(err)
		if len(ps) != 1 || !strings.Contains(ps[0].Message, "empty") {
			t.Errorf("%q: %v", src, err)
		}
	}
}

func TestDuplicateSourceName(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen: {connector: datagen, topic: a, config: {pattern: orders}}
  gen: {connector: datagen, topic: b, config: {pattern: users}}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sources.gen", Line: 3, Column: 3, Message: `duplicate key "gen"`})
}

func TestSecretNotEchoed(t *testing.T) {
	ps := mustFail(t, `
settings:
  state:
    redis_url: [redis://user:hunter2@host]
sources:
  db:
    connector: postgres-cdc
    topic: t
    config:
      password: {nested: hunter2}
`, noEnv)
	if len(ps) != 2 {
		t.Fatalf("%v", ps)
	}
	for _, p := range ps {
		if strings.Contains(p.Error(), "hunter2") {
			t.Errorf("secret leaked: %s", p.Error())
		}
	}
}

func TestAllProblemsReportedSortedByLine(t *testing.T) {
	src := `
version: "2.0"
settings:
  log_level: verbose
  healt: {}
sources:
  gen:
    connector: datagen
    topic: orders
    config:
      pattern: order
      password: ${DB_PASSWORD}
  db:
    connector: postgress-cdc
    topic: cdc
sinks:
  out:
    connector: stdout
    topics: []
    start_offset: soon
    transforms:
      - type: Filtr
`
	ps := mustFail(t, src, noEnv)
	want := []spec.Problem{
		{Path: "version", Line: 1, Column: 10, Message: `"2.0" is not allowed (allowed: 1.0)`},
		{Path: "settings.log_level", Line: 3, Column: 14, Message: `"verbose" is not allowed`},
		{Path: "settings.healt", Line: 4, Column: 3, Message: `unknown key "healt" (did you mean "health"?)`},
		{Path: "sources.gen.config.pattern", Line: 10, Column: 16, Message: `"order" is not allowed`},
		{Path: "sources.gen.config.password", Line: 11, Column: 7, Message: `unknown key "password"`},
		{Path: "sources.gen.config.password", Line: 11, Column: 17, Message: "environment variable DB_PASSWORD is not set"},
		{Path: "sources.db.connector", Line: 13, Column: 16, Message: `unknown source connector "postgress-cdc" (did you mean "postgres-cdc"?)`},
		{Path: "sinks.out.topics", Line: 18, Column: 13, Message: "a sink needs at least one topic"},
		{Path: "sinks.out.start_offset", Line: 19, Column: 19, Message: `"soon" is not allowed`},
		{Path: "sinks.out.transforms[0].type", Line: 21, Column: 15, Message: `unknown transform "Filtr" (did you mean "Filter"?)`},
	}
	expect(t, ps, want...)
	// The error text lists them all, one per line.
	_, err := Parse(doc(src), newCatalog(), noEnv)
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) || !strings.HasPrefix(lines[0], "version (line 1:10): ") {
		t.Errorf("error text:\n%v", err)
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	cases := []struct {
		src  string
		line int
		msg  string
	}{
		{"sources: x: y\n", 1, "mapping values are not allowed"},
		{"version: \"1.0\"\nsources:\n  gen:\n    topic: a: b\n", 4, "mapping values are not allowed"},
		{"version: \"1.0\"\nsinks:\n  out:\n    topics: [a, b\n    connector: stdout\n", 4, "did not find expected ',' or ']'"},
		{"version: \"1.0\"\nsources:\n  - a\n b: 2\n", 4, "did not find expected key"},
		{"version: \"1.0\"\nsettings:\n\tlog_level: info\n", 3, "found character that cannot start any token"},
		{"version: \"1.0\"\nsources: x\n\tsinks: y\n", 3, "tab character"},
		{"version: \"1.0\"\nsettings:\n  log_level: info\nsinks: *nowhere\n", 4, "unknown anchor 'nowhere' referenced"},
		{"version: \"1.0\"\nsettings: {log_level: \"info}\n", 2, "found unexpected end of stream"},
		// A flow list over several lines, then the same kind of error later.
		{"sinks:\n  out:\n    topics: [a,\n      b]\n    connector: stdout\n    config: {format: [json}\n", 6, "did not find expected ',' or ']'"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.src), newCatalog(), noEnv)
		ps := Problems(err)
		if len(ps) != 1 {
			t.Errorf("%q: %v", c.src, err)
			continue
		}
		if p := ps[0]; p.Line != c.line || p.Column != 1 || !strings.HasPrefix(p.Message, "YAML syntax: ") || !strings.Contains(p.Message, c.msg) {
			t.Errorf("%q: got %q at line %d:%d, want %q at line %d", c.src, p.Message, p.Line, p.Column, c.msg, c.line)
		}
	}
}

// ---- defaults --------------------------------------------------------------

func TestDefaultsFromReference(t *testing.T) {
	p := mustParse(t, valid+"broker:\n  bootstrap_servers: [b:9092]\n", noEnv)
	b := p.Broker
	if b == nil || b.MetadataRefreshMs != 300000 || b.ConnectionTimeoutMs != 10000 || b.RequestTimeoutMs != 30000 || b.TLS.Enabled {
		t.Errorf("broker = %+v", b)
	}
	s := p.Settings
	wantTopic := TopicSettings{AutoCreate: true, DefaultPartitions: 1, DefaultReplicationFactor: 1, RequireTopicExists: true, ValidateExisting: false}
	if s.Topic != wantTopic {
		t.Errorf("settings.topic = %+v", s.Topic)
	}
	if r := s.Retry; r.MaxRetries != 10 || r.InitialBackoffMs != 100 || r.MaxBackoffMs != 30000 || r.BackoffMultiplier != 2 || r.JitterFactor != 0.1 {
		t.Errorf("settings.retry = %+v", r)
	}
	if h := s.Health; h.Enabled || h.Port != 8080 || h.Path != "/health" {
		t.Errorf("settings.health = %+v", h)
	}
	if m := s.Metrics; m.Enabled || m.Port != 9091 {
		t.Errorf("settings.metrics = %+v", m)
	}
	if s.LogLevel != "info" || s.MaxConsecutiveErrors != 10 || s.State.RedisURL != "" {
		t.Errorf("settings = %+v", s)
	}
	if p.Version != "1.0" || p.Secrets != nil {
		t.Errorf("version %q, secrets %v", p.Version, p.Secrets)
	}
	src := p.Sources["gen"]
	if !src.Enabled || src.TopicConfig != nil || src.RateLimit != nil || src.DeadLetterTopic != "" || len(src.Transforms) != 0 {
		t.Errorf("source = %+v", src)
	}
	sink := p.Sinks["out"]
	if sink.ConsumerGroup != "" || sink.StartOffset != "earliest" || sink.OffsetCommitInterval != 100 || !sink.Enabled || sink.DeadLetterTopic != "" {
		t.Errorf("sink = %+v", sink)
	}
	// No broker block: none.
	if p := mustParse(t, valid, noEnv); p.Broker != nil {
		t.Errorf("broker = %+v", p.Broker)
	}
}

func TestDefaultsInEveryMapEntry(t *testing.T) {
	p := mustParse(t, `
sinks:
  a: {connector: stdout, topics: [t]}
  b: {connector: stdout, topics: [t], start_offset: latest, enabled: false, offset_commit_interval: 5}
  c: {connector: stdout, topics: [t], start_offset: ~, enabled: ~}
settings:
  health:
  topic: {default_partitions: 3}
`, noEnv)
	if a := p.Sinks["a"]; a.StartOffset != "earliest" || !a.Enabled || a.OffsetCommitInterval != 100 {
		t.Errorf("a = %+v", a)
	}
	if b := p.Sinks["b"]; b.StartOffset != "latest" || b.Enabled || b.OffsetCommitInterval != 5 {
		t.Errorf("b = %+v", b)
	}
	if c := p.Sinks["c"]; c.StartOffset != "earliest" || !c.Enabled {
		t.Errorf("null should take the default: c = %+v", c)
	}
	if h := p.Settings.Health; h.Port != 8080 || h.Path != "/health" {
		t.Errorf("health = %+v", h)
	}
	if tp := p.Settings.Topic; tp.DefaultPartitions != 3 || !tp.AutoCreate || tp.DefaultReplicationFactor != 1 || !tp.RequireTopicExists {
		t.Errorf("topic = %+v", tp)
	}
	if got := p.SinkNames(); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("SinkNames = %v", got)
	}
}

// ---- the reference's examples ----------------------------------------------

func TestReferenceBrokerExample(t *testing.T) {
	// "Broker Configuration" verbatim, plus a source (a pipeline needs one).
	p := mustParse(t, `
version: "1.0"

broker:
  # Multiple bootstrap servers for high availability
  bootstrap_servers:
    - broker1:9092
    - broker2:9092
    - broker3:9092
  
  # Connection settings (optional)
  metadata_refresh_ms: 300000     # Refresh broker list every 5 min
  connection_timeout_ms: 10000    # Per-server connection timeout
  request_timeout_ms: 30000       # Overall request deadline
  
  # TLS configuration (optional)
  tls:
    enabled: true
    cert_path: /certs/client.crt
    key_path: /certs/client.key
    ca_path: /certs/ca.crt

sources:
  demo:
    connector: datagen
    topic: demo-events
    config:
      pattern: orders           # Data pattern (orders, users, pageviews)
      events_per_second: 10     # Generation rate
      max_events: 0             # 0 = unlimited
      stream_name: demo_orders  # Stream identifier
`, noEnv)
	want := Broker{
		Transport:           "kafka",
		BootstrapServers:    []string{"broker1:9092", "broker2:9092", "broker3:9092"},
		MetadataRefreshMs:   300000,
		ConnectionTimeoutMs: 10000,
		RequestTimeoutMs:    30000,
		TLS:                 TLS{Enabled: true, CertPath: "/certs/client.crt", KeyPath: "/certs/client.key", CAPath: "/certs/ca.crt"},
	}
	if !reflect.DeepEqual(*p.Broker, want) {
		t.Errorf("broker:\n got %+v\nwant %+v", *p.Broker, want)
	}

	// The broker block without what its transport (kafka by default) needs.
	ps := mustFail(t, `
broker:
  metadata_refresh_ms: 300000
sources:
  demo: {connector: datagen, topic: t, config: {pattern: orders}}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "broker.bootstrap_servers", Line: 2, Column: 3, Message: "required with transport kafka (host:port of one or more brokers)"})

	ps = mustFail(t, `
broker:
  transport: pubsub
  bootstrap_servers: [b:9092]
  sqs: {region: eu-west-1}
sources:
  demo: {connector: datagen, topic: t, config: {pattern: orders}}
`, noEnv)
	expect(t, ps,
		spec.Problem{Path: "broker.pubsub", Line: 2, Column: 3, Message: "required with transport pubsub (at least project_id)"},
		spec.Problem{Path: "broker.sqs", Line: 4, Column: 8, Message: "only used with transport sqs"})
}

func TestReferenceAutoCreateExample(t *testing.T) {
	// "Auto-Create Topics": the settings block and the per-source override.
	p := mustParse(t, `
settings:
  topic:
    auto_create: true              # Enable auto-create (default: true)
    default_partitions: 3          # Partitions for new topics
    default_replication_factor: 1  # Replication (1 for single-node)
    require_topic_exists: true     # Fail if topic missing & auto_create=false
    validate_existing: false       # Warn if existing topic config differs

sources:
  high-throughput:
    connector: postgres-cdc
    topic: cdc.orders
    topic_config:
      partitions: 12               # Override for high-volume topics
      auto_create: true            # Enable/disable per source
`, noEnv)
	want := TopicSettings{AutoCreate: true, DefaultPartitions: 3, DefaultReplicationFactor: 1, RequireTopicExists: true}
	if p.Settings.Topic != want {
		t.Errorf("settings.topic = %+v", p.Settings.Topic)
	}
	tc := p.Sources["high-throughput"].TopicConfig
	if tc == nil || tc.Partitions != 12 || tc.AutoCreate == nil || !*tc.AutoCreate || tc.ReplicationFactor != 0 {
		t.Errorf("topic_config = %+v", tc)
	}
	if got := p.SourceNames(); !reflect.DeepEqual(got, []string{"high-throughput"}) {
		t.Errorf("SourceNames = %v", got)
	}
}

func TestReferenceConsoleAndSecretsExamples(t *testing.T) {
	p := mustParse(t, `
secrets:
  provider: vault
  config:
    address: https://vault.example.com
    role_id: ${VAULT_ROLE_ID}
    secret_id: ${VAULT_SECRET_ID}

sources:
  db:
    connector: postgres-cdc
    topic: cdc.db
    config:
      password: vault:secret/data/postgres#password

sinks:
  console:
    connector: stdout
    topics: [debug]
    consumer_group: console-sink
    config:
      format: json
      pretty: true
`, envOf(map[string]string{"VAULT_ROLE_ID": "role", "VAULT_SECRET_ID": "sid"}))
	if p.Secrets == nil || p.Secrets.Provider != "vault" || spec.Find(&p.Secrets.Config, "role_id").Value != "role" {
		t.Errorf("secrets = %+v", p.Secrets)
	}
	if p.Sinks["console"].ConsumerGroup != "console-sink" {
		t.Errorf("sink = %+v", p.Sinks["console"])
	}
	ps := mustFail(t, `
secrets:
  provider: hashicorp
sinks:
  console: {connector: stdout, topics: [debug]}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "secrets.provider", Line: 2, Column: 13, Message: `"hashicorp" is not allowed`})
}

func TestOptionalBlocks(t *testing.T) {
	p := mustParse(t, `
sources:
  gen:
    connector: datagen
    topic: orders
    enabled: false
    dead_letter_topic: orders.dlq
    schema_registry_url: ""
    rate_limit: {events_per_second: 100, burst_size: 10, max_in_flight: 4}
    config: {pattern: orders}
sinks:
  out:
    connector: stdout
    topics: [orders]
    rate_limit: {events_per_second: 50.5, burst_capacity: 5}
`, noEnv)
	s := p.Sources["gen"]
	if s.Enabled || s.DeadLetterTopic != "orders.dlq" || s.SchemaRegistryURL != "" || *s.RateLimit != (RateLimit{EventsPerSecond: 100, BurstSize: 10, MaxInFlight: 4}) {
		t.Errorf("source = %+v", s)
	}
	if r := p.Sinks["out"].RateLimit; r.EventsPerSecond != 50.5 || r.BurstCapacity != 5 {
		t.Errorf("sink rate limit = %+v", r)
	}
	if len(p.SourceNames()) != 0 {
		t.Errorf("disabled source listed: %v", p.SourceNames())
	}
	ps := mustFail(t, `
sinks:
  out:
    connector: stdout
    topics: [orders]
    rate_limit: {burst_capacity: 5}
`, noEnv)
	expect(t, ps, spec.Problem{Path: "sinks.out.rate_limit.events_per_second", Line: 5, Column: 17, Message: `required key "events_per_second" is missing`})
}

// A source's schema registry URL is refused, naming its path and where
// the key belongs (the kafka connectors' config): the source's topic
// carries Rivven events, so accepting it would let a user believe schemas
// are registered.
func TestSchemaRegistryURLIsRefused(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: orders
    schema_registry_url: http://registry:8081
    config: {pattern: orders}
`, noEnv)
	if len(ps) != 1 || ps[0].Path != "sources.gen.schema_registry_url" || ps[0].Line != 5 ||
		!strings.Contains(ps[0].Message, "in the config of a kafka-sink") {
		t.Fatalf("problems %v", ps)
	}
}

// ---- Load ------------------------------------------------------------------

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, doc(valid), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path, newCatalog(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != path || p.Sources["gen"] == nil {
		t.Errorf("Load = %+v", p)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"), newCatalog(), noEnv)
	if !errors.Is(err, fs.ErrNotExist) || Problems(err) != nil {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sourcs: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = Load(bad, newCatalog(), noEnv)
	if p != nil || len(Problems(err)) == 0 {
		t.Errorf("bad file: %v, %v", p, err)
	}
}

// ---- JSON Schema -----------------------------------------------------------

func TestJSONSchema(t *testing.T) {
	s := JSONSchema(newCatalog())
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	if root["$schema"] != "https://json-schema.org/draft/2020-12/schema" || root["type"] != "object" || root["additionalProperties"] != false {
		t.Errorf("root = %v", root)
	}
	props := root["properties"].(map[string]any)
	for _, k := range []string{"version", "broker", "settings", "sources", "sinks", "secrets"} {
		if props[k] == nil {
			t.Errorf("no %s in schema", k)
		}
	}
	get := func(m any, path ...string) any {
		for _, k := range path {
			mm, ok := m.(map[string]any)
			if !ok {
				return nil
			}
			m = mm[k]
		}
		return m
	}
	if got := get(props, "broker", "properties", "transport", "enum"); !reflect.DeepEqual(got, []any{"kafka", "sqs", "pubsub"}) {
		t.Errorf("broker.transport enum = %v", got)
	}
	if got := get(props, "settings", "properties", "log_level", "enum"); !reflect.DeepEqual(got, []any{"debug", "info", "warn", "error"}) {
		t.Errorf("log_level enum = %v", got)
	}
	if got := get(props, "broker", "properties", "metadata_refresh_ms", "default"); got != 300000.0 {
		t.Errorf("metadata_refresh_ms default = %v", got)
	}
	if got := get(props, "settings", "properties", "state", "properties", "redis_url", "writeOnly"); got != true {
		t.Errorf("redis_url writeOnly = %v", got)
	}

	for _, sec := range []struct {
		key   string
		names []any
	}{{"sources", []any{"datagen", "postgres-cdc"}}, {"sinks", []any{"stdout"}}} {
		entry := get(props, sec.key, "additionalProperties").(map[string]any)
		if got := get(entry, "properties", "connector", "enum"); !reflect.DeepEqual(got, sec.names) {
			t.Errorf("%s connector enum = %v", sec.key, got)
		}
		if got := entry["required"]; sec.key == "sources" && !reflect.DeepEqual(got, []any{"connector", "topic"}) {
			t.Errorf("sources required = %v", got)
		}
		allOf, _ := entry["allOf"].([]any)
		if len(allOf) != len(sec.names) {
			t.Fatalf("%s allOf = %v", sec.key, entry["allOf"])
		}
		for i, c := range allOf {
			name := sec.names[i]
			if got := get(c, "if", "properties", "connector", "const"); got != name {
				t.Errorf("%s allOf[%d] if = %v", sec.key, i, got)
			}
			if got := get(c, "if", "required"); !reflect.DeepEqual(got, []any{"connector"}) {
				t.Errorf("%s allOf[%d] if.required = %v", sec.key, i, got)
			}
			cfg := get(c, "then", "properties", "config")
			if get(cfg, "type") != "object" || get(cfg, "additionalProperties") != false {
				t.Errorf("%s allOf[%d] config schema = %v", sec.key, i, cfg)
			}
		}
	}
	datagen := get(props, "sources", "additionalProperties", "allOf").([]any)[0]
	if got := get(datagen, "then", "properties", "config", "properties", "pattern", "enum"); !reflect.DeepEqual(got, []any{"orders", "users", "pageviews"}) {
		t.Errorf("datagen pattern enum = %v", got)
	}
	if got := get(datagen, "then", "properties", "config", "required"); !reflect.DeepEqual(got, []any{"pattern"}) {
		t.Errorf("datagen required = %v", got)
	}
	if got := get(props, "sources", "additionalProperties", "allOf").([]any)[1]; get(got, "then", "properties", "config", "properties", "password", "writeOnly") != true {
		t.Errorf("postgres password should be writeOnly: %v", got)
	}
	tr := get(props, "sources", "additionalProperties", "properties", "transforms", "oneOf")
	if steps, _ := tr.([]any); len(steps) != 2 || get(steps[0], "type") != "array" || get(steps[1], "type") != "object" {
		t.Errorf("transforms schema = %v", tr)
	}

	// A catalog with no sinks must not produce "enum": null.
	empty := newCatalog()
	delete(empty.kinds, "sink")
	b, _ = json.Marshal(JSONSchema(empty))
	if strings.Contains(string(b), `"enum":null`) {
		t.Errorf("schema contains a null enum")
	}
}

func TestTransformPredicateIsChecked(t *testing.T) {
	ps := mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: t
    config: {pattern: orders}
    transforms:
      - type: Filter
        predicate:
          operations: [upsert]
          tabel: orders
        config: {condition: "value.x > 1"}
`, noEnv)
	got := ps.Error()
	for _, want := range []string{
		`sources.gen.transforms[0].predicate.tabel (line 10:11): unknown key "tabel" (did you mean "table"?)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	ps = mustFail(t, `
sources:
  gen:
    connector: datagen
    topic: t
    config: {pattern: orders}
    transforms:
      - type: Filter
        predicate: {operations: [upsert]}
        config: {condition: "value.x > 1"}
`, noEnv)
	if got := ps.Error(); !strings.Contains(got, `sources.gen.transforms[0].predicate.operations[0] (line 8:34): "upsert" is not an operation`) {
		t.Errorf("problems:\n%s", got)
	}
}

// ---- reliability keys ------------------------------------------------------

func TestSinkCircuitBreakerDefaultsAndRanges(t *testing.T) {
	p := mustParse(t, valid, noEnv)
	if cb := p.Sinks["out"].CircuitBreaker; cb != (CircuitBreaker{Enabled: true, FailureThreshold: 5, ResetTimeoutSecs: 30, SuccessThreshold: 2}) {
		t.Errorf("circuit_breaker defaults = %+v", cb)
	}
	if ttl := p.Sinks["out"].DedupTTLSecs; ttl != 3600 {
		t.Errorf("dedup_ttl_secs default = %d", ttl)
	}
	p = mustParse(t, valid+"    circuit_breaker: {failure_threshold: 100, reset_timeout_secs: 1, success_threshold: 10, enabled: false}\n", noEnv)
	if cb := p.Sinks["out"].CircuitBreaker; cb != (CircuitBreaker{Enabled: false, FailureThreshold: 100, ResetTimeoutSecs: 1, SuccessThreshold: 10}) {
		t.Errorf("circuit_breaker = %+v", cb)
	}
	ps := mustFail(t, valid+"    circuit_breaker:\n      failure_threshold: 0\n      reset_timeout_secs: 3601\n      success_threshold: 11\n", noEnv)
	want := []spec.Problem{
		{Path: "sinks.out.circuit_breaker.failure_threshold", Line: 13, Column: 26, Message: "0 is out of range (allowed: 1 to 100)"},
		{Path: "sinks.out.circuit_breaker.reset_timeout_secs", Line: 14, Column: 27, Message: "3601 is out of range (allowed: 1 to 3600)"},
		{Path: "sinks.out.circuit_breaker.success_threshold", Line: 15, Column: 26, Message: "11 is out of range (allowed: 1 to 10)"},
	}
	if !reflect.DeepEqual([]spec.Problem(ps), want) {
		t.Errorf("problems:\n%v\nwant:\n%v", ps, spec.Problems(want))
	}
}

// reservingCatalog keeps a name for something not built yet.
type reservingCatalog struct{ *fakeCatalog }

func (reservingCatalog) Reserved(kind, name string) (string, bool) {
	return "the LLM chat transform", kind == "transform" && name == "llm-chat"
}

func TestReservedTransformIsSaidSo(t *testing.T) {
	_, err := Parse(doc(`
sources:
  gen:
    connector: datagen
    topic: t
    config: {pattern: orders}
    transforms:
      - type: llm-chat
`), reservingCatalog{newCatalog()}, noEnv)
	if got := Problems(err).Error(); !strings.Contains(got, `sources.gen.transforms[0].type (line 7:15): "llm-chat" is reserved for the LLM chat transform, which is not available yet`) {
		t.Fatalf("problems:\n%s", got)
	}
}

// ---- YAML aliases ------------------------------------------------------------

// bomb is a "billion laughs" pipeline: nine levels of aliases, each naming
// the one before nine times, in a transform config value that is decoded
// only when the transform is built.
func bomb(key string) string {
	var b strings.Builder
	b.WriteString(`
sources:
  gen:
    connector: datagen
    topic: orders
    config: {pattern: orders}
sinks:
  out:
    connector: stdout
    topics: [orders]
    transforms:
      - type: InsertField
        config:
          ` + key + `:
            l0: &l0 [x, x, x, x, x, x, x, x, x]
`)
	for i := 1; i <= 8; i++ {
		ref := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", ")
		fmt.Fprintf(&b, "            l%d: &l%d [%s]\n", i, i, ref)
	}
	return b.String()
}

// The loader refuses an alias bomb itself, with the line of the alias that
// expands most, before any check or decode walks the aliases: every command
// and host loads through it, so none can accept what another refuses.
func TestAliasBombRefusedAtLoad(t *testing.T) {
	cat := newCatalog()
	cat.kinds["transform"]["InsertField"] = comp[struct {
		Static map[string]yaml.Node `yaml:"static"`
	}]()
	_, err := Parse(doc(bomb("static")), cat, noEnv)
	ps := Problems(err)
	if len(ps) != 1 {
		t.Fatalf("want one problem, got %v", ps)
	}
	p := ps[0]
	if !strings.Contains(p.Message, "excessive YAML aliasing") || p.Line != 22 || !strings.HasPrefix(p.Path, "sinks.out.transforms[0].config.static.l8[") {
		t.Errorf("got %s (line %d): %s", p.Path, p.Line, p.Message)
	}
}

// An alias used inside its own anchor is refused, not followed forever.
func TestAliasInsideItsOwnAnchor(t *testing.T) {
	src := strings.Replace(valid, "pattern: orders", "pattern: orders\n      loop: &x [a, *x]", 1)
	cat := newCatalog()
	cat.kinds["source"]["datagen"] = comp[struct {
		datagenConfig `yaml:",inline"`
		Loop          yaml.Node `yaml:"loop"`
	}]()
	_, err := Parse(doc(src), cat, noEnv)
	ps := Problems(err)
	expect(t, ps, spec.Problem{Path: "sources.gen.config.loop[1]", Line: 8, Message: "used inside its own anchor"})
}

// Aliases within the yaml package's limits are accepted and replaced by
// copies: a value decoded on its own later (as InsertField's static values
// are) never meets an alias, and defaults filled into one use do not show
// up in another.
func TestAliasesExpandedAtLoad(t *testing.T) {
	// 1,500 items behind one alias: a Decode of just that value would be
	// 99.9% aliases and refused by the yaml package.
	src := `
sources:
  gen:
    connector: datagen
    topic: orders
    config: &gen
      pattern: orders
      list: &big [` + strings.TrimSuffix(strings.Repeat("1, ", 1500), ", ") + `]
  again:
    connector: datagen
    topic: orders
    config: *gen
sinks:
  out:
    connector: stdout
    topics: [orders]
    config: {format: json, items: *big}
`
	cat := newCatalog()
	cat.kinds["sink"]["stdout"] = comp[struct {
		Format string    `yaml:"format"`
		Items  yaml.Node `yaml:"items"`
	}]()
	cat.kinds["source"]["datagen"] = comp[struct {
		datagenConfig `yaml:",inline"`
		List          []int `yaml:"list"`
	}]()
	p, err := Parse(doc(src), cat, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	items := spec.Find(&p.Sinks["out"].Config, "items")
	var v []int
	if err := items.Decode(&v); err != nil || len(v) != 1500 {
		t.Fatalf("decoding the aliased value on its own: %d items, %v", len(v), err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			t.Fatalf("alias *%s left in the loaded tree at line %d", n.Value, n.Line)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(p.Root)
	a, b := &p.Sources["gen"].Config, &p.Sources["again"].Config
	if spec.Find(a, "pattern") == spec.Find(b, "pattern") {
		t.Errorf("the two uses of &gen share nodes")
	}
}

// ---- huge files --------------------------------------------------------------

// A generated file with tens of thousands of mistakes of every kind (unset
// variables, unknown keys in the file's structure and in connector
// blocks, wrong types) lists the first spec.MaxProblems by line and counts
// every one.
func TestHugeFileListsFirstProblemsAndCountsAll(t *testing.T) {
	var b strings.Builder
	b.WriteString("settings:\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "  s%05d: ${UNSET_%d}\n", i, i) // an unknown key and an unset variable each
	}
	b.WriteString("sources:\n  gen:\n    connector: datagen\n    topic: orders\n    config:\n      pattern: orders\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "      c%d: 1\n", i)
	}
	b.WriteString("sinks:\n  out:\n    connector: stdout\n    topics: [")
	for i := range 10000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("[x]")
	}
	b.WriteString("]\n")
	if b.Len() > MaxFileSize {
		t.Fatalf("the generated file is %d bytes, above MaxFileSize", b.Len())
	}
	_, err := Parse([]byte(b.String()), newCatalog(), noEnv)
	ps := Problems(err)
	if ps.Count() != 2*20000+20000+10000 {
		t.Fatalf("counted %d problems", ps.Count())
	}
	listed := ps.Listed()
	if len(listed) != spec.MaxProblems || len(ps) != spec.MaxProblems+1 || ps[len(ps)-1].Omitted != ps.Count()-spec.MaxProblems {
		t.Fatalf("%d listed, %d entries, last %+v", len(listed), len(ps), ps[len(ps)-1])
	}
	// Lines 2..51, each with its unknown key (column 3) and its unset
	// variable (column 11), in that order.
	for i, p := range listed {
		line, col := 2+i/2, 3
		if i%2 == 1 {
			col = 11
		}
		if p.Line != line || p.Column != col {
			t.Fatalf("problem %d at %d:%d, want %d:%d: %v", i, p.Line, p.Column, line, col, p)
		}
	}
}

// A file above MaxFileSize is refused before it is parsed: the parser's
// tree is many times the file, and the cap is what bounds it.
func TestFileTooLarge(t *testing.T) {
	big := []byte(valid + "# " + strings.Repeat("x", MaxFileSize) + "\n")
	_, err := Parse(big, newCatalog(), noEnv)
	expect(t, Problems(err), spec.Problem{Message: "at most 1048576 (1 MiB) are read"})
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path, newCatalog(), noEnv)
	expect(t, Problems(err), spec.Problem{Message: "at most 1048576 (1 MiB) are read"})
}
