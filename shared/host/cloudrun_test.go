//go:build !custom || hosts || hosts.cloudrun

package host

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

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
