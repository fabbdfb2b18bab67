package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
)

// The tests run against pstest, the in-process Pub/Sub fake published with
// the Go client library; the connectors reach it through emulator_host,
// the same path a user's gcloud emulator takes.

const project = "test-project"

type env struct {
	srv *pstest.Server
	tr  *pubsubtopic.Transport
}

func newEnv(t *testing.T, opts ...pstest.ServerReactorOption) *env {
	t.Helper()
	srv := pstest.NewServer(opts...)
	t.Cleanup(func() { _ = srv.Close() })
	// pstest's own gRPC server keeps gRPC's 4 MB receive limit, below the
	// 10 MB Pub/Sub accepts; serve the same fake with the real limit.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(16 << 20))
	pubsubpb.RegisterPublisherServer(gs, &srv.GServer)
	pubsubpb.RegisterSubscriberServer(gs, &srv.GServer)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	srv.Addr = lis.Addr().String()
	c, err := pubsubtopic.NewClient(context.Background(), pubsubtopic.ClientConfig{ProjectID: project, EmulatorHost: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	tr := pubsubtopic.New(c)
	t.Cleanup(func() {
		tr.Close()
		_ = c.Close()
	})
	return &env{srv: srv, tr: tr}
}

func (e *env) topic(t *testing.T, name string) {
	t.Helper()
	if err := e.tr.Create(context.Background(), name, topic.Spec{}); err != nil {
		t.Fatal(err)
	}
}

// subscription creates a topic and a subscription of it.
func (e *env) subscription(t *testing.T, topicName, sub string, ordered bool) {
	t.Helper()
	e.topic(t, topicName)
	if err := e.tr.CreateSubscription(context.Background(), pubsubtopic.Subscription{Topic: topicName, Name: sub, Ordered: ordered}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) source(t *testing.T, mod func(*SourceConfig)) *Source {
	t.Helper()
	cfg, ps := spec.DecodeString[SourceConfig](fmt.Sprintf("project_id: %s\nsubscription_id: sub\nemulator_host: %s\n", project, e.srv.Addr), "")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if mod != nil {
		mod(cfg)
	}
	s, err := newSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// acks returns how often each message (by data) was acknowledged and
// delivered, as pstest counts it.
func (e *env) counts() (acks, deliveries map[string]int) {
	acks, deliveries = map[string]int{}, map[string]int{}
	for _, m := range e.srv.Messages() {
		acks[string(m.Data)] = m.Acks
		deliveries[string(m.Data)] = m.Deliveries
	}
	return acks, deliveries
}

// collect reads until want events arrived, then stops the source.
func collect(t *testing.T, s *Source, want int, check func([]*events.Event)) []*events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*events.Event
	err := s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		if check != nil {
			check(b)
		}
		got = append(got, b...)
		if len(got) >= want {
			cancel()
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < want {
		t.Fatalf("got %d events, want %d", len(got), want)
	}
	return got
}

func TestRegistered(t *testing.T) {
	for _, tc := range []struct {
		kind catalog.Kind
		name string
	}{{catalog.Source, "pubsub-source"}, {catalog.Source, "pubsub"}, {catalog.Sink, "pubsub-sink"}} {
		e, ok := catalog.Lookup(tc.kind, tc.name)
		if !ok || e.Category != catalog.Messaging || len(e.Metrics) == 0 {
			t.Errorf("%s %s: %+v %v", tc.kind, tc.name, e, ok)
		}
	}
}

func TestSourceEventsAndAttributes(t *testing.T) {
	e := newEnv(t)
	e.subscription(t, "events", "sub", false)
	full := "projects/" + project + "/topics/events"
	e.srv.Publish(full, []byte(`{"id":1,"name":"a"}`), map[string]string{"origin": "test", "kind": "json"})
	e.srv.PublishOrdered(full, []byte("plain text"), nil, "customer-7")
	e.srv.Publish(full, []byte{0xff, 0x00, 0xfe}, map[string]string{"kind": "binary"})

	byData := map[string]*events.Event{}
	for _, ev := range collect(t, e.source(t, nil), 3, nil) {
		d, _ := ev.Data.AppendJSON(nil)
		byData[string(d)] = ev
	}
	js := byData[`{"id":1,"name":"a"}`]
	text := byData[`"plain text"`]
	bin := byData[`"/wD+"`]
	if js == nil || text == nil || bin == nil {
		t.Fatalf("events by data: %v", byData)
	}
	attrs, _ := js.Metadata.Get("attributes")
	var got map[string]string
	if err := json.Unmarshal(attrs, &got); err != nil || got["origin"] != "test" || got["kind"] != "json" {
		t.Errorf("attributes %s", attrs)
	}
	if js.Type != events.Record || js.Stream != "sub" || js.Metadata.Position == "" || js.Timestamp.IsZero() || time.Since(js.Timestamp) > time.Minute {
		t.Errorf("event %+v", js)
	}
	if id, _ := js.Metadata.Get("message_id"); string(id) != `"`+js.Metadata.Position+`"` {
		t.Errorf("message_id %s, position %s", id, js.Metadata.Position)
	}
	if js.Key != nil {
		t.Errorf("a message without ordering key has key %s", js.Key)
	}
	if string(text.Key) != `"customer-7"` {
		t.Errorf("ordering key → key: %s", text.Key)
	}
	if ok, _ := text.Metadata.Get("ordering_key"); string(ok) != `"customer-7"` {
		t.Errorf("ordering_key metadata %s", ok)
	}
	if enc, _ := bin.Metadata.Get("payload_encoding"); string(enc) != `"base64"` {
		t.Errorf("binary payload_encoding %s", enc)
	}
	if _, ok := text.Metadata.Get("attributes"); ok {
		t.Error("a message without attributes has attributes metadata")
	}

	// include_attributes: false keeps them out.
	e.srv.Publish(full, []byte(`{"id":2}`), map[string]string{"origin": "test"})
	ev := collect(t, e.source(t, func(c *SourceConfig) { c.IncludeAttributes = false }), 1, nil)[0]
	if _, ok := ev.Metadata.Get("attributes"); ok {
		t.Errorf("include_attributes false: %v", ev.Metadata.Extra)
	}
}

// TestSourceAcksOnlyAfterPublish: a failed Emit acknowledges nothing and
// the messages come again (nacked: at once, not after the deadline).
func TestSourceAcksOnlyAfterPublish(t *testing.T) {
	e := newEnv(t)
	e.subscription(t, "events", "sub", false)
	for i := range 5 {
		e.srv.Publish("projects/"+project+"/topics/events", []byte(fmt.Sprintf(`{"n":%d}`, i)), nil)
	}
	s := e.source(t, nil)
	boom := errors.New("downstream unavailable")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var seen int
	err := s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		seen += len(b)
		return boom
	}))
	if !errors.Is(err, boom) {
		t.Fatalf("Read after a failed emit: %v", err)
	}
	acks, _ := e.counts()
	for d, n := range acks {
		if n != 0 {
			t.Errorf("%s acked %d times although its batch was never published", d, n)
		}
	}
	if seen == 0 {
		t.Fatal("nothing was emitted")
	}
	// The next Read gets all five (ack deadline is 60s: only a nack makes
	// them come back within the test's timeout).
	got := collect(t, s, 5, nil)
	acks, deliveries := e.counts()
	redelivered := 0
	for d, n := range acks {
		if n != 1 {
			t.Errorf("%s acked %d times, want 1", d, n)
		}
		if deliveries[d] > 1 {
			redelivered++
		}
	}
	if redelivered != seen || len(got) != 5 {
		t.Errorf("%d redelivered, %d in the failed batch; %d events", redelivered, seen, len(got))
	}
}

// TestSourceCancelBeforePublish: a source stopped while its batch is being
// published acknowledges nothing; the batch comes again.
func TestSourceCancelBeforePublish(t *testing.T) {
	e := newEnv(t)
	e.subscription(t, "events", "sub", false)
	for i := range 3 {
		e.srv.Publish("projects/"+project+"/topics/events", []byte(fmt.Sprintf(`{"n":%d}`, i)), nil)
	}
	s := e.source(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, nil, connector.EmitterFunc(func(ctx context.Context, b []*events.Event) error {
			cancel() // killed while publishing
			<-ctx.Done()
			return ctx.Err()
		}))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
	for _, m := range e.srv.Messages() {
		if m.Acks != 0 {
			t.Errorf("%s acked although never published", m.Data)
		}
		// Handed back (deadline 0) rather than left to time out.
		if n := len(m.Modacks); n == 0 || m.Modacks[n-1].AckDeadline != 0 {
			t.Errorf("%s not nacked: modacks %+v, deliveries %d", m.Data, m.Modacks, m.Deliveries)
		}
	}
	collect(t, s, 3, nil)
	acks, _ := e.counts()
	for d, n := range acks {
		if n != 1 {
			t.Errorf("%s acked %d times after the second read", d, n)
		}
	}
}

// TestSourceFlowControl: never more messages in flight than
// max_outstanding_messages, whatever max_messages says; with a byte limit
// no pull starts while the limit is reached.
func TestSourceFlowControl(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mod       func(*SourceConfig)
		maxInFlit int
	}{
		{"messages", func(c *SourceConfig) { c.MaxMessages = 10; c.FlowControl.MaxOutstandingMessages = 3 }, 3},
		{"bytes", func(c *SourceConfig) { c.MaxMessages = 2; c.FlowControl.MaxOutstandingBytes = 1 }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.subscription(t, "events", "sub", false)
			for i := range 12 {
				e.srv.Publish("projects/"+project+"/topics/events", []byte(fmt.Sprintf(`{"n":%d}`, i)), nil)
			}
			s := e.source(t, tc.mod)
			var mu sync.Mutex
			peak := 0
			collect(t, s, 12, func(b []*events.Event) {
				// While Emit runs the source holds everything it pulled
				// and did not acknowledge; the fake sees it outstanding.
				out := 0
				for _, m := range e.srv.Messages() {
					if m.Deliveries > 0 && m.Acks == 0 {
						out++
					}
				}
				mu.Lock()
				peak = max(peak, out)
				mu.Unlock()
				if out > tc.maxInFlit || len(b) > tc.maxInFlit {
					t.Errorf("%d messages outstanding, batch of %d; limit %d", out, len(b), tc.maxInFlit)
				}
			})
			if peak == 0 {
				t.Error("nothing was outstanding during an emit")
			}
		})
	}
}

