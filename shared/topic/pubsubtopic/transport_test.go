package pubsubtopic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/topic"
)

const project = "test-project"

// fake starts pstest (the in-process Pub/Sub fake of the client library)
// and a transport connected to it.
func fake(t *testing.T, opts ...pstest.ServerReactorOption) (*pstest.Server, *Transport) {
	t.Helper()
	srv := pstest.NewServer(opts...)
	t.Cleanup(func() { _ = srv.Close() })
	c, err := NewClient(context.Background(), ClientConfig{ProjectID: project, EmulatorHost: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	tr := New(c)
	t.Cleanup(func() {
		tr.Close()
		_ = c.Close()
	})
	return srv, tr
}

func TestCreateDescribeUnknown(t *testing.T) {
	ctx := context.Background()
	_, tr := fake(t)
	if _, err := tr.Describe(ctx, "orders"); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("describe of a missing topic: %v, want ErrUnknownTopic", err)
	}
	err := tr.Produce(ctx, "orders", []topic.Message{{Value: []byte("x")}})
	if !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("produce to a missing topic: %v, want ErrUnknownTopic", err)
	}
	var pe *ProduceError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0] == nil {
		t.Fatalf("produce error does not name message 0: %#v", err)
	}
	for range 2 { // the second create finds the topic and is not an error
		if err := tr.Create(ctx, "orders", topic.Spec{Partitions: 6}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := tr.Describe(ctx, "orders")
	if err != nil || s.Partitions != 1 {
		t.Fatalf("describe: %+v %v", s, err)
	}
	if err := tr.Delete(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Describe(ctx, "orders"); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("describe after delete: %v", err)
	}
}

func TestProduceKeepsPerKeyOrderAndHeaders(t *testing.T) {
	ctx := context.Background()
	srv, tr := fake(t)
	if err := tr.Create(ctx, "events", topic.Spec{}); err != nil {
		t.Fatal(err)
	}
	var msgs []topic.Message
	for i := range 60 {
		key := []string{"a", "b", "c"}[i%3]
		msgs = append(msgs, topic.Message{
			Key:     []byte(key),
			Value:   []byte(fmt.Sprintf("%s-%02d", key, i)),
			Headers: []topic.Header{{Key: "trace-id", Value: []byte(fmt.Sprint("t", i))}, {Key: "kind", Value: []byte("test")}},
		})
	}
	// Two calls, so that the order must also hold across calls.
	if err := tr.Produce(ctx, "events", msgs[:30]); err != nil {
		t.Fatal(err)
	}
	if err := tr.Produce(ctx, "events", msgs[30:]); err != nil {
		t.Fatal(err)
	}
	stored := srv.Messages()
	if len(stored) != len(msgs) {
		t.Fatalf("stored %d messages, want %d", len(stored), len(msgs))
	}
	last := map[string]string{}
	for _, m := range stored {
		if m.OrderingKey == "" || !strings.HasPrefix(string(m.Data), m.OrderingKey+"-") {
			t.Fatalf("message %q has ordering key %q", m.Data, m.OrderingKey)
		}
		if string(m.Data) <= last[m.OrderingKey] {
			t.Fatalf("key %s: %q stored after %q", m.OrderingKey, m.Data, last[m.OrderingKey])
		}
		last[m.OrderingKey] = string(m.Data)
		i := 0
		_, _ = fmt.Sscanf(string(m.Data)[2:], "%d", &i)
		if m.Attributes["trace-id"] != fmt.Sprint("t", i) || m.Attributes["kind"] != "test" || len(m.Attributes) != 2 {
			t.Fatalf("message %q attributes %v", m.Data, m.Attributes)
		}
	}
}

func TestProduceRefusesBinaryKeysAndHeaders(t *testing.T) {
	ctx := context.Background()
	srv, tr := fake(t)
	if err := tr.Create(ctx, "bin", topic.Spec{}); err != nil {
		t.Fatal(err)
	}
	err := tr.Produce(ctx, "bin", []topic.Message{
		{Key: []byte{0xff, 0xfe}, Value: []byte("bad key")},
		{Value: []byte("good")},
		{Value: []byte("bad header"), Headers: []topic.Header{{Key: "h", Value: []byte{0xc3}}}},
		{Key: []byte(strings.Repeat("k", MaxOrderingKeyBytes+1)), Value: []byte("long key")},
	})
	var pe *ProduceError
	if !errors.As(err, &pe) || len(pe.Failed) != 3 || pe.Failed[1] != nil {
		t.Fatalf("want messages 0, 2 and 3 failed: %v", err)
	}
	if !strings.Contains(err.Error(), "message 0:") || !strings.Contains(err.Error(), "message 3:") {
		t.Fatalf("error does not name the failed messages: %v", err)
	}
	if got := srv.Messages(); len(got) != 1 || string(got[0].Data) != "good" {
		t.Fatalf("stored %v", got)
	}
}

// failKey fails every publish request holding a message with one ordering
// key: a per-message failure the real service gives, e.g., for a message
// rejected by a topic schema.
type failKey struct{ key string }

func (f failKey) React(req any) (bool, any, error) {
	for _, m := range req.(*pubsubpb.PublishRequest).Messages {
		if m.OrderingKey == f.key {
			return true, nil, status.Error(codes.InvalidArgument, "rejected by the test")
		}
	}
	return false, nil, nil
}

func TestProduceFailureNamesMessagesAndResumesKey(t *testing.T) {
	ctx := context.Background()
	srv, tr := fake(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: failKey{"poison"}})
	if err := tr.Create(ctx, "mixed", topic.Spec{}); err != nil {
		t.Fatal(err)
	}
	err := tr.Produce(ctx, "mixed", []topic.Message{
		{Key: []byte("ok"), Value: []byte("1")},
		{Key: []byte("poison"), Value: []byte("2")},
		{Key: []byte("ok"), Value: []byte("3")},
	})
	var pe *ProduceError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[1] == nil {
		t.Fatalf("want only message 1 failed: %v", err)
	}
	if resilience.ClassOf(pe.Failed[1]) != resilience.Schema {
		t.Fatalf("InvalidArgument classified %v", resilience.ClassOf(pe.Failed[1]))
	}
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("stored %d, want 2", n)
	}
	// The key was resumed: once the cause is gone its messages go through.
	// (Here the cause stays, so a fresh key shows the publisher is healthy
	// and the paused key is accepted again rather than refused locally.)
	err = tr.Produce(ctx, "mixed", []topic.Message{{Key: []byte("poison"), Value: []byte("4")}})
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "rejected by the test") {
		t.Fatalf("a resumed key should reach the server again, got %v", err)
	}
}

