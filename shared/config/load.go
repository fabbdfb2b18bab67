package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/buildtag"
	"github.com/rivven/rivven-connect/shared/condition"
	"github.com/rivven/rivven-connect/shared/spec"
)

func reflectType[T any]() reflect.Type { return reflect.TypeFor[T]() }

// SpecField makes the transforms block accept both of its forms; Load
// checks each step itself.
func (Transforms) SpecField() spec.Field {
	step := spec.JSONSchema(transformFields)
	return spec.Field{Type: spec.TAny, Schema: map[string]any{
		"description": "Transforms: a list of {type, config} steps, or a map of named steps.",
		"oneOf": []any{
			map[string]any{"type": "array", "items": step},
			map[string]any{"type": "object", "additionalProperties": step},
		},
	}}
}

// Catalog is what the loader needs to know about connectors: which exist
// and how to check their config blocks. shared/catalog implements it.
type Catalog interface {
	// CheckConfig validates a component's config block; ok is false when
	// no component of that kind and name exists.
	CheckConfig(kind, name string, node *yaml.Node, path string) (problems []spec.Problem, ok bool)
	// Names lists the names of a kind, for did-you-mean suggestions.
	Names(kind string) []string
}

// Pipeline is a loaded, validated pipeline file.
type Pipeline struct {
	File
	// Path is where it was read from ("" for inline YAML).
	Path string
	// Root is the parsed document after ${VAR} substitution.
	Root *yaml.Node
}

// Options change how a file is loaded.
type Options struct {
	// Env looks up variables; nil means os.LookupEnv.
	Env func(string) (string, bool)
}

// Load reads and validates a pipeline file.
func Load(path string, cat Catalog, opts Options) (*Pipeline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(b, cat, opts)
	if p != nil {
		p.Path = path
	}
	return p, err
}

// MaxFileSize bounds a pipeline file. The YAML parser holds the whole
// document as a tree of nodes, 30 to 120 times the file's size, so the cap
// is what keeps loading in bounded memory (about 120 MB at worst); real
// pipelines are a few KB.
const MaxFileSize = 1 << 20

