// Package regexrouter is the RegexRouter transform: it sends events to a
// topic chosen by matching their table and stream names against regular
// expressions.
package regexrouter

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "RegexRouter",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Routes events to a topic chosen by matching their schema.table and stream names against regular expressions, with $1 capture references.",
		Tags:        []string{"route", "routing", "topic", "regex", "smt", "debezium"},
	}, New)
}

// Config is the RegexRouter config block.
type Config struct {
	DefaultTopic string  `yaml:"default_topic" doc:"Topic for events no route matches; when empty they keep the topic they had."`
	Routes       []Route `yaml:"routes" doc:"Routes tried in order; the first whose pattern matches wins."`
}

// Route is one routing rule.
type Route struct {
	Pattern string `yaml:"pattern" required:"true" doc:"Regular expression (Go RE2 syntax), searched in the schema.table name, then in the stream name; anchor it with ^...$ to match a whole name."`
	Topic   string `yaml:"topic" required:"true" doc:"Target topic; $1 or ${1} (and ${name}) insert capture groups of the match."`
}

// Validate compiles the patterns and checks the topic templates.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Routes) == 0 && c.DefaultTopic == "" {
		ps = append(ps, spec.Problem{Message: "needs routes, a default_topic, or both"})
	}
	for i, r := range c.Routes {
		at := spec.Index("routes", i)
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			ps = append(ps, spec.Problem{Path: at + ".pattern", Message: "invalid regular expression: " + err.Error()})
		}
		if r.Topic == "" {
			ps = append(ps, spec.Problem{Path: at + ".topic", Message: "must not be empty"})
		} else if re != nil {
			if msg := checkTemplate(re, r.Topic); msg != "" {
				ps = append(ps, spec.Problem{Path: at + ".topic", Message: msg})
			}
		}
	}
	return ps
}

// checkTemplate reports a capture reference in a topic that the pattern
// does not define, which regexp.Expand would silently make empty.
func checkTemplate(re *regexp.Regexp, tmpl string) string {
	names := re.SubexpNames()
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' || i+1 >= len(tmpl) {
			continue
		}
		if tmpl[i+1] == '$' {
			i++ // $$ is a literal $
			continue
		}
		var name string
		if tmpl[i+1] == '{' {
			end := i + 2
			for end < len(tmpl) && tmpl[end] != '}' {
				end++
			}
			if end == len(tmpl) {
				return fmt.Sprintf("unclosed ${ in topic %q", tmpl)
			}
			name = tmpl[i+2 : end]
		} else {
			end := i + 1
			for end < len(tmpl) && (tmpl[end] == '_' || tmpl[end] >= '0' && tmpl[end] <= '9' || tmpl[end] >= 'a' && tmpl[end] <= 'z' || tmpl[end] >= 'A' && tmpl[end] <= 'Z') {
				end++
			}
			name = tmpl[i+1 : end]
		}
		if name == "" {
			continue // a lone $ stays as it is
		}
		if n, err := strconv.Atoi(name); err == nil {
			if n > re.NumSubexp() {
				return fmt.Sprintf("topic refers to group %s but the pattern has %d capture group(s)", name, re.NumSubexp())
			}
			continue
		}
		found := false
		for _, s := range names {
			found = found || s == name && s != ""
		}
		if !found {
			return fmt.Sprintf("topic refers to group %q which the pattern does not define (write ${1}x, not $1x, to follow a group number with letters)", name)
		}
	}
	return ""
}

type route struct {
	re    *regexp.Regexp
	topic string
}

// Router routes events; see Config. It is safe for concurrent use.
type Router struct {
	routes []route
	def    string

	mu    sync.RWMutex
	cache map[string]decision // by "schema.table\x00stream"
}

// decision is the routing of one table and stream: a topic ("" = keep the
// event's topic) or why there is none.
type decision struct {
	topic string
	err   error
}

// maxCache bounds the memo of routing decisions (one entry per distinct
// table and stream).
const maxCache = 4096

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	r, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return row.Each(r.apply), nil
}

func build(cfg *Config) (*Router, error) {
	r := &Router{def: cfg.DefaultTopic, cache: map[string]decision{}}
	for _, c := range cfg.Routes {
		r.routes = append(r.routes, route{regexp.MustCompile(c.Pattern), c.Topic})
	}
	return r, nil
}

// tableName appends the name RegexRouter matches before the stream:
// "<schema>.<table>" from the event's source, the database standing in for
// a missing schema (MySQL), just the table when neither is known, and
// nothing when the source names no table.
func tableName(dst []byte, s *events.SourceInfo) []byte {
	if s == nil || s.Table == "" {
		return dst
	}
	switch {
	case s.Schema != "":
		dst = append(append(dst, s.Schema...), '.')
	case s.Database != "":
		dst = append(append(dst, s.Database...), '.')
	}
	return append(dst, s.Table...)
}

func (r *Router) apply(_ context.Context, e *events.Event) error {
	switch e.Type {
	case events.State, events.Log:
		return nil // control events belong to the pipeline, not to a table
	}
	var arr [128]byte
	key := tableName(arr[:0], e.Source)
	split := len(key)
	key = append(append(key, 0), e.Stream...)
	r.mu.RLock()
	d, ok := r.cache[string(key)]
	r.mu.RUnlock()
	if !ok {
		// A copy, so that arr does not escape to the heap on the fast path.
		k := string(key)
		d = r.route([]byte(k[:split]), []byte(k[split+1:]))
		r.mu.Lock()
		if len(r.cache) < maxCache {
			r.cache[k] = d
		}
		r.mu.Unlock()
	}
	if d.topic != "" {
		e.Route = d.topic
	}
	return d.err
}

// route decides the topic for a table name and a stream name: the first
// route matching either (the table name first), else the default.
func (r *Router) route(table, stream []byte) decision {
	for i, rt := range r.routes {
		for _, name := range [...][]byte{table, stream} {
			if len(name) == 0 {
				continue
			}
			if m := rt.re.FindSubmatchIndex(name); m != nil {
				topic := string(rt.re.Expand(nil, []byte(rt.topic), name, m))
				if topic == "" {
					return decision{err: fmt.Errorf("RegexRouter: routes[%d] matched %q but its topic %q expands to nothing (a capture group did not take part in the match)", i, name, rt.topic)}
				}
				return decision{topic: topic}
			}
		}
	}
	return decision{topic: r.def}
}
