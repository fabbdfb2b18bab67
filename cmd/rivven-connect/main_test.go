package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
)

// cli runs the command line. Sinks such as stdout write to the process's
// standard output, so that is pointed at a file for the call.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	real := os.Stdout
	os.Stdout = f
	defer func() { os.Stdout = real }()
	var e bytes.Buffer
	code = run(context.Background(), args, f, &e)
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(out), e.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const quickstart = "../../samples/pipelines/quickstart.yaml"

const plain = `
settings:
  topic: {default_partitions: 3}
sources:
  orders:
    connector: datagen
    topic: demo.orders
    config: {pattern: orders, cdc_mode: true, events_per_second: 0, seed: 42}
sinks:
  console:
    connector: stdout
    topics: [demo.orders]
    config: {format: jsonl}
`

func TestLocalDeliversExactlyMaxEvents(t *testing.T) {
	code, out, errOut := cli(t, "local", "-c", writeFile(t, plain), "--max-events", "3737", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3737 {
		t.Fatalf("stdout has %d events, want exactly 3737", len(lines))
	}
	for _, l := range lines {
		if _, err := events.Unmarshal([]byte(l)); err != nil {
			t.Fatalf("stdout line is not an event: %v: %s", err, l)
		}
	}
	if !strings.Contains(errOut, "sink   console") || !strings.Contains(errOut, "out 3737") {
		t.Errorf("final status missing on stderr:\n%s", errOut)
	}
}

// The quickstart masks customer ids and keeps orders over 100, and stops
// by itself after its max_events.
func TestLocalQuickstartRunsToItsOwnEnd(t *testing.T) {
	code, out, errOut := cli(t, "local", "-c", quickstart, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 50 || len(lines) >= 200 {
		t.Fatalf("quickstart printed %d of its 200 events; the filter should keep some and drop some", len(lines))
	}
	for _, l := range lines {
		e, err := events.Unmarshal([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		row, _ := e.Row()
		total, _ := row["total"].(json.Number).Float64()
		cust, _ := row["customer_id"].(string)
		if total <= 100 || !strings.HasPrefix(cust, "*") {
			t.Fatalf("event not filtered or not masked: %s", l)
		}
	}
	// --json status lines are machine-readable.
	var src, sink map[string]any
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, `"final":true`) {
			continue
		}
		var m map[string]any
		json.Unmarshal([]byte(l), &m)
		if m["kind"] == "sink" {
			sink = m
		} else {
			src = m
		}
	}
	if src == nil || sink == nil || src["events_in"] != float64(200) || src["dropped"] != float64(200-len(lines)) ||
		sink["events_out"] != float64(len(lines)) || sink["state"] != "Stopped" {
		t.Fatalf("final status source %v sink %v in:\n%s", src, sink, errOut)
	}
}

// ContentRouter sends events to the topics their status picks, and each
// sink sees exactly its share.
func TestLocalContentRouterDeliversToRoutedTopics(t *testing.T) {
	code, out, errOut := cli(t, "local", "-c", "../../samples/pipelines/routing.yaml", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fulfilled := strings.Count(out, "\n")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, `"status":"shipped"`) && !strings.Contains(l, `"status":"delivered"`) {
			t.Fatalf("unfulfilled order on the fulfilled topic: %s", l)
		}
	}
	var open float64 = -1
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, `"final":true`) && strings.Contains(l, `"name":"open"`) {
			var m map[string]any
			json.Unmarshal([]byte(l), &m)
			open = m["events_out"].(float64)
		}
	}
	if fulfilled == 0 || open <= 0 || fulfilled+int(open) != 500 {
		t.Fatalf("fulfilled %d + open %v != 500 events:\n%s", fulfilled, open, errOut)
	}
}

