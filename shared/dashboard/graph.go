package dashboard

import (
	"fmt"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
)

// Graph is the pipeline as the page draws it: sources, their transform
// steps, topics, the sinks' transform steps and the sinks. Node ids are
// "source:NAME", "topic:NAME", "sink:NAME" and, for transform steps,
// "source:NAME/I" or "sink:NAME/I" (I counts from 0).
type Graph struct {
	Title string `json:"title,omitempty"`
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is one box of the graph.
type Node struct {
	ID string `json:"id"`
	// Kind is source, transform, topic or sink.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Connector is the connector (sources, sinks) or transform type.
	Connector string `json:"connector,omitempty"`
	// Live is true when the node's numbers are measured by this process.
	Live bool `json:"live"`
}

// Edge is one arrow.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func nodeID(kind, name string) string { return kind + ":" + name }

// BuildGraph draws the enabled sources and sinks of p; statuses say which
// of them run in this process.
func BuildGraph(p *config.Pipeline, statuses pipeline.Statuses) Graph {
	live := map[string]bool{}
	for _, s := range statuses {
		live[nodeID(s.Kind, s.Name)] = true
	}
	var g Graph
	topics := map[string]bool{}
	topicNode := func(t string) string {
		id := nodeID("topic", t)
		if !topics[t] {
			topics[t] = true
			g.Nodes = append(g.Nodes, Node{ID: id, Kind: "topic", Name: t, Live: true})
		}
		return id
	}
	// chain adds the transform steps of owner and returns the ids from
	// start to end: the owner first for a source, last for a sink.
	chain := func(owner string, ts config.Transforms) []string {
		var ids []string
		for i, t := range ts {
			id := fmt.Sprintf("%s/%d", owner, i)
			name := t.Name
			if name == "" {
				name = t.Kind()
			}
			g.Nodes = append(g.Nodes, Node{ID: id, Kind: "transform", Name: name, Connector: t.Kind(), Live: live[owner]})
			ids = append(ids, id)
		}
		return ids
	}
	link := func(ids []string) {
		for i := 1; i < len(ids); i++ {
			g.Edges = append(g.Edges, Edge{ids[i-1], ids[i]})
		}
	}
	if p == nil {
		return g
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		if !s.Enabled {
			continue
		}
		id := nodeID("source", name)
		g.Nodes = append(g.Nodes, Node{ID: id, Kind: "source", Name: name, Connector: s.Connector, Live: live[id]})
		link(append(append([]string{id}, chain(id, s.Transforms)...), topicNode(s.Topic)))
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		if !s.Enabled {
			continue
		}
		id := nodeID("sink", name)
		ids := append(chain(id, s.Transforms), id)
		g.Nodes = append(g.Nodes, Node{ID: id, Kind: "sink", Name: name, Connector: s.Connector, Live: live[id]})
		for _, t := range s.Topics {
			g.Edges = append(g.Edges, Edge{topicNode(t), ids[0]})
		}
		link(ids)
	}
	return g
}
