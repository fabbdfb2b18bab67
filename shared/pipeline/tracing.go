package pipeline

import (
	"context"
	"encoding/json"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// An event's trace context travels in its metadata as the W3C
// traceparent (and tracestate) fields, so that the span of the sink's
// write continues the trace its source started, across the topic and the
// process boundary between a source service and a sink function.

// eventCarrier adapts an event's metadata to the propagation API.
type eventCarrier struct{ e *events.Event }

func (c eventCarrier) Get(key string) string {
	raw, ok := c.e.Metadata.Get(key)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func (c eventCarrier) Set(key, value string) {
	b, _ := json.Marshal(value)
	md := &c.e.Metadata
	for i := range md.Extra {
		if md.Extra[i].Key == key {
			// Copy first: sources may share one Extra among events.
			md.Extra = append(md.Extra[:0:0], md.Extra...)
			md.Extra[i].Value = b
			return
		}
	}
	md.Extra = append(md.Extra[:len(md.Extra):len(md.Extra)], events.Field{Key: key, Value: b})
}

func (c eventCarrier) Keys() []string {
	keys := make([]string, 0, len(c.e.Metadata.Extra))
	for _, f := range c.e.Metadata.Extra {
		keys = append(keys, f.Key)
	}
	return keys
}

// sourceSpans starts one span per event a source hands on, from the
// event's own time (for a change, its commit) to its publication, and
// writes each span's context into its event. Nil when tracing is off.
func sourceSpans(ctx context.Context, source string, batch []*events.Event) []trace.Span {
	if !telemetry.Tracing() || len(batch) == 0 {
		return nil
	}
	tr, prop := telemetry.Tracer(), otel.GetTextMapPropagator()
	spans := make([]trace.Span, len(batch))
	for i, e := range batch {
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			attribute.String("rivven.source", source), attribute.String("rivven.stream", e.Stream),
			attribute.String("rivven.event.type", string(e.Type)), attribute.String("rivven.position", e.Metadata.Position))}
		if !e.Timestamp.IsZero() {
			opts = append(opts, trace.WithTimestamp(e.Timestamp))
		}
		sctx, span := tr.Start(ctx, "read "+source, opts...)
		prop.Inject(sctx, eventCarrier{e})
		spans[i] = span
	}
	return spans
}

// sinkSpans starts, for each event of a sink's batch that carries a trace
// context, a span continuing that trace around the write. Nil when tracing
// is off.
func sinkSpans(ctx context.Context, sink string, batch []*events.Event) []trace.Span {
	if !telemetry.Tracing() || len(batch) == 0 {
		return nil
	}
	tr, prop := telemetry.Tracer(), otel.GetTextMapPropagator()
	spans := make([]trace.Span, len(batch))
	for i, e := range batch {
		attrs := []attribute.KeyValue{attribute.String("rivven.sink", sink), attribute.String("rivven.stream", e.Stream)}
		if d := e.Delivered; d != nil {
			attrs = append(attrs, attribute.String("messaging.destination.name", d.Topic), attribute.String("messaging.message.id", d.ID))
			if d.HasOffset {
				attrs = append(attrs, attribute.Int("messaging.destination.partition.id", int(d.Partition)), attribute.Int64("messaging.kafka.offset", d.Offset))
			}
		}
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
		ectx := prop.Extract(ctx, eventCarrier{e})
		// The write continues the event's trace; the host's invocation
		// (a Lambda batch, a push request), when there is one, is linked.
		if inv := trace.SpanContextFromContext(ctx); inv.IsValid() && !trace.SpanContextFromContext(ectx).Equal(inv) {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: inv}))
		}
		_, spans[i] = tr.Start(ectx, "write "+sink, opts...)
	}
	return spans
}

// StartInvocation starts the span of one host invocation (a Lambda
// batch, a Cloud Run push request) named name, continuing the trace the
// caller handed in: carrier holds a W3C traceparent (an HTTP request's
// headers), else xray is an X-Ray trace header (Lambda's). end ends it,
// failed when err is set. When tracing is off it returns ctx and a no-op.
func StartInvocation(ctx context.Context, name string, carrier propagation.TextMapCarrier, xray string) (context.Context, func(err error)) {
	if !telemetry.Tracing() {
		return ctx, func(error) {}
	}
	prop := otel.GetTextMapPropagator()
	pctx := ctx
	if carrier != nil {
		pctx = prop.Extract(ctx, carrier)
	}
	if !trace.SpanContextFromContext(pctx).IsValid() && xray != "" {
		if tp, ok := telemetry.XRayTraceparent(xray); ok {
			pctx = prop.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
		}
	}
	sctx, span := telemetry.Tracer().Start(pctx, name, trace.WithSpanKind(trace.SpanKindServer))
	return sctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// traceAttributes are where producers other than a Rivven source put a
// message's trace context: the W3C name (SQS message attributes, Kafka
// headers, Pub/Sub attributes) and the Pub/Sub client libraries' name.
var traceAttributes = []string{"traceparent", "googclient_traceparent"}

// adoptTraceContext gives an event that carries no trace context of its
// own the one its delivery came with (message attributes, headers, or
// SQS's AWSTraceHeader from X-Ray), so the sink's write continues the
// producer's trace. Nothing happens while tracing is off.
func adoptTraceContext(e *events.Event, d *events.Delivery) {
	if e == nil || !telemetry.Tracing() {
		return
	}
	c := eventCarrier{e}
	if c.Get("traceparent") != "" {
		return
	}
	for _, k := range traceAttributes {
		if tp := d.Attributes[k]; tp != "" {
			c.Set("traceparent", tp)
			if ts := d.Attributes[strings.Replace(k, "traceparent", "tracestate", 1)]; ts != "" {
				c.Set("tracestate", ts)
			}
			return
		}
	}
	if tp, ok := telemetry.XRayTraceparent(d.AWSTraceHeader); ok {
		c.Set("traceparent", tp)
	}
}

// endSpans ends spans, marking them failed with err (nil: ok) or, per
// span, with failed(i).
func endSpans(spans []trace.Span, failed func(i int) error) {
	for i, s := range spans {
		if err := failed(i); err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}
