package pubsub

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

func (e *env) sink(t *testing.T, extra string) *Sink {
	t.Helper()
	cfg, ps := spec.DecodeString[SinkConfig](fmt.Sprintf("project_id: %s\ntopic_id: out\nemulator_host: %s\n%s", project, e.srv.Addr, extra), "")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	s, err := newSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// stored returns what pstest holds, in publish order.
func (e *env) stored() []*pstest.Message {
	msgs := e.srv.Messages()
	sort.SliceStable(msgs, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(msgs[i].ID, "m"))
		b, _ := strconv.Atoi(strings.TrimPrefix(msgs[j].ID, "m"))
		return a < b
	})
	return msgs
}

func record(stream, data string) *events.Event {
	e := events.New(events.Record, stream, events.RawPayload([]byte(data)))
	e.Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.Metadata.Position = "p-" + data
	return e
}

// metricsCtx returns a context whose runtime records metrics, and a
// function reading one of them.
func metricsCtx() (context.Context, func(string) uint64) {
	reg := telemetry.NewRegistry()
	rt := &connector.Runtime{Name: "pubsub", Metrics: reg}
	return connector.WithRuntime(context.Background(), rt), func(name string) uint64 {
		return rt.Counter(name, "").Value()
	}
}

func TestSinkBodyFormats(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   func(e *events.Event) string
	}{
		{"json", func(e *events.Event) string { b, _ := events.Rivven.Append(nil, e); return string(b) }},
		{"raw", func(*events.Event) string { return `{"id":1,"name":"x"}` }},
		{"base64", func(*events.Event) string { return base64.StdEncoding.EncodeToString([]byte(`{"id":1,"name":"x"}`)) }},
	} {
		t.Run(tc.format, func(t *testing.T) {
			e := newEnv(t)
			e.topic(t, "out")
			s := e.sink(t, "body_format: "+tc.format+"\n")
			ev := record("orders", `{"id":1,"name":"x"}`)
			ctx, metric := metricsCtx()
			if err := s.Write(ctx, []*events.Event{ev}); err != nil {
				t.Fatal(err)
			}
			got := e.stored()
			if len(got) != 1 || string(got[0].Data) != tc.want(ev) || len(got[0].Attributes) != 0 {
				t.Fatalf("stored %q %v, want %q", got[0].Data, got[0].Attributes, tc.want(ev))
			}
			if tc.format == "json" {
				back, err := events.Rivven.Decode(got[0].Data)
				if err != nil || back.Stream != "orders" || back.Metadata.Position != ev.Metadata.Position {
					t.Fatalf("json body does not decode to the event: %+v %v", back, err)
				}
			}
			if metric(metricPublished) != 1 || metric(metricBatches) != 1 || metric(metricBytes) != uint64(len(got[0].Data)) {
				t.Errorf("metrics published %d batches %d bytes %d", metric(metricPublished), metric(metricBatches), metric(metricBytes))
			}
		})
	}
	// raw of a string payload (what a source makes of non-JSON text) is
	// the text itself.
	e := newEnv(t)
	e.topic(t, "out")
	if err := e.sink(t, "body_format: raw\n").Write(context.Background(), []*events.Event{record("s", `"plain text"`)}); err != nil {
		t.Fatal(err)
	}
	if got := e.stored(); string(got[0].Data) != "plain text" {
		t.Fatalf("raw string body %q", got[0].Data)
	}
}

func TestSinkCompressionRoundTrip(t *testing.T) {
	for _, codec := range []string{"gzip", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			e := newEnv(t)
			e.topic(t, "out")
			s := e.sink(t, "compression: "+codec+"\nbody_format: raw\n")
			body := `{"text":"` + strings.Repeat("compress me ", 200) + `"}`
			ctx, metric := metricsCtx()
			if err := s.Write(ctx, []*events.Event{record("s", body)}); err != nil {
				t.Fatal(err)
			}
			m := e.stored()[0]
			if m.Attributes[AttrCompression] != codec {
				t.Fatalf("attributes %v", m.Attributes)
			}
			var plain []byte
			var err error
			if codec == "gzip" {
				var r *gzip.Reader
				if r, err = gzip.NewReader(bytes.NewReader(m.Data)); err == nil {
					plain, err = io.ReadAll(r)
				}
			} else {
				var d *zstd.Decoder
				if d, err = zstd.NewReader(nil); err == nil {
					plain, err = d.DecodeAll(m.Data, nil)
					d.Close()
				}
			}
			if err != nil || string(plain) != body {
				t.Fatalf("decompressed %d bytes (%v), want the %d-byte body", len(plain), err, len(body))
			}
			if saved := metric(metricCompression); saved != uint64(len(body)-len(m.Data)) || saved == 0 {
				t.Errorf("compression savings %d, body %d, stored %d", saved, len(body), len(m.Data))
			}
		})
	}
}

