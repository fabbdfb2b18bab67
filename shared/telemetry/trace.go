package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
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
// shared/telemetry/otlptrace sets it (the OTLP client: protobuf over
// HTTP). It is a separate package because that client links gRPC, which
// the function binaries keep out; the CLI links it. Without it spans go
// as OTLP/HTTP JSON (jsonExporter), which needs nothing more.
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
	var exp sdktrace.SpanExporter
	if NewExporter != nil {
		exp, err = NewExporter(ctx)
	} else {
		exp, err = newJSONExporter()
	}
	if err != nil {
		return nil, err
	}
	// Each process is one instance of the service: a random id tells the
	// spans of a source service from those of its sink functions.
	var inst [16]byte
	_, _ = rand.Read(inst[:])
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceInstanceID(hex.EncodeToString(inst[:]))))
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

// XRayTraceparent turns an AWS X-Ray trace header (Lambda's
// Lambda-Runtime-Trace-Id, SQS's AWSTraceHeader system attribute:
// "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
// into the W3C traceparent of the same trace, by the mapping AWS documents
// for OpenTelemetry: the trace id is the Root's time and random parts
// joined, the span id its Parent. ok is false without a Root and Parent.
func XRayTraceparent(header string) (traceparent string, ok bool) {
	var root, parent, sampled string
	for _, part := range strings.Split(header, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Root":
			root = v
		case "Parent":
			parent = v
		case "Sampled":
			sampled = v
		}
	}
	f := strings.Split(root, "-")
	if len(f) != 3 || f[0] != "1" || len(f[1]) != 8 || len(f[2]) != 24 || len(parent) != 16 {
		return "", false
	}
	tid, pid := strings.ToLower(f[1]+f[2]), strings.ToLower(parent)
	if !isHex(tid) || !isHex(pid) || strings.Trim(tid, "0") == "" || strings.Trim(pid, "0") == "" {
		return "", false
	}
	flags := "00"
	if sampled == "1" {
		flags = "01"
	}
	return "00-" + tid + "-" + pid + "-" + flags, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdef", rune(s[i])) {
			return false
		}
	}
	return true
}
