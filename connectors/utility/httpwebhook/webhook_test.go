package httpwebhook

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// secret is the Standard Webhooks library's own test secret (see
// testdata/standard-webhooks-vector.json).
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// got is one request as the receiver saw it.
type got struct {
	method, encoding string
	header           http.Header
	body             []byte // decoded (gunzipped) when sent compressed
	raw              int    // bytes on the wire
	proto            int
	verifyErr        error
}

// receiver is a webhook endpoint that verifies signatures with the
// Standard Webhooks reference library, not with the sink's code.
type receiver struct {
	mu     sync.Mutex
	got    []got
	wh     *standardwebhooks.Webhook
	answer func(n int, w http.ResponseWriter, r *http.Request) bool // true: answered
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	body := raw
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
	}
	g := got{method: r.Method, encoding: r.Header.Get("Content-Encoding"), header: r.Header.Clone(), body: body, raw: len(raw), proto: r.ProtoMajor}
	if rc.wh != nil {
		g.verifyErr = rc.wh.Verify(body, r.Header)
	}
	rc.mu.Lock()
	rc.got = append(rc.got, g)
	n := len(rc.got)
	rc.mu.Unlock()
	if rc.answer != nil && rc.answer(n, w, r) {
		return
	}
	if g.verifyErr != nil {
		http.Error(w, g.verifyErr.Error(), http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) requests() []got {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]got(nil), rc.got...)
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &receiver{wh: wh}
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"http-webhook", "webhook"} {
		e, ok := catalog.Lookup(catalog.Sink, name)
		if !ok || e.Name != "http-webhook" {
			t.Fatalf("%s: not registered as http-webhook", name)
		}
	}
}

