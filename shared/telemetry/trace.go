package telemetry

import (
	"context"
	"errors"
	"os"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// tracing is set while spans are exported; the engine skips all tracing
// work otherwise, so that tracing off costs one atomic load per batch.
var tracing atomic.Bool

// provider is the SDK provider StartTracing made, for FlushTraces.
var provider atomic.Pointer[sdktrace.TracerProvider]

// NewExporter makes the span exporter StartTracing uses; the package
// shared/telemetry/otlptrace sets it (OTLP over HTTP). It is a separate
// package because the OTLP client links gRPC, which the function binaries
// keep out; the CLI links it.
var NewExporter func(ctx context.Context) (sdktrace.SpanExporter, error)

// Tracing reports whether spans are being recorded.
func Tracing() bool { return tracing.Load() }

// Tracer is the engine's tracer.
func Tracer() trace.Tracer { return otel.Tracer("github.com/rivven/rivven-connect") }

// StartTracing exports OpenTelemetry spans over OTLP/HTTP when the
// standard variable OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and does nothing otherwise:
// tracing is off by default. The SDK reads the other OTEL_* variables
// (OTEL_TRACES_SAMPLER and its argument, headers, timeouts) itself. The
// W3C trace context is the propagation format, so a trace continues across
// topics (in each event's metadata) and from the hosts' callers. shutdown
// flushes what is buffered.
func StartTracing(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	if NewExporter == nil {
		return nil, errors.New("OTEL_EXPORTER_OTLP_ENDPOINT is set but this binary has no OTLP exporter (the functions leave it out); spans are not recorded")
	}
	exp, err := NewExporter(ctx)
	if err != nil {
		return nil, err
	}
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	UseTracerProvider(tp)
	provider.Store(tp)
	return func(ctx context.Context) error {
		tracing.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// UseTracerProvider records spans with tp (tests, and programs embedding
// the engine with their own provider); nil turns tracing off again.
func UseTracerProvider(tp trace.TracerProvider) {
	if tp == nil {
		tracing.Store(false)
		return
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracing.Store(true)
}

// FlushTraces exports the spans buffered so far; a Lambda host calls it
// after each invocation, as the environment may freeze until the next.
func FlushTraces(ctx context.Context) {
	if tp := provider.Load(); tp != nil {
		_ = tp.ForceFlush(ctx)
	}
}