// TestSourceOrderingKeys: an ordered subscription's messages reach Emit in
// publish order per key, keyed by their ordering key.
func TestSourceOrderingKeys(t *testing.T) {
	e := newEnv(t)
	e.subscription(t, "events", "sub", true)
	const n = 8
	for i := range n {
		for _, k := range []string{"a", "b", "c"} {
			e.srv.PublishOrdered("projects/"+project+"/topics/events", []byte(fmt.Sprintf(`{"k":%q,"i":%d}`, k, i)), nil, k)
		}
	}
	got := collect(t, e.source(t, nil), 3*n, nil)
	next := map[string]int{}
	for _, ev := range got {
		var d struct {
			K string
			I int
		}
		raw, _ := ev.Data.AppendJSON(nil)
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if string(ev.Key) != `"`+d.K+`"` {
			t.Errorf("event of key %s has key %s", d.K, ev.Key)
		}
		if d.I != next[d.K] {
			t.Fatalf("key %s: got %d, want %d (order %s)", d.K, d.I, next[d.K], raw)
		}
		next[d.K]++
	}
}

// TestSourceExtendsLeases: messages held while Emit is slow get their
// deadline extended to ack_deadline_seconds again and again, so Pub/Sub
// does not redeliver them meanwhile.
func TestSourceExtendsLeases(t *testing.T) {
	e := newEnv(t)
	e.subscription(t, "events", "sub", false)
	e.srv.Publish("projects/"+project+"/topics/events", []byte(`{"n":1}`), nil)
	s := e.source(t, func(c *SourceConfig) { c.AckDeadlineSeconds = 45 })
	s.extendEvery = 20 * time.Millisecond
	collect(t, s, 1, func([]*events.Event) {
		// Block the emit until the lease was extended twice after the
		// modack that follows the pull.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			m := e.srv.Messages()[0]
			n := 0
			for _, ma := range m.Modacks {
				if ma.AckDeadline == 45 {
					n++
				}
			}
			if n >= 3 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("the lease of a held message was not extended")
	})
	if m := e.srv.Messages()[0]; m.Acks != 1 || m.Deliveries != 1 {
		t.Errorf("acks %d deliveries %d", m.Acks, m.Deliveries)
	}
}