func TestLocalFailedConnectorExitsNonZero(t *testing.T) {
	p := writeFile(t, `
settings:
  topic: {auto_create: false, require_topic_exists: true}
sources:
  gen: {connector: datagen, topic: nowhere, config: {pattern: users}}
`)
	if code, _, errOut := cli(t, "local", "-c", p); code != exitUsage || !strings.Contains(errOut, `topic "nowhere" does not exist`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestValidateReportsEveryProblemWithLine(t *testing.T) {
	p := writeFile(t, `version: "1.0"
sources:
  gen:
    connector: datagen
    topic: t
    config:
      pattern: ordrs
      event_per_second: 5
sinks:
  out:
    connector: stdot
    topics: [t]
`)
	code, _, errOut := cli(t, "validate", "-c", p)
	if code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		p + `:7:16: sources.gen.config.pattern: "ordrs" is not allowed`, `(did you mean "orders"?)`,
		p + `:8:7: sources.gen.config.event_per_second: unknown key "event_per_second" (did you mean "events_per_second"?)`,
		p + `:11:16: sinks.out.connector: unknown sink connector "stdot" (did you mean "stdout"?)`,
		"3 problem(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}
	code, out, _ := cli(t, "validate", "-c", p, "--json")
	var res struct {
		Valid    bool
		Problems []struct{ Path, Message string }
	}
	if code != exitUsage || json.Unmarshal([]byte(out), &res) != nil || res.Valid || len(res.Problems) != 3 {
		t.Fatalf("--json: exit %d %s", code, out)
	}
}

// The reference documentation's own examples for datagen and stdout.
func TestReferenceExamplesValidate(t *testing.T) {
	p := writeFile(t, `
sources:
  demo:
    connector: datagen
    topic: demo-events
    config:
      pattern: orders           # Data pattern (orders, users, pageviews)
      events_per_second: 10     # Generation rate
      max_events: 0             # 0 = unlimited
      stream_name: demo_orders  # Stream identifier
      seed: 42                  # Reproducible data (optional)
      cdc_mode: true            # Simulate INSERT/UPDATE/DELETE
sinks:
  console:
    connector: stdout
    topics: [debug]
    consumer_group: console-sink
    config:
      format: json
      pretty: true
`)
	if code, out, errOut := cli(t, "validate", "-c", p); code != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
}

func TestUnsetVariableIsAnError(t *testing.T) {
	p := writeFile(t, `
sources:
  gen:
    connector: datagen
    topic: t
    config:
      pattern: users
      stream_name: ${RIVVEN_TEST_UNSET_STREAM}
`)
	code, _, errOut := cli(t, "validate", "-c", p)
	if code != exitUsage || !strings.Contains(errOut, "environment variable RIVVEN_TEST_UNSET_STREAM is not set") ||
		!strings.Contains(errOut, ":8:20: sources.gen.config.stream_name") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestConnectorsCatalog(t *testing.T) {
	code, out, _ := cli(t, "connectors")
	if code != 0 {
		t.Fatal(code)
	}
	var src, snk, trf int
	for _, e := range catalog.All() {
		switch e.Kind {
		case catalog.Source:
			src++
		case catalog.Sink:
			snk++
		default:
			trf++
		}
		if !strings.Contains(out, e.Name) {
			t.Errorf("catalog output lacks %s", e.Name)
		}
	}
	total := src + snk + trf
	want := "📊 Total: " + itoa(total) + " connectors (" + itoa(src) + " sources, " + itoa(snk) + " sinks, " + itoa(trf) + " transforms)"
	if !strings.Contains(out, want) || !strings.Contains(out, "📁 UTILITY") || !strings.Contains(out, "Rivven Connect - Connector Catalog") {
		t.Fatalf("catalog output:\n%s\nwant line %q", out, want)
	}

	_, out, _ = cli(t, "connectors", "--search", "SYNTHETIC", "--json")
	var hits []struct{ Name, Kind string }
	if err := json.Unmarshal([]byte(out), &hits); err != nil || len(hits) == 0 || hits[0].Name != "datagen" {
		t.Fatalf("search synthetic: %v %s", err, out)
	}
	_, out, _ = cli(t, "connectors", "--kind", "sink", "--json")
	json.Unmarshal([]byte(out), &hits)
	for _, h := range hits {
		if h.Kind != "sink" {
			t.Fatalf("--kind sink listed %s %s", h.Kind, h.Name)
		}
	}
	if code, _, _ := cli(t, "connectors", "--kind", "sinks"); code != exitUsage {
		t.Fatal("bad --kind accepted")
	}
	if code, out, _ := cli(t, "connectors", "--docs", "datagen"); code != 0 || !strings.Contains(out, "| `pattern` |") {
		t.Fatalf("--docs: %d %s", code, out)
	}
}

func TestSchemaTypesConnectorConfig(t *testing.T) {
	code, out, _ := cli(t, "schema")
	var s map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("schema: %d", code)
	}
	if !strings.Contains(out, `"const": "datagen"`) || !strings.Contains(out, `"events_per_second"`) {
		t.Fatal("schema does not type the datagen config block")
	}
}

func TestUsageAndHelp(t *testing.T) {
	if code, _, _ := cli(t, "frobnicate"); code != exitUsage {
		t.Fatal("unknown command must be a usage error")
	}
	for _, c := range commands() {
		code, out, _ := cli(t, c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: rivven-connect "+c.name) {
			t.Errorf("%s --help: %d %q", c.name, code, out)
		}
	}
	if code, _, errOut := cli(t, "validate"); code != exitUsage || !strings.Contains(errOut, "-c FILE is required") {
		t.Fatalf("validate without -c: %d %s", code, errOut)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestLocalServesMetricsAndHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := writeFile(t, fmt.Sprintf(`
settings:
  metrics: {enabled: true, port: %d}
  health: {enabled: true, port: %d}
sources:
  gen: {connector: datagen, topic: t, config: {pattern: users, events_per_second: 200}}
sinks:
  sink: {connector: drop, topics: [t]}
`, port, port))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var o, e bytes.Buffer
		done <- run(ctx, []string{"local", "-c", p, "--quiet"}, &o, &e)
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var body string
	for i := 0; i < 200; i++ {
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, `rivven_connector_events_out_total{connector="drop",kind="sink",name="sink"}`) &&
			strings.Contains(body, "rivven_connector_batch_seconds_count") {
			break
		}
	}
	if !strings.Contains(body, `rivven_connector_events_out_total{connector="drop",kind="sink",name="sink"}`) ||
		!strings.Contains(body, `rivven_connector_batch_seconds_count{connector="drop",kind="sink",name="sink"}`) {
		t.Fatalf("metrics lack the sink's counters and latency:\n%s", body)
	}
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health = %d while running", resp.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after Ctrl-C", code)
	}
}

