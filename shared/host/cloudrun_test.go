//go:build !custom || hosts || hosts.cloudrun

package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

func post(t *testing.T, h http.Handler, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestCloudRunHandler(t *testing.T) {
	rt, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := rt.HTTPHandler(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	takeCollected()
	push := func(id, data string) []byte {
		b, _ := json.Marshal(events.NewPubSubPush("projects/p/subscriptions/orders-sub", events.Delivery{ID: id, Value: []byte(data), Attempt: 1}))
		return b
	}
	if rec := post(t, h, push("p-1", rivvenEvent(`{"id":1}`)), nil); !events.PushAcked(rec.Code) {
		t.Fatalf("push: %d %s", rec.Code, rec.Body)
	}
	// Redelivered: acknowledged again, written once (the ledger knows the id).
	if rec := post(t, h, push("p-1", rivvenEvent(`{"id":1}`)), nil); !events.PushAcked(rec.Code) {
		t.Fatalf("redelivery: %d", rec.Code)
	}
	if got := takeCollected(); len(got) != 1 {
		t.Fatalf("%d events written for one message delivered twice", len(got))
	}
	// Undecodable with no dead-letter producer: nack, so Pub/Sub retries
	// and finally dead-letters it by its own policy.
	if rec := post(t, h, push("p-2", `{"broken":`), nil); rec.Code != http.StatusInternalServerError {
		t.Fatalf("malformed: %d", rec.Code)
	}

	// CloudEvents, structured (as the CloudEvents codec writes them) and binary.
	e, _ := events.Rivven.Decode([]byte(rivvenEvent(`{"id":3}`)))
	e.Metadata.Position = "lsn:3"
	structured, _ := events.CloudEvents.Append(nil, e)
	if rec := post(t, h, structured, map[string]string{"Content-Type": "application/cloudevents+json"}); !events.PushAcked(rec.Code) {
		t.Fatalf("structured CloudEvent: %d %s", rec.Code, rec.Body)
	}
	binary := map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "ce-4", "Ce-Source": "/orders", "Ce-Type": "rivven.orders.update", "Ce-Time": "2025-01-01T00:00:00Z",
	}
	if rec := post(t, h, []byte(`{"id":4}`), binary); !events.PushAcked(rec.Code) {
		t.Fatalf("binary CloudEvent: %d %s", rec.Code, rec.Body)
	}
	// A Pub/Sub message delivered by Eventarc: the push body is the data.
	eventarc := map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "p-5", "Ce-Source": "//pubsub.googleapis.com/projects/p/topics/orders",
		"Ce-Type": "google.cloud.pubsub.topic.v1.messagePublished",
	}
	if rec := post(t, h, push("p-5", rivvenEvent(`{"id":5}`)), eventarc); !events.PushAcked(rec.Code) {
		t.Fatalf("Eventarc Pub/Sub CloudEvent: %d %s", rec.Code, rec.Body)
	}
	got := takeCollected()
	if len(got) != 3 || got[0].Metadata.Position != "lsn:3" || got[1].Type != events.Update || got[2].Type != events.Insert {
		t.Fatalf("written: %d %+v", len(got), got)
	}
	if d, _ := got[1].Data.JSON(); string(d) != `{"id":4}` {
		t.Fatalf("binary CloudEvent data %s", d)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", rec.Code)
	}
}

func takeCollected() []*events.Event {
	collected.Lock()
	defer collected.Unlock()
	out := collected.events
	collected.events = nil
	return out
}

// specRequest reads a request of testdata/cloudevents (see its README):
// the request line and headers, then the body up to the end of the file.
func specRequest(t *testing.T, name string) *http.Request {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "cloudevents", name))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(br)
	out := httptest.NewRequest(req.Method, req.URL.String(), bytes.NewReader(body))
	out.Header = req.Header
	return out
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// The requests the CloudEvents HTTP protocol binding shows (binary with
// POST, structured and batched with PUT, events from the JSON format's
// examples) are acknowledged and written as the events they carry.
func TestCloudRunCloudEventsBindingExamples(t *testing.T) {
	rt, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := rt.HTTPHandler(context.Background())
	takeCollected()
	specTime := time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC)
	check := func(e *events.Event, data string) {
		t.Helper()
		if d, _ := e.Data.JSON(); string(d) != data {
			t.Errorf("data %s, want %s", d, data)
		}
		if !e.Timestamp.Equal(specTime) || e.Type != events.Record {
			t.Errorf("timestamp %v type %q", e.Timestamp, e.Type)
		}
	}
	object := `{"appinfoA":"abc","appinfoB":123,"appinfoC":true}`
	for _, name := range []string{"binary-post.http", "structured-put.http"} {
		rec := serve(h, specRequest(t, name))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
		got := takeCollected()
		if len(got) != 1 {
			t.Fatalf("%s: %d events written", name, len(got))
		}
		check(got[0], object)
		// Both carry the event C234-1234-1234: the second is a redelivery
		// of the first, acknowledged and not written again; the ledger is
		// reset so that each request is checked on its own.
		if err := rt.Store.Close(); err != nil {
			t.Fatal(err)
		}
		rt2, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rt = rt2
		h, _ = rt.HTTPHandler(context.Background())
	}

	rec := serve(h, specRequest(t, "batch-put.http"))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body)
	}
	got := takeCollected()
	if len(got) != 3 {
		t.Fatalf("batch: %d events written, want 3", len(got))
	}
	check(got[0], `"<much wow=\"xml\"/>"`)
	check(got[1], object)
	check(got[2], `"I'm just a string"`)

	// The JSON batch format's empty batch: nothing to write, acknowledged.
	empty := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("[]"))
	empty.Header.Set("Content-Type", "application/cloudevents-batch+json")
	if rec := serve(h, empty); rec.Code != http.StatusNoContent {
		t.Fatalf("empty batch: %d %s", rec.Code, rec.Body)
	}
}

