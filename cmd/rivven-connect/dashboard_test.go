package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/testenv"
)

// browserTools finds node, Chromium and playwright-core (.ci/services.sh
// installs them), skipping the test without them (failing it under
// RIVVEN_REQUIRE_SERVICES=1).
func browserTools(t *testing.T) (node, chromium, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not installed (.ci/services.sh): %v", err)
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		if chromium, err = exec.LookPath("chromium"); err != nil {
			testenv.Unavailable(t, "chromium is not installed (.ci/services.sh installs Debian's package): %v", err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	modules = filepath.Join(root, ".ci", "node", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "playwright-core", "package.json")); err != nil {
		testenv.Unavailable(t, "playwright-core is not installed (.ci/services.sh runs npm ci in .ci/node): %v", err)
	}
	return node, chromium, modules
}

// artifactDir is where browser tests keep their screenshots:
// $RIVVEN_ARTIFACTS, else rivven-connect-artifacts in the temp directory.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("RIVVEN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "rivven-connect-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDashboardInChromium starts `local --ui` on a pipeline of a datagen
// source (with a step that copies a secret into each event), a webhook
// sink and a drop sink, and drives the page in headless Chromium: the
// graph shows every connector, topic and step, the counters rise, the
// webhook's server failing turns its node red with the reason while the
// other sink stays green, event samples show with the secret blanked,
// and on a phone-sized screen the graph reads top to bottom without
// sideways scrolling. Screenshots are kept in artifactDir (UPDATE_DOCS=1
// also refreshes the README's, shared/dashboard/screenshot.png).
func TestDashboardInChromium(t *testing.T) {
	node, chromium, modules := browserTools(t)
	const secret = "tok-3c1f9a77e2b04d55"
	t.Setenv("HOOK_TOKEN", secret)
	var broken atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/break" {
			broken.Store(true)
			return
		}
		if broken.Load() {
			http.Error(w, "the orders service is down for maintenance", http.StatusServiceUnavailable)
		}
	}))
	defer hook.Close()
	file := writeFile(t, fmt.Sprintf(`
version: "1.0"
settings:
  retry: {initial_backoff_ms: 50, max_backoff_ms: 500}
sources:
  orders:
    connector: datagen
    topic: demo.orders
    config: {pattern: orders, events_per_second: 40, stream_name: orders, seed: 7}
    transforms:
      - type: InsertField
        config:
          static: {api_token: "${HOOK_TOKEN}"}
sinks:
  hook:
    connector: http_webhook
    topics: [demo.orders]
    config:
      url: %s/orders
      headers: {Authorization: "${HOOK_TOKEN}"}
      batch_size: 50
      timeout_secs: 5
      retry: {max_attempts: 1}
    circuit_breaker: {failure_threshold: 2, reset_timeout_secs: 60}
  archive:
    connector: drop
    topics: [demo.orders]
`, hook.URL))

	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"local", "-c", file, "--ui", "127.0.0.1:0", "--quiet"}, io.Discard, stderr)
	}()
	defer func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("local did not stop; stderr:\n%s", stderr)
		}
	}()
	base := dashboardURL(t, stderr)

	dir := artifactDir(t)
	shot, narrowShot := filepath.Join(dir, "dashboard.png"), filepath.Join(dir, "dashboard-narrow.png")
	nodes, _ := json.Marshal([]string{"source:orders", "source:orders/0", "topic:demo.orders", "sink:hook", "sink:archive"})
	cmd := exec.Command(node, "testdata/dashboard_browser.cjs")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "CHROMIUM="+chromium, "DASH_URL="+base, "BREAK_URL="+hook.URL+"/break",
		"NODES="+string(nodes), "SECRET="+secret, "SHOT="+shot, "SHOT_NARROW="+narrowShot)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("browser script: %v\n%s\nlocal's log:\n%s", err, errOut.String(), stderr)
		}
	case <-time.After(4 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("browser script did not finish:\n%s", errOut.String())
	}
	t.Logf("screenshots: %s, %s", shot, narrowShot)

	var got struct {
		First, Second     float64
		RateText, Healthy string
		BoxText, Title    string
		Reasons           []string
		CardClass         string
		OtherSink         string
		SecretShown       bool
		Blanked           bool
		Sample            string
		Narrow            struct {
			ScrollWidth, SvgWidth float64
			SourceAboveSink       bool
		}
		Problems []string
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("browser script output %q: %v", out.String(), err)
	}
	t.Logf("page: %+v", got)
	if got.Second <= got.First || got.First <= 0 {
		t.Errorf("the sink's counter did not rise: %v then %v", got.First, got.Second)
	}
	if !strings.HasSuffix(strings.Fields(got.RateText)[0], "/s") {
		t.Errorf("the source's box shows no rate: %q", got.RateText)
	}
	if got.Healthy != "ok" {
		t.Errorf("before the break the webhook's node was %q", got.Healthy)
	}
	if !strings.Contains(got.BoxText, "breaker open") && !strings.Contains(got.BoxText, "Failed") {
		t.Errorf("the broken sink's box says %q", got.BoxText)
	}
	reason := strings.Join(append(got.Reasons, got.Title), "\n")
	if !strings.Contains(reason, "503") || !strings.Contains(reason, "down for maintenance") {
		t.Errorf("the reason is not shown: %q", reason)
	}
	if !strings.Contains(got.CardClass, "bad") || got.OtherSink != "ok" {
		t.Errorf("card %q, other sink %q", got.CardClass, got.OtherSink)
	}
	if got.SecretShown || !got.Blanked {
		t.Errorf("secret shown %v, blanked in the sample %v: %s", got.SecretShown, got.Blanked, got.Sample)
	}
	if !got.Narrow.SourceAboveSink || got.Narrow.ScrollWidth > 390 {
		t.Errorf("narrow screen: %+v", got.Narrow)
	}
	if len(got.Problems) > 0 {
		t.Errorf("the page had problems: %q", got.Problems)
	}
	if os.Getenv("UPDATE_DOCS") != "" {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../shared/dashboard/screenshot.png", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// `run source --ui` serves the dashboard of the whole pipeline with live
// numbers for its own connector: its events and the samples it published
// through Redis's fenced producer, the sink (another process's) drawn
// without numbers.
func TestRunServesTheDashboard(t *testing.T) {
	e := newRunEnv(t)
	file := e.pipelineFile(t, `{pattern: orders, events_per_second: 200, stream_name: orders}`, "drop")
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"run", "source", e.source, "-c", file, "--ui", "127.0.0.1:0"}, io.Discard, stderr)
	}()
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("run source exited %d: %s", code, stderr)
		}
	}()
	base := dashboardURL(t, stderr)
	var g struct {
		Title string
		Nodes []struct {
			ID   string
			Live bool
		}
	}
	getJSON(t, base+"api/graph", &g)
	live := map[string]bool{}
	for _, n := range g.Nodes {
		live[n.ID] = n.Live
	}
	if g.Title != "run source "+e.source || !live["source:"+e.source] || live["sink:"+e.sink] || len(live) != 3 {
		t.Fatalf("graph %+v", g)
	}
	var st struct {
		Nodes map[string]struct {
			EventsOut uint64 `json:"events_out"`
		}
		Samples map[string][]struct{ Value string }
	}
	until(t, "the source's events and samples on the page", func() bool {
		getJSON(t, base+"api/state", &st)
		return st.Nodes["source:"+e.source].EventsOut > 0 && len(st.Samples[e.topc]) > 0
	})
	if !strings.Contains(st.Samples[e.topc][0].Value, `"stream":"orders"`) {
		t.Errorf("sample %q", st.Samples[e.topc][0].Value)
	}
}

// dashboardURL waits for the CLI to log where its dashboard listens.
func dashboardURL(t *testing.T, log *syncBuffer) string {
	t.Helper()
	urlRe := regexp.MustCompile(`"msg":"dashboard served","url":"(http://[^"]+)"`)
	var base string
	until(t, "the dashboard's address in the log", func() bool {
		if m := urlRe.FindStringSubmatch(log.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	})
	return base
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