// Parse validates a pipeline document. On failure the error is a
// spec.Problems listing every problem, sorted by line: at most
// spec.MaxProblems of them, then an entry counting the rest.
func Parse(doc []byte, cat Catalog, opts Options) (*Pipeline, error) {
	if len(doc) > MaxFileSize {
		return nil, spec.Problems{{Message: fmt.Sprintf("the pipeline file is %d bytes; at most %d (%d MiB) are read", len(doc), MaxFileSize, MaxFileSize>>20)}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, spec.Problems{yamlSyntaxProblem(doc, err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, spec.Problems{{Message: "the pipeline file is empty"}}
	}
	if p := checkAliases(&root); p != nil {
		return nil, spec.Problems{*p}
	}
	env := opts.Env
	if env == nil {
		env = os.LookupEnv
	}
	var c spec.Collector
	substitute(&root, "", env, &c)
	expandAliases(&root)
	checkComponents(&root, cat, &c)
	crossCheck(&root, &c)
	if c.Len() > 0 {
		// Transform steps that failed their check may not decode: check
		// the file's structure only.
		c.Add(spec.Check(spec.FieldsOf(reflectType[File]()), &root, "")...)
		return nil, c.Problems()
	}
	// Decoding checks the structure, fills the defaults into the document
	// and runs File.Validate (the broker block), all problems together.
	v, ps := spec.DecodeType(reflectType[File](), &root, "")
	if len(ps) > 0 {
		c.Add(ps...)
		return nil, c.Problems()
	}
	p := &Pipeline{File: *v.(*File), Root: &root}
	p.locateTransforms()
	return p, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxSyntaxScan bounds the line search of yamlSyntaxProblem (it parses
// every prefix of the file).
const maxSyntaxScan = 5000

// yamlSyntaxProblem locates a YAML syntax error. The yaml package leaves
// the line out when it is the first one, names the line before for parser
// errors (never a later one), and never places some errors (an unknown
// anchor), so the line is the first one from the reported line on at which
// the file, cut after it, fails the same way.
func yamlSyntaxProblem(doc []byte, err error) spec.Problem {
	line, msg := splitYAMLError(err)
	lines := strings.SplitAfter(string(doc), "\n")
	if len(lines) <= maxSyntaxScan {
		var prefix strings.Builder
		for i, l := range lines {
			prefix.WriteString(l)
			if i+1 < line {
				continue
			}
			var n yaml.Node
			if perr := yaml.Unmarshal([]byte(prefix.String()), &n); perr != nil {
				if _, m := splitYAMLError(perr); m == msg {
					line = i + 1
					break
				}
			}
		}
	}
	p := spec.Problem{Message: "YAML syntax: " + msg}
	if line > 0 {
		p.Line, p.Column = line, 1
	}
	return p
}

func splitYAMLError(err error) (line int, msg string) {
	s := err.Error()
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		fmt.Sscan(m[1], &line)
		return line, m[2]
	}
	return 0, strings.TrimPrefix(s, "yaml: ")
}

// checkComponents checks connector names, their config blocks and
// transform steps against the catalog.
func checkComponents(root *yaml.Node, cat Catalog, ps *spec.Collector) {
	for _, sec := range []struct{ key, kind string }{{"sources", "source"}, {"sinks", "sink"}} {
		m := spec.Find(root, sec.key)
		if m == nil || m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			name, entry := m.Content[i].Value, m.Content[i+1]
			path := sec.key + "." + name
			if entry.Kind != yaml.MappingNode {
				continue // reported by the structural check
			}
			if conn := spec.Find(entry, "connector"); conn != nil && conn.Kind == yaml.ScalarNode && conn.Value != "" {
				cps, ok := cat.CheckConfig(sec.kind, conn.Value, configNode(entry), path+".config")
				if !ok {
					ps.Add(unknown(cat, sec.kind, conn, path+".connector"))
				}
				ps.Add(cps...)
			}
			if ts := spec.Find(entry, "transforms"); ts != nil {
				checkTransforms(ts, path+".transforms", cat, ps)
			}
		}
	}
}

// configNode returns the config block of a component, or, when there is
// none, a null node placed at the component so that problems about the
// missing block (a required key) still have a line.
func configNode(component *yaml.Node) *yaml.Node {
	if cfg := spec.Find(component, "config"); cfg != nil {
		return cfg
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: component.Line, Column: component.Column}
}

func checkTransforms(n *yaml.Node, path string, cat Catalog, ps *spec.Collector) {
	check := func(step *yaml.Node, p string, named bool) {
		if step.Kind == yaml.AliasNode && step.Alias != nil {
			step = step.Alias
		}
		if step.Kind == yaml.ScalarNode && step.ShortTag() == "!!null" {
			ps.Add(spec.At(step, p, "transform step is empty; it needs a type"))
			return
		}
		ps.Add(spec.Check(transformFields, step, p)...)
		if step.Kind != yaml.MappingNode {
			return
		}
		if pred := spec.Find(step, "predicate"); pred != nil {
			_, pps := spec.Decode[condition.Predicate](pred, p+".predicate")
			ps.Add(pps...)
		}
		typ := spec.Find(step, "type")
		if alt := spec.Find(step, "transform"); typ == nil {
			typ = alt
		} else if alt != nil {
			ps.Add(spec.At(alt, p+".transform", "give either type or transform, not both"))
		}
		if typ == nil || typ.Value == "" {
			ps.Add(spec.At(step, p+".type", "transform step needs a type"))
			return
		}
		cps, ok := cat.CheckConfig("transform", typ.Value, configNode(step), p+".config")
		if !ok {
			ps.Add(unknown(cat, "transform", typ, p+".type"))
		}
		ps.Add(cps...)
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			check(c, spec.Index(path, i), false)
		}
	case yaml.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				ps.Add(spec.At(k, path+"."+k.Value, "duplicate transform name %q", k.Value))
				continue
			}
			seen[k.Value] = true
			check(n.Content[i+1], path+"."+k.Value, true)
		}
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			ps.Add(spec.At(n, path, "expected a list of transform steps or a map of named steps"))
		}
	}
}

