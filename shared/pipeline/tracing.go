package pipeline

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
		_, spans[i] = tr.Start(prop.Extract(ctx, eventCarrier{e}), "write "+sink, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	}
	return spans
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
