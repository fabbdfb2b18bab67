// Package row is what transforms share: reaching the row maps of an event
// (data, or before and after of updates) and dotted paths into nested rows.
// It is a helper of the transform packages, not a connector.
package row

import (
	"fmt"
	"strings"

	"github.com/rivven/rivven-connect/events"
)

// Mutable returns the rows a transform should change, and marks the event's
// data changed so it is re-encoded: the data of inserts, records, snapshot
// reads and deletes; after and before (when present) of updates. Events
// without rows (schema, state, log, truncate) give none.
func Mutable(e *events.Event) ([]map[string]any, error) {
	if !e.Type.IsData() {
		return nil, nil
	}
	v, err := e.Data.Mutable()
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s event data is %T, not an object", e.Type, v)
	}
	if e.Type != events.Update {
		return []map[string]any{m}, nil
	}
	var out []map[string]any
	for _, k := range [...]string{"after", "before"} {
		if r, ok := m[k].(map[string]any); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// Path is a parsed dotted path such as "customer.address.city".
type Path []string

// ParsePath splits a dotted path; empty segments are an error.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, fmt.Errorf("empty field path")
	}
	p := Path(strings.Split(s, "."))
	for _, seg := range p {
		if seg == "" {
			return nil, fmt.Errorf("field path %q has an empty segment", s)
		}
	}
	return p, nil
}

// ParsePaths parses several paths, naming the bad one.
func ParsePaths(ss []string) ([]Path, error) {
	out := make([]Path, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePath(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (p Path) String() string { return strings.Join(p, ".") }

// Get returns the value at the path.
func (p Path) Get(m map[string]any) (any, bool) {
	var cur any = m
	for _, seg := range p {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Set stores v at the path, creating intermediate objects. It fails when a
// segment on the way is not an object.
func (p Path) Set(m map[string]any, v any) error {
	obj := m
	for i, seg := range p[:len(p)-1] {
		next, ok := obj[seg]
		if !ok || next == nil {
			child := map[string]any{}
			obj[seg] = child
			obj = child
			continue
		}
		if obj, ok = next.(map[string]any); !ok {
			return fmt.Errorf("cannot set %s: %s is %T, not an object", p, Path(p[:i+1]), next)
		}
	}
	obj[p[len(p)-1]] = v
	return nil
}

// Delete removes the value at the path and reports whether it was there.
func (p Path) Delete(m map[string]any) bool {
	obj := m
	for _, seg := range p[:len(p)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			return false
		}
		obj = next
	}
	_, ok := obj[p[len(p)-1]]
	delete(obj, p[len(p)-1])
	return ok
}