// TestReferenceExample decodes the reference's example and checks the
// defaults of its table.
func TestReferenceExample(t *testing.T) {
	t.Setenv("TOKEN", "t0k")
	cfg, ps := spec.DecodeString[Config](`url: https://api.example.com/webhook
method: POST
headers:
  Content-Type: application/json
  Authorization: "Bearer ${TOKEN}"
batch_size: 100
timeout_secs: 30
retry:
  max_attempts: 3
  initial_backoff_ms: 1000
  max_backoff_ms: 30000
`, "sinks.webhook.config")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.BatchSize != 100 || cfg.Retry.MaxAttempts != 3 || cfg.Retry.MaxBackoffMS != 30000 || cfg.Headers["Authorization"] != "Bearer ${TOKEN}" {
		t.Fatalf("decoded %+v", cfg)
	}
	d, ps := spec.DecodeString[Config]("url: http://h/x\n", "c")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if d.Method != "POST" || d.BatchSize != 1 || d.TimeoutSecs != 30 || d.Retry.MaxAttempts != 3 ||
		d.Retry.InitialBackoffMS != 1000 || d.Retry.MaxBackoffMS != 30000 || d.Codec != "rivven" ||
		d.HTTPVersion != "auto" || d.Compression != "none" || d.MaxConnsPerHost != 8 || d.MaxInFlight != 1 {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct{ src, path string }{
		{"method: POST\n", "c.url"},
		{"url: ftp://h/x\n", "c.url"},
		{"url: https://user:pw@h/x\n", "c.url"},
		{"url: https://h/x\nmethod: GET\n", "c.method"},
		{"url: https://h/x\nbatch_size: 0\n", "c.batch_size"},
		{"url: https://h/x\nsigning_secret: abc\n", "c.signing_secret"},
		{"url: https://h/x\nsigning_secret: whsec_!!!\n", "c.signing_secret"},
		{"url: https://h/x\nsigning_secret: whsec_c2hvcnQ=\n", "c.signing_secret"}, // 5 bytes
		{"url: https://h/x\nheaders:\n  webhook-id: x\n", "c.headers.webhook-id"},
		{"url: https://h/x\nheaders:\n  Content-Encoding: br\n", "c.headers.Content-Encoding"},
		{"url: https://h/x\nheaders:\n  \"bad header\": x\n", "c.headers.bad header"},
		{"url: https://h/x\nretry:\n  initial_backoff_ms: 5000\n  max_backoff_ms: 100\n", "c.retry.initial_backoff_ms"},
		{"url: https://h/x\ntls:\n  cert_path: /c.pem\n", "c.tls.cert_path"},
		{"url: https://h/x\ntls:\n  ca_path: /a\n  ca_pem: x\n", "c.tls.ca_pem"},
		{"url: http://h/x\ntls:\n  ca_path: /a\n", "c.tls"},
		{"url: https://h/x\nhttp_version: http3\n", "c.http_version"},
		{"url: https://h/x\ncodec: avro\n", "c.codec"},
	} {
		_, ps := spec.DecodeString[Config](c.src, "c")
		found := false
		for _, p := range ps {
			if p.Path == c.path {
				found = true
			}
			if strings.Contains(p.Message, "!!!") || strings.Contains(p.Message, "c2hvcnQ") {
				t.Errorf("%q: problem echoes the secret: %v", c.src, p)
			}
		}
		if !found {
			t.Errorf("%q: want a problem at %s, got %v", c.src, c.path, ps)
		}
	}
}

// TestSignatureVector checks sign against the convention's documented
// test vector, copied from the reference library's tests.
func TestSignatureVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/standard-webhooks-vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Secret, MsgID, Payload, Signature string
		Timestamp                         int64
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	keys, err := signingKeys(v.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := sign(keys, v.MsgID, v.Timestamp, []byte(v.Payload)); got != v.Signature {
		t.Fatalf("signature %s, want %s", got, v.Signature)
	}
	// Two secrets (a rotation) give two signatures, either of which a
	// receiver holding one secret accepts.
	two, _ := signingKeys(v.Secret + " whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if got := sign(two, v.MsgID, v.Timestamp, []byte(v.Payload)); !strings.HasPrefix(got, v.Signature+" v1,") {
		t.Fatalf("rotation signature %s", got)
	}
}

// TestSignedEvents: one event per request, each verified by the
// reference library, with the configured headers and a webhook-id that a
// redelivery of the same records repeats.
func TestSignedEvents(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	t.Setenv("HOOK_SECRET", secret)
	s, _ := newSink(t, fmt.Sprintf("url: %s/hook?tenant=7\nsigning_secret: %s\nheaders:\n  Authorization: Bearer abc\n  X-Tenant: seven\n", srv.URL, secret))
	batch := batchOf(3)
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), batchOf(3)); err != nil { // the same records again
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 6 {
		t.Fatalf("%d requests, want 6", len(reqs))
	}
	ids := map[string]bool{}
	for i, g := range reqs {
		if g.verifyErr != nil {
			t.Fatalf("request %d: the reference library rejects the signature: %v", i, g.verifyErr)
		}
		if g.method != "POST" || g.header.Get("Authorization") != "Bearer abc" || g.header.Get("X-Tenant") != "seven" ||
			g.header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %d headers %v", i, g.header)
		}
		ev, err := events.Rivven.Decode(g.body)
		if err != nil {
			t.Fatalf("request %d: body is not a Rivven event: %v: %s", i, err, g.body)
		}
		if want := fmt.Sprintf(`{"id":%d}`, 100+i%3); string(ev.Key) != want {
			t.Fatalf("request %d carries key %s, want %s (order)", i, ev.Key, want)
		}
		id := g.header.Get("webhook-id")
		if i < 3 {
			if ids[id] {
				t.Fatalf("webhook-id %s repeated for different records", id)
			}
			ids[id] = true
		} else if prev := reqs[i-3].header.Get("webhook-id"); id != prev {
			t.Fatalf("redelivery of record %d got webhook-id %s, first delivery %s", i-3, id, prev)
		}
	}
	if m := s.Metrics(); m["http_webhook.events_sent_total"] != 6 || m["http_webhook.requests_total"] != 6 {
		t.Fatalf("metrics %v", m)
	}
}

