package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeStats is a StatsSource whose numbers the test changes between reads.
type fakeStats struct {
	mu    sync.Mutex
	stats []ConnectorStats
}

func (f *fakeStats) Stats() []ConnectorStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]ConnectorStats, len(f.stats))
	copy(out, f.stats)
	return out
}

func (f *fakeStats) set(s ...ConnectorStats) {
	f.mu.Lock()
	f.stats = s
	f.mu.Unlock()
}

var (
	sourceStats = ConnectorStats{
		Name: "orders", Connector: "datagen", Kind: "source", State: "Running",
		EventsIn: 10, EventsOut: 9, Errors: 1, Dropped: 2, DeadLettered: 3,
		Lag: -1, Restarts: 4,
	}
	sinkStats = ConnectorStats{
		Name: "orders-out", Connector: "stdout", Kind: "sink", State: "Failed",
		EventsIn: 9, EventsOut: 8, Lag: 42, LastError: "boom",
	}
)

// scrape renders r as Prometheus text and parses it back, so assertions are
// about what a Prometheus server would ingest.
func scrape(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WritePrometheus(&buf); err != nil {
		t.Fatalf("WritePrometheus: %v", err)
	}
	return parseProm(t, &buf)
}

func parseProm(t *testing.T, in io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(in)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return mfs
}

// sample returns the value of the series of family name whose labels include
// want, and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		got := make(map[string]string)
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_UNTYPED:
			return m.GetUntyped().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestWatchExportsConnectorStats(t *testing.T) {
	r := NewRegistry()
	src := &fakeStats{}
	src.set(sourceStats, sinkStats)
	r.Watch(src)

	mfs := scrape(t, r)
	source := map[string]string{"name": "orders", "connector": "datagen", "kind": "source"}
	sink := map[string]string{"name": "orders-out", "connector": "stdout", "kind": "sink"}

	for _, tt := range []struct {
		family string
		labels map[string]string
		typ    dto.MetricType
		want   float64
	}{
		{"rivven_connector_events_in_total", source, dto.MetricType_COUNTER, 10},
		{"rivven_connector_events_out_total", source, dto.MetricType_COUNTER, 9},
		{"rivven_connector_errors_total", source, dto.MetricType_COUNTER, 1},
		{"rivven_connector_dropped_total", source, dto.MetricType_COUNTER, 2},
		{"rivven_connector_dead_lettered_total", source, dto.MetricType_COUNTER, 3},
		{"rivven_connector_restarts_total", source, dto.MetricType_COUNTER, 4},
		{"rivven_connector_events_in_total", sink, dto.MetricType_COUNTER, 9},
		{"rivven_connector_lag", sink, dto.MetricType_GAUGE, 42},
		{"rivven_connector_state", map[string]string{"name": "orders", "state": "Running"}, dto.MetricType_GAUGE, 1},
		{"rivven_connector_state", map[string]string{"name": "orders-out", "state": "Failed"}, dto.MetricType_GAUGE, 1},
	} {
		if got := mfs[tt.family].GetType(); got != tt.typ {
			t.Errorf("%s: type %v, want %v", tt.family, got, tt.typ)
		}
		got, ok := sample(mfs, tt.family, tt.labels)
		if !ok {
			t.Errorf("%s%v: no such series", tt.family, tt.labels)
			continue
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.family, tt.labels, got, tt.want)
		}
	}

	// Unknown lag is absent, not -1.
	if v, ok := sample(mfs, "rivven_connector_lag", source); ok {
		t.Errorf("lag of the source with Lag=-1 exported as %v", v)
	}
	// Only the current state has a series.
	if n := len(mfs["rivven_connector_state"].GetMetric()); n != 2 {
		t.Errorf("rivven_connector_state has %d series, want one per connector (2)", n)
	}

	// The next scrape reads the source again.
	s := sourceStats
	s.EventsIn = 25
	src.set(s, sinkStats)
	if got, _ := sample(scrape(t, r), "rivven_connector_events_in_total", source); got != 25 {
		t.Errorf("after update events_in = %v, want 25", got)
	}
}

func TestWatchIgnoresRepeatedConnector(t *testing.T) {
	r := NewRegistry()
	a, b := &fakeStats{}, &fakeStats{}
	a.set(sourceStats)
	dup := sourceStats
	dup.EventsIn = 999
	b.set(dup)
	r.Watch(a)
	r.Watch(b)
	r.Watch(nil)

	// A duplicate series would make the whole gather fail.
	mfs := scrape(t, r)
	if got, _ := sample(mfs, "rivven_connector_events_in_total", map[string]string{"name": "orders"}); got != 10 {
		t.Errorf("events_in = %v, want the first source's 10", got)
	}
}

