//go:build !custom || hosts || hosts.cloudrun

package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/rivven/rivven-connect/events"
)

// pubsubPublishedType is the CloudEvent Eventarc sends for a Pub/Sub
// message; its data is the push body (message and subscription).
const pubsubPublishedType = "google.cloud.pubsub.topic.v1.messagePublished"

// maxPushBody bounds a push request body (Pub/Sub messages are at most
// 10 MB, base64 makes them a third larger).
const maxPushBody = 16 << 20

// runCloudRun serves the function over HTTP with functions-framework-go on
// $PORT: Pub/Sub push bodies and CloudEvents (binary or structured) at "/".
func runCloudRun(ctx context.Context, fn Function, opts Options, stderr io.Writer) int {
	rt, err := Init(ctx, fn, opts)
	if err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: init failed: %s\n", fn, OneLine(err))
		return 1
	}
	h, err := rt.HTTPHandler(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: %v\n", fn, err)
		return 1
	}
	if err := funcframework.RegisterHTTPFunctionContext(ctx, "/", h.ServeHTTP); err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: %v\n", fn, err)
		return 1
	}
	// Cloud Run sends SIGTERM before stopping an instance: flush the sink.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		cctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		code := 0
		if err := rt.Close(cctx); err != nil {
			rt.Log.Error("close failed", "error", err)
			code = 1
		}
		os.Exit(code)
	}()
	port := lookupOr(opts.Lookup, "PORT", "8080")
	rt.Log.Info("serving", "port", port, "component", rt.Component)
	if err := funcframework.StartHostPort("", port); err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: %v\n", fn, err)
	}
	return 1
}

// HTTPHandler answers push deliveries: a Pub/Sub push body, or a
// CloudEvent in binary (ce-* headers) or structured
// (application/cloudevents+json) mode. A 2xx acknowledges; anything else
// makes the sender deliver again.
func (rt *Runtime) HTTPHandler(ctx context.Context) (http.Handler, error) {
	p, err := cloudevents.NewHTTP()
	if err != nil {
		return nil, err
	}
	ce, err := cloudevents.NewHTTPReceiveHandler(ctx, p, rt.receiveCloudEvent)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a Pub/Sub push body or a CloudEvent", http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("Ce-Specversion") != "" || strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents") {
			ce.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPushBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		status, out, err := rt.Adapter.PushBody(r.Context(), body)
		rt.logPush(status, out.Result.Failed, err)
		w.WriteHeader(status)
	}), nil
}

// receiveCloudEvent handles one CloudEvent. A Pub/Sub message delivered by
// Eventarc is unwrapped to its message (the push body is its data); any
// other CloudEvent is itself the event, decoded with the CloudEvents codec.
func (rt *Runtime) receiveCloudEvent(ctx context.Context, ev cloudevents.Event) cloudevents.Result {
	var b *events.Batch
	if ev.Type() == pubsubPublishedType {
		var push events.PubSubPush
		if err := json.Unmarshal(ev.Data(), &push); err != nil {
			return cehttp.NewResult(http.StatusBadRequest, "pub/sub CloudEvent data: %v", err)
		}
		var err error
		if b, err = push.Batch(); err != nil {
			return cehttp.NewResult(http.StatusBadRequest, "%v", err)
		}
	} else {
		raw, err := json.Marshal(ev)
		if err != nil {
			return cehttp.NewResult(http.StatusBadRequest, "%v", err)
		}
		b = &events.Batch{Kind: events.TriggerCloudEvent, Deliveries: []events.Delivery{{
			ID: ev.ID(), Topic: ev.Source(), Value: raw, Time: ev.Time(), Codec: events.CodecCloudEvents,
		}}}
	}
	status, out, err := rt.Adapter.Push(ctx, b)
	rt.logPush(status, out.Result.Failed, err)
	if events.PushAcked(status) {
		return nil // 200: acknowledged
	}
	msg := "record failed; deliver it again"
	if err != nil {
		msg = err.Error()
	}
	return cehttp.NewResult(status, "%s", msg)
}

func (rt *Runtime) logPush(status int, failed []string, err error) {
	switch {
	case err != nil:
		rt.Log.Error("delivery failed", "status", status, "error", err)
	case !events.PushAcked(status):
		rt.Log.Warn("delivery nacked", "status", status, "ids", failed)
	}
}