// TestWebhookIDs: the id follows where the record was delivered, not
// what the event holds; events a transform made from one record differ;
// events no trigger delivered are named after their content.
func TestWebhookIDs(t *testing.T) {
	id := func(e *events.Event, seen map[events.Position]int) string {
		b, _ := events.Rivven.Append(nil, e)
		if seen == nil {
			seen = map[events.Position]int{}
		}
		return eventID(e, b, seen)
	}
	a, b := delivered("t", 1, `{"x":1}`), delivered("t", 1, `{"x":2}`)
	if id(a, map[events.Position]int{}) != id(b, map[events.Position]int{}) {
		t.Fatal("same delivery position, different ids")
	}
	seen := map[events.Position]int{}
	if id(a, seen) == id(b, seen) {
		t.Fatal("two events from one record share an id")
	}
	if id(delivered("t", 1, `{}`), nil) == id(delivered("u", 1, `{}`), map[events.Position]int{}) {
		t.Fatal("topic not in the id")
	}
	c := delivered("t", 1, `{"x":1}`)
	c.Delivered = nil
	d := delivered("t", 2, `{"x":1}`)
	d.Delivered = nil
	c2 := delivered("t", 1, `{"x":1}`)
	c2.Delivered = nil
	if id(c, nil) == id(d, nil) || id(c, nil) != id(c2, nil) {
		t.Fatal("content ids")
	}
	if x := id(a, map[events.Position]int{}); !strings.HasPrefix(x, "msg_") || len(x) != 36 {
		t.Fatalf("id %q", x)
	}
}

// TestBatches: batch_size > 1 sends JSON arrays; gzip applies above
// compression_min_bytes and the signature is over the decoded body.
func TestBatches(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, _ := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\nbatch_size: 3\ncompression: gzip\ncompression_min_bytes: 400\n", srv.URL, secret))
	if err := s.Write(context.Background(), batchOf(7)); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, g := range reqs {
		if g.verifyErr != nil {
			t.Fatalf("request %d: %v", i, g.verifyErr)
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(g.body, &arr); err != nil {
			t.Fatalf("request %d is not a JSON array: %v", i, err)
		}
		want := []int{3, 3, 1}[i]
		if len(arr) != want {
			t.Fatalf("request %d has %d events, want %d", i, len(arr), want)
		}
		for _, raw := range arr {
			if _, err := events.Rivven.Decode(raw); err != nil {
				t.Fatal(err)
			}
		}
		// Three events are above 400 bytes, one is below.
		if compressed := g.encoding == "gzip"; compressed != (want == 3) || (compressed && g.raw >= len(g.body)) {
			t.Fatalf("request %d (%d bytes decoded, %d sent): encoding %q", i, len(g.body), g.raw, g.encoding)
		}
	}
	// A redelivery of the same records in the same requests repeats
	// their ids.
	if err := s.Write(context.Background(), batchOf(7)); err != nil {
		t.Fatal(err)
	}
	again := rc.requests()[3:]
	for i := range reqs {
		if reqs[i].header.Get("webhook-id") != again[i].header.Get("webhook-id") {
			t.Fatalf("request %d: webhook-id changed on redelivery", i)
		}
	}
}

// TestCloudEventsBatch: a batch of CloudEvents is the binding's batch
// content type, each element a structured CloudEvent.
func TestCloudEventsBatch(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, _ := newSink(t, fmt.Sprintf("url: %s\nbatch_size: 10\ncodec: cloudevents\n", srv.URL))
	if err := s.Write(context.Background(), batchOf(2)); err != nil {
		t.Fatal(err)
	}
	g := rc.requests()[0]
	if ct := g.header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
		t.Fatalf("content type %q", ct)
	}
	var arr []map[string]any
	if err := json.Unmarshal(g.body, &arr); err != nil || len(arr) != 2 || arr[0]["specversion"] != "1.0" {
		t.Fatalf("body %s (%v)", g.body, err)
	}
	if g.header.Get("webhook-id") == "" || g.header.Get("webhook-signature") != "" {
		t.Fatalf("unsigned request headers %v", g.header)
	}
}