// ackSizes records the size of every Acknowledge request.
type ackSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (a *ackSizes) React(req any) (bool, any, error) {
	a.mu.Lock()
	a.sizes = append(a.sizes, len(req.(*pubsubpb.AcknowledgeRequest).AckIds))
	a.mu.Unlock()
	return false, nil, nil // let pstest handle it
}

// TestSourceBatchAckSize: acknowledgements go out in requests of at most
// batch_ack_size IDs.
func TestSourceBatchAckSize(t *testing.T) {
	rec := &ackSizes{}
	e := newEnv(t, pstest.ServerReactorOption{FuncName: "Acknowledge", Reactor: rec})
	e.subscription(t, "events", "sub", false)
	for i := range 7 {
		e.srv.Publish("projects/"+project+"/topics/events", []byte(fmt.Sprintf(`{"n":%d}`, i)), nil)
	}
	collect(t, e.source(t, func(c *SourceConfig) { c.BatchAckSize = 3 }), 7, nil)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	total := 0
	for _, n := range rec.sizes {
		if n > 3 || n == 0 {
			t.Errorf("acknowledge request of %d IDs (batch_ack_size 3): %v", n, rec.sizes)
		}
		total += n
	}
	if total != 7 {
		t.Errorf("acknowledged %d IDs in %v, want 7", total, rec.sizes)
	}
}

