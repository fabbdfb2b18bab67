package pubsub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
)

// TestPipelineSourceToSink runs both connectors in the engine's local
// emulator, the sink fed through Pub/Sub push envelopes: every message of
// the input subscription reaches the output topic unchanged, and each is
// acknowledged exactly once, after it was published to the engine's topic.
func TestPipelineSourceToSink(t *testing.T) {
	e := newEnv(t)
	e.subscription(t, "in", "sub", false)
	e.topic(t, "out")
	const n = 40
	want := map[string]bool{}
	for i := range n {
		d := fmt.Sprintf(`{"i":%d,"pad":"%0*d"}`, i, i%7*50, 0)
		want[d] = true
		e.srv.Publish("projects/"+project+"/topics/in", []byte(d), map[string]string{"n": fmt.Sprint(i)})
	}
	doc := fmt.Sprintf(`
sources:
  ps:
    connector: pubsub-source
    topic: t
    config: {project_id: %[1]s, subscription_id: sub, emulator_host: %[2]q, max_messages: 7}
sinks:
  out:
    connector: pubsub-sink
    topics: [t]
    config: {project_id: %[1]s, topic_id: out, emulator_host: %[2]q, body_format: raw, compression: none}
`, project, e.srv.Addr)
	p, err := config.Parse([]byte(doc), catalog.Default, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := pipeline.NewLocal(ctx, p, catalog.Builder{}, pipeline.LocalOptions{
		Store: store, Trigger: "pubsub", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Stop (like Ctrl-C) once everything went through: the source runs
	// until stopped, as a subscription has no end.
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if ctx.Err() != nil {
				return
			}
			acked, out := 0, 0
			for _, m := range e.srv.Messages() {
				if m.Acks > 0 {
					acked++
				}
				if m.Topic == "projects/"+project+"/topics/out" {
					out++
				}
			}
			if acked == n && out == n {
				cancel()
				return
			}
		}
	}()
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var in, out int
	for _, m := range e.srv.Messages() {
		switch m.Topic {
		case "projects/" + project + "/topics/in":
			in++
			if m.Acks != 1 {
				t.Errorf("input %s acked %d times", m.Data, m.Acks)
			}
		case "projects/" + project + "/topics/out":
			out++
			if !want[string(m.Data)] {
				t.Errorf("output %s was not an input", m.Data)
			}
			delete(want, string(m.Data))
		}
	}
	if in != n || out != n || len(want) != 0 {
		t.Fatalf("in %d, out %d, missing %d", in, out, len(want))
	}
}
