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
// and how to check their config blocks. connectors/catalog implements it.
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

// Parse validates a pipeline document. On failure the error is a
// spec.Problems listing every problem, sorted by line.
func Parse(doc []byte, cat Catalog, opts Options) (*Pipeline, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, spec.Problems{yamlSyntaxProblem(err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, spec.Problems{{Message: "the pipeline file is empty"}}
	}
	env := opts.Env
	if env == nil {
		env = os.LookupEnv
	}
	var ps spec.Problems
	substitute(&root, "", env, &ps)
	ps = append(ps, spec.Check(spec.FieldsOf(reflectType[File]()), &root, "")...)
	ps = append(ps, checkComponents(&root, cat)...)
	if len(ps) > 0 {
		ps.Sort()
		return nil, ps
	}
	v, dps := spec.DecodeType(reflectType[File](), &root, "")
	if len(dps) > 0 {
		ps = dps
		ps.Sort()
		return nil, ps
	}
	p := &Pipeline{File: *v.(*File), Root: &root}
	if ps = p.crossCheck(); len(ps) > 0 {
		ps.Sort()
		return nil, ps
	}
	p.locateTransforms()
	return p, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlSyntaxProblem(err error) spec.Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return spec.Problem{Line: line, Column: 1, Message: "YAML syntax: " + m[2]}
	}
	return spec.Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// checkComponents checks connector names, their config blocks and
// transform steps against the catalog.
func checkComponents(root *yaml.Node, cat Catalog) []spec.Problem {
	var ps []spec.Problem
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
				cfg := spec.Find(entry, "config")
				cps, ok := cat.CheckConfig(sec.kind, conn.Value, cfg, path+".config")
				if !ok {
					ps = append(ps, spec.At(conn, path+".connector", "unknown %s connector %q%s (see: rivven-connect connectors --kind %s)",
						sec.kind, conn.Value, didYouMean(conn.Value, cat.Names(sec.kind)), sec.kind))
				}
				ps = append(ps, cps...)
			}
			if ts := spec.Find(entry, "transforms"); ts != nil {
				ps = append(ps, checkTransforms(ts, path+".transforms", cat)...)
			}
		}
	}
	return ps
}

func checkTransforms(n *yaml.Node, path string, cat Catalog) []spec.Problem {
	var ps []spec.Problem
	check := func(step *yaml.Node, p string, named bool) {
		ps = append(ps, spec.Check(transformFields, step, p)...)
		if step.Kind != yaml.MappingNode {
			return
		}
		typ := spec.Find(step, "type")
		if alt := spec.Find(step, "transform"); typ == nil {
			typ = alt
		} else if alt != nil {
			ps = append(ps, spec.At(alt, p+".transform", "give either type or transform, not both"))
		}
		if typ == nil || typ.Value == "" {
			ps = append(ps, spec.At(step, p+".type", "transform step needs a type"))
			return
		}
		cps, ok := cat.CheckConfig("transform", typ.Value, spec.Find(step, "config"), p+".config")
		if !ok {
			ps = append(ps, spec.At(typ, p+".type", "unknown transform %q%s (see: rivven-connect connectors --kind transform)",
				typ.Value, didYouMean(typ.Value, cat.Names("transform"))))
		}
		ps = append(ps, cps...)
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			check(c, spec.Index(path, i), false)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			check(n.Content[i+1], path+"."+n.Content[i].Value, true)
		}
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			ps = append(ps, spec.At(n, path, "expected a list of transform steps or a map of named steps"))
		}
	}
	return ps
}

func didYouMean(s string, names []string) string {
	if c := spec.Closest(s, names); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// crossCheck validates what the per-field spec cannot express.
func (p *Pipeline) crossCheck() spec.Problems {
	var ps spec.Problems
	at := func(path, format string, args ...any) {
		ps = append(ps, spec.At(spec.Find(p.Root, path), path, format, args...))
	}
	for name, s := range p.Sinks {
		switch so := s.StartOffset; so {
		case "earliest", "latest":
		default:
			if _, err := time.Parse(time.RFC3339, so); err != nil {
				at("sinks."+name+".start_offset", "%q is not allowed (allowed: earliest, latest, or an RFC 3339 timestamp such as 2024-01-01T00:00:00Z)", so)
			}
		}
		if len(s.Topics) == 0 {
			at("sinks."+name+".topics", "a sink needs at least one topic")
		}
	}
	for name, s := range p.Sources {
		if strings.TrimSpace(s.Topic) == "" {
			at("sources."+name+".topic", "topic must not be empty")
		}
	}
	if len(p.Sources)+len(p.Sinks) == 0 {
		ps = append(ps, spec.Problem{Message: "the pipeline defines no sources and no sinks"})
	}
	return ps
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
func substitute(n *yaml.Node, path string, env func(string) (string, bool), ps *spec.Problems) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			substitute(c, path, env, ps)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			substitute(n.Content[i+1], spec.Join(path, n.Content[i].Value), env, ps)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			substitute(c, spec.Index(path, i), env, ps)
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
			*ps = append(*ps, spec.At(n, path, "environment variable %s is not set (set it, or write ${%s:-default})", sub[1], sub[1]))
			return m
		})
		if changed {
			n.Value = out
			if n.Style == 0 || n.Style == yaml.TaggedStyle {
				n.Tag = resolveTag(out) // `port: ${PORT}` is an integer once PORT is known
			}
		}
	}
}

// resolveTag gives a plain scalar the tag YAML would have given it.
func resolveTag(s string) string {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return "!!str"
	}
	switch v.(type) {
	case nil:
		if s == "" {
			return "!!str"
		}
		return "!!null"
	case bool:
		return "!!bool"
	case int, int64, uint64:
		return "!!int"
	case float64:
		return "!!float"
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
