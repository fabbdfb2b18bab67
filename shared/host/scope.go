package host

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/spec"
)

// scopedCatalog lets a function load a whole pipeline while linking only
// its own connector. A pipeline names sources, sinks and transforms other
// functions run; this binary cannot check their config blocks, and they
// are none of its business, so an unknown component is accepted and
// remembered. Once the function knows which component is its own, any
// unknown component inside it is an error (see unknownIn).
type scopedCatalog struct {
	inner   config.Catalog
	unknown []unknownComponent
}

type unknownComponent struct{ kind, name, path string }

func (c *scopedCatalog) CheckConfig(kind, name string, node *yaml.Node, path string) ([]spec.Problem, bool) {
	ps, ok := c.inner.CheckConfig(kind, name, node, path)
	if !ok {
		c.unknown = append(c.unknown, unknownComponent{kind, name, strings.TrimSuffix(path, ".config")})
		return nil, true
	}
	return ps, true
}

func (c *scopedCatalog) Names(kind string) []string { return c.inner.Names(kind) }

// unknownIn returns the components under path (itself or below) that this
// binary does not link.
func (c *scopedCatalog) unknownIn(path string) []unknownComponent {
	var out []unknownComponent
	for _, u := range c.unknown {
		if u.path == path || strings.HasPrefix(u.path, path+".") || strings.HasPrefix(u.path, path+"[") {
			out = append(out, u)
		}
	}
	return out
}
