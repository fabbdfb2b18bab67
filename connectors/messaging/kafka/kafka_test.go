package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func cluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mkSink(t *testing.T, cfg SinkConfig, extra ...kgo.Opt) *Sink {
	t.Helper()
	if cfg.Acks == "" {
		cfg.Acks = "all"
	}
	if cfg.Compression == "" {
		cfg.Compression = "none"
	}
	if cfg.Codec == "" {
		cfg.Codec = "rivven"
	}
	s, err := newSink(&cfg, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func mkSource(t *testing.T, cfg SourceConfig) *Source {
	t.Helper()
	if cfg.Codec == "" {
		cfg.Codec = "auto"
	}
	if cfg.StartOffset == "" {
		cfg.StartOffset = "earliest"
	}
	s, err := newSource(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.UTC)

func sample(n int, stream string) []*events.Event {
	var out []*events.Event
	for i := range n {
		e := &events.Event{
			Type:      events.Insert,
			Stream:    stream,
			Timestamp: t0.Add(time.Duration(i) * time.Second),
			Data:      events.RawPayload([]byte(fmt.Sprintf(`{"id":%d,"name":"n%d"}`, i, i))),
			Key:       []byte(fmt.Sprintf(`{"id":%d}`, i)),
			Source:    &events.SourceInfo{Connector: "test", Table: stream},
		}
		out = append(out, e)
	}
	return out
}

func rivvenJSON(t *testing.T, e *events.Event) string {
	t.Helper()
	b, err := events.Rivven.Append(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// collector gathers emitted events; fail makes the next Emit fail.
type collector struct {
	mu     sync.Mutex
	got    []*events.Event
	fail   error
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) Emit(_ context.Context, b []*events.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.got = append(c.got, b...)
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) events() []*events.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*events.Event(nil), c.got...)
}

// readN runs Read until n events were emitted, then stops it.
func readN(t *testing.T, s *Source, n int) []*events.Event {
	t.Helper()
	c := newCollector()
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { done <- s.Read(ctx, nil, c) }()
	deadline := time.After(20 * time.Second)
	for len(c.events()) < n {
		select {
		case <-c.notify:
		case err := <-done:
			cancel()
			t.Fatalf("Read returned early: %v", err)
		case <-deadline:
			cancel()
			t.Fatalf("got %d of %d events", len(c.events()), n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
	return c.events()
}

func TestRegistered(t *testing.T) {
	for _, k := range []struct {
		kind catalog.Kind
		name string
	}{{catalog.Source, "kafka-source"}, {catalog.Sink, "kafka-sink"}} {
		e, ok := catalog.Lookup(k.kind, k.name)
		if !ok || e.Category != catalog.Messaging || e.Subcategory != "Queues" {
			t.Errorf("%s: %v %+v", k.name, ok, e)
		}
	}
}

func TestRoundTripCodecs(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "rivven", "debezium", "cloudevents"))
	ctx := ctxT(t)
	for _, codec := range events.CodecNames {
		for _, srcCodec := range []string{"auto", codec} {
			t.Run(codec+"/"+srcCodec, func(t *testing.T) {
				topic := codec
				in := sample(3, "orders")
				if srcCodec == "auto" {
					if err := mkSink(t, SinkConfig{Brokers: addrs, Topic: topic, Codec: codec}).Write(ctx, in); err != nil {
						t.Fatal(err)
					}
				}
				src := mkSource(t, SourceConfig{Brokers: addrs, Topic: topic, ConsumerGroup: "g-" + codec + srcCodec, Codec: srcCodec})
				got := readN(t, src, 3)
				if len(got) != 3 {
					t.Fatalf("got %d events", len(got))
				}
				c, _ := events.CodecByName(codec)
				for i, e := range in {
					// What the codec carries, plus the Kafka position.
					b, _ := c.Append(nil, e)
					want, err := c.Decode(b)
					if err != nil {
						t.Fatal(err)
					}
					if len(want.Key) == 0 {
						want.Key = e.Key
					}
					want.Metadata.Position = fmt.Sprintf("%s/0/%d", topic, i)
					if g, w := rivvenJSON(t, got[i]), rivvenJSON(t, want); g != w {
						t.Errorf("event %d:\n got %s\nwant %s", i, g, w)
					}
					if codec == events.CodecRivven {
						e2 := e.Clone()
						e2.Metadata.Position = want.Metadata.Position
						if g, w := rivvenJSON(t, got[i]), rivvenJSON(t, e2); g != w {
							t.Errorf("rivven event %d not exact:\n got %s\nwant %s", i, g, w)
						}
					}
				}
			})
		}
	}
}

func TestRawValuesAndKeys(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "raw"))
	ctx := ctxT(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Key: []byte("plain"), Value: []byte(`{"a":1}`)},
		&kgo.Record{Key: []byte(`{"k":2}`), Value: []byte("not json")},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := readN(t, mkSource(t, SourceConfig{Brokers: addrs, Topic: "raw", ConsumerGroup: "g"}), 2)
	if got[0].Type != events.Record || got[0].Stream != "raw" || string(got[0].Key) != `"plain"` || got[0].Metadata.Position != "raw/0/0" {
		t.Errorf("event 0: %s", rivvenJSON(t, got[0]))
	}
	if d, _ := got[0].Data.JSON(); string(d) != `{"a":1}` {
		t.Errorf("data 0: %s", d)
	}
	if string(got[1].Key) != `{"k":2}` {
		t.Errorf("key 1: %s", got[1].Key)
	}
	if d, _ := got[1].Data.JSON(); string(d) != `"not json"` {
		t.Errorf("data 1: %s", d)
	}
	if _, ok := got[1].Metadata.Get("decode_error"); !ok {
		t.Errorf("no decode_error on a non-JSON value with codec auto")
	}
}

func TestOffsetsCommittedOnlyAfterEmit(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "t"))
	ctx := ctxT(t)
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "t"})
	if err := sink.Write(ctx, sample(3, "s")); err != nil {
		t.Fatal(err)
	}
	src := mkSource(t, SourceConfig{Brokers: addrs, Topic: "t", ConsumerGroup: "g"})

	// Emit fails: Read returns the error and commits nothing.
	boom := errors.New("downstream down")
	c := newCollector()
	c.fail = boom
	if err := src.Read(ctx, nil, c); !errors.Is(err, boom) {
		t.Fatalf("Read = %v, want %v", err, boom)
	}
	// Redelivered from the start.
	got := readN(t, src, 3)
	if got[0].Metadata.Position != "t/0/0" {
		t.Fatalf("after a failed emit the first event is %s", got[0].Metadata.Position)
	}
	// Committed: a restarted source gets only new records.
	if err := sink.Write(ctx, sample(2, "s2")); err != nil {
		t.Fatal(err)
	}
	got = readN(t, src, 2)
	if got[0].Metadata.Position != "t/0/3" || got[0].Stream != "s2" {
		t.Fatalf("after restart the first event is %s (%s)", got[0].Metadata.Position, got[0].Stream)
	}
	if m := src.Metrics(); m["kafka.source.messages_consumed_total"] < 8 || m["kafka.source.polls_total"] < 3 {
		t.Errorf("metrics %v", m)
	}
	if m := sink.Metrics(); m["kafka.sink.messages_produced_total"] != 5 || m["kafka.sink.batches_sent_total"] != 2 || m["kafka.sink.success_rate"] != 1 {
		t.Errorf("sink metrics %v", m)
	}
}

