package telemetry

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// otlpJSONToProto reads an OTLP/HTTP JSON body with the protobuf
// definitions' own JSON reader (unknown fields refused). The OTLP
// specification's JSON differs from the proto3 mapping only in the ids,
// hex instead of base64, which this turns back first.
func otlpJSONToProto(body []byte) (*coltrace.ExportTraceServiceRequest, error) {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					b, err := hex.DecodeString(s)
					if err != nil {
						return errors.New(k + " is not hex: " + s)
					}
					x[k] = base64.StdEncoding.EncodeToString(b)
					continue
				}
				if err := walk(val); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(doc); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(doc)
	var req coltrace.ExportTraceServiceRequest
	return &req, protojson.Unmarshal(b, &req)
}

// Without the OTLP client linked (the function binaries), spans leave as
// OTLP/HTTP JSON: read back with the OTLP protobuf definitions, every
// field arrives — ids, parent, kind, times, attributes of each type,
// events, links, the error status in OTLP's numbering — with the headers
// of OTEL_EXPORTER_OTLP_HEADERS.
func TestSpansExportAsOTLPJSON(t *testing.T) {
	var mu sync.Mutex
	var got []*coltrace.ExportTraceServiceRequest
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := otlpJSONToProto(body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" || err != nil {
			http.Error(w, "not OTLP JSON: "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+errString(err), http.StatusBadRequest)
			t.Errorf("export refused: %s %s: %v\n%s", r.URL.Path, r.Header.Get("Content-Type"), err, body)
			return
		}
		mu.Lock()
		got = append(got, req)
		auth = r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL+"/")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-other=1")
	saved := NewExporter
	NewExporter = nil
	defer func() { NewExporter = saved }()
	ctx := context.Background()
	shutdown, err := StartTracing(ctx, "rivven-connect-sink-test")
	if err != nil {
		t.Fatal(err)
	}
	defer UseTracerProvider(nil)

	pctx, parent := Tracer().Start(ctx, "invoke sink/test", trace.WithSpanKind(trace.SpanKindServer))
	linked := trace.SpanContextFromContext(pctx)
	_, child := Tracer().Start(pctx, "write test", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "invocation")}}),
		trace.WithAttributes(attribute.String("s", "v"), attribute.Int64("i", 1<<40), attribute.Bool("b", true), attribute.Float64("f", 1.5), attribute.StringSlice("ss", []string{"a", "b"})))
	child.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", 2)))
	child.SetStatus(codes.Error, "HTTP 503")
	child.End()
	parent.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if auth != "Bearer abc" {
		t.Errorf("Authorization header %q", auth)
	}
	spans := map[string]*tracepb.Span{}
	var service string
	for _, req := range got {
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					service = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				if ss.Scope.Name != "github.com/rivven/rivven-connect" {
					t.Errorf("scope %q", ss.Scope.Name)
				}
				for _, s := range ss.Spans {
					spans[s.Name] = s
				}
			}
		}
	}
	if service != "rivven-connect-sink-test" {
		t.Errorf("service.name %q", service)
	}
	p, c := spans["invoke sink/test"], spans["write test"]
	if p == nil || c == nil {
		t.Fatalf("spans %v", spans)
	}
	tid := linked.TraceID()
	if string(c.TraceId) != string(tid[:]) || string(c.ParentSpanId) != string(p.SpanId) || len(p.ParentSpanId) != 0 {
		t.Errorf("ids: child trace %x parent %x, parent span %x", c.TraceId, c.ParentSpanId, p.SpanId)
	}
	if p.Kind != tracepb.Span_SPAN_KIND_SERVER || c.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Errorf("kinds %v %v", p.Kind, c.Kind)
	}
	if c.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || c.Status.GetMessage() != "HTTP 503" || p.Status.GetCode() != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("status %v / %v", c.Status, p.Status)
	}
	if c.StartTimeUnixNano == 0 || c.EndTimeUnixNano < c.StartTimeUnixNano {
		t.Errorf("times %d..%d", c.StartTimeUnixNano, c.EndTimeUnixNano)
	}
	attrs := map[string]string{}
	for _, a := range c.Attributes {
		attrs[a.Key] = a.Value.String()
	}
	want := map[string]string{"s": `string_value:"v"`, "i": `int_value:1099511627776`, "b": `bool_value:true`, "f": `double_value:1.5`}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attribute %s = %s, want %s", k, attrs[k], v)
		}
	}
	if vs := c.Attributes[4].Value.GetArrayValue().GetValues(); len(vs) != 2 || vs[1].GetStringValue() != "b" {
		t.Errorf("string slice %v", c.Attributes[4].Value)
	}
	if len(c.Events) != 1 || c.Events[0].Name != "retry" || c.Events[0].Attributes[0].Value.GetIntValue() != 2 {
		t.Errorf("events %v", c.Events)
	}
	if len(c.Links) != 1 || string(c.Links[0].SpanId) != string(p.SpanId) || c.Links[0].Attributes[0].Value.GetStringValue() != "invocation" {
		t.Errorf("links %v", c.Links)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// An endpoint that is no URL is refused at start, not at the first export.
func TestOTLPJSONEndpointMustBeAURL(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
	saved := NewExporter
	NewExporter = nil
	defer func() { NewExporter = saved }()
	if _, err := StartTracing(context.Background(), "x"); err == nil {
		t.Fatal("a host:port endpoint was taken")
	}
}

// The X-Ray header maps onto the W3C trace context as AWS documents it.
func TestXRayTraceparent(t *testing.T) {
	for in, want := range map[string]string{
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1": "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
		"Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=0": "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00",
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8":           "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00",
		"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1":                         "",
		"Root=1-5759e988-bd862e3fe1be46a99427279x;Parent=53995c3f42cd8ad8":           "",
		"": "",
	} {
		got, ok := XRayTraceparent(in)
		if got != want || ok != (want != "") {
			t.Errorf("%q: got %q %v, want %q", in, got, ok, want)
		}
	}
}
