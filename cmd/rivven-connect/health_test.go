package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
)

// pingStore is a state store whose reachability the test decides.
type pingStore struct {
	state.Store
	err error
}

func (s pingStore) Ping(context.Context) error { return s.err }

func probe(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body)
	}
	return rec.Code, body
}

func TestHealthEndpoints(t *testing.T) {
	st := pipeline.NewStatus("orders", "postgres-cdc", "source")
	hs := &healthServer{statuses: pipeline.Statuses{st}, store: pingStore{}, redact: resilience.NewRedactor("s3cret").Redact}
	mux := hs.handler().(*http.ServeMux)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := hs.serve(ctx, config.Health{Enabled: true, Port: 0, Path: "/healthz"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Starting: alive, not ready.
	if code, _ := probe(t, mux, "/ready"); code != 503 {
		t.Fatalf("/ready while Starting: %d", code)
	}
	if code, _ := probe(t, mux, "/live"); code != 200 {
		t.Fatalf("/live while Starting: %d", code)
	}
	// Running: ready, with counters and the redacted last error.
	st.SetState(pipeline.Running)
	st.EventsOut.Add(42)
	st.Fail(errors.New("dial postgres://app:s3cret@db:5432 refused; token=abc"))
	if code := get("/healthz"); code != 200 {
		t.Fatalf("/healthz while Running: %d", code)
	}
	code, body := probe(t, mux, "/ready")
	if code != 200 || body["status"] != "ok" || body["state_store"] != "ok" {
		t.Fatalf("/ready while Running: %d %v", code, body)
	}
	conn := body["connectors"].([]any)[0].(map[string]any)
	if conn["state"] != "Running" || conn["events_out"] != float64(42) {
		t.Fatalf("connector detail %v", conn)
	}
	if le := conn["last_error"].(string); strings.Contains(le, "s3cret") || strings.Contains(le, "abc") {
		t.Fatalf("secret in last_error: %s", le)
	}
	// Redis unreachable: not ready, still alive (it is waited out).
	hs.store = pingStore{err: errors.New("dial tcp: connection refused")}
	if code, body := probe(t, mux, "/ready"); code != 503 || !strings.HasPrefix(body["state_store"].(string), "unreachable") {
		t.Fatalf("/ready without Redis: %d %v", code, body)
	}
	if code, _ := probe(t, mux, "/live"); code != 200 {
		t.Fatalf("/live without Redis: %d", code)
	}
	// Failed: restarting the process is what it takes.
	hs.store = pingStore{}
	st.SetState(pipeline.Failed)
	if code, _ := probe(t, mux, "/live"); code != 503 {
		t.Fatalf("/live while Failed: %d", code)
	}
	if code := get("/live"); code != 503 {
		t.Fatalf("served /live while Failed: %d", code)
	}
}