// Reserver is implemented by catalogs that know names kept for components
// not built yet; using one gets that said instead of a did-you-mean.
type Reserver interface {
	Reserved(kind, name string) (what string, ok bool)
}

// Unlinker is implemented by catalogs that know components a binary was
// built without (a -tags custom build); using one gets the build tag that
// links it instead of "unknown".
type Unlinker interface {
	Unlinked(kind, name string) (tag string, ok bool)
}

func unknown(cat Catalog, kind string, name *yaml.Node, path string) spec.Problem {
	if r, ok := cat.(Reserver); ok {
		if what, ok := r.Reserved(kind, name.Value); ok {
			return spec.At(name, path, "%q is reserved for %s, which is not available yet", name.Value, what)
		}
	}
	if u, ok := cat.(Unlinker); ok {
		if tag, ok := u.Unlinked(kind, name.Value); ok {
			return spec.At(name, path, "%s %q is not linked into this binary (it was built with -tags custom without %s); %s", kind, name.Value, tag, buildtag.Hint(tag))
		}
	}
	label := kind + " connector"
	if kind == "transform" {
		label = kind
	}
	return spec.At(name, path, "unknown %s %q%s (see: rivven-connect connectors --kind %s)",
		label, name.Value, didYouMean(name.Value, cat.Names(kind)), kind)
}

