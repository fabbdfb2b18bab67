package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/shared/metric"
)

// Label names shared by every per-connector series. They are the identity of
// a connector in dashboards, so they are kept identical in Prometheus and EMF.
const (
	labelName      = "name"
	labelConnector = "connector"
	labelKind      = "kind"
	labelState     = "state"
)

// Registry holds every metric of one process and exposes them as Prometheus
// text (CLI, long-lived service) or as CloudWatch Embedded Metric
// Format lines (Lambda, see WriteEMF). It is safe for concurrent use.
//
// The Prometheus side (prom.go) is private so that all metrics go through
// the helpers here, which keep names consistent between the two output
// formats. Function builds leave it out (prom_off.go): a function is never
// scraped, and the Prometheus client's packages cost a cold start several
// milliseconds of package initialisation.
type Registry struct {
	prom promExport

	mu       sync.Mutex // guards the fields below
	sources  []StatsSource
	series   map[string]any     // identity key -> *counterSeries | *gaugeSeries
	families map[string]*family // Prometheus name -> family
	counters []*counterSeries   // creation order, for stable EMF output
	gauges   []*gaugeSeries
	hists    []*histSeries

	// emfMu serialises WriteEMF so that two concurrent flushes cannot both
	// report the same increase; it also guards emfLast and counterSeries.emfLast.
	emfMu   sync.Mutex
	emfLast map[connKey]ConnectorStats
}

// NewRegistry returns a registry with the connector batch-latency histogram
// and the standard Go runtime and process collectors, which an operator of a
// long-lived service expects next to the connector metrics.
func NewRegistry() *Registry {
	r := &Registry{
		series:   make(map[string]any),
		families: make(map[string]*family),
		emfLast:  make(map[connKey]ConnectorStats),
	}
	r.prom = newPromExport(r)
	return r
}

// Watch makes the registry read src on every scrape (and every WriteEMF)
// instead of mirroring each change into metric objects: the engine already
// keeps the numbers, so reading them on demand keeps the event path free of
// metrics code. Several sources may be watched; a connector is identified by
// (Name, Connector, Kind) and, should two sources report the same one, the
// first wins rather than failing the whole scrape.
func (r *Registry) Watch(src StatsSource) {
	if src == nil {
		return
	}
	r.mu.Lock()
	r.sources = append(r.sources, src)
	r.mu.Unlock()
}

// connKey identifies one connector across scrapes and EMF flushes.
type connKey struct{ name, connector, kind string }

func keyOf(s ConnectorStats) connKey { return connKey{s.Name, s.Connector, s.Kind} }

