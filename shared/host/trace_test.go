//go:build !custom || hosts

package host

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

func recordSpans(t *testing.T) *tracetest.InMemoryExporter {
	exp := tracetest.NewInMemoryExporter()
	telemetry.UseTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	t.Cleanup(func() { telemetry.UseTracerProvider(nil) })
	return exp
}

// Trace contexts of the W3C examples: A a source's, B a caller's, C and D
// producers' that are not Rivven sources.
const (
	traceA, spanA = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traceB, spanB = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	traceC, spanC = "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
	traceD, spanD = "1e2d3c4b5a69788796a5b4c3d2e1f000", "1122334455667788"
)

func tp(traceID, spanID string) string { return "00-" + traceID + "-" + spanID + "-01" }

// eventWithTrace is a Rivven event whose metadata carries traceparent
// (none when traceparent is "").
func eventWithTrace(id int, traceparent string) string {
	md := `{"position":"` + fmt.Sprint(id) + `"}`
	if traceparent != "" {
		md = `{"position":"` + fmt.Sprint(id) + `","traceparent":"` + traceparent + `"}`
	}
	return fmt.Sprintf(`{"event_type":"insert","stream":"orders","timestamp":"2025-06-01T12:00:00Z","data":{"id":%d},"metadata":%s}`, id, md)
}

type spanView struct {
	name, trace, parent string
	links               []string
}

func spansOf(exp *tracetest.InMemoryExporter) map[string][]spanView {
	out := map[string][]spanView{}
	for _, s := range exp.GetSpans() {
		tid, pid := s.SpanContext.TraceID(), s.Parent.SpanID()
		v := spanView{name: s.Name, trace: hex.EncodeToString(tid[:])}
		if s.Parent.IsValid() {
			v.parent = hex.EncodeToString(pid[:])
		}
		for _, l := range s.Links {
			lt, ls := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			v.links = append(v.links, hex.EncodeToString(lt[:])+"/"+hex.EncodeToString(ls[:]))
		}
		out[s.Name] = append(out[s.Name], v)
	}
	return out
}

func spanIDOf(exp *tracetest.InMemoryExporter, name string) string {
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			id := s.SpanContext.SpanID()
			return hex.EncodeToString(id[:])
		}
	}
	return ""
}

// Cloud Run: the push request's traceparent is the parent of the
// invocation's span; each write continues its event's own trace (linked
// to the invocation), or the trace its Pub/Sub attributes carry, or else
// the invocation's.
func TestCloudRunContinuesTheTraceItIsGiven(t *testing.T) {
	exp := recordSpans(t)
	rt, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := rt.HTTPHandler(context.Background())
	push := func(d events.Delivery) []byte {
		b, _ := json.Marshal(events.NewPubSubPush("projects/p/subscriptions/orders-sub", d))
		return b
	}
	takeCollected()
	header := map[string]string{"traceparent": tp(traceB, spanB)}
	for _, d := range []events.Delivery{
		{ID: "t-1", Value: []byte(eventWithTrace(1, tp(traceA, spanA))), Attempt: 1},
		{ID: "t-2", Value: []byte(eventWithTrace(2, "")), Attempt: 1, Attributes: map[string]string{"googclient_traceparent": tp(traceC, spanC)}},
		{ID: "t-3", Value: []byte(eventWithTrace(3, "")), Attempt: 1},
	} {
		if rec := post(t, h, push(d), header); !events.PushAcked(rec.Code) {
			t.Fatalf("push %s: %d %s", d.ID, rec.Code, rec.Body)
		}
	}
	if n := len(takeCollected()); n != 3 {
		t.Fatalf("%d events written", n)
	}
	got := spansOf(exp)
	inv, writes := got["invoke sinks.out"], got["write out"]
	if len(inv) != 3 || len(writes) != 3 {
		t.Fatalf("spans %+v", got)
	}
	for _, s := range inv {
		if s.trace != traceB || s.parent != spanB {
			t.Errorf("invocation span %+v does not continue the request's trace", s)
		}
	}
	if w := writes[0]; w.trace != traceA || w.parent != spanA || len(w.links) != 1 || !strings.HasPrefix(w.links[0], traceB+"/") {
		t.Errorf("write of an event with its own trace: %+v", w)
	}
	if w := writes[1]; w.trace != traceC || w.parent != spanC {
		t.Errorf("write of a message whose attributes carry the trace: %+v", w)
	}
	if w := writes[2]; w.trace != traceB || w.parent == "" || w.parent == spanB {
		t.Errorf("write of an event without a trace of its own: %+v (it continues the invocation)", w)
	}
}

// Lambda: the X-Ray trace of the invocation (Lambda-Runtime-Trace-Id,
// in ctx from aws-lambda-go) is the invocation span's parent; a message
// without a trace in its event continues its SQS AWSTraceHeader.
func TestLambdaContinuesTheTraceItIsGiven(t *testing.T) {
	exp := recordSpans(t)
	rt, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	takeCollected()
	rec := func(id, body, traceHeader string) map[string]any {
		attrs := map[string]any{"ApproximateReceiveCount": "1", "SentTimestamp": "1748779200000"}
		if traceHeader != "" {
			attrs["AWSTraceHeader"] = traceHeader
		}
		return map[string]any{"messageId": id, "body": body, "attributes": attrs, "messageAttributes": map[string]any{},
			"eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders", "eventSource": "aws:sqs", "awsRegion": "us-east-1"}
	}
	event, _ := json.Marshal(map[string]any{"Records": []any{
		rec("m-1", eventWithTrace(1, tp(traceA, spanA)), ""),
		rec("m-2", eventWithTrace(2, ""), "Root=1-"+traceD[:8]+"-"+traceD[8:]+";Parent="+spanD+";Sampled=1"),
	}})
	//lint:ignore SA1029 the string key is aws-lambda-go's own
	ctx := context.WithValue(context.Background(), "x-amzn-trace-id", "Root=1-"+traceC[:8]+"-"+traceC[8:]+";Parent="+spanC+";Sampled=1")
	resp, err := rt.lambdaHandler(io.Discard, map[string]string{"FunctionName": "f"})(ctx, event)
	if err != nil || !strings.Contains(string(resp), `"batchItemFailures":[]`) {
		t.Fatalf("invocation: %s %v", resp, err)
	}
	if n := len(takeCollected()); n != 2 {
		t.Fatalf("%d events written", n)
	}
	got := spansOf(exp)
	inv, writes := got["invoke sinks.out"], got["write out"]
	if len(inv) != 1 || inv[0].trace != traceC || inv[0].parent != spanC {
		t.Fatalf("invocation span %+v, want trace %s under %s", inv, traceC, spanC)
	}
	invID := spanIDOf(exp, "invoke sinks.out")
	if len(writes) != 2 || writes[0].trace != traceA || writes[0].parent != spanA || len(writes[0].links) != 1 || writes[0].links[0] != traceC+"/"+invID {
		t.Errorf("write of the event with its own trace: %+v", writes)
	}
	if len(writes) == 2 && (writes[1].trace != traceD || writes[1].parent != spanD) {
		t.Errorf("write of the message with an AWSTraceHeader: %+v", writes[1])
	}
}