func TestBatchLatency(t *testing.T) {
	r := NewRegistry()
	obs := r.BatchLatency("orders", "datagen", "source")
	obs.Observe(0.002)
	obs.Observe(0.3)

	mfs := scrape(t, r)
	mf := mfs["rivven_connector_batch_seconds"]
	if mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("batch_seconds type %v, want histogram", mf.GetType())
	}
	h := mf.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 {
		t.Errorf("sample count %d, want 2", h.GetSampleCount())
	}
	// The text format ends every histogram with +Inf; the configured
	// buckets are the ones before it.
	b := h.GetBucket()
	if len(b) < 2 {
		t.Fatalf("%d buckets", len(b))
	}
	if first, last := b[0].GetUpperBound(), b[len(b)-2].GetUpperBound(); first != 0.0001 || last != 10 {
		t.Errorf("buckets span %v..%v, want 0.0001..10", first, last)
	}
}

func TestPrometheusName(t *testing.T) {
	for in, want := range map[string]string{
		"kafka.source.messages_consumed_total": "kafka_source_messages_consumed_total",
		"snowflake.requests.success":           "snowflake_requests_success",
		"http-sink.retries":                    "http_sink_retries",
		"already_fine":                         "already_fine",
		"9lives":                               "_9lives",
		"s3.bytes/written":                     "s3_bytes_written",
		"café":                                 "caf__",
	} {
		if got := PrometheusName(in); got != want {
			t.Errorf("PrometheusName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCustomCounterAndGauge(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("kafka.source.messages_consumed_total", "Messages consumed.", "topic", "orders")
	c.Add(5)
	c.Inc()
	if again := r.Counter("kafka.source.messages_consumed_total", "other help is ignored", "topic", "orders"); again != c {
		t.Error("second Counter call with the same name and labels returned a new counter")
	}
	other := r.Counter("kafka.source.messages_consumed_total", "", "topic", "users")
	if other == c {
		t.Error("different label values share a counter")
	}
	other.Add(7)
	plain := r.Counter("snowflake.requests.success", "")
	plain.Add(3)

	g := r.Gauge("kafka.source.partitions-assigned", "Partitions assigned.")
	g.Set(12.5)

	if c.Value() != 6 || other.Value() != 7 || g.Value() != 12.5 {
		t.Fatalf("values: %d, %d, %v", c.Value(), other.Value(), g.Value())
	}

	mfs := scrape(t, r)
	for _, tt := range []struct {
		family string
		labels map[string]string
		typ    dto.MetricType
		want   float64
	}{
		{"kafka_source_messages_consumed_total", map[string]string{"topic": "orders"}, dto.MetricType_COUNTER, 6},
		{"kafka_source_messages_consumed_total", map[string]string{"topic": "users"}, dto.MetricType_COUNTER, 7},
		{"snowflake_requests_success", nil, dto.MetricType_COUNTER, 3},
		{"kafka_source_partitions_assigned", nil, dto.MetricType_GAUGE, 12.5},
	} {
		mf := mfs[tt.family]
		if mf.GetType() != tt.typ {
			t.Errorf("%s: type %v, want %v", tt.family, mf.GetType(), tt.typ)
		}
		if got, ok := sample(mfs, tt.family, tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.family, tt.labels, got, ok, tt.want)
		}
	}
	if h := mfs["kafka_source_messages_consumed_total"].GetHelp(); h != "Messages consumed." {
		t.Errorf("help %q, want the first registration's", h)
	}
	if h := mfs["snowflake_requests_success"].GetHelp(); h != "snowflake.requests.success" {
		t.Errorf("empty help became %q, want the dotted name", h)
	}
}

func TestCustomMetricMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	r := NewRegistry()
	r.Counter("jdbc.rows", "", "table", "a")

	mustPanic("odd labels", func() { r.Counter("x.y", "", "table") })
	mustPanic("repeated label", func() { r.Counter("x.z", "", "t", "1", "t", "2") })
	mustPanic("kind clash", func() { r.Gauge("jdbc.rows", "", "table", "a") })
	mustPanic("label names clash", func() { r.Counter("jdbc.rows", "", "schema", "a") })
	mustPanic("dotted names clash", func() { r.Counter("jdbc_rows", "", "table", "a") })
	mustPanic("built-in clash", func() { r.Gauge("rivven.connector.lag", "") })
	mustPanic("empty name", func() { r.Counter("", "") })

	// The registry is still usable and scrapes cleanly after the refusals.
	scrape(t, r)
}

func TestCounterConcurrentAdds(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := r.Counter("test.concurrent", "")
			for range 1000 {
				c.Inc()
			}
		})
	}
	wg.Wait()
	if got := r.Counter("test.concurrent", "").Value(); got != 8000 {
		t.Errorf("value %d, want 8000", got)
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestStartServesMetricsAndHealth(t *testing.T) {
	r := NewRegistry()
	src := &fakeStats{}
	src.set(sourceStats)
	r.Watch(src)
	r.Counter("kafka.source.messages_consumed_total", "").Add(2)

	var healthy atomic.Bool
	healthy.Store(true)
	health := func() (bool, any) {
		return healthy.Load(), map[string]any{"connectors": 1, "healthy": healthy.Load()}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := r.Start(ctx, "127.0.0.1:0", health)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("Start returned the requested address %q, want the bound one", addr)
	}
	base := "http://" + addr

	code, body, _ := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics status %d", code)
	}
	mfs := parseProm(t, strings.NewReader(body))
	if got, _ := sample(mfs, "rivven_connector_events_in_total", map[string]string{"name": "orders"}); got != 10 {
		t.Errorf("/metrics events_in = %v, want 10", got)
	}
	if got, _ := sample(mfs, "kafka_source_messages_consumed_total", nil); got != 2 {
		t.Errorf("/metrics custom counter = %v, want 2", got)
	}

	checkHealth := func(wantCode int, wantHealthy bool) {
		t.Helper()
		code, body, hdr := get(t, base+"/health")
		if code != wantCode {
			t.Errorf("/health status %d, want %d", code, wantCode)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("/health Content-Type %q", ct)
		}
		var detail map[string]any
		if err := json.Unmarshal([]byte(body), &detail); err != nil {
			t.Fatalf("/health body is not JSON: %v: %q", err, body)
		}
		if detail["healthy"] != wantHealthy || detail["connectors"] != float64(1) {
			t.Errorf("/health detail %v", detail)
		}
	}
	checkHealth(http.StatusOK, true)
	healthy.Store(false)
	checkHealth(http.StatusServiceUnavailable, false)

	if code, _, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope status %d, want 404", code)
	}

	// The address is taken while the server runs.
	if _, err := NewRegistry().Start(ctx, addr, nil); err == nil {
		t.Error("second Start on a bound address succeeded")
	}
}

