package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// jsonExporter sends spans as OTLP/HTTP with the JSON encoding the OTLP
// specification defines (POST {endpoint}/v1/traces, application/json),
// which OpenTelemetry collectors accept beside protobuf. It is what
// binaries without shared/telemetry/otlptrace export with — the function
// binaries, which keep the OTLP client and the gRPC it links out — and it
// needs nothing but net/http and the SDK StartTracing already links.
type jsonExporter struct {
	url     string
	headers map[string]string
	client  *http.Client

	mu      sync.Mutex
	stopped bool
}

// newJSONExporter reads the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT
// (the base URL; /v1/traces is added) or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// (the full URL), OTEL_EXPORTER_OTLP[_TRACES]_HEADERS (k=v,k2=v2, values
// URL-encoded) and OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT (milliseconds,
// default 10000).
func newJSONExporter() (*jsonExporter, error) {
	u := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if u == "" {
		u = strings.TrimSuffix(os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "/") + "/v1/traces"
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q is not an http(s) URL", u)
	}
	e := &jsonExporter{url: u, headers: map[string]string{}, client: &http.Client{Timeout: 10 * time.Second}}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for _, kv := range strings.Split(os.Getenv(v), ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			if dv, err := url.QueryUnescape(strings.TrimSpace(val)); err == nil {
				val = dv
			}
			e.headers[strings.TrimSpace(k)] = val
		}
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"} {
		if ms, err := strconv.Atoi(os.Getenv(v)); err == nil && ms > 0 {
			e.client.Timeout = time.Duration(ms) * time.Millisecond
		}
	}
	return e, nil
}

