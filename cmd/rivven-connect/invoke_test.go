package main

import (
	"strings"
	"testing"
)

const samples = "../../samples/"

// invoke hands every sample envelope to the stdout function through the
// code its platform runs, and prints the function's answer.
func TestInvokeSamples(t *testing.T) {
	for file, want := range map[string]string{
		"sqs.json":               `"batchItemFailures": []`,
		"sqs-fifo.json":          `"batchItemFailures": []`,
		"kinesis.json":           `"batchItemFailures": []`,
		"kafka.json":             `"batchItemFailures": []`,
		"pubsub-push.json":       `"status": 204`,
		"cloudevent.json":        `"status": 204`,
		"cloudevents-batch.json": `"status": 204`,
	} {
		t.Run(file, func(t *testing.T) {
			code, out, errOut := cli(t, "invoke", "--function", "sink/stdout", "--event", samples+"events/"+file, "-c", samples+"pipelines/quickstart.yaml")
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			// The events reached the sink before the answer was printed.
			if i, j := strings.Index(out, `"order_id":1001`), strings.Index(out, want); i < 0 || i > j {
				t.Fatalf("event not written before the answer:\n%s", out)
			}
		})
	}
}

func TestInvokeMalformedAndErrors(t *testing.T) {
	ev := writeFile(t, `{"Records":[{"messageId":"a","body":"{\"event_type\":","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:r:1:q","attributes":{"ApproximateReceiveCount":"1"}}]}`)
	code, out, errOut := cli(t, "invoke", "--function", "sink/stdout", "--event", ev, "-c", samples+"pipelines/quickstart.yaml")
	if code != 0 || !strings.Contains(out, `"itemIdentifier": "a"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--function", "stdout"}, exitUsage, "--function must be sink/<name> or transform/<name>"},
		{[]string{"--function", "sink/nope", "--event", ev, "-c", samples + "pipelines/quickstart.yaml"}, exitUsage, `no sink named "nope"`},
		{[]string{"--function", "sink/stdout", "-c", samples + "pipelines/quickstart.yaml"}, exitUsage, "--event FILE and -c FILE are required"},
		{[]string{"--function", "sink/stdout", "--event", ev, "-c", samples + "pipelines/quickstart.yaml", "--connector", "nope"}, exitUsage, `init failed: RIVVEN_CONNECTOR: the pipeline has no sink "nope"`},
		{[]string{"--function", "sink/stdout", "--event", writeFile(t, `{"Records":[]}`), "-c", samples + "pipelines/quickstart.yaml"}, exitFailed, "invocation failed"},
	} {
		code, _, errOut := cli(t, append([]string{"invoke"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

// A transform function's output goes to the next topic; invoke prints it.
func TestInvokeTransform(t *testing.T) {
	code, out, errOut := cli(t, "invoke", "--function", "transform/Filter", "--event", samples+"events/sqs.json",
		"-c", samples+"pipelines/quickstart.yaml", "--output-topic", "demo.orders.filtered")
	if code != 0 || !strings.Contains(out, `"batchItemFailures": []`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// Filter keeps value.total > 100: order 1001 (129.5) passes.
	if !strings.Contains(errOut, "published to demo.orders.filtered:") || !strings.Contains(errOut, `"order_id":1001`) {
		t.Fatalf("stderr: %s", errOut)
	}
}