// TestRetryAfter: a 429 with Retry-After is waited out as the server
// asked (not the backoff), then the request goes through.
func TestRetryAfter(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		rc := newReceiver(t)
		rc.answer = func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(status)
				return true
			}
			return false
		}
		srv := httptest.NewServer(rc)
		s, clk := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\nretry:\n  initial_backoff_ms: 10\n", srv.URL, secret))
		if err := s.Write(context.Background(), batchOf(1)); err != nil {
			t.Fatalf("%d: %v", status, err)
		}
		srv.Close()
		reqs := rc.requests()
		if len(reqs) != 2 || reqs[1].verifyErr != nil {
			t.Fatalf("%d: %d requests", status, len(reqs))
		}
		if w := clk.Waits(); len(w) != 1 || w[0] != 7*time.Second {
			t.Fatalf("%d: waited %v, want the Retry-After of 7s", status, w)
		}
		// The retry is signed anew, with the same id.
		if reqs[0].header.Get("webhook-id") != reqs[1].header.Get("webhook-id") {
			t.Fatal("webhook-id changed between attempts")
		}
		if m := s.Metrics(); m["http_webhook.rate_limited_total"] != 1 || m["http_webhook.retries_total"] != 1 {
			t.Fatalf("metrics %v", m)
		}
	}
}

