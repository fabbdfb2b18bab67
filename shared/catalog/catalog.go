// Package catalog is the connector inventory. Connectors register
// themselves in init() with their metadata and a typed constructor; the
// config struct's tags (see shared/spec) give validation, defaults, docs and
// JSON Schema.
package catalog

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/buildtag"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Kind says what a component does.
type Kind string

const (
	Source    Kind = "source"
	Sink      Kind = "sink"
	Transform Kind = "transform"
)

// Kinds lists the kinds in display order.
var Kinds = []Kind{Source, Sink, Transform}

// Categories, in display order, with their subcategories.
const (
	Database   = "Database"
	Messaging  = "Messaging"
	Storage    = "Storage"
	Warehouse  = "Warehouse"
	Lakehouse  = "Lakehouse"
	AIML       = "AI-ML"
	Utility    = "Utility"
	Transforms = "Transform"
)

// CategoryOrder is the order categories are shown in.
var CategoryOrder = []string{Database, Messaging, Storage, Warehouse, Lakehouse, AIML, Utility, Transforms}

// Meta is what a connector says about itself.
type Meta struct {
	Name        string
	Aliases     []string
	Category    string // one of CategoryOrder
	Subcategory string // e.g. CDC, RDBC, Queues, MQTT, Object, LLM, Vector, Generate, Debug
	Description string
	Tags        []string
	// Metrics lists the connector-specific metric names it reports.
	Metrics []string
	// LegacyOf, on an entry kept for an old name of a connector (object
	// storage's s3, gcs, azure-blob), names the entry it stands in for:
	// that one, registered from the same package, is the package's
	// function (functions/<kind>/<package>), and the function also hosts
	// sinks that use the legacy name.
	LegacyOf string
	// ConcurrentWrites, on a sink, says its Write may run for several
	// batches at once: the sink is a connector.ConcurrentWriter (the
	// catalog checks when it builds one), and deployments let a function
	// instance take concurrent requests for it.
	ConcurrentWrites bool
	// StorageURIKey, on a sink writing to a bucket, names its config key
	// holding the location (s3://bucket/path, gs://bucket/path): a
	// deployment grants the function read, write, list and delete there.
	StorageURIKey string
}

// Entry is one registered component.
type Entry struct {
	Meta
	Kind   Kind
	Fields []spec.Field

	config reflect.Type
	build  func(ctx context.Context, cfg any) (any, error)
}

// Registry holds entries. Default is the one connectors register into.
type Registry struct {
	mu      sync.RWMutex
	entries []*Entry
	byName  map[Kind]map[string]*Entry
}

// Default is the process-wide registry.
var Default = &Registry{}

// normalize makes "ExtractNewRecordState", "extract_new_record_state" and
// "extract-new-record-state" the same name; the build-tag vocabulary
// looks names up the same way.
func normalize(name string) string { return buildtag.Normalize(name) }

func (r *Registry) add(e *Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = map[Kind]map[string]*Entry{}
	}
	m := r.byName[e.Kind]
	if m == nil {
		m = map[string]*Entry{}
		r.byName[e.Kind] = m
	}
	for _, n := range append([]string{e.Name}, e.Aliases...) {
		if what, ok := reserved[e.Kind][normalize(n)]; ok {
			panic(fmt.Sprintf("catalog: %s %q is reserved for %s", e.Kind, n, what))
		}
		if prev, dup := m[normalize(n)]; dup {
			panic(fmt.Sprintf("catalog: %s %q registered twice (%s and %s)", e.Kind, n, prev.Name, e.Name))
		}
		m[normalize(n)] = e
	}
	r.entries = append(r.entries, e)
}

// A constructor builds a component from its config, which the catalog has
// already decoded, defaulted and validated (the spec's rules and the config
// type's own Validate), so a constructor does not validate again; it may
// still refuse what the spec cannot express, naming the YAML path. ctx
// carries the component's connector.Runtime (its name, logger and metrics)
// and bounds what the constructor does before the component runs.
func register[C any, T any](r *Registry, kind Kind, m Meta, fn func(context.Context, *C) (T, error)) {
	t := reflect.TypeFor[C]()
	if m.Name == "" || m.Category == "" || m.Description == "" {
		panic(fmt.Sprintf("catalog: %s %q needs a name, category and description", kind, m.Name))
	}
	r.add(&Entry{
		Meta:   m,
		Kind:   kind,
		Fields: spec.FieldsOf(t),
		config: t,
		build:  func(ctx context.Context, cfg any) (any, error) { return fn(ctx, cfg.(*C)) },
	})
}

// RegisterSource adds a source. C is its config struct.
func RegisterSource[C any](m Meta, fn func(context.Context, *C) (connector.Source, error)) {
	register(Default, Source, m, fn)
}

