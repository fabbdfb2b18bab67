package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rivven/rivven-connect/shared/telemetry"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, `local` exports its spans over
// OTLP/HTTP: the collector here decodes them with the OTLP protobuf
// definitions and finds, for every event of the quickstart that was
// published, the source's read span and the sink's write span in one
// trace, the write a child of the read.
func TestLocalExportsTracesOverOTLP(t *testing.T) {
	var mu sync.Mutex
	var spans []spanSeen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans = append(spans, spanSeen{name: s.Name, trace: string(s.TraceId), id: string(s.SpanId), parent: string(s.ParentSpanId)})
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Cleanup(func() { telemetry.UseTracerProvider(nil) })
	if code, _, errOut := cli(t, "local", "-c", quickstart, "--max-events", "30", "--quiet"); code != 0 {
		t.Fatalf("local exited %d: %s", code, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	reads := map[string]spanSeen{}
	for _, s := range spans {
		if s.name == "read orders" {
			reads[s.id] = s
		}
	}
	followed := 0
	for _, s := range spans {
		if r, ok := reads[s.parent]; ok && s.name == "write console" && r.trace == s.trace {
			followed++
		}
	}
	// The quickstart's Filter drops some of the 30 events before they are
	// published: every event published is traced to its write.
	if len(reads) == 0 || len(reads) > 30 || followed != len(reads) {
		t.Fatalf("collector got %d spans: %d read spans, %d write spans continuing one", len(spans), len(reads), followed)
	}
}

type spanSeen struct{ name, trace, id, parent string }
