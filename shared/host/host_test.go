package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/transport"
)

// Test-only components: a sink that keeps what it gets and a transform
// that marks events (and rejects those asking for it), so the host is
// tested without depending on which real connectors exist.
type collectConfig struct {
	Tag string `yaml:"tag" doc:"Anything."`
}

var collected struct {
	sync.Mutex
	events []*events.Event
}

type collectSink struct{}

func (collectSink) Write(_ context.Context, b []*events.Event) error {
	collected.Lock()
	defer collected.Unlock()
	collected.events = append(collected.events, b...)
	return nil
}

type markConfig struct {
	Field string `yaml:"field" default:"marked" doc:"Field to set."`
}

func init() {
	catalog.RegisterSink[collectConfig](catalog.Meta{Name: "test-collect", Category: catalog.Utility, Description: "test sink"},
		func(context.Context, *collectConfig) (pipeline.Sink, error) { return collectSink{}, nil })
	catalog.RegisterTransform[markConfig](catalog.Meta{Name: "test-mark", Category: catalog.Transforms, Description: "test transform"},
		func(_ context.Context, c *markConfig) (pipeline.Transform, error) {
			return pipeline.PerEvent(func(_ context.Context, e *events.Event) ([]*events.Event, error) {
				row, err := e.Data.Mutable()
				if err != nil {
					return nil, err
				}
				m, ok := row.(map[string]any)
				if !ok {
					return nil, errors.New("data is not an object")
				}
				if m["reject"] == true {
					return nil, errors.New("rejected by test-mark")
				}
				m[c.Field] = true
				return []*events.Event{e}, nil
			}), nil
		})
}

const testPipeline = `
sources:
  orders: {connector: somewhere-else, topic: orders}
sinks:
  out:
    connector: test-collect
    topics: [orders]
  lake:
    connector: s3-not-linked-here
    topics: [orders.marked]
    transforms:
      - type: test-mark
        config: {field: seen}
`

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func initWith(t *testing.T, fn Function, env map[string]string, producer topic.Producer) (*Runtime, error) {
	t.Helper()
	rt, err := Init(context.Background(), fn, Options{Lookup: envOf(env), Producer: producer, Log: io.Discard})
	if err == nil {
		t.Cleanup(func() { rt.Close(context.Background()) })
	}
	return rt, err
}

var sinkFn = Function{Kind: "sink", Connector: "test-collect"}

func TestInitErrorsAreOneClearLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(testPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	two := "sinks:\n  a: {connector: test-collect, topics: [x]}\n  b: {connector: test-collect, topics: [y]}\n"
	cases := []struct {
		name string
		fn   Function
		env  map[string]string
		want string
	}{
		{"no pipeline", sinkFn, map[string]string{}, "RIVVEN_PIPELINE: not set; give the pipeline file's path"},
		{"bad payload", sinkFn, map[string]string{"RIVVEN_PIPELINE": file, "RIVVEN_PAYLOAD": "avro"}, `RIVVEN_PAYLOAD: unknown payload format "avro" (allowed: auto, rivven, debezium, cloudevents, raw)`},
		{"bad level", sinkFn, map[string]string{"RIVVEN_PIPELINE": file, "RIVVEN_LOG_LEVEL": "loud"}, "RIVVEN_LOG_LEVEL"},
		{"missing file", sinkFn, map[string]string{"RIVVEN_PIPELINE": filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"no loader", sinkFn, map[string]string{"RIVVEN_PIPELINE": "s3://b/p.yaml"}, "cannot read s3:// URLs (it reads: none); build the function with the tag loaders.s3 (or without -tags custom)"},
		{"invalid file", sinkFn, map[string]string{"RIVVEN_PIPELINE": "sinks:\n  out: {connector: test-collect, topic: [x]}\n"}, `RIVVEN_PIPELINE (inline): sinks.out.topics (line 2:8): required key "topics" is missing; sinks.out.topic (line 2:34): unknown key`},
		{"unset var", sinkFn, map[string]string{"RIVVEN_PIPELINE": "sinks:\n  out: {connector: test-collect, topics: ['${TOPIC}']}\n"}, "TOPIC"},
		{"no such sink", sinkFn, map[string]string{"RIVVEN_PIPELINE": file, "RIVVEN_CONNECTOR": "nope"}, `RIVVEN_CONNECTOR: the pipeline has no sink "nope" (sinks: lake, out)`},
		{"other connector", sinkFn, map[string]string{"RIVVEN_PIPELINE": file, "RIVVEN_CONNECTOR": "sinks.lake"}, `sinks.lake uses connector "s3-not-linked-here", and this is the test-collect function`},
		{"ambiguous", sinkFn, map[string]string{"RIVVEN_PIPELINE": two}, "not set, and sinks a, b all use connector \"test-collect\""},
		{"unlinked transform in own chain", sinkFn, map[string]string{"RIVVEN_PIPELINE": "sinks:\n  out:\n    connector: test-collect\n    topics: [x]\n    transforms: [{type: Elsewhere}]\n"},
			`sinks.out uses connectors this sink/test-collect function does not link: sinks.out.transforms[0]: transform "Elsewhere"`},
		{"transform without output topic", Function{"transform", "test-mark"}, map[string]string{"RIVVEN_PIPELINE": file}, "RIVVEN_OUTPUT_TOPIC: required"},
		{"transform without producer", Function{"transform", "test-mark"}, map[string]string{"RIVVEN_PIPELINE": file, "RIVVEN_OUTPUT_TOPIC": "orders.marked"}, "the pipeline has no broker block (broker.transport: kafka, sqs or pubsub)"},
		{"transport not linked", Function{"transform", "test-mark"}, map[string]string{"RIVVEN_PIPELINE": testPipeline + "broker: {transport: sqs}\n", "RIVVEN_OUTPUT_TOPIC": "orders.marked"}, "broker.transport: sqs is not linked into this binary (linked: none; the tag transports.sqs links it)"},
		{"redis down", sinkFn, map[string]string{"RIVVEN_PIPELINE": file, "REDIS_URL": "redis://127.0.0.1:1"}, "unreachable"},
		{"not linked", Function{"sink", "s3"}, map[string]string{"RIVVEN_PIPELINE": file}, `does not link the sink connector "s3"`},
	}
	// As a build with -tags custom and none of the loaders.* and
	// transports.* tags: the cases above check what such a build says.
	t.Cleanup(transport.Hide(transport.Linked()...))
	loadersMu.Lock()
	saved := loaders
	loaders = map[string]Loader{}
	loadersMu.Unlock()
	t.Cleanup(func() { loadersMu.Lock(); loaders = saved; loadersMu.Unlock() })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := initWith(t, c.fn, c.env, nil)
			if err == nil {
				t.Fatal("Init succeeded")
			}
			if line := OneLine(err); !strings.Contains(line, c.want) {
				t.Fatalf("error %q\nwant it to contain %q", line, c.want)
			}
		})
	}
}

