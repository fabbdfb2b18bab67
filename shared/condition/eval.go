package condition

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/rivven/rivven-connect/events"
)

// Condition is a compiled condition.
type Condition struct {
	src string
	fn  boolFn
}

// Compile parses and type-checks a condition.
func Compile(src string) (*Condition, error) {
	n, err := parse(src)
	if err != nil {
		return nil, err
	}
	fn, err := compileBool(n)
	if err != nil {
		return nil, err
	}
	return &Condition{src: src, fn: fn}, nil
}

// MustCompile is Compile for conditions known to be valid.
func MustCompile(src string) *Condition {
	c, err := Compile(src)
	if err != nil {
		panic(fmt.Sprintf("condition %q: %v", src, err))
	}
	return c
}

func (c *Condition) String() string { return c.src }

// Match evaluates the condition on an event. Missing fields are null; a
// comparison between values of different types is false (and != is true).
func (c *Condition) Match(e *events.Event) bool {
	en := envPool.Get().(*env)
	*en = env{e: e}
	ok := c.fn(en)
	*en = env{}
	envPool.Put(en)
	return ok
}

// envPool keeps Match from allocating: the closures take *env, which
// escape analysis cannot keep on the stack.
var envPool = sync.Pool{New: func() any { return new(env) }}

// env is one evaluation: the event and its rows, decoded on first use.
type env struct {
	e                   *events.Event
	after, before, key  map[string]any
	gotAfter, gotBefore bool
	gotKey              bool
	metadata            map[string]any
	gotMeta             bool
}

func (en *env) root(name string) map[string]any {
	switch name {
	case "after":
		if !en.gotAfter {
			en.after, _ = en.e.After()
			en.gotAfter = true
		}
		return en.after
	case "before":
		if !en.gotBefore {
			en.before, _ = en.e.Before()
			en.gotBefore = true
		}
		return en.before
	case "value", "row":
		if en.e.Type == events.Delete {
			return en.root("before")
		}
		return en.root("after")
	case "key":
		if !en.gotKey {
			en.gotKey = true
			if len(en.e.Key) > 0 {
				var v any
				if json.Unmarshal(en.e.Key, &v) == nil {
					en.key, _ = v.(map[string]any)
				}
			}
		}
		return en.key
	case "metadata":
		if !en.gotMeta {
			en.gotMeta = true
			md := &en.e.Metadata
			m := map[string]any{}
			if md.Position != "" {
				m["position"] = md.Position
			}
			if md.TransactionID != "" {
				m["transaction_id"] = md.TransactionID
			}
			if md.Sequence != nil {
				m["sequence"] = json.Number(strconv.FormatUint(*md.Sequence, 10))
			}
			for _, f := range md.Extra {
				var v any
				if json.Unmarshal(f.Value, &v) == nil {
					m[f.Key] = v
				}
			}
			en.metadata = m
		}
		return en.metadata
	}
	return nil
}

// rawField reads a row field from the event's data while it is still
// bytes or fields (not changed as a value), decoding only the field's
// value: what root and the path walk give, without building the row maps.
// The data keeps its split into fields (events.Payload.Fields), so
// transforms after this one do not scan it again. ok is false when the
// data was changed as a value (the maps are the data then), is not an
// object of fields, or the root is not a row.
func (en *env) rawField(root string, path []string) (any, bool) {
	t := en.e.Type
	if root == "value" || root == "row" {
		root = "after"
		if t == events.Delete {
			root = "before"
		}
	}
	if root != "after" && root != "before" {
		return nil, false // key, metadata: not the data
	}
	row, ok := en.e.Data.Row(t, root)
	if !ok {
		return nil, false
	}
	if row == nil {
		return nil, true // the event has no such row: every field is null
	}
	b, ok := row.Lookup(path...)
	if !ok {
		return nil, true // absent, or not an object on the way: null
	}
	v, err := events.ValueOfRaw(b)
	if err != nil {
		return nil, true
	}
	return v, true
}