// RegisterSink adds a sink. C is its config struct.
func RegisterSink[C any](m Meta, fn func(context.Context, *C) (connector.Sink, error)) {
	registerSink(Default, m, fn)
}

func registerSink[C any](r *Registry, m Meta, fn func(context.Context, *C) (connector.Sink, error)) {
	register(r, Sink, m, func(ctx context.Context, cfg *C) (connector.Sink, error) {
		s, err := fn(ctx, cfg)
		if err != nil {
			return nil, err
		}
		cw, ok := s.(connector.ConcurrentWriter)
		if (ok && cw.ConcurrentWrites()) != m.ConcurrentWrites {
			// Deployments size a function's concurrency by the entry: an
			// entry that disagrees with its sink would queue or race writes.
			return nil, fmt.Errorf("catalog: sink %s: Meta.ConcurrentWrites is %v but its Write says %v", m.Name, m.ConcurrentWrites, ok && cw.ConcurrentWrites())
		}
		return s, nil
	})
}

// RegisterTransform adds a transform. C is its config struct.
func RegisterTransform[C any](m Meta, fn func(context.Context, *C) (connector.Transform, error)) {
	register(Default, Transform, m, fn)
}

// reserved names belong to components that are planned but not built, so
// that nothing else takes them and a pipeline naming one is told so.
// None is reserved today (llm-chat and llm-embedding were, until built).
var reserved = map[Kind]map[string]string{}

// Reserved reports whether a name is kept for a component not built yet.
func (r *Registry) Reserved(kind, name string) (string, bool) {
	what, ok := reserved[Kind(kind)][normalize(name)]
	return what, ok
}

// Unlinked reports whether name is a component this binary was built
// without (a -tags custom build that left it out), and the build tag that
// links it, so that a pipeline naming it is told how to get it rather than
// that the name is unknown.
func (r *Registry) Unlinked(kind, name string) (tag string, ok bool) {
	if _, linked := r.Lookup(Kind(kind), name); linked {
		return "", false
	}
	c, ok := buildtag.Lookup(kind, name)
	if !ok {
		return "", false
	}
	return c.Tag(), true
}

// NotLinkedError says that a pipeline names a component this binary was
// built without, and which tag links it.
func NotLinkedError(path, kind, name, tag string) error {
	return fmt.Errorf("%s: %s %q is not linked into this binary (it was built with -tags custom without %s); %s", path, kind, name, tag, buildtag.Hint(tag))
}

// Lookup finds a component by name or alias, ignoring case, '-' and '_'.
func (r *Registry) Lookup(kind Kind, name string) (*Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byName[kind][normalize(name)]
	return e, ok
}

// SamePackage reports whether e and o are components of one kind built by
// one package: a function binary that links the package hosts both, so a
// pipeline may name either (object-storage, or its legacy name s3).
func (e *Entry) SamePackage(o *Entry) bool {
	return e == o || e.Kind == o.Kind && e.Package() == o.Package()
}

// Lookup finds a component in the Default registry.
func Lookup(kind Kind, name string) (*Entry, bool) { return Default.Lookup(kind, name) }

// All returns the entries grouped by category (in CategoryOrder), then by
// kind, then by name.
func (r *Registry) All() []*Entry {
	r.mu.RLock()
	out := append([]*Entry(nil), r.entries...)
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ca, cb := categoryRank(a.Category), categoryRank(b.Category); ca != cb {
			return ca < cb
		}
		if a.Kind != b.Kind {
			return kindRank(a.Kind) < kindRank(b.Kind)
		}
		return a.Name < b.Name
	})
	return out
}

// All returns every entry of the Default registry.
func All() []*Entry { return Default.All() }

func categoryRank(c string) int {
	for i, x := range CategoryOrder {
		if strings.EqualFold(x, c) {
			return i
		}
	}
	return len(CategoryOrder)
}

func kindRank(k Kind) int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// Names returns the names of every component of a kind (for did-you-mean).
func (r *Registry) Names(kind string) []string {
	var out []string
	for _, e := range r.All() {
		if string(e.Kind) == kind {
			out = append(out, e.Name)
			out = append(out, e.Aliases...)
		}
	}
	return out
}

// Search returns entries matching every word of q (case-insensitive) in
// name, aliases, description, tags or category, best match first: a name
// match outranks an alias, which outranks a tag, which outranks the
// description.
func (r *Registry) Search(q string) []*Entry {
	words := strings.Fields(strings.ToLower(q))
	type scored struct {
		e     *Entry
		score int
	}
	var hits []scored
	for _, e := range r.All() {
		total := 0
		for _, w := range words {
			s := matchScore(e, w)
			if s == 0 {
				total = 0
				break
			}
			total += s
		}
		if total > 0 || len(words) == 0 {
			hits = append(hits, scored{e, total})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].score > hits[j].score })
	out := make([]*Entry, len(hits))
	for i, h := range hits {
		out[i] = h.e
	}
	return out
}