func TestInitFindsItsComponent(t *testing.T) {
	// The pipeline names connectors this binary does not link (a source
	// and another sink): they belong to other functions and are fine.
	rt, err := initWith(t, sinkFn, map[string]string{"RIVVEN_PIPELINE": testPipeline}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Component != "sinks.out" || rt.Adapter.Payload != "auto" {
		t.Fatalf("component %q payload %q", rt.Component, rt.Adapter.Payload)
	}
}

func sqsEvent(t *testing.T, bodies ...string) []byte {
	t.Helper()
	ds := make([]events.Delivery, len(bodies))
	for i, b := range bodies {
		ds[i] = events.Delivery{ID: fmt.Sprintf("m-%d", i), Value: []byte(b), Attempt: 1, Time: time.Unix(1700000000, 0)}
	}
	raw, _ := json.Marshal(events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:1:orders-q"}, ds))
	return raw
}

func rivvenEvent(data string) string {
	return `{"event_type":"insert","stream":"orders","timestamp":"2025-01-01T00:00:00Z","data":` + data + `,"metadata":{}}`
}

// A transform function runs its step, publishes the output to the next
// topic through the producer and reports per-record failures like a sink.
func TestTransformFunction(t *testing.T) {
	mem := topic.NewMemory()
	mem.AutoCreate = true
	rt, err := initWith(t, Function{"transform", "test-mark"}, map[string]string{
		"RIVVEN_PIPELINE": testPipeline, "RIVVEN_OUTPUT_TOPIC": "orders.marked",
	}, mem)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Component != "sinks.lake.transforms[0]" {
		t.Fatalf("component %q", rt.Component)
	}
	resp, err := rt.Adapter.InvokeLambda(context.Background(), sqsEvent(t, rivvenEvent(`{"id":1}`), rivvenEvent(`{"id":2,"reject":true}`), `{"broken":`))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != `{"batchItemFailures":[]}` {
		t.Fatalf("response %s", resp)
	}
	out, _ := mem.Fetch(context.Background(), "orders.marked", 0, 0, 10)
	if len(out) != 1 || !bytes.Contains(out[0].Value, []byte(`"seen":true`)) || !bytes.Contains(out[0].Value, []byte(`"id":1`)) {
		t.Fatalf("published %d: %s", len(out), out[0].Value)
	}
	// The step's entry topic (orders.marked, the only one) names the
	// dead-letter topic: one rejected, one undecodable.
	if n := mem.HighWatermark("orders.marked.dlq", 0); n != 2 {
		t.Fatalf("%d dead letters, want 2", n)
	}

	// A broker that refuses everything: every record is reported failed.
	rt2, err := initWith(t, Function{"transform", "test-mark"}, map[string]string{
		"RIVVEN_PIPELINE": testPipeline, "RIVVEN_OUTPUT_TOPIC": "orders.marked",
	}, failingProducer{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = rt2.Adapter.InvokeLambda(context.Background(), sqsEvent(t, rivvenEvent(`{"id":1}`), rivvenEvent(`{"reject":true}`)))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != `{"batchItemFailures":[{"itemIdentifier":"m-0"},{"itemIdentifier":"m-1"}]}` {
		t.Fatalf("response %s", resp)
	}
}

type failingProducer struct{}

func (failingProducer) Produce(context.Context, string, []topic.Message) error {
	return errors.New("broker down")
}

func TestDetect(t *testing.T) {
	for env, want := range map[string]Platform{
		"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001": Lambda, "K_SERVICE=svc": CloudRun, "PORT=8080": CloudRun, "": None,
	} {
		k, v, _ := strings.Cut(env, "=")
		if got := Detect(envOf(map[string]string{k: v})); got != want {
			t.Errorf("%s: %q, want %q", env, got, want)
		}
	}
	var out bytes.Buffer
	if code := Run(context.Background(), sinkFn, Options{Lookup: envOf(nil)}, io.Discard, &out); code != 2 ||
		!strings.Contains(out.String(), "rivven-connect invoke --function sink/test-collect") || !strings.Contains(out.String(), "rivven-connect local") {
		t.Fatalf("exit %d: %s", code, out.String())
	}
}
