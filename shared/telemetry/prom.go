//go:build !custom || !(hosts || hosts.lambda || hosts.cloudrun)

package telemetry

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/rivven/rivven-connect/shared/metric"
)

var connLabels = []string{labelName, labelConnector, labelKind}

// batchBuckets spans 100µs (an in-memory sink) to 10s (a slow warehouse
// load) on a 1-2.5-5 ladder, so both ends of the connector zoo get useful
// quantiles without a per-connector bucket layout.
var batchBuckets = []float64{
	.0001, .00025, .0005,
	.001, .0025, .005,
	.01, .025, .05,
	.1, .25, .5,
	1, 2.5, 5, 10,
}

// promExport is the Registry's Prometheus side: the client registry every
// series is registered with, and the batch-latency histogram.
type promExport struct {
	reg   *prometheus.Registry
	batch *prometheus.HistogramVec
}

// newPromExport registers the connector batch-latency histogram, the
// connector series read from the watched stats, and the standard Go
// runtime and process collectors, which an operator of a long-lived
// service expects next to the connector metrics.
func newPromExport(r *Registry) promExport {
	p := promExport{
		reg: prometheus.NewRegistry(),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rivven_connector_batch_seconds",
			Help:    "Time to process one batch, from receiving it to acknowledging it.",
			Buckets: batchBuckets,
		}, connLabels),
	}
	p.reg.MustRegister(
		p.batch,
		statsCollector{r},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return p
}

func (p promExport) batchLatency(name, connector, kind string) Observer {
	return p.batch.WithLabelValues(name, connector, kind)
}

// register exports one custom series (a *counterSeries, *gaugeSeries or
// *histSeries) under its Prometheus name, with the family's help.
func (p promExport) register(def metricDef, help string, m any) error {
	opts := prometheus.Opts{Name: def.prom, Help: help, ConstLabels: def.constLabels()}
	var col prometheus.Collector
	switch s := m.(type) {
	case *counterSeries:
		col = prometheus.NewCounterFunc(prometheus.CounterOpts(opts), func() float64 { return float64(s.Value()) })
	case *histSeries:
		col = histCollector{desc: prometheus.NewDesc(def.prom, help, nil, def.constLabels()), h: s.Histogram}
	case *gaugeSeries:
		col = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), s.Value)
	}
	return p.reg.Register(col)
}

func (p promExport) report(name string, fn func() map[string]float64) {
	p.reg.MustRegister(reportCollector{name: name, fn: fn})
}

// Descriptors of the series derived from ConnectorStats. Counters in the
// stats are cumulative since the process started, so they map onto
// Prometheus counters directly.
var (
	descEventsIn     = connDesc("rivven_connector_events_in_total", "Events read by the connector (sources) or received from the topic (sinks).")
	descEventsOut    = connDesc("rivven_connector_events_out_total", "Events written to the topic (sources) or delivered to the target system (sinks).")
	descErrors       = connDesc("rivven_connector_errors_total", "Errors seen by the connector.")
	descDropped      = connDesc("rivven_connector_dropped_total", "Events filtered out by transforms.")
	descDeadLettered = connDesc("rivven_connector_dead_lettered_total", "Events sent to the dead-letter topic.")
	descRestarts     = connDesc("rivven_connector_restarts_total", "Times the engine restarted the connector after a failure.")
	descLag          = connDesc("rivven_connector_lag", "Messages between the topic head and the sink's position; absent while unknown.")
	descState        = prometheus.NewDesc("rivven_connector_state",
		"Current lifecycle state of the connector: 1 for the series whose state label is the current state.",
		append(slices.Clone(connLabels), labelState), nil)
)

func connDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, connLabels, nil)
}

// statsCollector turns the watched ConnectorStats into const metrics at
// scrape time.
type statsCollector struct{ r *Registry }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descEventsIn, descEventsOut, descErrors, descDropped,
		descDeadLettered, descRestarts, descLag, descState,
	} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.r.stats() {
		lv := []string{s.Name, s.Connector, s.Kind}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
		}
		counter(descEventsIn, s.EventsIn)
		counter(descEventsOut, s.EventsOut)
		counter(descErrors, s.Errors)
		counter(descDropped, s.Dropped)
		counter(descDeadLettered, s.DeadLettered)
		counter(descRestarts, s.Restarts)
		// A negative lag means "unknown"; exporting it would draw a
		// misleading line, and an absent series is what alerting rules
		// already handle (absent(), or no data).
		if s.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(s.Lag), lv...)
		}
		if s.State != "" {
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, append(lv, s.State)...)
		}
	}
}

// histCollector exports a histSeries to Prometheus as a const histogram
// built from a snapshot on every scrape.
type histCollector struct {
	desc *prometheus.Desc
	h    *metric.Histogram
}

func (c histCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c histCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Snapshot()
	buckets := make(map[float64]uint64, len(s.Bounds))
	for i, b := range s.Bounds {
		buckets[b] = s.Cumulative[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, s.Count, s.Sum, buckets)
}

func (d metricDef) constLabels() prometheus.Labels {
	if len(d.labels) == 0 {
		return nil
	}
	ls := make(prometheus.Labels, len(d.labels))
	for _, l := range d.labels {
		ls[l.name] = l.value
	}
	return ls
}

// WritePrometheus writes every metric in the Prometheus text exposition
// format, for a CLI "metrics" dump or a textfile collector. If some metric
// could not be gathered, the rest is still written and the error returned.
func (r *Registry) WritePrometheus(w io.Writer) error {
	mfs, gatherErr := r.prom.reg.Gather()
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return errors.Join(gatherErr, err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			return errors.Join(gatherErr, err)
		}
	}
	return gatherErr
}

// Handler serves the registry for Prometheus scrapes. A metric that fails to
// gather is logged (through slog.Default) and skipped instead of failing the
// whole scrape, so one broken collector does not blind the dashboards.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.prom.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(slog.Default().Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// reportCollector is an unchecked collector: the names are only known once
// the connector reports them.
type reportCollector struct {
	name string
	fn   func() map[string]float64
}

func (reportCollector) Describe(chan<- *prometheus.Desc) {}

func (c reportCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.fn()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kind := prometheus.GaugeValue
		if strings.HasSuffix(k, "_total") {
			kind = prometheus.CounterValue
		}
		desc := prometheus.NewDesc(PrometheusName(k), k+" (reported by the connector)", nil, prometheus.Labels{labelName: c.name})
		ch <- prometheus.MustNewConstMetric(desc, kind, m[k])
	}
}
