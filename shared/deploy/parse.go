package deploy

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/spec"
)

// ParsePipeline reads a pipeline's structure for deployment. The
// deployment ships the file as written — each function and service
// substitutes the ${VAR}s from its own environment — so references stay
// unresolved here, and the generated module does not depend on the
// environment it was generated in. Config blocks are checked by cat when it
// knows the connector and holds no reference; a connector cat does not know
// is accepted (it is built elsewhere) and listed in unknown. cat may be nil.
func ParsePipeline(raw []byte, cat config.Catalog) (p *config.Pipeline, unknown []string, err error) {
	c := &scoped{inner: cat}
	keep := func(name string) (string, bool) { return "${" + name + "}", true }
	p, err = config.Parse(raw, c, config.Options{Env: keep})
	return p, c.unknown, err
}

type scoped struct {
	inner   config.Catalog
	unknown []string
}

func (c *scoped) CheckConfig(kind, name string, node *yaml.Node, path string) ([]spec.Problem, bool) {
	var ps []spec.Problem
	ok := false
	if c.inner != nil {
		ps, ok = c.inner.CheckConfig(kind, name, node, path)
	}
	if !ok {
		if label := kind + " " + name; !slices.Contains(c.unknown, label) {
			c.unknown = append(c.unknown, label)
		}
		return nil, true
	}
	if hasEnvRef(node) {
		// A value still reading ${PORT} is no integer yet; the function
		// checks the block again at cold start, with the value.
		return nil, true
	}
	return ps, true
}

func (c *scoped) Names(kind string) []string {
	if c.inner == nil {
		return nil
	}
	return c.inner.Names(kind)
}

func hasEnvRef(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		return true
	}
	for _, c := range n.Content {
		if hasEnvRef(c) {
			return true
		}
	}
	return false
}
