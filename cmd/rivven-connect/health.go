package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// healthServer answers the probes of a long-lived service:
//
//   - settings.health.path (default /health): the full report — each
//     connector's state, counters and last error (secrets redacted) and
//     whether the shared state answers; 200 when every connector is up
//     and Redis answers, else 503.
//   - /ready: the same verdict, for load balancers and readiness probes:
//     a connector is ready once its health check passed (Running).
//   - /live: 503 only when a connector is Failed, i.e. when restarting the
//     process is what it takes; a Redis outage is waited out, not
//     restarted away.
type healthServer struct {
	statuses pipeline.Statuses
	store    state.Store
	redact   func(string) string
}

// pingTimeout bounds the Redis check of a probe; probes have their own
// short timeouts and must get an answer.
const pingTimeout = time.Second

type healthReport struct {
	Status     string            `json:"status"`
	StateStore string            `json:"state_store"`
	Connectors []pipeline.Detail `json:"connectors"`
}

func (h *healthServer) report(ctx context.Context) (ready bool, live bool, r healthReport) {
	ready, live = true, true
	r.StateStore = "ok"
	if h.store != nil {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := h.store.Ping(pctx)
		cancel()
		if err != nil {
			ready = false
			r.StateStore = "unreachable: " + h.redact(err.Error())
		}
	}
	for _, s := range h.statuses {
		d := s.Detail(h.redact)
		r.Connectors = append(r.Connectors, d)
		switch s.State() {
		case pipeline.Failed:
			ready, live = false, false
		case pipeline.Starting:
			ready = false
		}
	}
	r.Status = "ok"
	if !ready {
		r.Status = "unavailable"
	}
	return ready, live, r
}

// healthFunc adapts the report to telemetry's /health on the metrics port.
func (h *healthServer) healthFunc(ctx context.Context) func() (bool, any) {
	return func() (bool, any) {
		ok, _, r := h.report(ctx)
		return ok, r
	}
}

func (h *healthServer) handler() http.Handler {
	write := func(w http.ResponseWriter, ok bool, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		ok, _, rep := h.report(r.Context())
		write(w, ok, rep)
	})
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		_, live, _ := h.report(r.Context())
		status := "ok"
		if !live {
			status = "failed"
		}
		write(w, live, map[string]string{"status": status})
	})
	return mux
}

// serve starts the health server on settings.health and returns its
// address; it stops when ctx is done.
func (h *healthServer) serve(ctx context.Context, set config.Health) (string, error) {
	mux := h.handler().(*http.ServeMux)
	if set.Path != "/ready" && set.Path != "/live" {
		mux.HandleFunc("GET "+set.Path, func(w http.ResponseWriter, r *http.Request) {
			ok, _, rep := h.report(r.Context())
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(rep)
		})
	}
	return telemetry.StartHTTP(ctx, fmt.Sprintf(":%d", set.Port), mux)
}
