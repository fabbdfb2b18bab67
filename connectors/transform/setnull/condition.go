package setnull

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Condition says when SetNull nulls a field. In YAML it is one of:
//
//	condition: always              # every value (the default)
//	condition: if_empty            # "", [] and {}
//	condition: {equals: N/A}       # values equal to this one (any JSON value)
//	condition: {regex: '^\s*$'}    # strings the expression matches
//
// (if_empty is also spelled empty, and regex matches, as in the reference
// implementation.)
type Condition struct {
	Kind    string // always, if_empty, equals or regex
	Equals  any    // the value of equals, as a decoded JSON value
	Pattern string // the expression of regex

	re *regexp.Regexp
}

var conditionSchema = map[string]any{
	"description": "always | if_empty | {equals: VALUE} | {regex: PATTERN}",
	"oneOf": []any{
		map[string]any{"type": "string", "enum": []string{"always", "if_empty", "empty"}},
		map[string]any{"type": "object", "properties": map[string]any{"equals": map[string]any{}}, "required": []string{"equals"}, "additionalProperties": false},
		map[string]any{"type": "object", "properties": map[string]any{"regex": map[string]any{"type": "string"}}, "required": []string{"regex"}, "additionalProperties": false},
		map[string]any{"type": "object", "properties": map[string]any{"matches": map[string]any{"type": "string"}}, "required": []string{"matches"}, "additionalProperties": false},
	},
}

// SpecField describes the accepted shapes, and checks them with YAML paths.
func (Condition) SpecField() spec.Field {
	return spec.Field{Type: spec.TAny, Schema: conditionSchema, Check: checkCondition}
}

const shapes = "always, if_empty, {equals: VALUE} or {regex: PATTERN}"

func checkCondition(n *yaml.Node, path string) []spec.Problem {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, err := parseCondition(n); err != nil {
		var p *problem
		if errors.As(err, &p) {
			return []spec.Problem{spec.At(p.node, spec.Join(path, p.key), "%s", p.msg)}
		}
		return []spec.Problem{spec.At(n, path, "%s", err.Error())}
	}
	return nil
}

// problem is a condition error located below the condition node.
type problem struct {
	node *yaml.Node
	key  string // "" for the condition itself
	msg  string
}

func (p *problem) Error() string { return p.msg }

// UnmarshalYAML reads any of the shapes.
func (c *Condition) UnmarshalYAML(n *yaml.Node) error {
	parsed, err := parseCondition(n)
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

func parseCondition(n *yaml.Node) (Condition, error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			switch n.Value {
			case "always":
				return Condition{Kind: "always"}, nil
			case "if_empty", "empty":
				return Condition{Kind: "if_empty"}, nil
			}
			hint := ""
			if best := spec.Closest(n.Value, []string{"always", "if_empty"}); best != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", best)
			}
			return Condition{}, &problem{n, "", fmt.Sprintf("unknown condition %q%s; allowed: %s (write {regex: %q} to match a pattern)", n.Value, hint, shapes, n.Value)}
		}
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return Condition{}, &problem{n, "", "give exactly one of equals or regex"}
		}
		k, v := n.Content[0], n.Content[1]
		for v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		switch k.Value {
		case "equals":
			val, err := yamlValue(v, 0)
			if err != nil {
				return Condition{}, &problem{v, "equals", err.Error()}
			}
			return Condition{Kind: "equals", Equals: val}, nil
		case "regex", "matches":
			if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
				return Condition{}, &problem{v, k.Value, "expected a regular expression"}
			}
			re, err := regexp.Compile(v.Value)
			if err != nil {
				return Condition{}, &problem{v, k.Value, "invalid regular expression: " + err.Error()}
			}
			return Condition{Kind: "regex", Pattern: v.Value, re: re}, nil
		}
		hint := ""
		if best := spec.Closest(k.Value, []string{"equals", "regex"}); best != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", best)
		}
		return Condition{}, &problem{k, k.Value, fmt.Sprintf("unknown condition key %q%s; allowed: equals, regex", k.Value, hint)}
	}
	return Condition{}, &problem{n, "", "expected " + shapes}
}

// yamlValue turns a YAML value into the decoded-JSON form rows have:
// strings, json.Number, bools, nil, map[string]any and []any.
func yamlValue(n *yaml.Node, depth int) (any, error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if depth > 64 {
		return nil, fmt.Errorf("value nested too deep")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			err := n.Decode(&b)
			return b, err
		case "!!int":
			s := strings.ReplaceAll(n.Value, "_", "")
			i, ok := new(big.Int).SetString(s, 0)
			if !ok {
				return nil, fmt.Errorf("cannot read integer %q", n.Value)
			}
			return json.Number(i.String()), nil
		case "!!float":
			if row.IsDecimal(n.Value, false) {
				return json.Number(n.Value), nil
			}
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("%s is not a JSON number", n.Value)
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := yamlValue(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			out[n.Content[i].Value] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported YAML value")
}

// match reports whether a non-null value meets the condition.
func (c *Condition) match(v any) bool {
	switch c.Kind {
	case "if_empty":
		switch v := v.(type) {
		case string:
			return v == ""
		case []any:
			return len(v) == 0
		case map[string]any:
			return len(v) == 0
		}
		return false
	case "equals":
		return equal(v, c.Equals)
	case "regex":
		s, ok := v.(string)
		return ok && c.re.MatchString(s)
	}
	return true // always
}

// equal compares decoded JSON values; numbers compare by value (1.50 ==
// 1.5), not by their text.
func equal(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		s, ok := b.(string)
		return ok && s == a
	case bool:
		x, ok := b.(bool)
		return ok && x == a
	case json.Number:
		n, ok := b.(json.Number)
		if !ok {
			return false
		}
		if a == n {
			return true
		}
		x, ok1 := new(big.Rat).SetString(string(a))
		y, ok2 := new(big.Rat).SetString(string(n))
		return ok1 && ok2 && x.Cmp(y) == 0
	case []any:
		x, ok := b.([]any)
		if !ok || len(x) != len(a) {
			return false
		}
		for i := range a {
			if !equal(a[i], x[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		x, ok := b.(map[string]any)
		if !ok || len(x) != len(a) {
			return false
		}
		for k, v := range a {
			w, ok := x[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	}
	return false
}
