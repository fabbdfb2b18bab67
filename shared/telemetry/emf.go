package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/metric"
)

// Limits of the CloudWatch Embedded Metric Format specification.
const (
	emfMaxMetricsPerDirective = 100 // MetricDefinitions in one MetricDirective
	emfMaxDimensions          = 30  // dimension keys in one DimensionSet
	emfMaxNamespaceLen        = 255
)

// EMF units used here. CloudWatch treats them as labels; "Count" lets the
// console offer Sum as the natural statistic.
const (
	emfUnitCount = "Count"
	emfUnitNone  = "None"
)

// WriteEMF writes the registry's metrics to w as CloudWatch Embedded Metric
// Format documents, one JSON object per line, for environments such as AWS
// Lambda where nothing scrapes /metrics but CloudWatch Logs extracts metrics
// from stdout. It writes one line per watched connector and one line per
// distinct const-label set of the custom counters and gauges (series of
// different label values cannot share a line, since dimension values are
// top-level members).
//
// Each line carries the dimensions in dims (for example FunctionName) in
// addition to its own: name, connector and kind for connector lines, the
// const labels for custom lines. The timestamp is now, in milliseconds.
//
// Counters are emitted as deltas: the increase since the previous successful
// WriteEMF of this registry (the whole value on the first call). Lambda
// flushes once per invocation while a warm process keeps its counters, so
// cumulative values would be summed over and over by CloudWatch; deltas make
// Sum over any period the true count. A counter that went down (the
// connector's stats were reset) is reported with its new value. Gauges
// (lag, custom gauges) are emitted as their current value; a negative lag
// (unknown) and non-finite gauges are left out. The connector state is a
// plain "state" member: searchable in Logs Insights, not a metric.
//
// Connector metric names are events_in, events_out, errors, dropped,
// dead_lettered, restarts and lag; custom metrics keep their dotted names.
//
// Nothing is written, and no delta is consumed, if a line cannot be built
// (an empty or too long namespace, too many dimensions, or a dimension name
// clashing with another member). If writing to w fails, the deltas are not
// consumed either, so the next call reports them again.
func (r *Registry) WriteEMF(w io.Writer, namespace string, dims map[string]string, now time.Time) error {
	if namespace == "" || len(namespace) > emfMaxNamespaceLen {
		return fmt.Errorf("telemetry: EMF namespace must be 1 to %d characters, got %q", emfMaxNamespaceLen, namespace)
	}
	ts := now.UnixMilli()
	extra := slices.Sorted(maps.Keys(dims))

	r.emfMu.Lock()
	defer r.emfMu.Unlock()

	var lines [][]byte

	// Connector lines.
	stats := r.stats()
	nextLast := make(map[connKey]ConnectorStats, len(stats))
	for _, s := range stats {
		prev := r.emfLast[keyOf(s)]
		d := newEMFDoc()
		d.dim(labelName, s.Name)
		d.dim(labelConnector, s.Connector)
		d.dim(labelKind, s.Kind)
		for _, k := range extra {
			d.dim(k, dims[k])
		}
		d.metric("events_in", emfUnitCount, delta(s.EventsIn, prev.EventsIn))
		d.metric("events_out", emfUnitCount, delta(s.EventsOut, prev.EventsOut))
		d.metric("errors", emfUnitCount, delta(s.Errors, prev.Errors))
		d.metric("dropped", emfUnitCount, delta(s.Dropped, prev.Dropped))
		d.metric("dead_lettered", emfUnitCount, delta(s.DeadLettered, prev.DeadLettered))
		d.metric("restarts", emfUnitCount, delta(s.Restarts, prev.Restarts))
		if s.Lag >= 0 {
			d.metric("lag", emfUnitCount, s.Lag)
		}
		if s.State != "" {
			d.property(labelState, s.State)
		}
		line, err := d.marshal(namespace, ts)
		if err != nil {
			return fmt.Errorf("telemetry: EMF line for connector %s/%s/%s: %w", s.Kind, s.Connector, s.Name, err)
		}
		lines = append(lines, line)
		nextLast[keyOf(s)] = s
	}

	// Custom metric lines, grouped by const-label set.
	r.mu.Lock()
	counters := slices.Clone(r.counters)
	gauges := slices.Clone(r.gauges)
	hists := slices.Clone(r.hists)
	r.mu.Unlock()

	type group struct {
		labels   []labelPair
		counters []*counterSeries
		gauges   []*gaugeSeries
		hists    []*histSeries
	}
	groups := make(map[string]*group)
	var order []string
	groupOf := func(def metricDef) *group {
		k := labelSetKey(def.labels)
		g := groups[k]
		if g == nil {
			g = &group{labels: def.labels}
			groups[k] = g
			order = append(order, k)
		}
		return g
	}
	for _, c := range counters {
		g := groupOf(c.def)
		g.counters = append(g.counters, c)
	}
	for _, ga := range gauges {
		g := groupOf(ga.def)
		g.gauges = append(g.gauges, ga)
	}
	for _, h := range hists {
		g := groupOf(h.def)
		g.hists = append(g.hists, h)
	}
	slices.Sort(order)

	// Counter values are read once, so that what is written is exactly what
	// is remembered as reported.
	counterNow := make(map[*counterSeries]uint64, len(counters))
	histNow := make(map[*histSeries]metric.HistogramSnapshot, len(hists))
	for _, k := range order {
		g := groups[k]
		d := newEMFDoc()
		for _, l := range g.labels {
			d.dim(l.name, l.value)
		}
		for _, k := range extra {
			d.dim(k, dims[k])
		}
		for _, c := range g.counters {
			v := c.Value()
			counterNow[c] = v
			d.metric(c.def.name, emfUnitCount, delta(v, c.emfLast))
		}
		for _, ga := range g.gauges {
			if v := ga.Value(); !math.IsNaN(v) && !math.IsInf(v, 0) {
				d.metric(ga.def.name, emfUnitNone, v)
			}
		}
		for _, h := range g.hists {
			// EMF has no bucket layout: a histogram is reported as the
			// mean of what it observed since the last flush (one
			// invocation in Lambda), left out when it observed nothing.
			s := h.Snapshot()
			histNow[h] = s
			if n := delta(s.Count, h.emfLastN); n > 0 && s.Count >= h.emfLastN {
				if v := (s.Sum - h.emfLastSum) / float64(n); !math.IsNaN(v) && !math.IsInf(v, 0) {
					d.metric(h.def.name, emfUnitNone, v)
				}
			}
		}
		if len(d.metrics) == 0 {
			continue
		}
		line, err := d.marshal(namespace, ts)
		if err != nil {
			return fmt.Errorf("telemetry: EMF line for custom metrics {%s}: %w", k, err)
		}
		lines = append(lines, line)
	}

	for _, line := range lines {
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("telemetry: writing EMF: %w", err)
		}
	}

	r.emfLast = nextLast // also forgets connectors that are gone
	for c, v := range counterNow {
		c.emfLast = v
	}
	for h, s := range histNow {
		h.emfLastN, h.emfLastSum = s.Count, s.Sum
	}
	return nil
}