func TestSourceCheck(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, nil)
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("check of a missing subscription: %v", err)
	}
	e.subscription(t, "events", "sub", false)
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSourceMissingSubscriptionIsFatal(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.source(t, nil).Read(ctx, nil, connector.EmitterFunc(func(context.Context, []*events.Event) error { return nil }))
	if !errors.Is(err, connector.ErrFatal) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read of a missing subscription: %v", err)
	}
}

func TestSourceConfig(t *testing.T) {
	const p = "sources.pubsub.config."
	cfg, ps := spec.DecodeString[SourceConfig]("project_id: p\nsubscription_id: s\n", "sources.pubsub.config")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.MaxMessages != 100 || cfg.AckDeadlineSeconds != 60 || cfg.BatchAckSize != 50 || !cfg.IncludeAttributes ||
		cfg.FlowControl.MaxOutstandingMessages != 1000 || cfg.FlowControl.MaxOutstandingBytes != 104857600 {
		t.Errorf("defaults %+v", cfg)
	}
	for _, tc := range []struct{ yaml, path, msg string }{
		{"subscription_id: s\n", p + "project_id", "required"},
		{"project_id: p\n", p + "subscription_id", "required"},
		{"project_id: p\nsubscription_id: s\nmax_messages: 5000\n", p + "max_messages", "1000"},
		{"project_id: p\nsubscription_id: s\nack_deadline_seconds: 5\n", p + "ack_deadline_seconds", "10"},
		{"project_id: p\nsubscription_id: s\nflow_control: {max_outstanding_messages: 0}\n", p + "flow_control.max_outstanding_messages", "1"},
		{"project_id: p\nsubscription_id: s\nflow_control: {max_bytes: 1}\n", p + "flow_control.max_bytes", "unknown key"},
		{"project_id: p\nsubscription_id: s\nemulator_host: h:1\nauth: {credentials_path: /k.json}\n", p + "emulator_host", "no credentials"},
	} {
		_, ps := spec.DecodeString[SourceConfig](tc.yaml, "sources.pubsub.config")
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
}
