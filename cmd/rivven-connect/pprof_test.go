package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// TestMetricsPprof: settings.metrics.pprof adds Go's profiles to the
// metrics port, next to /metrics and /health; without it they are not
// served.
func TestMetricsPprof(t *testing.T) {
	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	health := func() (bool, any) { return true, map[string]string{"orders": "running"} }
	for _, on := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		addr, err := startMetrics(ctx, telemetry.NewRegistry(), config.Metrics{Enabled: true, Port: 0, Pprof: on}, health)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := get(addr, "/metrics"); code != 200 {
			t.Errorf("pprof %v: /metrics answered %d", on, code)
		}
		if code, body := get(addr, "/health"); code != 200 || !strings.Contains(body, "running") {
			t.Errorf("pprof %v: /health answered %d %s", on, code, body)
		}
		code, body := get(addr, "/debug/pprof/heap?debug=1")
		if on && (code != 200 || !strings.Contains(body, "heap profile")) {
			t.Errorf("pprof on: /debug/pprof/heap answered %d %.200s", code, body)
		}
		if !on && code != 404 {
			t.Errorf("pprof off: /debug/pprof/heap answered %d, want 404", code)
		}
		cancel()
	}
}
