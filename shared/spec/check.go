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
// values outside the enum or range. At most MaxProblems are listed, the
// first by position; the rest are counted in a last entry (Omitted).
func Check(fields []Field, node *yaml.Node, path string) []Problem {
	c := newChecker()
	c.object(fields, node, path)
	return c.out.Problems()
}

// checker walks a node against field descriptions. It remembers the nodes
// it found wrong (up to a bound), so that DecodeType can decode the rest
// of a block and still run its Validate.
type checker struct {
	out Collector
	bad map[*yaml.Node]bool
}

func newChecker() *checker { return &checker{bad: map[*yaml.Node]bool{}} }

// add records a problem; at, when not nil, is the node to leave out of
// the decode that runs Validate (the wrong value, or an unknown key).
func (c *checker) add(at *yaml.Node, p Problem) {
	c.out.Add(p)
	if at != nil && len(c.bad) <= MaxProblems {
		c.bad[at] = true
	}
}

func (c *checker) object(fields []Field, node *yaml.Node, path string) {
	node = deref(node)
	if isNull(node) {
		for _, f := range fields {
			if f.Required {
				c.add(nil, At(node, Join(path, f.Name), "required key %q is missing", f.Name))
			}
		}
		return
	}
	if node.Kind != yaml.MappingNode {
		c.add(node, At(node, path, "expected a mapping of keys, got %s", describe(node)))
		return
	}
	c.merges(node, path)
	seen := make(map[string]bool, len(node.Content)/2)
	for _, e := range entries(node) {
		key := e.k.Value
		p := Join(path, key)
		if seen[key] {
			c.add(e.k, At(e.k, p, "duplicate key %q", key))
			continue
		}
		seen[key] = true
		f, ok := Lookup(fields, key)
		if !ok {
			c.add(e.k, At(e.k, p, "unknown key %q%s", key, suggest(key, fieldNames(fields))))
			continue
		}
		c.value(f, e.v, p)
	}
	for _, f := range fields {
		if f.Required && !seen[f.Name] {
			c.add(nil, At(node, Join(path, f.Name), "required key %q is missing", f.Name))
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode {
		switch len(n.Content) {
		case 0:
			return nil
		case 1:
			return deref(n.Content[0])
		}
	}
	return n
}

// isNull reports whether n holds no value: nil, the zero Node (what an
// absent key leaves in a yaml.Node field) or a null scalar.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// entry is one key/value pair of a mapping. idx is the index of the key in
// the mapping's Content, or -1 when it comes from a merge key.
type entry struct {
	k, v *yaml.Node
	idx  int
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// entries lists the pairs of a mapping with YAML merge keys (<<: *base)
// expanded as yaml decoding does: explicit keys win over merged ones, and
// earlier merged mappings over later ones.
func entries(m *yaml.Node) []entry {
	return appendEntries(nil, m, true, map[string]bool{}, map[*yaml.Node]bool{})
}

func appendEntries(out []entry, m *yaml.Node, explicit bool, have map[string]bool, visiting map[*yaml.Node]bool) []entry {
	if visiting[m] {
		return out
	}
	visiting[m] = true
	defer delete(visiting, m)
	var merges []*yaml.Node
	var own []entry
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMerge(k) {
			merges = append(merges, v)
			continue
		}
		if explicit {
			own = append(own, entry{k, v, i}) // duplicates are kept for Check to report
		} else if !have[k.Value] {
			own = append(own, entry{k, v, -1})
		}
	}
	for _, e := range own {
		have[e.k.Value] = true
	}
	out = append(out, own...)
	for _, v := range merges {
		for _, src := range mergeSources(v) {
			out = appendEntries(out, src, false, have, visiting)
		}
	}
	return out
}

// mergeSources returns the mappings a merge key's value names, or nil
// when it is not a mapping or a list of mappings.
func mergeSources(v *yaml.Node) []*yaml.Node {
	v = deref(v)
	switch {
	case v == nil:
		return nil
	case v.Kind == yaml.MappingNode:
		return []*yaml.Node{v}
	case v.Kind == yaml.SequenceNode:
		var out []*yaml.Node
		for _, c := range v.Content {
			c = deref(c)
			if c == nil || c.Kind != yaml.MappingNode {
				return nil
			}
			out = append(out, c)
		}
		return out
	}
	return nil
}

// merges reports merge keys whose value yaml cannot merge.
func (c *checker) merges(m *yaml.Node, path string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if isMerge(m.Content[i]) && mergeSources(m.Content[i+1]) == nil {
			c.add(m.Content[i], At(m.Content[i+1], Join(path, "<<"), "a merge key (<<) needs a mapping or a list of mappings"))
		}
	}
}

// secretField marks f and everything inside it secret, so that no value
// below a secret is echoed.
func secretField(f Field) Field {
	f.Secret = true
	if f.Elem != nil {
		e := secretField(*f.Elem)
		f.Elem = &e
	}
	if len(f.Fields) > 0 {
		fs := make([]Field, len(f.Fields))
		for i, c := range f.Fields {
			fs[i] = secretField(c)
		}
		f.Fields = fs
	}
	return f
}

func (c *checker) value(f Field, node *yaml.Node, path string) {
	node = deref(node)
	if isNull(node) {
		if f.Required {
			c.add(node, At(node, path, "%q must have a value", f.Name))
		}
		return
	}
	if f.Secret && (f.Elem != nil || len(f.Fields) > 0) {
		f = secretField(f)
	}
	bad := func(want string) {
		shown := describe(node)
		if f.Secret && node.Kind == yaml.ScalarNode {
			shown = "a value" // the kind of a list or mapping gives nothing away
		}
		c.add(node, At(node, path, "expected %s, got %s", want, shown))
	}
	switch f.Type {
	case TAny:
		if f.Check != nil {
			for _, p := range f.Check(node, path) {
				c.add(node, p)
			}
		}
		return
	case TObject:
		c.object(f.Fields, node, path)
		return
	case TArray:
		if node.Kind != yaml.SequenceNode {
			bad("a list")
			return
		}
		for i, e := range node.Content {
			c.value(*f.Elem, e, Index(path, i))
		}
		return
	case TMap:
		if node.Kind != yaml.MappingNode {
			bad("a mapping")
			return
		}
		c.merges(node, path)
		seen := make(map[string]bool, len(node.Content)/2)
		for _, e := range entries(node) {
			p := Join(path, e.k.Value)
			if seen[e.k.Value] {
				c.add(e.k, At(e.k, p, "duplicate key %q", e.k.Value))
				continue
			}
			seen[e.k.Value] = true
			c.value(*f.Elem, e.v, p)
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
		if node.ShortTag() != "!!bool" {
			bad("true or false")
			return
		}
	case TInteger, TNumber:
		var v float64
		var err error
		if f.Type == TInteger {
			if node.ShortTag() != "!!int" {
				bad("an integer")
				return
			}
			var n int64
			n, err = strconv.ParseInt(strings.ReplaceAll(node.Value, "_", ""), 0, 64)
			v = float64(n)
		} else {
			if tag := node.ShortTag(); tag != "!!int" && tag != "!!float" {
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
			shown := node.Value
			if f.Secret {
				shown = "the value"
			}
			c.add(node, At(node, path, "%s is out of range (%s)", shown, rangeText(f)))
			return
		}
	case TDuration:
		if _, err := ParseDuration(node.Value); err != nil {
			bad(`a duration such as "30s" or "5m"`)
			return
		}
	}
	if len(f.Enum) > 0 && !contains(f.Enum, node.Value) {
		if f.Secret {
			c.add(node, At(node, path, "the value is not allowed (allowed: %s)", strings.Join(f.Enum, ", ")))
			return
		}
		c.add(node, At(node, path, "%q is not allowed (allowed: %s)%s",
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
	switch n.ShortTag() {
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
// When the check finds problems, the value is nil; the sound rest of the
// block is still decoded so that its Validate reports what it finds too
// (a bad port does not hide a bad slot name), except about values the
// check already named.
func DecodeType(t reflect.Type, node *yaml.Node, path string) (any, []Problem) {
	fields := FieldsOf(t)
	c := newChecker()
	c.object(fields, node, path)
	if ps := c.out.Problems(); len(ps) > 0 {
		if c.out.Len() > MaxProblems || len(c.bad) > MaxProblems {
			return nil, ps // the list is full anyway
		}
		if n := deref(node); n != nil && c.bad[n] {
			return nil, ps // nothing sound to decode
		}
		vps, ok := validatePruned(t, fields, prune(node, c.bad, map[*yaml.Node]*yaml.Node{}), path)
		if !ok {
			return nil, ps
		}
		for _, vp := range vps {
			if !relatedToAny(vp.Path, ps) {
				ps = append(ps, vp)
			}
		}
		ps.Sort()
		return nil, ps
	}
	v, ps, ok := decodeValidate(t, fields, node, path)
	if !ok {
		return nil, ps
	}
	return v, ps
}

// validatePruned runs decodeValidate on a block the check found wrong,
// with the wrong values left out. A Validate may rely on what the check
// promises (a required key is there), so a panic only means there is no
// more to report.
func validatePruned(t reflect.Type, fields []Field, node *yaml.Node, path string) (ps []Problem, ok bool) {
	defer func() {
		if recover() != nil {
			ps, ok = nil, false
		}
	}()
	_, ps, ok = decodeValidate(t, fields, node, path)
	return ps, ok
}

// decodeValidate fills the defaults into node, decodes it and runs the
// type's Validate. ok is false when the decode itself failed (ps says why).
func decodeValidate(t reflect.Type, fields []Field, node *yaml.Node, path string) (v any, ps []Problem, ok bool) {
	FillDefaults(fields, node)
	ptr := reflect.New(t)
	if err := ApplyDefaults(ptr.Interface()); err != nil {
		return nil, []Problem{At(node, path, "bad default in spec: %v", err)}, false
	}
	n := deref(node)
	if !isNull(n) {
		if err := n.Decode(ptr.Interface()); err != nil {
			return nil, []Problem{At(n, path, "%s", cleanYAMLError(err))}, false
		}
	}
	if v, ok := ptr.Interface().(Validator); ok {
		for _, p := range v.Validate() {
			rel := p.Path
			p.Path = Join(path, rel)
			if p.Line == 0 {
				at := Find(n, rel) // n itself when rel is ""
				for at == nil && rel != "" {
					// A missing key: point at the closest parent that exists.
					rel = parentPath(rel)
					at = Find(n, rel)
				}
				if at != nil {
					p.Line, p.Column = at.Line, at.Column
				}
			}
			ps = append(ps, p)
		}
	}
	return ptr.Interface(), ps, true
}

// prune copies node without the entries and items whose key or value is
// in bad. Aliases are kept (pointing at pruned copies), not expanded.
func prune(n *yaml.Node, bad map[*yaml.Node]bool, done map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := done[n]; ok {
		return c
	}
	c := *n
	done[n] = &c
	switch n.Kind {
	case yaml.AliasNode:
		c.Alias = prune(n.Alias, bad, done)
	case yaml.MappingNode:
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if bad[k] || bad[v] || bad[deref(v)] {
				continue
			}
			c.Content = append(c.Content, prune(k, bad, done), prune(v, bad, done))
		}
	default:
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		for _, e := range n.Content {
			if bad[e] || bad[deref(e)] {
				continue
			}
			c.Content = append(c.Content, prune(e, bad, done))
		}
	}
	return &c
}

// relatedToAny reports whether path is, contains or lies within the path
// of one of the problems: Validate's findings about a value the check
// already named (or left out of the decode) would only repeat it, or be
// wrong.
func relatedToAny(path string, ps []Problem) bool {
	within := func(a, b string) bool { // a is b or below it
		return a == b || b == "" || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	for _, p := range ps {
		if p.Omitted == 0 && (within(path, p.Path) || within(p.Path, path)) {
			return true
		}
	}
	return false
}

// parentPath drops the last key or index of a path ("a.b[2]" → "a.b").
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Find returns the value node at a path below node, or nil. The path is
// dotted keys with list indexes ("routes[0].topic"); keys that contain
// dots are matched too (the longest key wins), and merge keys (<<) are
// followed. An empty path is node itself.
func Find(node *yaml.Node, path string) *yaml.Node {
	node = deref(node)
	if node == nil || path == "" {
		return node
	}
	if path[0] == '[' {
		end := strings.IndexByte(path, ']')
		if end < 0 || node.Kind != yaml.SequenceNode {
			return nil
		}
		i, err := strconv.Atoi(path[1:end])
		if err != nil || i < 0 || i >= len(node.Content) {
			return nil
		}
		rest := path[end+1:]
		if rest != "" && rest[0] != '[' {
			if rest[0] != '.' || len(rest) == 1 {
				return nil
			}
			rest = rest[1:]
		}
		return Find(node.Content[i], rest)
	}
	if node.Kind != yaml.MappingNode {
		return nil
	}
	var best *yaml.Node
	bestLen := -1
	for _, e := range entries(node) {
		k := e.k.Value
		if len(k) <= bestLen {
			continue
		}
		var rest string
		switch {
		case path == k:
		case strings.HasPrefix(path, k+".") && len(path) > len(k)+1:
			rest = path[len(k)+1:]
		case strings.HasPrefix(path, k+"["):
			rest = path[len(k):]
		default:
			continue
		}
		if r := Find(e.v, rest); r != nil {
			best, bestLen = r, len(k)
		}
	}
	return best
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	return strings.TrimSpace(s)
}

// DecodeString is Decode for YAML text, as connector tests and programs
// that build configs in code have it. A syntax error is a problem at path.
func DecodeString[T any](src, path string) (*T, []Problem) {
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		return nil, []Problem{{Path: path, Message: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	return Decode[T](&node, path)
}