func TestCreateSubscription(t *testing.T) {
	ctx := context.Background()
	_, tr := fake(t)
	for _, name := range []string{"work", "work-dlq"} {
		if err := tr.Create(ctx, name, topic.Spec{}); err != nil {
			t.Fatal(err)
		}
	}
	pull := Subscription{Topic: "work", Name: "sink-pull", AckDeadline: 30 * time.Second, Ordered: true, DeadLetterTopic: "work-dlq", MaxDeliveryAttempts: 7}
	push := Subscription{Topic: "work", Name: "sink-push", PushEndpoint: "https://sink.example.com/", DeadLetterTopic: "work-dlq"}
	for _, s := range []Subscription{pull, push, pull} { // again: idempotent
		if err := tr.CreateSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tr.c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: FullName(project, "subscriptions", "sink-pull")})
	if err != nil {
		t.Fatal(err)
	}
	if !got.EnableMessageOrdering || got.AckDeadlineSeconds != 30 || got.DeadLetterPolicy.GetMaxDeliveryAttempts() != 7 ||
		got.DeadLetterPolicy.GetDeadLetterTopic() != FullName(project, "topics", "work-dlq") {
		t.Fatalf("pull subscription: %v", got)
	}
	got, err = tr.c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: FullName(project, "subscriptions", "sink-push")})
	if err != nil {
		t.Fatal(err)
	}
	if got.PushConfig.GetPushEndpoint() != "https://sink.example.com/" || got.DeadLetterPolicy == nil {
		t.Fatalf("push subscription: %v", got)
	}
	err = tr.CreateSubscription(ctx, Subscription{Topic: "nope", Name: "x"})
	if !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("subscription of a missing topic: %v", err)
	}
	for _, bad := range []Subscription{
		{Topic: "work", Name: "b1", MaxDeliveryAttempts: 5},
		{Topic: "work", Name: "b2", DeadLetterTopic: "work-dlq", MaxDeliveryAttempts: 200},
		{Topic: "work", Name: "b3", AckDeadline: time.Second},
	} {
		if err := tr.CreateSubscription(ctx, bad); err == nil {
			t.Fatalf("%+v was accepted", bad)
		}
	}
}

func TestCredentialsOption(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := CredentialsOption(write("sa.json", `{"type":"service_account","private_key":"SECRET-KEY"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := CredentialsOption(write("odd.json", `{"type":"mystery","private_key":"SECRET-KEY"}`))
	if err == nil || !strings.Contains(err.Error(), "allowed: service_account") || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("unsupported type: %v", err)
	}
	_, err = CredentialsOption(write("bad.json", `private_key: SECRET-KEY`))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("not JSON: %v", err)
	}
	if _, err := CredentialsOption(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}
}
