package pipeline

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rivven/rivven-connect/shared/telemetry"
)

// With tracing on, each event's trace goes from its source's read span,
// through the topic (the trace context in the event's metadata), to the
// sink's write span as its child, across the source runner and the sink
// handler as the emulator wires them (the same ones `run source` and the
// functions use).
func TestTraceFollowsAnEventFromSourceToSinkWrite(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	telemetry.UseTracerProvider(tp)
	t.Cleanup(func() {
		telemetry.UseTracerProvider(nil)
		_ = tp.Shutdown(context.Background())
	})
	sink := &countingSink{}
	l, err := NewLocal(context.Background(), load(t, keyedPipeline), fakeFactory{sink}, LocalOptions{
		MaxEvents: 50, Store: embedded(t), Log: quiet, BatchSize: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	reads := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.Name() == "read keyed" {
			reads[s.SpanContext().SpanID()] = s
		}
	}
	followed := 0
	for _, s := range rec.Ended() {
		if s.Name() != "write out" {
			continue
		}
		r, ok := reads[s.Parent().SpanID()]
		if !ok || r.SpanContext().TraceID() != s.SpanContext().TraceID() {
			t.Fatalf("write span %s has parent %s, not a read span of its trace", s.SpanContext().SpanID(), s.Parent().SpanID())
		}
		if s.SpanKind() != trace.SpanKindConsumer || r.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("span kinds %v → %v", r.SpanKind(), s.SpanKind())
		}
		followed++
	}
	if len(reads) != 50 || followed != 50 {
		t.Fatalf("%d read spans and %d write spans continuing them, want 50 each", len(reads), followed)
	}
}
