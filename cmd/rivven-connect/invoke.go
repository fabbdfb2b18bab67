package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/host"
	"github.com/rivven/rivven-connect/shared/topic"
)

func init() {
	register(command{"invoke", "Run one function handler with a trigger envelope and print its response", runInvoke})
}

// runInvoke initializes a function exactly as its cold start would (the
// environment it reads is built from the flags) and hands it one envelope
// through the code the platform would run: the Lambda adapter for SQS,
// Kinesis and Kafka events, the Cloud Run HTTP handler for Pub/Sub push
// bodies and CloudEvents. It prints the function's answer as JSON.
func runInvoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("invoke", "--function sink/NAME --event FILE -c FILE [--connector NAME] [--payload FORMAT] [--output-topic TOPIC]", stdout)
	function := fs.String("function", "", "the function: sink/<connector> or transform/<transform>")
	eventFile := fs.String("event", "", "trigger envelope (JSON): an SQS, Kinesis or Kafka event, a Pub/Sub push body, a CloudEvent or a JSON array of CloudEvents (samples/events/)")
	file := fs.String("c", "", "pipeline file (RIVVEN_PIPELINE)")
	connector := fs.String("connector", "", "which component of the pipeline (RIVVEN_CONNECTOR); needed when several fit")
	payload := fs.String("payload", "auto", "payload format (RIVVEN_PAYLOAD): "+strings.Join(events.PayloadFormats, ", "))
	output := fs.String("output-topic", "", "transform functions: where output goes (RIVVEN_OUTPUT_TOPIC); it is printed on stderr")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error (RIVVEN_LOG_LEVEL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	kind, name, ok := strings.Cut(*function, "/")
	if !ok || (kind != string(catalog.Sink) && kind != string(catalog.Transform)) || name == "" {
		return exitWith(exitUsage, fmt.Errorf("--function must be sink/<name> or transform/<name>, got %q", *function))
	}
	e, ok := catalog.Lookup(catalog.Kind(kind), name)
	if !ok {
		return exitWith(exitUsage, fmt.Errorf("--function %s: no %s named %q (see: rivven-connect connectors --kind %s)", *function, kind, name, kind))
	}
	if *file == "" || *eventFile == "" {
		return exitWith(exitUsage, errors.New("--event FILE and -c FILE are required"))
	}
	envelope, err := os.ReadFile(*eventFile)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	env := map[string]string{
		"RIVVEN_PIPELINE": *file, "RIVVEN_CONNECTOR": *connector, "RIVVEN_PAYLOAD": *payload,
		"RIVVEN_OUTPUT_TOPIC": *output, "RIVVEN_LOG_LEVEL": *logLevel,
	}
	lookup := func(k string) (string, bool) {
		if v, ok := env[k]; ok && v != "" {
			return v, true
		}
		if strings.HasPrefix(k, "RIVVEN_") {
			return "", false
		}
		return os.LookupEnv(k) // REDIS_URL and the pipeline's ${VAR}s
	}
	opts := host.Options{Lookup: lookup, Log: stderr}
	var published *topic.Memory
	if kind == string(catalog.Transform) {
		// A deployed transform publishes through the broker's producer; here
		// the output goes to memory and is printed.
		published = topic.NewMemory()
		published.AutoCreate = true
		opts.Producer = published
	}
	fn := host.Function{Kind: kind, Connector: e.Name}
	rt, err := host.Init(ctx, fn, opts)
	if err != nil {
		return exitWith(exitUsage, fmt.Errorf("%s: init failed: %s", fn, host.OneLine(err)))
	}
	resp, err := invokeEnvelope(ctx, rt, envelope)
	cerr := rt.Close(context.WithoutCancel(ctx)) // flushes the sink before the answer is printed
	if err != nil {
		return exitWith(exitFailed, fmt.Errorf("%s: invocation failed: %w", fn, err))
	}
	if cerr != nil {
		return exitWith(exitFailed, fmt.Errorf("%s: close: %w", fn, cerr))
	}
	var out bytes.Buffer
	if err := json.Indent(&out, resp, "", "  "); err != nil {
		out.Reset()
		out.Write(resp)
	}
	fmt.Fprintln(stdout, out.String())
	if published != nil {
		printPublished(stderr, published)
	}
	return nil
}

// invokeEnvelope hands the envelope to the function the way its platform
// would: Lambda events to the Lambda adapter, push bodies and CloudEvents
// to the Cloud Run HTTP handler (as a POST, so it is read as it would be on
// Cloud Run); a JSON array is sent as a CloudEvents batch.
func invokeEnvelope(ctx context.Context, rt *host.Runtime, envelope []byte) ([]byte, error) {
	contentType := "application/json"
	if trimmed := bytes.TrimSpace(envelope); len(trimmed) > 0 && trimmed[0] == '[' {
		// A JSON array is a CloudEvents batch (the JSON batch format).
		contentType = "application/cloudevents-batch+json"
	} else {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(envelope, &probe); err != nil {
			return nil, fmt.Errorf("the event is not a JSON object or a CloudEvents batch: %w", err)
		}
		_, isCE := probe["specversion"]
		_, isPush := probe["message"]
		if !isCE && !isPush {
			return rt.Adapter.InvokeLambda(ctx, envelope)
		}
		if isCE {
			contentType = "application/cloudevents+json"
		}
	}
	h, err := rt.HTTPHandler(ctx)
	if err != nil {
		return nil, err
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(envelope))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return json.Marshal(map[string]any{
		"status": rec.Code, "acknowledged": events.PushAcked(rec.Code), "body": strings.TrimSpace(rec.Body.String()),
	})
}

func printPublished(w io.Writer, m *topic.Memory) {
	for _, t := range m.Topics() {
		n, _ := m.Partitions(t)
		for p := range n {
			if m.HighWatermark(t, int32(p)) == 0 {
				continue // Fetch would wait for a first message
			}
			msgs, _ := m.Fetch(context.Background(), t, int32(p), 0, 1<<20)
			for _, msg := range msgs {
				fmt.Fprintf(w, "published to %s: %s\n", t, msg.Value)
			}
		}
	}
}
