package main

import (
	"strings"
	"testing"
)

// Why a record failed is on stderr whichever host runs the pipeline: here
// local and invoke (run sink: TestRunSinkLogsFailuresAndBreaker; Lambda
// and Cloud Run: functions/host_test.go).

// local: a transform that cannot take a record dead-letters it, and the
// log says which record and why.
func TestLocalLogsWhyRecordsFailed(t *testing.T) {
	p := writeFile(t, `
sources:
  orders:
    connector: datagen
    topic: demo.orders
    config: {pattern: orders, events_per_second: 1000, max_events: 5, seed: 1}
sinks:
  console:
    connector: stdout
    topics: [demo.orders]
    transforms:
      - type: Cast
        config:
          specs: {status: int64}
`)
	code, _, errOut := cli(t, "local", "-c", p, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var lines int
	for _, line := range strings.Split(errOut, "\n") {
		if !strings.Contains(line, `"msg":"records failed or dead-lettered"`) {
			continue
		}
		lines++
		if !strings.Contains(line, `"dead_lettered":`) || !strings.Contains(line, `: dead-lettered: transform: Cast: field \"status\" to int64:`) {
			t.Errorf("the line lacks the count, the id or the reason: %s", line)
		}
	}
	if lines == 0 {
		t.Fatalf("no failure logged:\n%s", errOut)
	}
}

// invoke: the record that fails is named on stderr with its reason, at the
// default log level.
func TestInvokeLogsWhyRecordsFailed(t *testing.T) {
	ev := writeFile(t, `{"Records":[`+
		`{"messageId":"ok-1","body":"{\"event_type\":\"insert\",\"stream\":\"orders\",\"timestamp\":\"2025-01-01T00:00:00Z\",\"data\":{\"order_id\":1},\"metadata\":{}}","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:r:1:q","attributes":{"ApproximateReceiveCount":"1"}},`+
		`{"messageId":"bad-2","body":"{\"event_type\":","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:r:1:q","attributes":{"ApproximateReceiveCount":"1"}}]}`)
	code, out, errOut := cli(t, "invoke", "--function", "sink/stdout", "--event", ev, "-c", samples+"pipelines/quickstart.yaml")
	if code != 0 || !strings.Contains(out, `"itemIdentifier": "bad-2"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{`"msg":"records failed or dead-lettered"`, `"failed":1`, `bad-2: decode: payload is not valid JSON`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %s:\n%s", want, errOut)
		}
	}
}