func TestStartOffset(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "t"))
	ctx := ctxT(t)
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "t"})
	if err := sink.Write(ctx, sample(3, "old")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, mkSource(t, SourceConfig{Brokers: addrs, Topic: "t", ConsumerGroup: "e", StartOffset: "earliest"}), 3); got[0].Stream != "old" || got[0].Metadata.Position != "t/0/0" {
		t.Errorf("earliest starts at %s", got[0].Metadata.Position)
	}
	if got := readN(t, mkSource(t, SourceConfig{Brokers: addrs, Topic: "t", ConsumerGroup: "n", StartOffset: "2"}), 1); got[0].Metadata.Position != "t/0/2" {
		t.Errorf("start_offset 2 starts at %s", got[0].Metadata.Position)
	}

	// latest: produce new records until the source sees one; it must
	// never see the old ones.
	src := mkSource(t, SourceConfig{Brokers: addrs, Topic: "t", ConsumerGroup: "l", StartOffset: "latest"})
	c := newCollector()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Read(rctx, nil, c) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for len(c.events()) == 0 {
		select {
		case <-tick.C:
			if err := sink.Write(ctx, sample(1, "new")); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("latest source saw nothing")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, e := range c.events() {
		if e.Stream != "new" {
			t.Errorf("latest source got an old record at %s", e.Metadata.Position)
		}
	}
}

func TestSASLScram(t *testing.T) {
	addrs := cluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "alice", "s3cret"), kfake.SeedTopics(1, "t"))
	ctx := ctxT(t)
	sec := &Security{Protocol: "sasl_plaintext", Mechanism: "SCRAM_SHA_256", Username: "alice", Password: "s3cret"}
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "t", Security: sec})
	if err := sink.Check(ctx); err != nil {
		t.Fatal(err)
	}
	in := sample(2, "s")
	if err := sink.Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	src := mkSource(t, SourceConfig{Brokers: addrs, Topic: "t", ConsumerGroup: "g", Security: sec})
	if err := src.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, src, 2); got[1].Stream != "s" {
		t.Errorf("got %s", rivvenJSON(t, got[1]))
	}

	bad := mkSource(t, SourceConfig{Brokers: addrs, Topic: "t", ConsumerGroup: "g",
		Security: &Security{Protocol: "sasl_plaintext", Mechanism: "SCRAM_SHA_256", Username: "alice", Password: "wrong"}})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := bad.Check(cctx); err == nil {
		t.Error("Check with a wrong password succeeded")
	}
}