func TestNilHealthIsHealthy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := NewRegistry().Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := get(t, "http://"+addr+"/health")
	if code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("/health = %d %q, want 200 {\"status\":\"ok\"}", code, body)
	}
}

func TestServeReturnsNilOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewRegistry().Serve(ctx, "127.0.0.1:0", nil) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
}

func TestServeListenError(t *testing.T) {
	if err := NewRegistry().Serve(context.Background(), "127.0.0.1:-1", nil); err == nil {
		t.Error("Serve on an invalid address: want error")
	}
}

func TestCustomHistogram(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("snowflake.request.duration_ms", "Request latency.", []float64{1, 10, 100}, "name", "wh")
	if again := r.Histogram("snowflake.request.duration_ms", "", nil, "name", "wh"); again != h {
		t.Error("second Histogram call with the same name and labels returned a new histogram")
	}
	for _, v := range []float64{0.5, 1, 7, 50, 5000} {
		h.Observe(v)
	}
	mf := scrape(t, r)["snowflake_request_duration_ms"]
	if mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 {
		t.Fatalf("family %v", mf)
	}
	got := mf.GetMetric()[0].GetHistogram()
	if got.GetSampleCount() != 5 || got.GetSampleSum() != 5058.5 {
		t.Errorf("count %d sum %v, want 5 and 5058.5", got.GetSampleCount(), got.GetSampleSum())
	}
	want := map[float64]uint64{1: 2, 10: 3, 100: 4} // cumulative, "le"
	for _, b := range got.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if _, clash := func() (v any, panicked bool) {
		defer func() { panicked = recover() != nil }()
		r.Gauge("snowflake.request.duration_ms", "", "name", "wh")
		return
	}(); !clash {
		t.Error("a gauge with a histogram's name did not panic")
	}
}

func TestWriteEMFHistogramMeanSinceLastFlush(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("qdrant.batch.duration_ms", "", []float64{10})
	h.Observe(2)
	h.Observe(4)
	first := customLine(t, writeEMF(t, r, nil, time.UnixMilli(1)), "qdrant.batch.duration_ms")
	if v, _ := first.root["qdrant.batch.duration_ms"].(json.Number).Float64(); v != 3 {
		t.Errorf("first flush %v, want the mean 3", v)
	}
	if lines := writeEMF(t, r, nil, time.UnixMilli(2)); len(lines) != 0 {
		t.Errorf("a flush with no new observations wrote %d lines", len(lines))
	}
	h.Observe(30)
	third := customLine(t, writeEMF(t, r, nil, time.UnixMilli(3)), "qdrant.batch.duration_ms")
	if v, _ := third.root["qdrant.batch.duration_ms"].(json.Number).Float64(); v != 30 {
		t.Errorf("third flush %v, want 30 (only what is new)", v)
	}
}