// ExportSpans implements sdktrace.SpanExporter.
func (e *jsonExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	if stopped || len(spans) == 0 {
		return nil
	}
	body, err := json.Marshal(otlpRequest(spans))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("OTLP export: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("OTLP export: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (e *jsonExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	return nil
}

// The OTLP JSON mapping of opentelemetry/proto/collector/trace/v1: ids
// in hex, 64-bit integers as decimal strings, enums as numbers.
type (
	jsonTraces struct {
		ResourceSpans []jsonResourceSpans `json:"resourceSpans"`
	}
	jsonResourceSpans struct {
		Resource   jsonResource     `json:"resource"`
		ScopeSpans []jsonScopeSpans `json:"scopeSpans"`
		SchemaURL  string           `json:"schemaUrl,omitempty"`
	}
	jsonResource struct {
		Attributes []jsonKV `json:"attributes"`
	}
	jsonScopeSpans struct {
		Scope jsonScope  `json:"scope"`
		Spans []jsonSpan `json:"spans"`
	}
	jsonScope struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	jsonSpan struct {
		TraceID      string      `json:"traceId"`
		SpanID       string      `json:"spanId"`
		TraceState   string      `json:"traceState,omitempty"`
		ParentSpanID string      `json:"parentSpanId,omitempty"`
		Flags        uint32      `json:"flags,omitempty"`
		Name         string      `json:"name"`
		Kind         int         `json:"kind"`
		Start        string      `json:"startTimeUnixNano"`
		End          string      `json:"endTimeUnixNano"`
		Attributes   []jsonKV    `json:"attributes,omitempty"`
		Events       []jsonEvent `json:"events,omitempty"`
		Links        []jsonLink  `json:"links,omitempty"`
		Status       jsonStatus  `json:"status"`
	}
	jsonEvent struct {
		Time       string   `json:"timeUnixNano"`
		Name       string   `json:"name"`
		Attributes []jsonKV `json:"attributes,omitempty"`
	}
	jsonLink struct {
		TraceID    string   `json:"traceId"`
		SpanID     string   `json:"spanId"`
		TraceState string   `json:"traceState,omitempty"`
		Attributes []jsonKV `json:"attributes,omitempty"`
	}
	jsonStatus struct {
		Code    int    `json:"code,omitempty"`
		Message string `json:"message,omitempty"`
	}
	jsonKV struct {
		Key   string    `json:"key"`
		Value jsonValue `json:"value"`
	}
	jsonValue struct {
		String *string      `json:"stringValue,omitempty"`
		Bool   *bool        `json:"boolValue,omitempty"`
		Int    *string      `json:"intValue,omitempty"`
		Double *float64     `json:"doubleValue,omitempty"`
		Array  *jsonArrayKV `json:"arrayValue,omitempty"`
	}
	jsonArrayKV struct {
		Values []jsonValue `json:"values"`
	}
)

func otlpRequest(spans []sdktrace.ReadOnlySpan) jsonTraces {
	var out jsonTraces
	byRes := map[string]int{}
	byScope := map[string]int{}
	for _, s := range spans {
		res := s.Resource()
		rkey := res.Encoded(attribute.DefaultEncoder())
		ri, ok := byRes[rkey]
		if !ok {
			ri = len(out.ResourceSpans)
			byRes[rkey] = ri
			out.ResourceSpans = append(out.ResourceSpans, jsonResourceSpans{Resource: jsonResource{Attributes: jsonAttrs(res.Attributes())}, SchemaURL: res.SchemaURL()})
		}
		sc := s.InstrumentationScope()
		skey := rkey + "\x00" + scopeKey(sc)
		si, ok := byScope[skey]
		rs := &out.ResourceSpans[ri]
		if !ok {
			si = len(rs.ScopeSpans)
			byScope[skey] = si
			rs.ScopeSpans = append(rs.ScopeSpans, jsonScopeSpans{Scope: jsonScope{Name: sc.Name, Version: sc.Version}})
		}
		rs.ScopeSpans[si].Spans = append(rs.ScopeSpans[si].Spans, jsonSpanOf(s))
	}
	return out
}

func scopeKey(s instrumentation.Scope) string { return s.Name + "\x00" + s.Version }

func jsonSpanOf(s sdktrace.ReadOnlySpan) jsonSpan {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	js := jsonSpan{
		TraceID: hex.EncodeToString(tid[:]), SpanID: hex.EncodeToString(sid[:]), TraceState: sc.TraceState().String(),
		Flags: uint32(sc.TraceFlags()), Name: s.Name(), Kind: int(s.SpanKind()),
		Start: nanos(s.StartTime()), End: nanos(s.EndTime()), Attributes: jsonAttrs(s.Attributes()),
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		psid := p.SpanID()
		js.ParentSpanID = hex.EncodeToString(psid[:])
	}
	for _, ev := range s.Events() {
		js.Events = append(js.Events, jsonEvent{Time: nanos(ev.Time), Name: ev.Name, Attributes: jsonAttrs(ev.Attributes)})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		js.Links = append(js.Links, jsonLink{TraceID: hex.EncodeToString(ltid[:]), SpanID: hex.EncodeToString(lsid[:]),
			TraceState: l.SpanContext.TraceState().String(), Attributes: jsonAttrs(l.Attributes)})
	}
	// The SDK's codes (Unset 0, Error 1, Ok 2) are not OTLP's (Unset 0,
	// Ok 1, Error 2).
	switch st := s.Status(); st.Code {
	case codes.Ok:
		js.Status = jsonStatus{Code: 1}
	case codes.Error:
		js.Status = jsonStatus{Code: 2, Message: st.Description}
	}
	return js
}

func nanos(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func jsonAttrs(kvs []attribute.KeyValue) []jsonKV {
	out := make([]jsonKV, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, jsonKV{Key: string(kv.Key), Value: jsonValueOf(kv.Value)})
	}
	return out
}

func jsonValueOf(v attribute.Value) jsonValue {
	switch v.Type() {
	case attribute.BOOL:
		b := v.AsBool()
		return jsonValue{Bool: &b}
	case attribute.INT64:
		s := strconv.FormatInt(v.AsInt64(), 10)
		return jsonValue{Int: &s}
	case attribute.FLOAT64:
		f := v.AsFloat64()
		return jsonValue{Double: &f}
	case attribute.BOOLSLICE:
		var a jsonArrayKV
		for _, b := range v.AsBoolSlice() {
			a.Values = append(a.Values, jsonValueOf(attribute.BoolValue(b)))
		}
		return jsonValue{Array: &a}
	case attribute.INT64SLICE:
		var a jsonArrayKV
		for _, i := range v.AsInt64Slice() {
			a.Values = append(a.Values, jsonValueOf(attribute.Int64Value(i)))
		}
		return jsonValue{Array: &a}
	case attribute.FLOAT64SLICE:
		var a jsonArrayKV
		for _, f := range v.AsFloat64Slice() {
			a.Values = append(a.Values, jsonValueOf(attribute.Float64Value(f)))
		}
		return jsonValue{Array: &a}
	case attribute.STRINGSLICE:
		var a jsonArrayKV
		for _, s := range v.AsStringSlice() {
			a.Values = append(a.Values, jsonValueOf(attribute.StringValue(s)))
		}
		return jsonValue{Array: &a}
	}
	s := v.String()
	return jsonValue{String: &s}
}