// delta is the increase of a cumulative counter since it was last reported.
// A smaller value means the counter restarted from zero, so all of it is new.
func delta(cur, last uint64) uint64 {
	if cur < last {
		return cur
	}
	return cur - last
}

func labelSetKey(ls []labelPair) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.name + "=" + strconv.Quote(l.value)
	}
	return strings.Join(parts, ",")
}

// emfMetricDefinition, emfDirective and emfMetadata mirror the objects of
// the specification ("Specification: Embedded metric format" in the
// CloudWatch user guide).
type emfMetricDefinition struct {
	Name string `json:"Name"`
	Unit string `json:"Unit,omitempty"`
}

type emfDirective struct {
	Namespace  string                `json:"Namespace"`
	Dimensions [][]string            `json:"Dimensions"`
	Metrics    []emfMetricDefinition `json:"Metrics"`
}

type emfMetadata struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// emfDoc builds one EMF document. The root is a map because dimension and
// metric names are data; every member name must be unique, which set checks
// (the first problem is kept and reported by marshal).
type emfDoc struct {
	root     map[string]any
	dimNames []string
	metrics  []emfMetricDefinition
	err      error
}

func newEMFDoc() *emfDoc {
	return &emfDoc{root: make(map[string]any)}
}

func (d *emfDoc) set(name string, v any) bool {
	if d.err != nil {
		return false
	}
	if name == "" || name == "_aws" {
		d.err = fmt.Errorf("member name %q is not allowed", name)
		return false
	}
	if _, dup := d.root[name]; dup {
		d.err = fmt.Errorf("member %q is defined twice (dimension and metric names must be distinct)", name)
		return false
	}
	d.root[name] = v
	return true
}

func (d *emfDoc) dim(name, value string) {
	if d.set(name, value) {
		d.dimNames = append(d.dimNames, name)
	}
}

func (d *emfDoc) metric(name, unit string, v any) {
	if d.set(name, v) {
		d.metrics = append(d.metrics, emfMetricDefinition{Name: name, Unit: unit})
	}
}

func (d *emfDoc) property(name string, v any) { d.set(name, v) }

// marshal renders the document as one line. Metrics are split over several
// directives of at most emfMaxMetricsPerDirective, all pointing at the same
// root members, because the specification caps the size of one directive,
// not of the document.
func (d *emfDoc) marshal(namespace string, ts int64) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if len(d.dimNames) > emfMaxDimensions {
		return nil, fmt.Errorf("%d dimensions, EMF allows at most %d", len(d.dimNames), emfMaxDimensions)
	}
	if len(d.metrics) == 0 {
		return nil, errors.New("no metrics")
	}
	// A non-nil empty DimensionSet is valid and publishes the metrics without
	// dimensions; a nil one would encode as null, which is not.
	dimSet := d.dimNames
	if dimSet == nil {
		dimSet = []string{}
	}
	meta := emfMetadata{Timestamp: ts}
	for chunk := range slices.Chunk(d.metrics, emfMaxMetricsPerDirective) {
		meta.CloudWatchMetrics = append(meta.CloudWatchMetrics, emfDirective{
			Namespace:  namespace,
			Dimensions: [][]string{dimSet},
			Metrics:    chunk,
		})
	}
	d.root["_aws"] = meta
	b, err := json.Marshal(d.root)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