func TestSinkOrderingKeyModes(t *testing.T) {
	batch := func() []*events.Event {
		upd := record("public.orders", `{"before":{"customer_id":"c1"},"after":{"customer_id":"c2"}}`)
		upd.Type = events.Update
		del := record("public.orders", `{"customer_id":"c3"}`)
		del.Type = events.Delete
		return []*events.Event{
			record("public.orders", `{"customer_id":"c1","n":1}`),
			record("public.orders", `{"customer_id":42,"n":2}`),
			record("", `{"n":3}`),
			record("public.orders", `{"customer_id":null,"n":4}`),
			upd, del,
			record("public.users", `{"customer":{"id":"nested"},"customer_id":"c1"}`),
		}
	}
	for _, tc := range []struct {
		cfg  string
		want []string
	}{
		{"ordering_key: {mode: static, value: all}\n", []string{"all", "all", "all", "all", "all", "all", "all"}},
		{"ordering_key: {mode: field, field_path: customer_id, fallback: none}\n", []string{"c1", "42", "none", "none", "c2", "c3", "c1"}},
		{"ordering_key: {mode: field, field_path: customer.id}\n", []string{"", "", "", "", "", "", "nested"}},
		{"ordering_key: {mode: stream, fallback: unknown}\n", []string{"public.orders", "public.orders", "unknown", "public.orders", "public.orders", "public.orders", "public.users"}},
	} {
		t.Run(tc.cfg, func(t *testing.T) {
			e := newEnv(t)
			e.topic(t, "out")
			if err := e.sink(t, tc.cfg).Write(context.Background(), batch()); err != nil {
				t.Fatal(err)
			}
			got := e.stored()
			if len(got) != len(tc.want) {
				t.Fatalf("stored %d", len(got))
			}
			// Order across keys is not kept; look each message up by body.
			keyOf := map[string]string{}
			for _, m := range got {
				keyOf[string(m.Data)] = m.OrderingKey
			}
			for i, ev := range batch() {
				body, _ := events.Rivven.Append(nil, ev)
				if k, ok := keyOf[string(body)]; !ok || k != tc.want[i] {
					t.Errorf("event %d: ordering key %q (found %v), want %q", i, k, ok, tc.want[i])
				}
			}
		})
	}
}