func (en *env) attr(name string) any {
	e := en.e
	switch name {
	case "namespace":
		if e.Namespace == nil {
			return nil
		}
		return *e.Namespace
	case "database":
		if e.Source != nil && e.Source.Database != "" {
			return e.Source.Database
		}
		return nil
	case "schema":
		if e.Source != nil && e.Source.Schema != "" {
			return e.Source.Schema
		}
		if e.Namespace != nil {
			return *e.Namespace
		}
		return nil
	}
	return en.attrString(name)
}

type (
	boolFn func(*env) bool
	valFn  func(*env) any
)

func compileBool(n node) (boolFn, error) {
	switch n := n.(type) {
	case orNode:
		l, err := compileBool(n.l)
		if err != nil {
			return nil, err
		}
		r, err := compileBool(n.r)
		if err != nil {
			return nil, err
		}
		return func(en *env) bool { return l(en) || r(en) }, nil
	case andNode:
		l, err := compileBool(n.l)
		if err != nil {
			return nil, err
		}
		r, err := compileBool(n.r)
		if err != nil {
			return nil, err
		}
		return func(en *env) bool { return l(en) && r(en) }, nil
	case notNode:
		x, err := compileBool(n.x)
		if err != nil {
			return nil, err
		}
		return func(en *env) bool { return !x(en) }, nil
	case cmpNode:
		return compileCmp(n)
	case inNode:
		x, err := compileVal(n.x)
		if err != nil {
			return nil, err
		}
		list := n.list
		return func(en *env) bool {
			v := x(en)
			for _, l := range list {
				if c, ok := compare(v, l.v); ok && c == 0 {
					return true
				}
			}
			return false
		}, nil
	case matchNode:
		x, err := compileVal(n.x)
		if err != nil {
			return nil, err
		}
		re := n.re
		return func(en *env) bool {
			switch v := x(en).(type) {
			case string:
				return re.MatchString(v)
			case json.Number:
				return re.MatchString(string(v))
			}
			return false
		}, nil
	case nullNode:
		x, err := compileVal(n.x)
		if err != nil {
			return nil, err
		}
		if n.not {
			return func(en *env) bool { return x(en) != nil }, nil
		}
		return func(en *env) bool { return x(en) == nil }, nil
	case pathNode:
		// A bare field is true when it holds true.
		x, err := compileVal(n)
		if err != nil {
			return nil, err
		}
		return func(en *env) bool { b, _ := x(en).(bool); return b }, nil
	case litNode:
		b, ok := n.v.v.(bool)
		if !ok {
			return nil, &Error{n.c, fmt.Sprintf("a %s is not a condition", typeName(n.v.v))}
		}
		return func(*env) bool { return b }, nil
	}
	return nil, &Error{n.col(), "not a condition"}
}

func compileVal(n node) (valFn, error) {
	switch n := n.(type) {
	case litNode:
		v := n.v.v
		return func(*env) any { return v }, nil
	case pathNode:
		root, path := n.root, n.path
		if root == "attr" {
			name := path[0]
			return func(en *env) any { return en.attr(name) }, nil
		}
		return func(en *env) any {
			if len(path) > 0 {
				if v, ok := en.rawField(root, path); ok {
					return v
				}
			}
			m := en.root(root)
			if m == nil {
				return nil
			}
			if len(path) == 0 {
				return m
			}
			var cur any = m
			for _, seg := range path {
				obj, ok := cur.(map[string]any)
				if !ok {
					return nil
				}
				cur = obj[seg]
			}
			return cur
		}, nil
	}
	// A nested condition used as a value: its truth.
	b, err := compileBool(n)
	if err != nil {
		return nil, err
	}
	return func(en *env) any { return b(en) }, nil
}

func compileCmp(n cmpNode) (boolFn, error) {
	if fn := attrEquals(n); fn != nil {
		return fn, nil
	}
	l, err := compileVal(n.l)
	if err != nil {
		return nil, err
	}
	r, err := compileVal(n.r)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "==":
		return func(en *env) bool { c, ok := compare(l(en), r(en)); return ok && c == 0 }, nil
	case "!=":
		return func(en *env) bool { c, ok := compare(l(en), r(en)); return !ok || c != 0 }, nil
	case "<":
		return func(en *env) bool { c, ok := order(l(en), r(en)); return ok && c < 0 }, nil
	case "<=":
		return func(en *env) bool { c, ok := order(l(en), r(en)); return ok && c <= 0 }, nil
	case ">":
		return func(en *env) bool { c, ok := order(l(en), r(en)); return ok && c > 0 }, nil
	case ">=":
		return func(en *env) bool { c, ok := order(l(en), r(en)); return ok && c >= 0 }, nil
	}
	return nil, &Error{n.c, "unknown operator " + n.op}
}

