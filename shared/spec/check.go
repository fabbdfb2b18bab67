package spec

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Check validates node against fields and returns every problem found:
// unknown keys (with a did-you-mean), missing required keys, wrong types,
// values outside the enum or range.
func Check(fields []Field, node *yaml.Node, path string) []Problem {
	var ps []Problem
	checkObject(fields, node, path, &ps)
	return ps
}

func checkObject(fields []Field, node *yaml.Node, path string, ps *[]Problem) {
	node = deref(node)
	if node == nil || node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		for _, f := range fields {
			if f.Required {
				*ps = append(*ps, At(node, Join(path, f.Name), "required key %q is missing", f.Name))
			}
		}
		return
	}
	if node.Kind != yaml.MappingNode {
		*ps = append(*ps, At(node, path, "expected a mapping of keys, got %s", describe(node)))
		return
	}
	seen := make(map[string]bool, len(node.Content)/2)
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		key := k.Value
		p := Join(path, key)
		if seen[key] {
			*ps = append(*ps, At(k, p, "duplicate key %q", key))
			continue
		}
		seen[key] = true
		f, ok := Lookup(fields, key)
		if !ok {
			*ps = append(*ps, At(k, p, "unknown key %q%s", key, suggest(key, fieldNames(fields))))
			continue
		}
		checkValue(f, v, p, ps)
	}
	for _, f := range fields {
		if f.Required && !seen[f.Name] {
			*ps = append(*ps, At(node, Join(path, f.Name), "required key %q is missing", f.Name))
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return deref(n.Content[0])
	}
	return n
}

// CheckValue validates one value against a field description.
func CheckValue(f Field, node *yaml.Node, path string) []Problem {
	var ps []Problem
	checkValue(f, node, path, &ps)
	return ps
}

func checkValue(f Field, node *yaml.Node, path string, ps *[]Problem) {
	node = deref(node)
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		if f.Required {
			*ps = append(*ps, At(node, path, "%q must have a value", f.Name))
		}
		return
	}
	bad := func(want string) {
		shown := describe(node)
		if f.Secret {
			shown = "a value"
		}
		*ps = append(*ps, At(node, path, "expected %s, got %s", want, shown))
	}
	switch f.Type {
	case TAny:
		return
	case TObject:
		checkObject(f.Fields, node, path, ps)
		return
	case TArray:
		if node.Kind != yaml.SequenceNode {
			bad("a list")
			return
		}
		for i, c := range node.Content {
			checkValue(*f.Elem, c, Index(path, i), ps)
		}
		return
	case TMap:
		if node.Kind != yaml.MappingNode {
			bad("a mapping")
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			checkValue(*f.Elem, node.Content[i+1], Join(path, node.Content[i].Value), ps)
		}
		return
	}
	if node.Kind != yaml.ScalarNode {
		bad("a " + f.Type)
		return
	}
	switch f.Type {
	case TString:
		// Any scalar reads as a string (port: 5432 into a string is fine).
	case TBoolean:
		if node.Tag != "!!bool" {
			bad("true or false")
			return
		}
	case TInteger, TNumber:
		var v float64
		var err error
		if f.Type == TInteger {
			if node.Tag != "!!int" {
				bad("an integer")
				return
			}
			var n int64
			n, err = strconv.ParseInt(strings.ReplaceAll(node.Value, "_", ""), 0, 64)
			v = float64(n)
		} else {
			if node.Tag != "!!int" && node.Tag != "!!float" {
				bad("a number")
				return
			}
			v, err = strconv.ParseFloat(strings.ReplaceAll(node.Value, "_", ""), 64)
		}
		if err != nil {
			bad("a " + f.Type)
			return
		}
		if f.Min != nil && v < *f.Min || f.Max != nil && v > *f.Max {
			*ps = append(*ps, At(node, path, "%s is out of range (%s)", node.Value, rangeText(f)))
			return
		}
	case TDuration:
		if _, err := ParseDuration(node.Value); err != nil {
			bad(`a duration such as "30s" or "5m"`)
			return
		}
	}
	if len(f.Enum) > 0 && !contains(f.Enum, node.Value) {
		*ps = append(*ps, At(node, path, "%q is not allowed (allowed: %s)%s",
			node.Value, strings.Join(f.Enum, ", "), suggest(node.Value, f.Enum)))
	}
}

// ParseDuration accepts Go durations ("1m30s").
func ParseDuration(s string) (time.Duration, error) { return time.ParseDuration(s) }

func rangeText(f Field) string {
	num := func(v float64) string {
		if v == math.Trunc(v) {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	switch {
	case f.Min != nil && f.Max != nil:
		return fmt.Sprintf("allowed: %s to %s", num(*f.Min), num(*f.Max))
	case f.Min != nil:
		return "allowed: at least " + num(*f.Min)
	default:
		return "allowed: at most " + num(*f.Max)
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!int":
		return "integer " + n.Value
	case "!!float":
		return "number " + n.Value
	case "!!bool":
		return "boolean " + n.Value
	}
	return strconv.Quote(n.Value)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fieldNames(fields []Field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return names
}

// Suggest returns ` (did you mean "x"?)` for the closest candidate, or "".
func suggest(s string, candidates []string) string {
	if best := Closest(s, candidates); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// Closest returns the candidate nearest to s by edit distance, if near
// enough to be a likely typo.
func Closest(s string, candidates []string) string {
	best, bestD := "", math.MaxInt
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := levenshtein(ls, strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(s)/3)
	if bestD <= limit && bestD < len(s) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Decode validates node against the fields of T, fills T's defaults, then
// decodes node over them. Problems from T's Validate method are included.
func Decode[T any](node *yaml.Node, path string) (*T, []Problem) {
	v, ps := DecodeType(reflect.TypeFor[T](), node, path)
	if v == nil {
		return nil, ps
	}
	return v.(*T), ps
}

// DecodeType is Decode for a type known at run time; it returns a pointer.
func DecodeType(t reflect.Type, node *yaml.Node, path string) (any, []Problem) {
	fields := FieldsOf(t)
	ps := Check(fields, node, path)
	if len(ps) > 0 {
		return nil, ps
	}
	FillDefaults(fields, node)
	ptr := reflect.New(t)
	if err := ApplyDefaults(ptr.Interface()); err != nil {
		return nil, []Problem{At(node, path, "bad default in spec: %v", err)}
	}
	if n := deref(node); n != nil && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		if err := n.Decode(ptr.Interface()); err != nil {
			return nil, []Problem{At(n, path, "%s", cleanYAMLError(err))}
		}
	}
	if v, ok := ptr.Interface().(Validator); ok {
		for _, p := range v.Validate() {
			p.Path = Join(path, p.Path)
			if p.Line == 0 && node != nil {
				if at := Find(node, strings.TrimPrefix(p.Path, path+".")); at != nil {
					p.Line, p.Column = at.Line, at.Column
				} else {
					p.Line, p.Column = deref(node).Line, deref(node).Column
				}
			}
			ps = append(ps, p)
		}
	}
	return ptr.Interface(), ps
}

// Find returns the value node at a dotted path below node, or nil.
func Find(node *yaml.Node, path string) *yaml.Node {
	node = deref(node)
	for _, key := range strings.Split(path, ".") {
		if node == nil || node.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				next = deref(node.Content[i+1])
				break
			}
		}
		node = next
	}
	return node
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	return strings.TrimSpace(s)
}
