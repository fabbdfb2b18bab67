package functions_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// The stdout function, built once for the host's architecture with both
// hosts and no loader or transport (-tags custom,hosts.lambda,
// hosts.cloudrun): the shipped zip and image hold the same code, each with
// its one host.
var stdoutBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "rivven-functions-")
	if err != nil {
		panic(err)
	}
	code := 0
	if !testing.Short() {
		stdoutBin = filepath.Join(dir, "stdout")
		cmd := exec.Command("go", "build", "-tags", "custom,hosts.lambda,hosts.cloudrun,lambda.norpc", "-o", stdoutBin, "./sink/stdout")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build the stdout function: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code = m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const pipelineYAML = `
sinks:
  console:
    connector: stdout
    topics: [orders]
    config: {format: jsonl}
`

func needBinary(t testing.TB) {
	if stdoutBin == "" {
		if testenv.Required() {
			t.Fatal("function binaries were not built (RIVVEN_REQUIRE_SERVICES=1 needs them)")
		}
		t.Skip("function binaries are not built in -short mode")
	}
}

// runtimeAPI is an in-test Lambda Runtime API (version 2018-06-01): it
// hands out queued events on /runtime/invocation/next and records what the
// function posts to /response, /error and /runtime/init/error. It also
// takes extension registrations (Extensions API 2020-01-01), as Lambda
// does, and notes whether one came before the runtime's first /next.
type runtimeAPI struct {
	srv     *httptest.Server
	queue   chan []byte
	results chan apiResult
	initErr chan []byte
	mu      sync.Mutex
	n       int
	// extensions registered, and how many had registered when the first
	// /next came (-1 until then)
	extensions, beforeNext int
}

type apiResult struct {
	id, kind string // kind: response or error
	body     []byte
}

func newRuntimeAPI(t testing.TB) *runtimeAPI {
	a := &runtimeAPI{queue: make(chan []byte, 16), results: make(chan apiResult, 16), initErr: make(chan []byte, 1), beforeNext: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Lambda-Extension-Name") == "" {
			http.Error(w, "missing extension name", http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.extensions++
		id := fmt.Sprintf("ext-%d", a.extensions)
		a.mu.Unlock()
		w.Header().Set("Lambda-Extension-Identifier", id)
		w.Write([]byte(`{"functionName":"stdout","functionVersion":"$LATEST","handler":"bootstrap"}`))
	})
	// An extension that subscribed to no event waits here for good.
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.beforeNext < 0 {
			a.beforeNext = a.extensions
		}
		a.mu.Unlock()
		select {
		case ev := <-a.queue:
			a.mu.Lock()
			a.n++
			id := fmt.Sprintf("req-%d", a.n)
			a.mu.Unlock()
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
			w.Header().Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(time.Now().Add(30*time.Second).UnixMilli()))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:stdout")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
			w.Write(ev)
		case <-r.Context().Done():
		}
	})
	record := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			a.results <- apiResult{r.PathValue("id"), kind, b}
			w.WriteHeader(http.StatusAccepted)
		}
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", record("response"))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", record("error"))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Lambda-Runtime-Function-Error-Type") == "" {
			http.Error(w, "missing error type", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		a.initErr <- b
		w.WriteHeader(http.StatusAccepted)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *runtimeAPI) invoke(t testing.TB, event []byte) apiResult {
	t.Helper()
	a.queue <- event
	select {
	case r := <-a.results:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the function did not answer the invocation")
	}
	return apiResult{}
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startFunction(t testing.TB, env ...string) (*exec.Cmd, *lockedBuffer, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(stdoutBin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, stdout, stderr
}

func event(data string) string {
	return `{"event_type":"insert","stream":"orders","timestamp":"2025-01-01T00:00:00Z","data":` + data + `,"metadata":{}}`
}

func deliveries(prefix string, bodies ...string) []events.Delivery {
	ds := make([]events.Delivery, len(bodies))
	for i, b := range bodies {
		ds[i] = events.Delivery{ID: fmt.Sprintf("%s-%d", prefix, i), Value: []byte(b), Attempt: 1, Time: time.Unix(1700000000, 0),
			Topic: "orders", Partition: int32(i % 2), Offset: int64(100 + i), Group: "g"}
	}
	return ds
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLambdaBootstrap(t *testing.T) {
	needBinary(t)
	api := newRuntimeAPI(t)
	start := time.Now()
	cmd, stdout, stderr := startFunction(t, "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.srv.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME=stdout", "RIVVEN_PIPELINE="+pipelineYAML, "RIVVEN_LOG_LEVEL=warn")

	// SQS: exactly the malformed message is reported.
	sqs := events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:123456789012:orders"},
		deliveries("sqs", event(`{"n":1}`), `{"event_type": "insert", "data": `, event(`{"n":2}`)))
	r := api.invoke(t, mustJSON(t, sqs))
	t.Logf("cold path (exec → first SQS batch answered): %v", time.Since(start))
	if r.kind != "response" || string(r.body) != `{"batchItemFailures":[{"itemIdentifier":"sqs-1"}]}` {
		t.Fatalf("sqs: %s %s\nstderr: %s", r.kind, r.body, stderr)
	}
	// The extension that enables SIGTERM registers while the pipeline
	// starts, and before the first /next ends the init phase.
	api.mu.Lock()
	if api.beforeNext != 1 {
		t.Errorf("extensions registered before the first /next: %d, want 1", api.beforeNext)
	}
	api.mu.Unlock()

	// SQS FIFO: the failed message and every later one of its group.
	fifo := events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:123456789012:orders.fifo"},
		deliveries("fifo", event(`{"n":3}`), `not json`, event(`{"n":4}`), event(`{"n":5}`)))
	r = api.invoke(t, mustJSON(t, fifo))
	if want := `{"batchItemFailures":[{"itemIdentifier":"fifo-1"},{"itemIdentifier":"fifo-2"},{"itemIdentifier":"fifo-3"}]}`; string(r.body) != want {
		t.Fatalf("fifo: %s, want %s", r.body, want)
	}

	// Kinesis: the lowest failed sequence number only ("998" < "1001"
	// numerically, not as text).
	kd := deliveries("k", event(`{"n":6}`), `bad`, `bad`)
	kd[0].ID, kd[1].ID, kd[2].ID = "997", "1001", "998"
	kin := events.NewKinesisEvent(events.KinesisSource{StreamARN: "arn:aws:kinesis:eu-west-1:123456789012:stream/orders", ShardID: "shardId-000000000000"}, kd)
	r = api.invoke(t, mustJSON(t, kin))
	if want := `{"batchItemFailures":[{"itemIdentifier":"998"}]}`; string(r.body) != want {
		t.Fatalf("kinesis: %s, want %s", r.body, want)
	}

	// Kafka: per topic-partition, the lowest failed offset, as an object.
	kf := deliveries("kafka", event(`{"n":7}`), `bad`, `bad`, `bad`)
	for i := range kf {
		kf[i].ID = fmt.Sprintf("orders-%d-%d", kf[i].Partition, kf[i].Offset)
	}
	kafka := events.NewKafkaEvent(events.KafkaSource{ClusterARN: "arn:aws:kafka:eu-west-1:123456789012:cluster/c/1"}, kf)
	r = api.invoke(t, mustJSON(t, kafka))
	if want := `{"batchItemFailures":[{"itemIdentifier":{"topic-partition":"orders-0","offset":102}},{"itemIdentifier":{"topic-partition":"orders-1","offset":101}}]}`; string(r.body) != want {
		t.Fatalf("kafka: %s, want %s", r.body, want)
	}

	// Not a batch trigger: a function error, the trigger retries.
	r = api.invoke(t, []byte(`{"Records":[{"eventSource":"aws:s3"}]}`))
	if r.kind != "error" || !bytes.Contains(r.body, []byte("aws:s3")) {
		t.Fatalf("unknown event: %s %s", r.kind, r.body)
	}

	// What was written, and the metrics as EMF lines.
	out := stdout.String()
	for n := 1; n <= 7; n++ {
		// n=4 and n=5 follow the broken FIFO message in its message group:
		// held back (reported failed, not written) to keep the group's order.
		want := 1
		if n == 4 || n == 5 {
			want = 0
		}
		if c := strings.Count(out, fmt.Sprintf(`"data":{"n":%d}`, n)); c != want {
			t.Errorf("event n=%d written %d times, want %d\n%s", n, c, want, out)
		}
	}
	if !strings.Contains(out, `"CloudWatchMetrics":[{"Namespace":"RivvenConnect"`) || !strings.Contains(out, `"FunctionName":"stdout"`) {
		t.Errorf("no EMF metrics on stdout:\n%s", out)
	}
	// Why each record failed is in the function's log (CloudWatch Logs
	// reads stderr): its id and reason.
	for _, want := range []string{"sqs-1: decode: rivven event: unexpected end of JSON input", "fifo-1: decode: payload is not JSON (not json)",
		"fifo-2: held back: an earlier record of ordering group g failed", "orders-1-101: decode: payload is not JSON (bad)"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, stderr)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func TestLambdaInitError(t *testing.T) {
	needBinary(t)
	for name, env := range map[string][]string{
		"no pipeline":   nil,
		"unknown field": {"RIVVEN_PIPELINE=sinks:\n  console: {connector: stdout, topics: [orders], config: {colour: red}}\n"},
		"wrong sink":    {"RIVVEN_PIPELINE=" + pipelineYAML, "RIVVEN_CONNECTOR=nope"},
	} {
		t.Run(name, func(t *testing.T) {
			api := newRuntimeAPI(t)
			cmd, _, stderr := startFunction(t, append(env, "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.srv.URL, "http://"))...)
			var body []byte
			select {
			case body = <-api.initErr:
			case <-time.After(20 * time.Second):
				t.Fatalf("no init error posted; stderr: %s", stderr)
			}
			var e struct{ ErrorMessage, ErrorType string }
			if err := json.Unmarshal(body, &e); err != nil || e.ErrorType == "" || e.ErrorMessage == "" {
				t.Fatalf("init error body %s (%v)", body, err)
			}
			err := cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], e.ErrorMessage) {
				t.Fatalf("stderr is not the one line %q:\n%s", e.ErrorMessage, stderr)
			}
		})
	}
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func TestCloudRunServer(t *testing.T) {
	needBinary(t)
	port := freePort(t)
	cmd, stdout, stderr := startFunction(t, "PORT="+port, "K_SERVICE=stdout", "RIVVEN_PIPELINE="+pipelineYAML, "RIVVEN_LOG_LEVEL=warn")
	url := "http://127.0.0.1:" + port + "/"
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not listen; stderr: %s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	send := func(body []byte, header map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	push := func(id, data string) []byte {
		return mustJSON(t, events.NewPubSubPush("projects/p/subscriptions/orders-console",
			events.Delivery{ID: id, Value: []byte(data), Attempt: 1, Time: time.Now()}))
	}
	if s := send(push("m-1", event(`{"n":1}`)), nil); !events.PushAcked(s) {
		t.Fatalf("push: %d; stderr %s", s, stderr)
	}
	if s := send(push("m-1", event(`{"n":1}`)), nil); !events.PushAcked(s) {
		t.Fatalf("redelivered push: %d", s)
	}
	if s := send(push("m-2", `{"broken":`), nil); s < 300 {
		t.Fatalf("malformed push acknowledged: %d", s)
	}
	e, _ := events.Rivven.Decode([]byte(event(`{"n":2}`)))
	structured, _ := events.CloudEvents.Append(nil, e)
	if s := send(structured, map[string]string{"Content-Type": "application/cloudevents+json"}); !events.PushAcked(s) {
		t.Fatalf("structured CloudEvent: %d", s)
	}
	binary := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "ce-3", "Ce-Source": "/orders", "Ce-Type": "rivven.orders.insert"}
	if s := send([]byte(`{"n":3}`), binary); !events.PushAcked(s) {
		t.Fatalf("binary CloudEvent: %d", s)
	}
	if s := send([]byte(`{"n":4}`), map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "/orders", "Ce-Type": "x"}); s < 300 {
		t.Fatalf("CloudEvent without id acknowledged: %d", s)
	}
	// Redelivery of the binary event: acknowledged, not written again.
	if s := send([]byte(`{"n":3}`), binary); !events.PushAcked(s) {
		t.Fatalf("binary CloudEvent again: %d", s)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr %s", err, stderr)
	}
	out := stdout.String()
	for n := 1; n <= 3; n++ {
		if c := strings.Count(out, fmt.Sprintf(`{"n":%d}`, n)); c != 1 {
			t.Errorf("n=%d written %d times:\n%s", n, c, out)
		}
	}
	// Why the malformed push failed is in the log, with its message id.
	if !strings.Contains(stderr.String(), "m-2: decode: ") {
		t.Errorf("the log does not say why m-2 failed:\n%s", stderr)
	}
	// stdout is the stdout sink's: every line is one event it wrote, and
	// nothing else (no "Serving function", no blank line per request).
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var ev struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || len(ev.Data) == 0 {
			t.Errorf("stdout line %d is not sink output: %q", i+1, line)
		}
	}
}

// BenchmarkColdPath measures a Lambda cold path: from exec of the
// bootstrap to the first SQS batch (10 Rivven events) answered through the
// Runtime API. The binary is the host-architecture build of the stdout
// function, reading an inline pipeline with the embedded state store.
func BenchmarkColdPath(b *testing.B) {
	needBinary(b)
	ds := make([]string, 10)
	for i := range ds {
		ds[i] = event(fmt.Sprintf(`{"n":%d}`, i))
	}
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		api := newRuntimeAPI(b)
		ev := mustJSON(b, events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:1:orders"}, deliveries(fmt.Sprint("b", i), ds...)))
		api.queue <- ev
		b.StartTimer()
		start := time.Now()
		cmd, _, stderr := startFunction(b, "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.srv.URL, "http://"),
			"RIVVEN_PIPELINE="+pipelineYAML, "RIVVEN_LOG_LEVEL=error")
		select {
		case r := <-api.results:
			if r.kind != "response" {
				b.Fatalf("%s: %s; stderr %s", r.kind, r.body, stderr)
			}
		case <-time.After(20 * time.Second):
			b.Fatal("no answer")
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		cmd.Process.Kill()
		cmd.Wait()
		api.srv.Close()
		b.StartTimer()
	}
	// The spread says more than the mean on a shared machine: the
	// minimum is the cold path itself, the rest is what else ran.
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[0]), "ms-min")
	b.ReportMetric(ms(took[len(took)/2]), "ms-median")
	b.ReportMetric(ms(took[len(took)-1]), "ms-max")
	b.ReportMetric(0, "ns/op")
}
