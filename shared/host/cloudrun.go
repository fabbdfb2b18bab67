//go:build !custom || hosts || hosts.cloudrun

package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"go.opentelemetry.io/otel/propagation"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
)

// pubsubPublishedType is the CloudEvent Eventarc sends for a Pub/Sub
// message; its data is the push body (message and subscription).
const pubsubPublishedType = "google.cloud.pubsub.topic.v1.messagePublished"

// maxPushBody bounds a push request body (Pub/Sub messages are at most
// 10 MB, base64 makes them a third larger).
const maxPushBody = 16 << 20

// Media types of the CloudEvents HTTP binding's structured and batched
// content modes (JSON event format).
const (
	ceStructuredJSON = "application/cloudevents+json"
	ceBatchJSON      = "application/cloudevents-batch+json"
)

// shutdownGrace is how long a stopping instance takes to finish the
// requests in flight and flush the sink: Cloud Run sends SIGKILL 10 s after
// SIGTERM.
const shutdownGrace = 8 * time.Second

// runCloudRun serves the function over HTTP on $PORT with net/http: Pub/Sub
// push bodies and CloudEvents (binary, structured or batched) at any path.
// It does not go through functions-framework-go, which prints
// "Serving function" and a blank line after every request to stdout — and
// stdout is the stdout sink's output. Everything this host says goes to
// the log (stderr).
func runCloudRun(ctx context.Context, fn Function, opts Options, stderr io.Writer) int {
	rt, err := Init(ctx, fn, opts)
	if err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: init failed: %s\n", fn, OneLine(err))
		return 1
	}
	h, err := rt.HTTPHandler(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: %v\n", fn, err)
		rt.Close(context.WithoutCancel(ctx))
		return 1
	}
	port := lookupOr(opts.Lookup, "PORT", "8080")
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: PORT %s: %v\n", fn, port, err)
		rt.Close(context.WithoutCancel(ctx))
		return 1
	}
	// The first collection waits for the first request to be answered
	// (see startGC): the second request puts GOGC back.
	var answered atomic.Bool
	h = rt.recoverPanics(h)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if answered.Swap(true) {
				opts.gc.restore()
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(rt.Log.Handler(), slog.LevelWarn),
	}
	// Cloud Run sends SIGTERM before stopping an instance: finish what is
	// in flight, then flush the sink.
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	rt.Log.Info("serving", "port", port, "component", rt.Component)
	code := 0
	select {
	case err := <-served:
		rt.Log.Error("the HTTP server stopped", "error", err)
		code = 1
	case <-sctx.Done():
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(cctx); err != nil {
		rt.Log.Error("requests still in flight at shutdown", "error", err)
		code = 1
	}
	if err := rt.Close(cctx); err != nil {
		rt.Log.Error("close failed", "error", err)
		code = 1
	}
	return code
}

// recoverPanics answers 500 (deliver again) and logs the stack when a
// request panics, instead of net/http's dropped connection and a trace
// nobody correlates with the delivery.
func (rt *Runtime) recoverPanics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				rt.Log.Error("delivery panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				http.Error(w, "internal error; deliver again", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// HTTPHandler answers push deliveries: a Pub/Sub push body, or CloudEvents
// as the CloudEvents HTTP binding sends them — binary (ce-* headers),
// structured (application/cloudevents+json) or batched
// (application/cloudevents-batch+json), with POST or PUT. A 2xx
// acknowledges; a 5xx makes the sender deliver again. A request that can
// never succeed (not a delivery, broken JSON, a CloudEvent without its
// required attributes, an unsupported format) is refused with a 4xx whose
// body says why, and logged: retrying it would only loop.
func (rt *Runtime) HTTPHandler(context.Context) (http.Handler, error) {
	return http.HandlerFunc(rt.serveHTTP), nil
}

func (rt *Runtime) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		rt.refuse(w, r, http.StatusMethodNotAllowed, errors.New("send a Pub/Sub push body or a CloudEvent with POST or PUT"))
		return
	}
	received := time.Now().UTC()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPushBody))
	if err != nil {
		status := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
			err = fmt.Errorf("the body is larger than %d bytes", tooBig.Limit)
		}
		rt.refuse(w, r, status, err)
		return
	}
	b, status, err := rt.readDelivery(r, body, received)
	if err != nil {
		rt.refuse(w, r, status, err)
		return
	}
	// The request's traceparent (Pub/Sub push, Eventarc and Cloud Run's
	// front end send one) is the trace this delivery continues.
	ctx, end := pipeline.StartInvocation(r.Context(), "invoke "+rt.Component, propagation.HeaderCarrier(r.Header), "")
	status, out, err := rt.Adapter.Push(ctx, b)
	if err == nil && !events.PushAcked(status) {
		end(fmt.Errorf("HTTP %d: %d of %d records failed", status, len(out.Failed), len(b.Deliveries)))
	} else {
		end(err)
	}
	rt.logPush(status, out.Result.Failed, err)
	if events.PushAcked(status) {
		w.WriteHeader(status)
		return
	}
	msg := fmt.Sprintf("%d of %d records failed (%s); deliver again", len(out.Failed), len(b.Deliveries), strings.Join(out.Result.Failed, ", "))
	if err != nil {
		msg = err.Error()
	}
	http.Error(w, msg, status)
}

