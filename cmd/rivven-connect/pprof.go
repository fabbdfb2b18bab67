package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// startMetrics serves /metrics and /health on settings.metrics.port, and
// Go's profiles under /debug/pprof/ when settings.metrics.pprof asks for
// them, so a slow or growing pipeline can be profiled where it runs. The
// profiles live here, not in telemetry, so that the functions (which link
// telemetry) carry no profiler endpoints.
func startMetrics(ctx context.Context, reg *telemetry.Registry, m config.Metrics, health func() (bool, any)) (string, error) {
	h := reg.Endpoints(health)
	if m.Pprof {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		h = mux
	}
	addr, err := telemetry.StartHTTP(ctx, fmt.Sprintf(":%d", m.Port), h)
	if err != nil {
		return "", fmt.Errorf("settings.metrics.port: %w", err)
	}
	return addr, nil
}