func TestSinkKeepsPerKeyOrder(t *testing.T) {
	e := newEnv(t)
	e.topic(t, "out")
	s := e.sink(t, "ordering_key: {mode: field, field_path: k}\nbatch_size: 3\nbody_format: raw\n")
	var batch []*events.Event
	for i := range 40 {
		batch = append(batch, record("s", fmt.Sprintf(`{"k":"k%d","i":"%02d"}`, i%4, i)))
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for _, m := range e.stored() {
		if string(m.Data) <= last[m.OrderingKey] {
			t.Fatalf("key %s: %s stored after %s", m.OrderingKey, m.Data, last[m.OrderingKey])
		}
		last[m.OrderingKey] = string(m.Data)
	}
	if len(last) != 4 {
		t.Fatalf("keys %v", last)
	}
}

// big returns a raw event whose body is n random (incompressible) bytes,
// base64 so that it is a JSON string.
func big(n int) *events.Event {
	b := make([]byte, n*3/4)
	_, _ = rand.Read(b)
	return record("s", `"`+base64.StdEncoding.EncodeToString(b)+`"`)
}

func TestSinkOversized(t *testing.T) {
	over := MaxMessageBytes + 1000
	t.Run("fail", func(t *testing.T) {
		e := newEnv(t)
		e.topic(t, "out")
		s := e.sink(t, "body_format: raw\n")
		ctx, metric := metricsCtx()
		err := s.Write(ctx, []*events.Event{record("s", `{"n":1}`), big(over), record("s", `{"n":2}`)})
		var we *connector.WriteError
		if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil {
			t.Fatalf("want event 1 failed: %v", err)
		}
		if resilience.ClassOf(we.Failed[1]) != resilience.Schema || !strings.Contains(we.Failed[1].Error(), "oversized_behavior: fail") {
			t.Errorf("oversized error %v (class %v)", we.Failed[1], resilience.ClassOf(we.Failed[1]))
		}
		if n := len(e.stored()); n != 2 {
			t.Errorf("stored %d, want the 2 others", n)
		}
		if metric(metricOversized) != 1 || metric(metricFailures) != 1 || metric(metricPublished) != 2 {
			t.Errorf("oversized %d failures %d published %d", metric(metricOversized), metric(metricFailures), metric(metricPublished))
		}
	})
	t.Run("skip", func(t *testing.T) {
		e := newEnv(t)
		e.topic(t, "out")
		s := e.sink(t, "body_format: raw\noversized_behavior: skip\n")
		ctx, metric := metricsCtx()
		if err := s.Write(ctx, []*events.Event{big(over), record("s", `{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
		if got := e.stored(); len(got) != 1 || string(got[0].Data) != `{"n":1}` {
			t.Errorf("stored %d", len(got))
		}
		if metric(metricOversized) != 1 || metric(metricFailures) != 0 {
			t.Errorf("oversized %d failures %d", metric(metricOversized), metric(metricFailures))
		}
	})
	for _, codec := range []string{"none", "gzip"} {
		t.Run("truncate-"+codec, func(t *testing.T) {
			e := newEnv(t)
			e.topic(t, "out")
			s := e.sink(t, "body_format: raw\noversized_behavior: truncate\nordering_key: {mode: static, value: k}\ncompression: "+codec+"\n")
			ev := big(over)
			if codec == "gzip" {
				ev = big(MaxMessageBytes * 3 / 2) // base64 text gzips to 3/4: still too big
			}
			body, _ := ev.Data.AppendJSON(nil)
			body = body[1 : len(body)-1] // raw: the string's text
			if err := s.Write(context.Background(), []*events.Event{ev}); err != nil {
				t.Fatal(err)
			}
			got := e.stored()
			if len(got) != 1 {
				t.Fatalf("stored %d", len(got))
			}
			m := got[0]
			if m.Attributes[AttrTruncated] != strconv.Itoa(len(body)) {
				t.Errorf("attributes %v, body was %d bytes", m.Attributes, len(body))
			}
			data := m.Data
			if codec == "gzip" {
				r, err := gzip.NewReader(bytes.NewReader(m.Data))
				if err != nil {
					t.Fatal(err)
				}
				if data, err = io.ReadAll(r); err != nil {
					t.Fatalf("truncated gzip body does not decompress: %v", err)
				}
			}
			if len(data) == 0 || len(data) >= len(body) || !bytes.HasPrefix(body, data) || len(m.Data) > MaxMessageBytes {
				t.Errorf("truncated to %d (stored %d) of %d; prefix %v", len(data), len(m.Data), len(body), bytes.HasPrefix(body, data))
			}
			if len(data) < MaxMessageBytes/2 {
				t.Errorf("cut far more than needed: %d bytes left", len(data))
			}
		})
	}
}

// failKey fails publish requests holding a message with one ordering key.
type failKey struct{ key string }

func (f failKey) React(req any) (bool, any, error) {
	for _, m := range req.(*pubsubpb.PublishRequest).Messages {
		if m.OrderingKey == f.key {
			return true, nil, status.Error(codes.InvalidArgument, "rejected by the test")
		}
	}
	return false, nil, nil
}

func TestSinkPerMessageFailure(t *testing.T) {
	e := newEnv(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: failKey{"poison"}})
	e.topic(t, "out")
	s := e.sink(t, "ordering_key: {mode: field, field_path: k}\nbody_format: raw\n")
	ctx, metric := metricsCtx()
	err := s.Write(ctx, []*events.Event{
		record("s", `{"k":"ok","n":1}`),
		record("s", `{"k":"poison","n":2}`),
		record("s", `{"k":"ok","n":3}`),
		record("s", `{"k":"poison","n":4}`),
	})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 2 || we.Failed[1] == nil || we.Failed[3] == nil {
		t.Fatalf("want events 1 and 3 failed: %v", err)
	}
	if resilience.ClassOf(we.Failed[1]) != resilience.Schema {
		t.Errorf("InvalidArgument classified %v", resilience.ClassOf(we.Failed[1]))
	}
	if n := len(e.stored()); n != 2 || metric(metricFailures) != 2 || metric(metricPublished) != 2 {
		t.Errorf("stored %d, failures %d, published %d", n, metric(metricFailures), metric(metricPublished))
	}
	// The key was resumed: a retry reaches the server (and is refused by
	// it again) instead of being refused by a paused publisher.
	err = s.Write(ctx, []*events.Event{record("s", `{"k":"poison","n":2}`)})
	if err == nil || !strings.Contains(err.Error(), "rejected by the test") {
		t.Fatalf("retry of a failed key: %v", err)
	}
	// Every message refused is one error for the whole batch (not a
	// WriteError), so an outage is retried rather than dead-lettered.
	if errors.As(err, &we) {
		t.Errorf("all-failed write returned a WriteError: %v", err)
	}
}

func TestSinkMissingTopicAndRoute(t *testing.T) {
	e := newEnv(t)
	s := e.sink(t, "")
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("check of a missing topic: %v", err)
	}
	err := s.Write(context.Background(), []*events.Event{record("s", `{}`)})
	if err == nil || resilience.ClassOf(err) != resilience.NotFound {
		t.Fatalf("write to a missing topic: %v (class %v)", err, resilience.ClassOf(err))
	}
	e.topic(t, "out")
	e.topic(t, "routed")
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := record("s", `{"n":1}`)
	ev.Route = "routed"
	if err := s.Write(context.Background(), []*events.Event{ev, record("s", `{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	topics := map[string]int{}
	for _, m := range e.stored() {
		topics[m.Topic]++
	}
	if topics["projects/"+project+"/topics/routed"] != 1 || topics["projects/"+project+"/topics/out"] != 1 {
		t.Errorf("messages per topic %v", topics)
	}
}

func TestSinkConfig(t *testing.T) {
	const p = "sinks.pubsub.config."
	cfg, ps := spec.DecodeString[SinkConfig]("project_id: p\ntopic_id: t\n", "sinks.pubsub.config")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.BatchSize != 100 || cfg.BatchTimeoutMS != 1000 || cfg.Compression != "none" || cfg.BodyFormat != "json" ||
		cfg.OversizedBehavior != "fail" || cfg.OrderingKey != nil {
		t.Errorf("defaults %+v", cfg)
	}
	const base = "project_id: p\ntopic_id: t\n"
	for _, tc := range []struct{ yaml, path, msg string }{
		{"project_id: p\n", p + "topic_id", "required"},
		{base + "compression: lz4\n", p + "compression", "zstd"},
		{base + "body_format: avro\n", p + "body_format", "base64"},
		{base + "oversized_behavior: split\n", p + "oversized_behavior", "truncate"},
		{base + "ordering_key: {mode: random}\n", p + "ordering_key.mode", "stream"},
		{base + "ordering_key: {mode: static}\n", p + "ordering_key.value", "required with mode static"},
		{base + "ordering_key: {mode: field}\n", p + "ordering_key.field_path", "dot path"},
		{base + "ordering_key: {mode: field, field_path: a..b}\n", p + "ordering_key.field_path", "dot path"},
		{base + "ordering_key: {fallback: x}\n", p + "ordering_key.mode", "required"},
		{base + "batch_size: 5000\n", p + "batch_size", "1000"},
		{base + "ordering_key: {mode: static, value: " + strings.Repeat("k", 1025) + "}\n", p + "ordering_key.value", "1024"},
	} {
		_, ps := spec.DecodeString[SinkConfig](tc.yaml, "sinks.pubsub.config")
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml[:min(len(tc.yaml), 80)], ps, tc.path, tc.msg)
		}
	}
}

// The sink declares concurrent writes: batches written from several
// goroutines at once all arrive (run with -race, it also finds shared
// state).
func TestSinkConcurrentWrites(t *testing.T) {
	e := newEnv(t)
	e.topic(t, "out")
	s := e.sink(t, "compression: zstd\n")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if err := s.Write(context.Background(), []*events.Event{record("orders", fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := len(e.stored()); got != 80 {
		t.Fatalf("pstest holds %d messages, want 80", got)
	}
	if !s.ConcurrentWrites() {
		t.Fatal("the sink no longer declares concurrent writes")
	}
}
