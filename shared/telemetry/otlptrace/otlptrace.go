// Package otlptrace links the OTLP/HTTP span exporter into a binary:
// importing it lets telemetry.StartTracing export spans when
// OTEL_EXPORTER_OTLP_ENDPOINT is set. The CLI imports it; the function
// binaries do not, as the OTLP client links gRPC.
package otlptrace

import (
	"context"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rivven/rivven-connect/shared/telemetry"
)

func init() {
	telemetry.NewExporter = func(ctx context.Context) (sdktrace.SpanExporter, error) {
		return otlptracehttp.New(ctx)
	}
}
