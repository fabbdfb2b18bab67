// Package buildtag is the one build-tag vocabulary of the project: which
// tag links which component into a binary. It follows Telegraf's scheme.
// A file that links a component is constrained by
//
//	//go:build !custom || sinks || sinks.stdout
//
// so a plain build links everything, and a build with the tag "custom"
// links only what its other tags name: a whole group (sinks) or one member
// (sinks.stdout). The groups are sources, sinks and transforms (connectors,
// by their catalog name in snake_case), transports (what broker.transport
// names), loaders (where a function reads its pipeline: s3, gcs) and hosts
// (lambda, cloudrun).
//
// The CLI, the function mains, the Taskfile and scripts/buildfunctions all
// use these names, and `rivven-connect build -c FILE` derives a pipeline's
// set with Derive. Components register here (connectors/all does, for
// every connector, linked or not), so that a binary built without one can
// say which tag it lacks instead of calling the name unknown.
package buildtag

import (
	"sort"
	"strings"
	"sync"
	"unicode"
)

// Custom is the tag that turns "everything" into "only what is named".
const Custom = "custom"

// The groups.
const (
	Sources    = "sources"
	Sinks      = "sinks"
	Transforms = "transforms"
	Transports = "transports"
	Loaders    = "loaders"
	Hosts      = "hosts"
)

// Group is the tag group of a catalog kind (source, sink, transform).
func Group(kind string) string {
	switch kind {
	case "source":
		return Sources
	case "sink":
		return Sinks
	case "transform":
		return Transforms
	}
	return kind + "s"
}

// For is the tag of a component: its group, a dot, and its catalog name
// in snake_case without a trailing "-source"/"-sink" (a build tag cannot
// hold '-', and "sinks.kafka_sink" says it twice): kafka-sink is
// sinks.kafka, postgres-cdc sources.postgres_cdc, MaskField
// transforms.mask_field.
func For(kind, name string) string {
	name = strings.TrimSuffix(strings.TrimSuffix(name, "-"+kind), "_"+kind)
	return Group(kind) + "." + Snake(name)
}

// Transport is the tag that links broker.transport name.
func Transport(name string) string { return Transports + "." + Snake(name) }

// Loader is the tag that links the pipeline loader a function uses for
// RIVVEN_PIPELINE URLs of a store (s3, gcs).
func Loader(store string) string { return Loaders + "." + Snake(store) }

// Host is the tag that links a function host (lambda, cloudrun).
func Host(name string) string { return Hosts + "." + Snake(name) }

// Constraint is the //go:build expression of a file that links the
// component whose tag is tag.
func Constraint(tag string) string {
	group, _, _ := strings.Cut(tag, ".")
	return "!" + Custom + " || " + group + " || " + tag
}

// Snake writes a catalog name as a build tag may hold it: lower case,
// words joined by '_' ("MaskField" and "mask-field" both mask_field).
func Snake(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case r == '-' || r == '_' || r == ' ' || r == '.':
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		case unicode.IsUpper(r):
			// A new word starts at an upper-case letter that follows a
			// lower-case one or digit, or that begins "Xy" after an
			// acronym (JSONPath: json_path).
			if i > 0 && b.Len() > 0 && !strings.HasSuffix(b.String(), "_") &&
				(unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// Component is a connector as the vocabulary knows it: kind, catalog name
// and aliases.
type Component struct {
	Kind    string
	Name    string
	Aliases []string
}

// Tag is the component's tag.
func (c Component) Tag() string { return For(c.Kind, c.Name) }

var (
	mu    sync.RWMutex
	known = map[string]map[string]Component{} // kind → normalized name → component
)

// Know records components, linked into this binary or not.
func Know(cs ...Component) {
	mu.Lock()
	defer mu.Unlock()
	for _, c := range cs {
		m := known[c.Kind]
		if m == nil {
			m = map[string]Component{}
			known[c.Kind] = m
		}
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			m[Normalize(n)] = c
		}
	}
}

// Lookup finds a known component by name or alias, as the catalog does
// (ignoring case, '-' and '_').
func Lookup(kind, name string) (Component, bool) {
	mu.RLock()
	defer mu.RUnlock()
	c, ok := known[kind][Normalize(name)]
	return c, ok
}

// Normalize makes "ExtractNewRecordState", "extract_new_record_state" and
// "extract-new-record-state" the same name.
//
// It runs for every name each connector registers at package
// initialisation and for every lookup, so it builds the result in one pass
// rather than through a strings.Replacer, which is built anew per call.
func Normalize(name string) string {
	name = strings.ToLower(name)
	if !strings.ContainsAny(name, "-_") {
		return name
	}
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		if c := name[i]; c != '-' && c != '_' {
			b = append(b, c)
		}
	}
	return string(b)
}

// Set is a set of tags.
type Set map[string]bool

// Add adds tags.
func (s Set) Add(tags ...string) {
	for _, t := range tags {
		s[t] = true
	}
}

// Sorted lists the tags, sorted.
func (s Set) Sorted() []string {
	out := make([]string, 0, len(s))
	for t := range s {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// String is the -tags value of a custom build with these tags.
func (s Set) String() string {
	return strings.Join(append([]string{Custom}, s.Sorted()...), ",")
}

// Hint is what to tell the user of a binary that lacks tag.
func Hint(tag string) string {
	return "build one that has it with `rivven-connect build -c PIPELINE` (it picks the tags), or add " + tag + " to -tags custom,…; a build without -tags links everything"
}

// Names lists the names and aliases of every known component of a kind,
// sorted (for did-you-mean).
func Names(kind string) []string {
	mu.RLock()
	defer mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for _, c := range known[kind] {
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}