// A request that can never succeed is refused with a 4xx that says why,
// and the refusal is logged; retrying it would loop forever.
func TestCloudRunRefusesWhatCannotSucceed(t *testing.T) {
	var log bytes.Buffer
	rt, err := Init(context.Background(), sinkFn, Options{Lookup: envOf(map[string]string{"RIVVEN_PIPELINE": testPipeline}), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	h, _ := rt.HTTPHandler(context.Background())
	takeCollected()

	structured := specRequest(t, "structured-put.http")
	body, _ := io.ReadAll(structured.Body)
	batchExample, err := os.ReadFile(filepath.Join("testdata", "cloudevents", "json-batch-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, contentType, body string
		header                          map[string]string
		status                          int
		reason                          string
	}{
		{"broken structured JSON", http.MethodPost, "application/cloudevents+json; charset=utf-8", string(body[:len(body)/2]), nil,
			http.StatusBadRequest, "structured CloudEvent (application/cloudevents+json)"},
		{"structured without id", http.MethodPost, "application/cloudevents+json", `{"specversion":"1.0","type":"t","source":"/s"}`, nil,
			http.StatusBadRequest, "id"},
		{"batch with an undecodable event", http.MethodPost, "application/cloudevents-batch+json", string(batchExample), nil,
			http.StatusBadRequest, "CloudEvents batch (application/cloudevents-batch+json)"},
		{"batch that is not an array", http.MethodPut, "application/cloudevents-batch+json", `{"specversion":"1.0"}`, nil,
			http.StatusBadRequest, "CloudEvents batch"},
		{"unsupported event format", http.MethodPost, "application/cloudevents+xml", `<event/>`, nil,
			http.StatusUnsupportedMediaType, "application/cloudevents+xml are not supported"},
		{"binary without source", http.MethodPost, "application/json", `{}`, map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "x", "Ce-Type": "t"},
			http.StatusBadRequest, "source"},
		{"not a push body", http.MethodPost, "application/json", `{"broken":`, nil,
			http.StatusBadRequest, "neither a Pub/Sub push body nor a CloudEvent"},
		{"GET", http.MethodGet, "", "", nil, http.StatusMethodNotAllowed, "POST or PUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log.Reset()
			req := httptest.NewRequest(c.method, "/", strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			rec := serve(h, req)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.reason) {
				t.Fatalf("%d %q, want %d with %q", rec.Code, rec.Body, c.status, c.reason)
			}
			if !strings.Contains(log.String(), `"msg":"delivery refused"`) || !strings.Contains(log.String(), c.reason) {
				t.Fatalf("not logged with its reason: %s", log.String())
			}
		})
	}
	if got := takeCollected(); len(got) != 0 {
		t.Fatalf("%d events written from refused requests", len(got))
	}
}

// CloudEvents' time attribute is optional: an event without it gets the
// time it was received, not 0001-01-01T00:00:00Z.
func TestCloudRunCloudEventWithoutTime(t *testing.T) {
	rt, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := rt.HTTPHandler(context.Background())
	takeCollected()
	before := time.Now().UTC().Truncate(time.Second)
	structured := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","id":"no-time-1","data":{"n":1}}`))
	structured.Header.Set("Content-Type", "application/cloudevents+json")
	binary := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(`{"n":2}`))
	binary.Header.Set("Content-Type", "application/json")
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "no-time-2", "Ce-Source": "/mycontext", "Ce-Type": "com.example.someevent"} {
		binary.Header.Set(k, v)
	}
	for _, req := range []*http.Request{structured, binary} {
		if rec := serve(h, req); rec.Code != http.StatusNoContent {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	after := time.Now().UTC()
	got := takeCollected()
	if len(got) != 2 {
		t.Fatalf("%d events written", len(got))
	}
	for _, e := range got {
		if e.Timestamp.Before(before) || e.Timestamp.After(after) {
			t.Errorf("timestamp %v, want the receive time (between %v and %v)", e.Timestamp, before, after)
		}
	}
}
