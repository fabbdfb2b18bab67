// Package contentrouter sends each event to a topic chosen by a field of
// its row. The event really goes there: the source runner publishes it to
// the routed topic (created per settings.topic), not to the source's topic.
package contentrouter

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration.
type Config struct {
	Field        string `yaml:"field" doc:"Row field (dot path) whose value picks the route; routes in list form may name their own."`
	Routes       Routes `yaml:"routes" required:"true" doc:"value → topic map, or a list of {field, value or pattern, topic}; first match wins."`
	Default      string `yaml:"default" doc:"Topic for events no route matches; empty keeps the configured topic."`
	DefaultTopic string `yaml:"default_topic" doc:"Same as default (the spelling of the reference implementation)."`
}

// Route is one routing rule.
type Route struct {
	Field   string `yaml:"field" doc:"Row field to test (default: the transform's field)."`
	Value   string `yaml:"value" doc:"Exact value (numbers compare by their text)."`
	Pattern string `yaml:"pattern" doc:"Regular expression the value must match."`
	Topic   string `yaml:"topic" required:"true" doc:"Destination topic."`

	re   *regexp.Regexp
	path row.Path
}

// Routes accepts the map form of the docs ({us: us-events}) and the list
// form of the reference implementation ([{field, value|pattern, topic}]).
type Routes []Route

var routeFields = spec.FieldsOf(reflect.TypeFor[Route]())

// SpecField describes both forms for validation and JSON Schema.
func (Routes) SpecField() spec.Field {
	return spec.Field{Type: spec.TAny, Schema: map[string]any{
		"description": "value → topic map, or a list of {field, value|pattern, topic}",
		"oneOf": []any{
			map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			map[string]any{"type": "array", "items": spec.JSONSchema(routeFields)},
		},
	}, Check: checkRoutes}
}

// checkRoutes validates either form with the same errors as any block.
func checkRoutes(n *yaml.Node, path string) []spec.Problem {
	var ps []spec.Problem
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ps = append(ps, spec.Check(routeFields, c, spec.Index(path, i))...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; v.Kind != yaml.ScalarNode || v.Value == "" {
				ps = append(ps, spec.At(v, spec.Join(path, n.Content[i].Value), "expected a topic name"))
			}
		}
	default:
		ps = append(ps, spec.At(n, path, "expected a map of value: topic or a list of routes"))
	}
	return ps
}

// UnmarshalYAML reads either form; map order is kept as written.
func (rs *Routes) UnmarshalYAML(n *yaml.Node) error {
	*rs = nil
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			*rs = append(*rs, Route{Value: n.Content[i].Value, Topic: n.Content[i+1].Value})
		}
		return nil
	case yaml.SequenceNode:
		var list []Route
		if err := n.Decode(&list); err != nil {
			return err
		}
		*rs = list
		return nil
	}
	return fmt.Errorf("routes must be a map of value: topic or a list of routes")
}

// Validate checks every route, with the YAML path of the bad one.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Routes) == 0 {
		ps = append(ps, spec.Problem{Path: "routes", Message: "give at least one route"})
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		at := fmt.Sprintf("routes[%d]", i)
		field := r.Field
		if field == "" {
			field = c.Field
		}
		if field == "" {
			ps = append(ps, spec.Problem{Path: "field", Message: "set field (or field on every route)"})
			break
		}
		if _, err := row.ParsePath(field); err != nil {
			ps = append(ps, spec.Problem{Path: at + ".field", Message: err.Error()})
		}
		if r.Topic == "" {
			ps = append(ps, spec.Problem{Path: at + ".topic", Message: "route needs a topic"})
		}
		if r.Pattern != "" {
			if _, err := regexp.Compile(r.Pattern); err != nil {
				ps = append(ps, spec.Problem{Path: at + ".pattern", Message: fmt.Sprintf("bad regular expression: %v", err)})
			}
			if r.Value != "" {
				ps = append(ps, spec.Problem{Path: at, Message: "give value or pattern, not both"})
			}
		}
	}
	if c.Default != "" && c.DefaultTopic != "" && c.Default != c.DefaultTopic {
		ps = append(ps, spec.Problem{Path: "default_topic", Message: "default and default_topic disagree; give one"})
	}
	return ps
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "ContentRouter", Category: catalog.Transforms, Subcategory: "Routing",
		Description: "Routes events to topics by a field's value",
		Tags:        []string{"route", "fan-out", "split", "topic"},
	}, New)
}

type router struct {
	routes []Route
	def    string
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	r := &router{def: cfg.Default}
	if r.def == "" {
		r.def = cfg.DefaultTopic
	}
	for _, rt := range cfg.Routes {
		field := rt.Field
		if field == "" {
			field = cfg.Field
		}
		p, err := row.ParsePath(field)
		if err != nil {
			return nil, err
		}
		rt.path = p
		if rt.Pattern != "" {
			rt.re = regexp.MustCompile(rt.Pattern)
		}
		r.routes = append(r.routes, rt)
	}
	return row.Each(r.apply), nil
}

func (r *router) apply(_ context.Context, e *events.Event) error {
	cur, err := e.Row()
	if err != nil {
		return err
	}
	for _, rt := range r.routes {
		v, ok := rt.path.Get(cur)
		if !ok || v == nil {
			continue
		}
		s := text(v)
		if rt.re != nil && rt.re.MatchString(s) || rt.re == nil && s == rt.Value {
			e.Route = rt.Topic
			return nil
		}
	}
	if r.def != "" {
		e.Route = r.def
	}
	return nil
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
