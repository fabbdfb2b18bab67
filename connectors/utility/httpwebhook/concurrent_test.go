package httpwebhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/pipeline"
)

// Concurrent requests of a function instance (Cloud Run) post their
// batches in parallel: the receiver answers only once both requests are
// in flight, which never happens while the engine writes one batch at a
// time. Run under -race it also checks that Write shares nothing unsafe.
func TestConcurrentHandlesPostInParallel(t *testing.T) {
	const calls = 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var arrived sync.WaitGroup
	arrived.Add(calls)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	rc := newReceiver(t)
	var armed atomic.Bool // after the health check's request
	rc.answer = func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		if !armed.Load() {
			return false
		}
		arrived.Done()
		select {
		case <-all:
			return false // verified and answered as usual
		case <-ctx.Done():
			http.Error(w, "the other request never came", http.StatusConflict)
			return true
		}
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, _ := newSink(t, fmt.Sprintf("url: %s\nsigning_secret: %s\n", srv.URL, secret))
	h := &pipeline.Handler{Name: "hook", Sink: s}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			e := delivered("orders", int64(i), fmt.Sprintf(`{"id":%d}`, i))
			e.Delivered = nil // the handler sets the position from the record
			res, err := h.Handle(ctx, []pipeline.Record{{ID: fmt.Sprint(i), Topic: "orders", Offset: int64(i), HasOffset: true, Event: e}})
			if err != nil || len(res.Failed) > 0 {
				t.Errorf("handle %d: %v, failed %v", i, err, res.Failed)
			}
		})
	}
	wg.Wait()
	if n := len(rc.requests()); n != calls+1 {
		t.Fatalf("%d requests, want %d (the health check and each call)", n, calls+1)
	}
}