func matchScore(e *Entry, w string) int {
	name := strings.ToLower(e.Name)
	switch {
	case name == w || normalize(name) == normalize(w):
		return 100
	case strings.HasPrefix(name, w):
		return 60
	case strings.Contains(name, w):
		return 50
	}
	for _, a := range e.Aliases {
		if strings.Contains(strings.ToLower(a), w) {
			return 40
		}
	}
	for _, t := range e.Tags {
		if strings.ToLower(t) == w {
			return 30
		}
		if strings.Contains(strings.ToLower(t), w) {
			return 20
		}
	}
	if strings.Contains(strings.ToLower(e.Category+"/"+e.Subcategory), w) {
		return 15
	}
	if strings.Contains(strings.ToLower(e.Description), w) {
		return 10
	}
	return 0
}

// Decode validates a config block and decodes it into the entry's config
// struct (returned as a pointer).
func (e *Entry) Decode(node *yaml.Node, path string) (any, []spec.Problem) {
	return spec.DecodeType(e.config, node, path)
}

// Build constructs the component from a config decoded by Decode.
func (e *Entry) Build(ctx context.Context, cfg any) (any, error) { return e.build(ctx, cfg) }

// CheckConfig validates a component's config block. ok is false when no
// such component is registered.
func (r *Registry) CheckConfig(kind, name string, node *yaml.Node, path string) ([]spec.Problem, bool) {
	e, found := r.Lookup(Kind(kind), name)
	if !found {
		return nil, false
	}
	_, ps := e.Decode(node, path)
	return ps, true
}

// ConfigSchema returns the JSON Schema of a component's config block.
func (r *Registry) ConfigSchema(kind, name string) (map[string]any, bool) {
	e, found := r.Lookup(Kind(kind), name)
	if !found {
		return nil, false
	}
	return spec.JSONSchema(e.Fields), true
}

// Instantiate decodes and validates a config block and builds the
// component from it: the one place a component's config is checked.
func (e *Entry) Instantiate(ctx context.Context, node *yaml.Node, path string) (any, error) {
	cfg, ps := e.Decode(node, path)
	if len(ps) > 0 {
		return nil, spec.Problems(ps)
	}
	c, err := e.Build(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Package is the import path of the package whose config type the entry
// uses: where its README lives.
func (e *Entry) Package() string { return e.config.PkgPath() }

// Docs renders the Markdown config table of an entry.
func (e *Entry) Docs() string { return spec.MarkdownTable(e.Fields) }

// Builder builds pipeline components from the registry; it satisfies the
// engine's Factory interface.
type Builder struct{ R *Registry }

func (b Builder) reg() *Registry {
	if b.R == nil {
		return Default
	}
	return b.R
}

func (b Builder) get(ctx context.Context, kind Kind, name string, node *yaml.Node, path string) (any, error) {
	e, ok := b.reg().Lookup(kind, name)
	if !ok {
		if tag, unlinked := b.reg().Unlinked(string(kind), name); unlinked {
			return nil, NotLinkedError(path, string(kind), name, tag)
		}
		return nil, fmt.Errorf("%s: unknown %s %q", path, kind, name)
	}
	return e.Instantiate(ctx, node, path)
}

// Canonical returns the catalog's own name of a component however the
// pipeline spells it ("object_storage", "object-store" → "object-storage"),
// or name itself when the catalog does not know it. Metric names and
// labels use it, so two spellings of one connector are one series.
func (b Builder) Canonical(kind, name string) string {
	if e, ok := b.reg().Lookup(Kind(kind), name); ok {
		return e.Name
	}
	return name
}

// NewSource builds a source.
func (b Builder) NewSource(ctx context.Context, name string, node *yaml.Node, path string) (connector.Source, error) {
	c, err := b.get(ctx, Source, name, node, path)
	if err != nil {
		return nil, err
	}
	return c.(connector.Source), nil
}

// NewSink builds a sink.
func (b Builder) NewSink(ctx context.Context, name string, node *yaml.Node, path string) (connector.Sink, error) {
	c, err := b.get(ctx, Sink, name, node, path)
	if err != nil {
		return nil, err
	}
	return c.(connector.Sink), nil
}

// NewTransform builds a transform.
func (b Builder) NewTransform(ctx context.Context, name string, node *yaml.Node, path string) (connector.Transform, error) {
	c, err := b.get(ctx, Transform, name, node, path)
	if err != nil {
		return nil, err
	}
	return c.(connector.Transform), nil
}