// stats returns the current stats of all watched sources, without
// duplicates. The sources are called outside r.mu so that a slow engine
// cannot block metric registration.
func (r *Registry) stats() []ConnectorStats {
	r.mu.Lock()
	sources := slices.Clone(r.sources)
	r.mu.Unlock()

	var out []ConnectorStats
	seen := make(map[connKey]bool)
	for _, src := range sources {
		for _, s := range src.Stats() {
			k := keyOf(s)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}

// BatchLatency returns the observer of rivven_connector_batch_seconds for one
// connector. Looking up the labelled child costs a hash and a lock, so a
// connector should call this once and keep the Observer rather than call it
// per batch.
//
// It is nil in a build without Prometheus, where nothing would read it.
func (r *Registry) BatchLatency(name, connector, kind string) Observer {
	return r.prom.batchLatency(name, connector, kind)
}

// Observer takes one observation (a duration in seconds).
type Observer interface{ Observe(float64) }

// counterSeries is one exported connector-specific counter: the value the
// connector updates, its naming, and what the last EMF flush reported.
type counterSeries struct {
	*metric.Counter
	def     metricDef
	emfLast uint64 // value at the last successful WriteEMF; guarded by Registry.emfMu
}

// gaugeSeries is one exported connector-specific gauge.
type gaugeSeries struct {
	*metric.Gauge
	def metricDef
}

// histSeries is one exported connector-specific histogram.
type histSeries struct {
	*metric.Histogram
	def metricDef
	// emfLast is the count and sum at the last successful WriteEMF;
	// guarded by Registry.emfMu.
	emfLastN   uint64
	emfLastSum float64
}

// metricDef is the naming of one custom series: the dotted name used by the
// connector docs and EMF, the Prometheus-safe name, and the const labels.
type metricDef struct {
	name   string      // as given, e.g. "kafka.source.messages_consumed_total"
	prom   string      // e.g. "kafka_source_messages_consumed_total"
	labels []labelPair // sanitised names, sorted by name
}

type labelPair struct{ name, value string }

// family is what all series sharing one Prometheus name must agree on; the
// Prometheus registry rejects a scrape otherwise, so it is checked when a
// series is created rather than discovered at scrape time.
type family struct {
	kind       string // "counter" | "gauge"
	name       string // dotted name
	help       string
	labelNames string // sorted, comma-joined
}

// Counter returns the counter with the given dotted name (for example
// "kafka.source.messages_consumed_total") and const labels, given as
// alternating name, value pairs ("topic", "orders"). The name is kept as is
// for EMF and exposed to Prometheus as PrometheusName(name). An empty help
// defaults to the dotted name, so the original spelling stays visible in
// Prometheus.
//
// Calling Counter again with the same name and labels returns the same
// counter, so connectors can ask for their metrics wherever convenient
// instead of threading them through constructors.
//
// Like prometheus.MustRegister, Counter panics on a programming error that
// would otherwise break every scrape: an odd number of label arguments, a
// repeated label name, a name already used by a Gauge or with other label
// names, or a name that collides with a built-in rivven_connector_* metric.
//
// On a nil registry it returns a detached counter: it counts but is not
// exported.
func (r *Registry) Counter(name, help string, constLabels ...string) *metric.Counter {
	if r == nil {
		return &metric.Counter{}
	}
	return r.custom(kindCounter, name, help, constLabels).(*counterSeries).Counter
}

// Gauge returns the gauge with the given dotted name and const labels; see
// Counter for naming, identity and panics.
func (r *Registry) Gauge(name, help string, constLabels ...string) *metric.Gauge {
	if r == nil {
		return &metric.Gauge{}
	}
	return r.custom(kindGauge, name, help, constLabels).(*gaugeSeries).Gauge
}

// Histogram returns the histogram with the given dotted name (for example
// "snowflake.request.duration_ms"), bucket upper bounds (metric.LatencyMillis
// for the reference's duration_ms names) and const labels; see Counter for
// naming, identity and panics. The bounds of the first call win.
func (r *Registry) Histogram(name, help string, bounds []float64, constLabels ...string) *metric.Histogram {
	if r == nil {
		return metric.NewHistogram(bounds)
	}
	return r.customWith(kindHistogram, name, help, bounds, constLabels).(*histSeries).Histogram
}

const (
	kindCounter   = "counter"
	kindGauge     = "gauge"
	kindHistogram = "histogram"
)

// custom finds or creates the series (name, constLabels) of the given kind.
func (r *Registry) custom(kind, name, help string, constLabels []string) any {
	return r.customWith(kind, name, help, nil, constLabels)
}

// customWith is custom with the bucket bounds a histogram needs.
func (r *Registry) customWith(kind, name, help string, bounds []float64, constLabels []string) any {
	def, id, err := newMetricDef(name, constLabels)
	if err != nil {
		panic(err)
	}
	labelNames := def.labelNames()

	r.mu.Lock()
	defer r.mu.Unlock()

	fam := r.families[def.prom]
	if fam == nil {
		if help == "" {
			help = name
		}
		fam = &family{kind: kind, name: name, help: help, labelNames: labelNames}
	} else if fam.kind != kind || fam.name != name || fam.labelNames != labelNames {
		panic(fmt.Sprintf("telemetry: %s %q with labels [%s] clashes with %s %q with labels [%s]: both are %s in Prometheus",
			kind, name, labelNames, fam.kind, fam.name, fam.labelNames, def.prom))
	}
	if m, ok := r.series[id]; ok {
		return m
	}

	var m any
	switch kind {
	case kindCounter:
		m = &counterSeries{Counter: &metric.Counter{}, def: def}
	case kindHistogram:
		m = &histSeries{Histogram: metric.NewHistogram(bounds), def: def}
	default:
		m = &gaugeSeries{Gauge: &metric.Gauge{}, def: def}
	}
	// Every series shares its family's help: Prometheus rejects a scrape
	// whose series of one name disagree on it.
	if err := r.prom.register(def, fam.help, m); err != nil {
		panic(fmt.Errorf("telemetry: registering %s %q: %w", kind, name, err))
	}
	r.families[def.prom] = fam
	r.series[id] = m
	switch v := m.(type) {
	case *counterSeries:
		r.counters = append(r.counters, v)
	case *gaugeSeries:
		r.gauges = append(r.gauges, v)
	case *histSeries:
		r.hists = append(r.hists, v)
	}
	return m
}

// PrometheusName maps a documented dotted metric name such as
// "snowflake.requests.success" to the name it has in Prometheus,
// "snowflake_requests_success": every character outside [a-zA-Z0-9_] becomes
// an underscore, and a leading digit gets an underscore in front. Prometheus
// 3 would accept the dots, but most query tooling and exporters downstream
// still expect the classic charset.
func PrometheusName(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 1)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
		default:
			c = '_'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// newMetricDef validates and normalises a custom metric's name and labels
// and returns its identity key.
func newMetricDef(name string, constLabels []string) (metricDef, string, error) {
	if name == "" {
		return metricDef{}, "", errors.New("telemetry: empty metric name")
	}
	if len(constLabels)%2 != 0 {
		return metricDef{}, "", fmt.Errorf("telemetry: metric %q: const labels must be name, value pairs, got %d strings", name, len(constLabels))
	}
	def := metricDef{name: name, prom: PrometheusName(name)}
	for i := 0; i < len(constLabels); i += 2 {
		def.labels = append(def.labels, labelPair{name: PrometheusName(constLabels[i]), value: constLabels[i+1]})
	}
	slices.SortFunc(def.labels, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(def.labels); i++ {
		if def.labels[i].name == def.labels[i-1].name {
			return metricDef{}, "", fmt.Errorf("telemetry: metric %q: label %q given twice", name, def.labels[i].name)
		}
	}
	var id strings.Builder
	id.WriteString(def.prom)
	for _, l := range def.labels {
		// Sanitised names cannot contain NUL and quoted values cannot
		// contain a raw one, so distinct label sets give distinct keys.
		id.WriteString("\x00" + l.name + "=" + strconv.Quote(l.value))
	}
	return def, id.String(), nil
}

func (d metricDef) labelNames() string {
	names := make([]string, len(d.labels))
	for i, l := range d.labels {
		names[i] = l.name
	}
	return strings.Join(names, ",")
}

// Serve runs an HTTP server on addr with GET /metrics (Prometheus) and
// GET /health, and returns once ctx is done and the server has shut down
// (nil then), or when the server fails. health may be nil, meaning always
// healthy.
//
// /health answers 200 with detail as JSON when health reports ok, and 503
// with the same JSON otherwise, so load balancers and Cloud Run probes can
// act on the status while a person can read why.
func (r *Registry) Serve(ctx context.Context, addr string, health func() (ok bool, detail any)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen on %s: %w", addr, err)
	}
	return r.serve(ctx, ln, health)
}

// Start is Serve without blocking: it returns once the listener is bound,
// with the actual address (which matters for ":0"), and serves in the
// background until ctx is done.
func (r *Registry) Start(ctx context.Context, addr string, health func() (ok bool, detail any)) (boundAddr string, err error) {
	return StartHTTP(ctx, addr, r.mux(health))
}

func (r *Registry) serve(ctx context.Context, ln net.Listener, health func() (bool, any)) error {
	return serveHTTP(ctx, ln, r.mux(health))
}

// Endpoints is the handler Start serves: /metrics and /health, for a
// caller that serves more on the same port.
func (r *Registry) Endpoints(health func() (ok bool, detail any)) http.Handler { return r.mux(health) }

// mux answers /metrics and /health.
func (r *Registry) mux(health func() (bool, any)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.Handler())
	mux.Handle("GET /health", healthHandler(health))
	return mux
}

// StartHTTP is the one HTTP server of the CLI's endpoints (metrics, health,
// readiness): it listens on addr and returns the bound address (which
// matters for ":0"), then serves h in the background until ctx is done and
// shuts down gracefully. Listening errors are returned; a later serving
// failure, which only a broken listener can cause, is logged through
// slog.Default.
func StartHTTP(ctx context.Context, addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	go func() {
		if err := serveHTTP(ctx, ln, h); err != nil {
			slog.Default().Error("HTTP server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr().String(), nil
}

// shutdownTimeout bounds how long a stopping server waits for in-flight
// requests; a scrape or probe takes milliseconds, so hitting it means a
// stuck client.
const shutdownTimeout = 5 * time.Second

func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler: h,
		// Without it a client that never finishes its headers holds a
		// connection forever (slowloris).
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func healthHandler(health func() (bool, any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, detail := true, any(nil)
		if health != nil {
			ok, detail = health()
		}
		if detail == nil {
			// Always answer with a JSON object so probes and people
			// parse the same shape whatever the health func returns.
			status := "ok"
			if !ok {
				status = "unavailable"
			}
			detail = map[string]string{"status": status}
		}
		body, err := json.Marshal(detail)
		if err != nil {
			http.Error(w, "telemetry: health detail is not JSON-encodable: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if ok {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(append(body, '\n'))
	})
}

// Report exports the numbers a connector keeps itself (its Metrics
// method: documented metric name → value) under the connector label name.
// fn is called on every scrape; names ending in _total are counters, the
// rest gauges. Connectors that count with Registry.Counter/Gauge directly
// need not report.
func (r *Registry) Report(name string, fn func() map[string]float64) {
	r.prom.report(name, fn)
}