func TestTransactionalSink(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "tx"))
	ctx := ctxT(t)
	// MaxBufferedBytes makes the producer reject a too large record right
	// away: a reliable failure in the middle of a transaction.
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "tx", TransactionalID: "rivven-tx"}, kgo.MaxBufferedBytes(4096))
	if err := sink.Write(ctx, sample(2, "committed1")); err != nil {
		t.Fatal(err)
	}
	aborted := sample(3, "aborted")
	aborted[1].Data = events.RawPayload([]byte(`{"blob":"` + strings.Repeat("x", 10000) + `"}`))
	err := sink.Write(ctx, aborted)
	var we *connector.WriteError
	if err == nil || errors.As(err, &we) || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("Write of the failing batch = %v, want a whole-batch error", err)
	}
	if err := sink.Write(ctx, sample(2, "committed2")); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("tx"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var streams []string
	for len(streams) < 4 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			e, err := events.Rivven.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			streams = append(streams, e.Stream)
		})
	}
	if want := "committed1 committed1 committed2 committed2"; strings.Join(streams, " ") != want {
		t.Errorf("read_committed saw %v, want %s", streams, want)
	}
}

func TestIdempotentCompression(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "none", "gzip", "snappy", "lz4", "zstd"))
	ctx := ctxT(t)
	for _, comp := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			in := sample(5, comp)
			if err := mkSink(t, SinkConfig{Brokers: addrs, Topic: comp, Compression: comp, Idempotent: true}).Write(ctx, in); err != nil {
				t.Fatal(err)
			}
			got := readN(t, mkSource(t, SourceConfig{Brokers: addrs, Topic: comp, ConsumerGroup: "g"}), 5)
			for i := range in {
				if d, _ := got[i].Data.JSON(); string(d) != fmt.Sprintf(`{"id":%d,"name":"n%d"}`, i, i) {
					t.Errorf("%d: %s", i, d)
				}
			}
		})
	}
}

func TestRouteKeyFieldAndAcks(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "main", "other"))
	ctx := ctxT(t)
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "main", KeyField: "name", Acks: "leader"})
	in := sample(2, "s")
	in[1].Route = "other"
	if err := sink.Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	got := readN(t, mkSource(t, SourceConfig{Brokers: addrs, Topic: "other", ConsumerGroup: "g", Codec: "raw"}), 1)
	if got[0].Metadata.Position != "other/0/0" || string(got[0].Key) != `"n1"` {
		t.Errorf("routed event: %s", rivvenJSON(t, got[0]))
	}
	// An event without the key field fails alone.
	bad := sample(2, "s")
	bad[0].Data = events.RawPayload([]byte(`{"id":0}`))
	err := sink.Write(ctx, bad)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[0] == nil {
		t.Fatalf("Write = %v, want a WriteError for event 0", err)
	}
	if m := sink.Metrics(); m["kafka.sink.success_rate"] >= 1 {
		t.Errorf("metrics %v", m)
	}
}

func TestUnreachableCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s := mkSink(t, SinkConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "x"})
	if err := s.Check(ctx); err == nil {
		t.Error("sink Check against a closed port succeeded")
	}
	src := mkSource(t, SourceConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "x", ConsumerGroup: "g"})
	if err := src.Check(ctx); err == nil {
		t.Error("source Check against a closed port succeeded")
	}
}