// Two sinks spelling one connector differently, with metrics and the
// circuit breaker on, used to make `local` panic: the breaker's counter was
// named after the spelling, and object-storage and object_storage are one
// name to Prometheus. Metric names and labels now come from the catalog's
// name of the connector.
func TestLocalMetricsNameConnectorsCanonically(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	root := t.TempDir()
	for _, b := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(root, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := writeFile(t, fmt.Sprintf(`
settings:
  metrics: {enabled: true, port: %d}
sources:
  gen: {connector: datagen, topic: t, config: {pattern: users, events_per_second: 200}}
sinks:
  a:
    connector: object-storage
    topics: [t]
    circuit_breaker: {enabled: true}
    config: {provider: local, bucket: a, local: {root: %q}, format: jsonl}
  b:
    connector: object_storage
    topics: [t]
    circuit_breaker: {enabled: true}
    config: {provider: local, bucket: b, local: {root: %q}, format: jsonl}
`, port, root, root))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	go func() {
		var o bytes.Buffer
		done <- run(ctx, []string{"local", "-c", p, "--quiet"}, &o, &errOut)
	}()
	want := []string{
		`rivven_connector_events_out_total{connector="object-storage",kind="sink",name="a"}`,
		`rivven_connector_events_out_total{connector="object-storage",kind="sink",name="b"}`,
		`object_storage_circuit_breaker_rejected{name="a"}`,
		`object_storage_circuit_breaker_rejected{name="b"}`,
	}
	var body string
	missing := want
	for i := 0; i < 200 && len(missing) > 0; i++ {
		select {
		case code := <-done:
			t.Fatalf("local exited (%d) while it should run: %s", code, errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		missing = nil
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = append(missing, w)
			}
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if len(missing) > 0 {
		t.Fatalf("metrics lack %v:\n%s", missing, body)
	}
	if strings.Contains(body, `connector="object_storage"`) {
		t.Fatalf("a metric is labelled with the pipeline's spelling:\n%s", body)
	}
}
