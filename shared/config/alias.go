package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

// YAML aliases are checked once, here, for every command and host. The yaml
// package never expands an alias while building the node tree; it expands
// it later, in whichever Decode reaches it, and refuses "excessive aliasing"
// there. Parts of a pipeline are decoded only when a component is built
// (InsertField's static values), so without this check an alias bomb passed
// validate and check and failed in local and run. The loader therefore
// measures what the aliases expand to, refuses a file the yaml package
// itself would refuse when decoding it whole, and replaces every alias by a
// copy of what it names: no later Decode meets an alias, so none can fail
// on one, and the copies are bounded by the same rule.

// The yaml package's limits (decode.go, allowedAliasRatio): up to 400,000
// decoded nodes 99% may come from aliases, from 4,000,000 on 10%, linearly
// in between; documents under 1,000 nodes or with under 100 aliased nodes
// always pass.
const (
	aliasRatioLow  = 400000
	aliasRatioHigh = 4000000
)

func allowedAliasRatio(total int64) float64 {
	switch {
	case total <= aliasRatioLow:
		return 0.99
	case total >= aliasRatioHigh:
		return 0.10
	}
	return 0.99 - 0.89*float64(total-aliasRatioLow)/float64(aliasRatioHigh-aliasRatioLow)
}

// sizeCap keeps the counts from overflowing: a handful of nested aliases
// can name 10^20 nodes.
const sizeCap = int64(1) << 50

// aliasCheck measures the document and names the alias that adds most.
type aliasCheck struct {
	size     map[*yaml.Node]int64 // expanded node count, memoized
	visiting map[*yaml.Node]bool
	plain    int64      // nodes as written (an alias counts one)
	worst    *yaml.Node // the alias whose expansion is largest
	worstAt  string     // its YAML path
	worstN   int64
	loop     *spec.Problem
}

// checkAliases returns a problem when the document's aliases refer to
// themselves or expand beyond the yaml package's limits.
func checkAliases(root *yaml.Node) *spec.Problem {
	c := &aliasCheck{size: map[*yaml.Node]int64{}, visiting: map[*yaml.Node]bool{}}
	total := c.measure(root, "", true)
	if c.loop != nil {
		return c.loop
	}
	aliased := total - c.plain
	if aliased <= 100 || total <= 1000 || float64(aliased)/float64(total) <= allowedAliasRatio(total) {
		return nil
	}
	what := "its anchor"
	if a := c.worst.Alias; a != nil {
		what = fmt.Sprintf("&%s at line %d", a.Anchor, a.Line)
	}
	p := spec.At(c.worst, c.worstAt, "excessive YAML aliasing: the file's aliases expand to %s nodes from %d written "+
		"(this alias, *%s naming %s, alone to %s); an alias bomb is refused: write the values out",
		count64(aliased), c.plain, c.worst.Value, what, count64(c.worstN))
	return &p
}

func count64(n int64) string {
	if n >= sizeCap {
		return "more than " + fmt.Sprint(sizeCap)
	}
	return fmt.Sprint(n)
}

func addCapped(a, b int64) int64 { return min(a+b, sizeCap) }

// leaf is a scalar without an anchor: it counts one wherever it is, and
// needs no path (a file may hold millions).
func leaf(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Anchor == "" }

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// measure returns the number of nodes n stands for once every alias is
// expanded, as the yaml decoder counts them (an alias node, then what it
// names). written is false below an alias: those nodes are not in the file
// a second time.
func (c *aliasCheck) measure(n *yaml.Node, path string, written bool) int64 {
	if n == nil {
		return 0
	}
	if written {
		c.plain++
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		if c.visiting[n.Alias] {
			if c.loop == nil {
				p := spec.At(n, path, "YAML alias *%s is used inside its own anchor (&%s at line %d)", n.Value, n.Alias.Anchor, n.Alias.Line)
				c.loop = &p
			}
			return 1
		}
		s := addCapped(1, c.measure(n.Alias, path, false))
		if written && s > c.worstN {
			c.worst, c.worstAt, c.worstN = n, path, s
		}
		return s
	}
	// Only an anchored node can be reached twice (through an alias), so
	// only those are remembered: a file of millions of nodes and no
	// anchors costs no map at all.
	anchored := n.Anchor != ""
	if anchored {
		if s, ok := c.size[n]; ok && !written {
			return s
		}
		c.visiting[n] = true
		defer delete(c.visiting, n)
	}
	s := int64(1)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			s = addCapped(s, c.measure(n.Content[i], path, written))
			if v := n.Content[i+1]; leaf(v) {
				s, c.plain = addCapped(s, 1), c.plain+b2i(written)
			} else {
				s = addCapped(s, c.measure(v, spec.Join(path, n.Content[i].Value), written))
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			if leaf(e) {
				s, c.plain = addCapped(s, 1), c.plain+b2i(written)
			} else {
				s = addCapped(s, c.measure(e, spec.Index(path, i), written))
			}
		}
	default:
		for _, e := range n.Content {
			s = addCapped(s, c.measure(e, path, written))
		}
	}
	if anchored {
		// First measured where it is written, then through its aliases;
		// both count the same.
		c.size[n] = s
	}
	return s
}

// expandAliases replaces every alias by a copy of the node it names, so
// that the tree holds no aliases. checkAliases has bounded the result.
func expandAliases(n *yaml.Node) {
	for i, e := range n.Content {
		if e.Kind == yaml.AliasNode && e.Alias != nil {
			n.Content[i] = copyExpanded(e.Alias)
			continue
		}
		expandAliases(e)
	}
}

func copyExpanded(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c := *n
	c.Anchor = ""
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, e := range n.Content {
			c.Content[i] = copyExpanded(e)
		}
	}
	return &c
}