func TestConfigProblems(t *testing.T) {
	cases := []struct {
		sink      bool
		yaml      string
		path, msg string
	}{
		{false, "brokers: [a:9092]\ntopic: t\nconsumer_group: g\nstart_offset: soon", "sources.k.config.start_offset", "not earliest"},
		{false, "brokers: [a:9092]\ntopic: t\nconsumer_group: g\nstart_offset: -1", "sources.k.config.start_offset", "non-negative"},
		{false, "brokers: [a:9092]\ntopic: t", "sources.k.config.consumer_group", ""},
		{false, "brokers: [a:9092]\ntopic: t\nconsumer_group: g\ncodec: xml", "sources.k.config.codec", ""},
		{false, "brokers: [a:9092]\ntopic: t\nconsumer_group: g\nsecurity: {protocol: sasl_ssl}", "sources.k.config.security.username", "required"},
		{true, "brokers: [a:9092]\ntopic: t\nacks: some", "sinks.k.config.acks", ""},
		{true, "brokers: [a:9092]\ntopic: t\nacks: leader\nidempotent: true", "sinks.k.config.acks", "idempotent needs acks: all"},
		{true, "brokers: [a:9092]\ntopic: t\ncompression: brotli", "sinks.k.config.compression", ""},
		{true, "brokers: [a:9092]\ntopic: t\nsecurity: {protocol: plaintext, username: u}", "sinks.k.config.security.protocol", "need protocol sasl"},
		{true, "brokers: [a:9092]\ntopic: t\nsecurity: {protocol: ssl, cert_path: c.pem}", "sinks.k.config.security.cert_path", "go together"},
		{true, "brokers: [a:9092]\ntopic: t\nkey_field: a..b", "sinks.k.config.key_field", "dot path"},
		{true, "brokers: ['http://a:9092']\ntopic: t", "sinks.k.config.brokers[0]", "host:port"},
		{true, "topic: t", "sinks.k.config.brokers", ""},
	}
	for _, tc := range cases {
		var ps []spec.Problem
		if tc.sink {
			_, ps = spec.DecodeString[SinkConfig](tc.yaml, "sinks.k.config")
		} else {
			_, ps = spec.DecodeString[SourceConfig](tc.yaml, "sources.k.config")
		}
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s containing %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	// A valid config decodes with its defaults.
	c, ps := spec.DecodeString[SinkConfig]("brokers: [a:9092]\ntopic: t", "sinks.k.config")
	if len(ps) > 0 || c.Acks != "all" || c.Compression != "none" || c.Codec != "rivven" {
		t.Errorf("defaults: %+v %v", c, ps)
	}
	sc, ps := spec.DecodeString[SourceConfig]("brokers: [a:9092]\ntopic: t\nconsumer_group: g", "sources.k.config")
	if len(ps) > 0 || sc.StartOffset != "latest" || sc.Codec != "auto" {
		t.Errorf("source defaults: %+v %v", sc, ps)
	}
}

// codec debezium writes what a Debezium topic holds: a delete followed by
// a tombstone (same key, null value), no truncate (skipped_operations t)
// and no schema change in the data stream; with schema_changes_topic the
// schema change goes to that topic.
func TestDebeziumTopicShape(t *testing.T) {
	addrs := cluster(t, kfake.SeedTopics(1, "dbz", "dbz.schema-changes"))
	ctx := ctxT(t)
	dbz := events.DefaultDebeziumOptions()
	dbz.SchemaChangesTopic = "dbz.schema-changes"
	sink := mkSink(t, SinkConfig{Brokers: addrs, Topic: "dbz", Codec: "debezium", Debezium: dbz})
	in := sample(1, "orders")
	del := sample(1, "orders")[0]
	del.Type = events.Delete
	trunc := &events.Event{Type: events.Truncate, Stream: "orders", Timestamp: t0, Source: &events.SourceInfo{Connector: "test", Table: "orders"}}
	schema := &events.Event{Type: events.Schema, Stream: "orders", Timestamp: t0, Data: events.RawPayload([]byte(`{"table":"orders","columns":[{"name":"id","type":"integer","key":true}]}`)),
		Source: &events.SourceInfo{Connector: "test", Database: "shop", Table: "orders"}}
	if err := sink.Write(ctx, append(in, del, trunc, schema)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("dbz", "dbz.schema-changes"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byTopic := map[string][]*kgo.Record{}
	for n := 0; n < 4; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { byTopic[r.Topic] = append(byTopic[r.Topic], r); n++ })
	}
	data := byTopic["dbz"]
	if len(data) != 3 {
		t.Fatalf("data topic has %d records, want insert, delete, tombstone", len(data))
	}
	var op struct{ Op string }
	for i, want := range []string{"c", "d"} {
		if err := json.Unmarshal(data[i].Value, &op); err != nil || op.Op != want {
			t.Errorf("record %d: %s", i, data[i].Value)
		}
	}
	if data[2].Value != nil || string(data[2].Key) != `{"id":0}` {
		t.Errorf("tombstone: key %s value %q", data[2].Key, data[2].Value)
	}
	hist := byTopic["dbz.schema-changes"]
	if len(hist) != 1 || !strings.Contains(string(hist[0].Value), `"tableChanges":[{"type":"ALTER"`) {
		t.Errorf("schema change topic: %d records %v", len(hist), hist)
	}
	// Validation names the option.
	bad := SinkConfig{Brokers: addrs, Topic: "x", Codec: "debezium", Debezium: events.DebeziumOptions{SkippedOperations: "x"}}
	if ps := bad.Validate(); len(ps) != 1 || ps[0].Path != "debezium.skipped_operations" {
		t.Errorf("problems %v", ps)
	}
}