// refuse answers a request that redelivery cannot fix, with the reason in
// the body (the push service shows it) and in the log.
func (rt *Runtime) refuse(w http.ResponseWriter, r *http.Request, status int, err error) {
	rt.Log.Warn("delivery refused", "status", status, "method", r.Method,
		"content_type", r.Header.Get("Content-Type"), "reason", err.Error())
	http.Error(w, err.Error(), status)
}

// readDelivery turns a request into the batch it delivers. On error it
// returns the 4xx status to refuse it with.
func (rt *Runtime) readDelivery(r *http.Request, body []byte, received time.Time) (*events.Batch, int, error) {
	mt := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: %v", ct, err)
		}
	}
	b := &events.Batch{Kind: events.TriggerCloudEvent}
	switch {
	case mt == ceBatchJSON:
		// Batched content mode: a JSON array of CloudEvents in the JSON
		// event format. They are one delivery: acknowledged together, or
		// delivered again together (the ones written already are
		// recognised by id then).
		var evs []event.Event
		if err := json.Unmarshal(body, &evs); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("CloudEvents batch (%s): %v", ceBatchJSON, err)
		}
		for i := range evs {
			if err := appendCloudEvent(b, &evs[i], received); err != nil {
				return nil, http.StatusBadRequest, fmt.Errorf("CloudEvents batch (%s), event [%d]: %w", ceBatchJSON, i, err)
			}
		}
	case strings.HasPrefix(mt, "application/cloudevents"):
		if mt != ceStructuredJSON {
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("structured CloudEvents as %s are not supported: send %s, %s or binary mode (ce-* headers)", mt, ceStructuredJSON, ceBatchJSON)
		}
		ev := event.New()
		if err := json.Unmarshal(body, &ev); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("structured CloudEvent (%s): %v", ceStructuredJSON, err)
		}
		if err := appendCloudEvent(b, &ev, received); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("structured CloudEvent: %w", err)
		}
	case r.Header.Get("Ce-Specversion") != "":
		msg := cehttp.NewMessage(r.Header, io.NopCloser(bytes.NewReader(body)))
		ev, err := binding.ToEvent(r.Context(), msg)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("binary CloudEvent (ce-* headers): %v", err)
		}
		if err := appendCloudEvent(b, ev, received); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("binary CloudEvent: %w", err)
		}
	default:
		pb, err := events.ParsePubSubPush(body)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("neither a Pub/Sub push body nor a CloudEvent: %w", err)
		}
		b = pb
	}
	return b, 0, nil
}

// appendCloudEvent adds a CloudEvent's deliveries to b. A Pub/Sub message
// delivered by Eventarc is unwrapped to its message (the push body is its
// data); any other CloudEvent is itself the event, decoded with the
// CloudEvents codec. time is optional in CloudEvents: an event without one
// is stamped with when it was received, so that it never reaches the sink
// as 0001-01-01T00:00:00Z.
func appendCloudEvent(b *events.Batch, ev *event.Event, received time.Time) error {
	if err := ev.Validate(); err != nil {
		return errors.New(OneLine(err))
	}
	if ev.Type() == pubsubPublishedType {
		var push events.PubSubPush
		if err := json.Unmarshal(ev.Data(), &push); err != nil {
			return fmt.Errorf("Pub/Sub CloudEvent data: %v", err)
		}
		pb, err := push.Batch()
		if err != nil {
			return err
		}
		b.Deliveries = append(b.Deliveries, pb.Deliveries...)
		return nil
	}
	if ev.Time().IsZero() {
		ev.SetTime(received)
	}
	// Encoded without HTML escaping, so that the data's text reaches the
	// sink as it was sent (< stays <, as every codec writes it).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return err
	}
	raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	b.Deliveries = append(b.Deliveries, events.Delivery{
		ID: ev.ID(), Topic: ev.Source(), Value: raw, Time: ev.Time(), Codec: events.CodecCloudEvents,
	})
	return nil
}

func (rt *Runtime) logPush(status int, failed []string, err error) {
	switch {
	case err != nil:
		rt.Log.Error("delivery failed", "status", status, "error", err)
	case !events.PushAcked(status):
		rt.Log.Warn("delivery nacked", "status", status, "ids", failed)
	}
}