// attrEquals compiles `attribute ==/!= "text"` to a plain string
// comparison, without boxing the attribute (these run on every event when
// used in predicates).
func attrEquals(n cmpNode) boolFn {
	if n.op != "==" && n.op != "!=" {
		return nil
	}
	p, lit := n.l, n.r
	if _, ok := p.(pathNode); !ok {
		p, lit = n.r, n.l
	}
	pn, ok1 := p.(pathNode)
	ln, ok2 := lit.(litNode)
	if !ok1 || !ok2 || pn.root != "attr" {
		return nil
	}
	want, ok := ln.v.v.(string)
	name := pn.path[0]
	if !ok || name == "namespace" || name == "database" || name == "schema" {
		return nil // these can be null: keep the general path
	}
	eq := n.op == "=="
	return func(en *env) bool { return (en.attrString(name) == want) == eq }
}

func (en *env) attrString(name string) string {
	e := en.e
	switch name {
	case "op":
		return e.Type.Op()
	case "event_type":
		return string(e.Type)
	case "stream":
		return e.Stream
	case "table":
		if e.Source != nil && e.Source.Table != "" {
			return e.Source.Table
		}
		return e.Stream
	}
	return ""
}

// order compares values that have an order (numbers, strings).
func order(a, b any) (int, bool) {
	switch a.(type) {
	case nil, bool:
		return 0, false
	}
	switch b.(type) {
	case nil, bool:
		return 0, false
	}
	return compare(a, b)
}

// compare returns -1, 0, 1 and whether a and b are comparable. Numbers
// compare by value whatever their representation (json.Number, float64,
// numeric strings against numbers, since databases often send decimals
// as strings); integers compare exactly.
func compare(a, b any) (int, bool) {
	if a == nil || b == nil {
		if a == nil && b == nil {
			return 0, true
		}
		return 0, false
	}
	if ab, ok := a.(bool); ok {
		bb, ok := b.(bool)
		if !ok {
			return 0, false
		}
		if ab == bb {
			return 0, true
		}
		if !ab {
			return -1, true
		}
		return 1, true
	}
	an, aNum := number(a)
	bn, bNum := number(b)
	as, aStr := a.(string)
	bs, bStr := b.(string)
	switch {
	case aStr && bStr:
		return cmp3(as, bs), true
	case aNum.ok && bNum.ok && aNum.isInt && bNum.isInt:
		return cmp3(aNum.i, bNum.i), true
	case aNum.ok && bNum.ok:
		return cmp3(an, bn), true
	case aNum.ok && bStr:
		if f, err := strconv.ParseFloat(bs, 64); err == nil {
			return cmp3(an, f), true
		}
	case aStr && bNum.ok:
		if f, err := strconv.ParseFloat(as, 64); err == nil {
			return cmp3(f, bn), true
		}
	}
	return 0, false
}

type num struct {
	ok, isInt bool
	i         int64
}

func number(v any) (float64, num) {
	switch x := v.(type) {
	case json.Number:
		if isIntText(string(x)) {
			if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return float64(i), num{true, true, i}
			}
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return f, num{ok: true}
		}
	case float64:
		if x == float64(int64(x)) && x < 1<<53 && x > -(1<<53) {
			return x, num{true, true, int64(x)}
		}
		return x, num{ok: true}
	case int:
		return float64(x), num{true, true, int64(x)}
	case int64:
		return float64(x), num{true, true, x}
	}
	return 0, num{}
}

// isIntText avoids a failing ParseInt (which allocates its error) for
// decimals.
func isIntText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && !(i == 0 && c == '-') {
			return false
		}
	}
	return len(s) > 0
}

func cmp3[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