func didYouMean(s string, names []string) string {
	if c := spec.Closest(s, names); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// crossCheck validates what the per-field spec cannot express. It works on
// the document, so that its problems are reported together with all the
// others.
func crossCheck(root *yaml.Node, ps *spec.Collector) {
	entries := func(key string) (*yaml.Node, bool) {
		m := spec.Find(root, key)
		if m == nil || m.Kind == yaml.ScalarNode && m.ShortTag() == "!!null" {
			return nil, true
		}
		if m.Kind != yaml.MappingNode {
			return nil, false // reported by the structural check
		}
		return m, true
	}
	sinks, sinksOK := entries("sinks")
	sources, sourcesOK := entries("sources")
	for i := 0; sinks != nil && i+1 < len(sinks.Content); i += 2 {
		path, s := "sinks."+sinks.Content[i].Value, sinks.Content[i+1]
		if so := child(s, "start_offset"); isScalar(so) {
			switch v := so.Value; v {
			case "earliest", "latest":
			default:
				if _, err := time.Parse(time.RFC3339, v); err != nil {
					ps.Add(spec.At(so, path+".start_offset", "%q is not allowed (allowed: earliest, latest, or an RFC 3339 timestamp such as 2024-01-01T00:00:00Z)", v))
				}
			}
		}
		if ts := child(s, "topics"); ts != nil && ts.Kind == yaml.SequenceNode && len(ts.Content) == 0 {
			ps.Add(spec.At(ts, path+".topics", "a sink needs at least one topic"))
		}
	}
	for i := 0; sources != nil && i+1 < len(sources.Content); i += 2 {
		path, s := "sources."+sources.Content[i].Value, sources.Content[i+1]
		if t := child(s, "topic"); isScalar(t) && strings.TrimSpace(t.Value) == "" {
			ps.Add(spec.At(t, path+".topic", "topic must not be empty"))
		}
		// The broker topic between a source and its sinks carries Rivven
		// events, not registry-encoded rows: the registry belongs to the
		// kafka connectors that write and read such topics outside.
		if u := child(s, "schema_registry_url"); isScalar(u) && strings.TrimSpace(u.Value) != "" {
			ps.Add(spec.At(u, path+".schema_registry_url", "a source's topic carries Rivven events, not registry-encoded values; set schema_registry_url in the config of a kafka-sink (to write rows with registered schemas) or kafka-source (to decode them) instead"))
		}
	}
	if sinksOK && sourcesOK && count(sinks)+count(sources) == 0 {
		ps.Add(spec.Problem{Message: "the pipeline defines no sources and no sinks"})
	}
}

// child returns the value of key in mapping m (not a dotted path: entry
// names may contain dots).
func child(m *yaml.Node, key string) *yaml.Node {
	for m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			for v != nil && v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

// isScalar reports whether n is a non-null scalar.
func isScalar(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null"
}

func count(m *yaml.Node) int {
	if m == nil {
		return 0
	}
	return len(m.Content) / 2
}

// locateTransforms records where each transform step is, for runtime
// errors, and names unnamed steps by position.
func (p *Pipeline) locateTransforms() {
	for name, s := range p.Sources {
		setPaths(s.Transforms, "sources."+name+".transforms")
	}
	for name, s := range p.Sinks {
		setPaths(s.Transforms, "sinks."+name+".transforms")
	}
}

func setPaths(ts Transforms, base string) {
	for i, t := range ts {
		if t.Name != "" {
			t.Path = base + "." + t.Name
		} else {
			t.Path = spec.Index(base, i)
			t.Name = fmt.Sprintf("%s#%d", t.Kind(), i)
		}
	}
}

// SourceNames returns the enabled sources in name order.
func (p *Pipeline) SourceNames() []string {
	return sortedEnabled(p.Sources, func(s *Source) bool { return s.Enabled })
}

// SinkNames returns the enabled sinks in name order.
func (p *Pipeline) SinkNames() []string {
	return sortedEnabled(p.Sinks, func(s *Sink) bool { return s.Enabled })
}

func sortedEnabled[T any](m map[string]T, enabled func(T) bool) []string {
	var out []string
	for k, v := range m {
		if enabled(v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ---- ${VAR} substitution ---------------------------------------------------

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// substitute replaces ${VAR} and ${VAR:-default} in every scalar value
// ($$ is a literal $). A variable that is unset and has no default is an
// error naming it and where it is used, never a silent empty string.
func substitute(n *yaml.Node, path string, env func(string) (string, bool), ps *spec.Collector) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			substitute(c, path, env, ps)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; !plain(v) {
				substitute(v, spec.Join(path, n.Content[i].Value), env, ps)
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if !plain(c) {
				substitute(c, spec.Index(path, i), env, ps)
			}
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		changed := false
		out := envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				changed = true
				return "$"
			}
			sub := envRef.FindStringSubmatch(m)
			if v, ok := env(sub[1]); ok {
				changed = true
				return v
			}
			if sub[2] != "" {
				changed = true
				return sub[3]
			}
			ps.Add(spec.At(n, path, "environment variable %s is not set (set it, or write ${%s:-default})", sub[1], sub[1]))
			return m
		})
		if changed {
			n.Value = out
			if n.Style == 0 {
				// A plain scalar gets the tag YAML gives its new value:
				// `port: ${PORT}` is an integer once PORT is known. Quoted
				// and explicitly tagged (!!str ${X}) scalars keep theirs.
				n.Tag = resolveTag(out)
			}
		}
	}
}

// plain reports a scalar without a $: nothing to substitute, so no path
// need be built for it (a file may hold millions).
func plain(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && !strings.Contains(n.Value, "$")
}

// resolveTag gives a plain scalar the tag YAML would have given it. A
// variable set to the empty string stays an empty string, not null.
func resolveTag(s string) string {
	if s == "" {
		return "!!str"
	}
	switch tag := (&yaml.Node{Kind: yaml.ScalarNode, Value: s}).ShortTag(); tag {
	case "!!null", "!!bool", "!!int", "!!float":
		return tag
	}
	return "!!str"
}

// Problems returns the problems of a Load/Parse error, or nil.
func Problems(err error) spec.Problems {
	var ps spec.Problems
	if errors.As(err, &ps) {
		return ps
	}
	return nil
}