// TestRetryAfterDate: Retry-After may also be an HTTP-date (RFC 9110
// 10.2.3); the wait is until then, on the sink's clock.
func TestRetryAfterDate(t *testing.T) {
	var clock atomic.Pointer[fakeClock]
	rc := newReceiver(t)
	rc.answer = func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 1 {
			w.Header().Set("Retry-After", clock.Load().Now().Add(9*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, clk := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\n", srv.URL, secret))
	clock.Store(clk)
	if err := s.Write(context.Background(), batchOf(1)); err != nil {
		t.Fatal(err)
	}
	// The date has whole seconds: the wait is a little over 8 s, at most 9.
	if w := clk.Waits(); len(w) != 1 || w[0] <= 8*time.Second || w[0] > 9*time.Second || len(rc.requests()) != 2 || rc.requests()[1].verifyErr != nil {
		t.Fatalf("waited %v, %d requests", w, len(rc.requests()))
	}
}

// TestRetryAfterTooLong: a Retry-After above max_retry_after_secs is
// not waited inside the write; the batch fails back carrying it.
func TestRetryAfterTooLong(t *testing.T) {
	rc := &receiver{answer: func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, clk := newSink(t, fmt.Sprintf("url: %s\nretry:\n  max_retry_after_secs: 60\n", srv.URL))
	err := s.Write(context.Background(), batchOf(2))
	if resilience.RetryAfterOf(err) != time.Hour || len(clk.Waits()) != 0 || len(rc.requests()) != 1 {
		t.Fatalf("err %v, waits %v, %d requests", err, clk.Waits(), len(rc.requests()))
	}
}

// TestBackoff: 5xx is retried max_attempts times with exponential waits,
// then the whole batch fails (nothing got through, and it may pass).
func TestBackoff(t *testing.T) {
	rc := &receiver{answer: func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "upstream down", http.StatusBadGateway)
		return true
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, clk := newSink(t, fmt.Sprintf("url: %s\nretry:\n  max_attempts: 4\n  initial_backoff_ms: 100\n  max_backoff_ms: 250\n", srv.URL))
	err := s.Write(context.Background(), batchOf(3))
	var we *connector.WriteError
	if err == nil || errors.As(err, &we) || !resilience.Retryable(err) || !strings.Contains(err.Error(), "502") {
		t.Fatalf("want a retryable whole-batch error, got %v", err)
	}
	// The first request used its 4 attempts; the later ones were held
	// back to keep the order.
	if n := len(rc.requests()); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}
	if w := clk.Waits(); fmt.Sprint(w) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", w, want)
	}
	// With jitter the waits spread around the base and stay under max.
	s.rand = func() float64 { return 0.999 }
	clk.waits = nil
	_ = s.Write(context.Background(), batchOf(1))
	if w := clk.Waits(); w[0] <= 100*time.Millisecond || w[0] > 120*time.Millisecond || w[2] != 250*time.Millisecond {
		t.Fatalf("jittered waits %v", w)
	}
}

// TestClientErrorsDeadLetter: a 4xx other than 408/429 is not retried;
// its events fail with the status and the start of the body, the
// others are sent.
func TestClientErrorsDeadLetter(t *testing.T) {
	rc := &receiver{answer: func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 2 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"error":"field note is not allowed"}%s`, strings.Repeat(" padding", 200))
			return true
		}
		return false
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, clk := newSink(t, "url: "+srv.URL+"\n")
	err := s.Write(context.Background(), batchOf(3))
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil {
		t.Fatalf("want event 1 failed, got %v", err)
	}
	msg := we.Failed[1].Error()
	if !strings.Contains(msg, "HTTP 422") || !strings.Contains(msg, "field note is not allowed") || len(msg) > 800 || resilience.Retryable(we.Failed[1]) {
		t.Fatalf("reason %q", msg)
	}
	if len(rc.requests()) != 3 || len(clk.Waits()) != 0 {
		t.Fatalf("%d requests, waits %v", len(rc.requests()), clk.Waits())
	}
	if m := s.Metrics(); m["http_webhook.events_failed_total"] != 1 || m["http_webhook.events_sent_total"] != 2 {
		t.Fatalf("metrics %v", m)
	}
	// The engine redelivers the failed record: the refused request is not
	// sent again, its reason stays.
	err = s.Write(context.Background(), batchOf(3)[1:2])
	if !errors.As(err, &we) || !strings.Contains(we.Failed[0].Error(), "refused webhook-id") || !strings.Contains(we.Failed[0].Error(), "HTTP 422") {
		t.Fatalf("redelivery: %v", err)
	}
	if len(rc.requests()) != 3 {
		t.Fatalf("the refused request was sent again (%d requests)", len(rc.requests()))
	}
}

// TestOrderKept: with max_in_flight 1, after a request failed for good
// the later ones are not sent, so a redelivery keeps their order.
func TestOrderKept(t *testing.T) {
	rc := &receiver{answer: func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, _ := newSink(t, "url: "+srv.URL+"\nretry:\n  max_attempts: 1\n")
	err := s.Write(context.Background(), batchOf(4))
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 3 || we.Failed[0] != nil {
		t.Fatalf("want events 1-3 failed, got %v", err)
	}
	if n := len(rc.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// TestTimeout: a receiver that does not answer within timeout_secs is
// retried; the retry is answered.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := &receiver{answer: func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, clk := newSink(t, "url: "+srv.URL+"\ntimeout_secs: 1\n")
	if err := s.Write(context.Background(), batchOf(1)); err != nil {
		t.Fatal(err)
	}
	if len(rc.requests()) != 2 || len(clk.Waits()) != 1 {
		t.Fatalf("%d requests, waits %v", len(rc.requests()), clk.Waits())
	}
	// With one attempt the timeout is the error, classified so.
	s2, _ := newSink(t, "url: "+srv.URL+"\ntimeout_secs: 1\nretry:\n  max_attempts: 1\n")
	rc.mu.Lock()
	rc.got = nil
	rc.mu.Unlock()
	err := s2.Write(context.Background(), batchOf(1))
	if resilience.ClassOf(err) != resilience.Timeout {
		t.Fatalf("err %v (class %v)", err, resilience.ClassOf(err))
	}
}

// TestConnectionClosedMidBody: the receiver reads part of the body and
// closes the connection; the request is retried on a new connection.
func TestConnectionClosedMidBody(t *testing.T) {
	var cut atomic.Int32
	rc := newReceiver(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut.Add(1) == 1 {
			buf := make([]byte, 10)
			_, _ = io.ReadFull(r.Body, buf)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, clk := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\n", srv.URL, secret))
	ev := delivered("orders", 1, fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 256<<10)))
	if err := s.Write(context.Background(), []*events.Event{ev}); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 || reqs[0].verifyErr != nil || len(clk.Waits()) != 1 {
		t.Fatalf("%d verified requests, waits %v", len(reqs), clk.Waits())
	}
	// A response cut short after a 2xx status is still a delivery.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		_ = conn.Close()
	}))
	defer srv2.Close()
	s2, _ := newSink(t, "url: "+srv2.URL+"\nretry:\n  max_attempts: 1\n")
	if err := s2.Write(context.Background(), batchOf(1)); err != nil {
		t.Fatal(err)
	}
}

// TestRedirectNotFollowed: a 3xx fails without retry and names its
// Location; no query string (which may hold a token) is shown.
func TestRedirectNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/hook?sig=abc", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	s, clk := newSink(t, "url: "+srv.URL+"/hook?token=s3cr3t\n")
	err := s.Write(context.Background(), batchOf(1))
	var we *connector.WriteError
	if !errors.As(err, &we) || len(clk.Waits()) != 0 {
		t.Fatalf("err %v, waits %v", err, clk.Waits())
	}
	msg := we.Failed[0].Error()
	if !strings.Contains(msg, "307") || !strings.Contains(msg, "elsewhere.example") || strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "sig=abc") {
		t.Fatalf("reason %q", msg)
	}
}

// TestTLSPrivateCA: an https receiver with a certificate of a private CA
// is reached with tls.ca_path and refused (without retries) without it.
func TestTLSPrivateCA(t *testing.T) {
	p := newPKI(t)
	rc := newReceiver(t)
	srv := httptest.NewUnstartedServer(rc)
	cert, err := tls.X509KeyPair([]byte(p.serverCert), []byte(p.serverKey))
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(p.caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\ntls:\n  ca_path: %s\n", srv.URL, secret, caFile))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), batchOf(2)); err != nil {
		t.Fatal(err)
	}
	if reqs := rc.requests(); len(reqs) != 3 || reqs[2].verifyErr != nil { // HEAD of Check + 2
		t.Fatalf("%d requests", len(reqs))
	}
	// HTTP/2 by ALPN, as httptest's TLS server offers it.
	if rc.requests()[1].proto != 2 {
		t.Fatalf("protocol HTTP/%d, want 2", rc.requests()[1].proto)
	}
	untrusted, clk := newSink(t, "url: "+srv.URL+"\n")
	var we *connector.WriteError
	if err = untrusted.Write(context.Background(), batchOf(1)); !errors.As(err, &we) {
		t.Fatalf("want the event failed, got %v", err)
	}
	if err = we.Failed[0]; resilience.ClassOf(err) != resilience.Auth || len(clk.Waits()) != 0 || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err %v (class %v), waits %v", err, resilience.ClassOf(err), clk.Waits())
	}
	if err := untrusted.Check(context.Background()); err == nil {
		t.Fatal("check passed with an untrusted certificate")
	}
}

// TestMutualTLS: a receiver requiring client certificates of its CA
// accepts the configured inline certificate and refuses a sender
// without one.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	rc := newReceiver(t)
	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		rc.ServeHTTP(w, r)
	}))
	cert, _ := tls.X509KeyPair([]byte(p.serverCert), []byte(p.serverKey))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	t.Setenv("CLIENT_KEY", p.clientKey)
	src := fmt.Sprintf("url: %s\nsigning_secret: %s\nhttp_version: http1\ntls:\n  ca_pem: %s\n  cert_pem: %s\n  key_pem: %s\n",
		srv.URL, secret, yamlBlock(p.caPEM, 4), yamlBlock(p.clientCert, 4), yamlBlock(p.clientKey, 4))
	s, _ := newSink(t, src)
	if err := s.Write(context.Background(), batchOf(1)); err != nil {
		t.Fatal(err)
	}
	// http_version http1 keeps HTTP/1.1 although the receiver offers h2.
	if peer.Load() != "rivven sender" || rc.requests()[0].proto != 1 || rc.requests()[0].verifyErr != nil {
		t.Fatalf("peer %v, HTTP/%d", peer.Load(), rc.requests()[0].proto)
	}
	anon, _ := newSink(t, fmt.Sprintf("url: %s\nretry:\n  max_attempts: 1\ntls:\n  ca_pem: %s\n", srv.URL, yamlBlock(p.caPEM, 4)))
	if err := anon.Write(context.Background(), batchOf(1)); err == nil {
		t.Fatal("a sender without a client certificate got through")
	}
	if len(rc.requests()) != 1 {
		t.Fatal("the receiver saw the anonymous request")
	}
}

// TestH2C: http_version http2 speaks HTTP/2 with prior knowledge to a
// plain-http receiver.
func TestH2C(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewUnstartedServer(rc)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	for _, c := range []struct {
		version string
		want    int
	}{{"http2", 2}, {"auto", 1}, {"http1", 1}} {
		s, _ := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\nhttp_version: %s\n", srv.URL, secret, c.version))
		if err := s.Write(context.Background(), batchOf(1)); err != nil {
			t.Fatal(err)
		}
		reqs := rc.requests()
		if g := reqs[len(reqs)-1]; g.proto != c.want || g.verifyErr != nil {
			t.Fatalf("%s: HTTP/%d (%v), want %d", c.version, g.proto, g.verifyErr, c.want)
		}
	}
}

// TestConnectionLimit: max_in_flight 6 with max_connections_per_host 2
// never has more than 2 connections (and so requests) open at once.
// The receiver holds each request until all 6 are in (which the limit
// prevents) or a pause passed; the pause only paces the test, the
// assertion is on the peak.
func TestConnectionLimit(t *testing.T) {
	for _, c := range []struct {
		limit, inFlight, wantPeak int
		pause                     time.Duration
	}{{2, 6, 2, 200 * time.Millisecond}, {8, 6, 6, 10 * time.Second}} {
		var mu sync.Mutex
		var active, peak int
		conns := map[net.Conn]bool{}
		gate := make(chan struct{})
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			mu.Lock()
			active++
			peak = max(peak, active)
			if active == c.inFlight {
				close(gate)
			}
			mu.Unlock()
			select {
			case <-gate:
			case <-time.After(c.pause):
			}
			mu.Lock()
			active--
			mu.Unlock()
		}))
		srv.Config.ConnState = func(cn net.Conn, st http.ConnState) {
			if st == http.StateNew {
				mu.Lock()
				conns[cn] = true
				mu.Unlock()
			}
		}
		srv.Start()
		s, _ := newSink(t, fmt.Sprintf("url: %s\nhttp_version: http1\nmax_in_flight: %d\nmax_connections_per_host: %d\n", srv.URL, c.inFlight, c.limit))
		if err := s.Write(context.Background(), batchOf(c.inFlight)); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if peak != c.wantPeak || len(conns) > c.limit {
			t.Fatalf("limit %d: peak %d requests at once over %d connections, want %d", c.limit, peak, len(conns), c.wantPeak)
		}
	}
}

// TestSecretsNotShown: neither the signing secret, a header value nor a
// token in the URL's query appear in errors or logs.
func TestSecretsNotShown(t *testing.T) {
	var logs bytes.Buffer
	rt := &connector.Runtime{Log: slogTo(&logs)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer srv.Close()
	s, _ := newSink(t, fmt.Sprintf("url: %s/x?token=tok-123\nsigning_secret: %s\nheaders:\n  Authorization: Bearer hdr-456\nretry:\n  max_attempts: 2\n", srv.URL, secret))
	err := s.Write(connector.WithRuntime(context.Background(), rt), batchOf(1))
	all := fmt.Sprint(err) + logs.String()
	if err == nil || !strings.Contains(logs.String(), "retrying") {
		t.Fatalf("err %v, logs %s", err, logs.String())
	}
	for _, sec := range []string{"tok-123", "hdr-456", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if strings.Contains(all, sec) {
			t.Fatalf("%s shown: %s", sec, all)
		}
	}
}

func TestCheckUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s, _ := newSink(t, "url: http://"+addr+"/hook\n")
	if err := s.Check(context.Background()); err == nil || !resilience.Retryable(err) {
		t.Fatalf("check of a closed port: %v", err)
	}
}
