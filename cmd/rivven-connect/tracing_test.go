package main

import (
	"testing"

	"github.com/rivven/rivven-connect/shared/telemetry"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, `local` exports its spans over
// OTLP/HTTP: the collector here decodes them with the OTLP protobuf
// definitions and finds, for every event of the quickstart that was
// published, the source's read span and the sink's write span in one
// trace, the write a child of the read.
func TestLocalExportsTracesOverOTLP(t *testing.T) {
	url, collected := otlpCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Cleanup(func() { telemetry.UseTracerProvider(nil) })
	if code, _, errOut := cli(t, "local", "-c", quickstart, "--max-events", "30", "--quiet"); code != 0 {
		t.Fatalf("local exited %d: %s", code, errOut)
	}
	spans := collected()
	reads := map[string]hopSpan{}
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
