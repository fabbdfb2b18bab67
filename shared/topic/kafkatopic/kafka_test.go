package kafkatopic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/topic"
)

// The runners consume through this transport.
var (
	_ pipeline.StreamTransport = (*Kafka)(nil)
	_ pipeline.FencedProducer  = (*Kafka)(nil)
)

// cluster starts an in-process Kafka (kfake) and returns its addresses.
func cluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func broker(addrs ...string) *config.Broker {
	return &config.Broker{BootstrapServers: addrs, MetadataRefreshMs: 2000, ConnectionTimeoutMs: 2000, RequestTimeoutMs: 10_000}
}

func connect(t *testing.T, cfg *config.Broker) *Kafka {
	t.Helper()
	k, err := New(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readAll fetches every committed message of a topic, partition by
// partition.
func readAll(t *testing.T, k *Kafka, name string) map[int32][]topic.Message {
	t.Helper()
	ctx := ctxT(t)
	n, err := k.Partitions(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32][]topic.Message{}
	for p := range int32(n) {
		for from := int64(0); ; {
			msgs, err := k.Fetch(ctx, name, p, from, 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			out[p] = append(out[p], msgs...)
			from = msgs[len(msgs)-1].Offset + 1
		}
	}
	return out
}

func TestProduceFetchRoundTrip(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	if err := k.Create(ctx, "orders", topic.Spec{Partitions: 4, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_767_225_600_000)
	var msgs []topic.Message
	for i := range 60 {
		msgs = append(msgs, topic.Message{
			Key:     fmt.Appendf(nil, "customer-%d", i%9),
			Value:   fmt.Appendf(nil, `{"seq":%d}`, i),
			Headers: []topic.Header{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}, {Key: "empty"}},
			Time:    t0.Add(time.Duration(i) * time.Second),
		})
	}
	if err := k.Produce(ctx, "orders", msgs); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, k, "orders")
	total := 0
	for p, ms := range got {
		lastSeq := map[string]int{}
		for i, m := range ms {
			if m.Offset != int64(i) || m.Partition != p || m.Topic != "orders" {
				t.Fatalf("partition %d message %d: %+v", p, i, m)
			}
			// Kafka's partitioner and the emulator's agree on every key.
			if want := topic.Partition(m.Key, 4, 0); want != p {
				t.Fatalf("key %s on partition %d, topic.Partition says %d", m.Key, p, want)
			}
			var seq int
			fmt.Sscanf(string(m.Value), `{"seq":%d}`, &seq)
			if prev, ok := lastSeq[string(m.Key)]; ok && seq <= prev {
				t.Fatalf("key %s: seq %d after %d (order per key lost)", m.Key, seq, prev)
			}
			lastSeq[string(m.Key)] = seq
			src := msgs[seq]
			if !bytes.Equal(m.Key, src.Key) || !m.Time.Equal(src.Time) || len(m.Headers) != 2 ||
				m.Headers[0].Key != "trace" || string(m.Headers[0].Value) != fmt.Sprintf("t%d", seq) || m.Headers[1].Key != "empty" || len(m.Headers[1].Value) != 0 {
				t.Fatalf("message %d came back as %+v", seq, m)
			}
		}
		total += len(ms)
	}
	if total != len(msgs) || len(got) < 2 {
		t.Fatalf("read %d messages over %d partitions, want %d over several", total, len(got), len(msgs))
	}
}

func TestFetchRepositions(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	var msgs []topic.Message
	for i := range 20 {
		msgs = append(msgs, topic.Message{Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := k.Produce(ctx, "t", msgs); err != nil {
		t.Fatal(err)
	}
	fetch := func(from int64, limit int) []topic.Message {
		t.Helper()
		ms, err := k.Fetch(ctx, "t", 0, from, limit, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || ms[0].Offset != from || string(ms[0].Value) != fmt.Sprint(from) {
			t.Fatalf("fetch from %d returned %+v", from, ms)
		}
		return ms
	}
	if ms := fetch(0, 5); len(ms) != 5 {
		t.Fatalf("limit 5 returned %d", len(ms))
	}
	fetch(5, 3) // continues
	fetch(2, 4) // a redelivery: back
	fetch(15, 2)
	ms := fetch(17, 100)
	if ms[len(ms)-1].Offset != 19 {
		t.Fatalf("last offset %d", ms[len(ms)-1].Offset)
	}
	// Nothing more: an empty result after the wait, not an error.
	if ms, err := k.Fetch(ctx, "t", 0, 20, 10, 50*time.Millisecond); err != nil || len(ms) != 0 {
		t.Fatalf("fetch at the end: %v %v", ms, err)
	}
	// wait 0 returns what is stored without waiting for more.
	if ms, err := k.Fetch(ctx, "t", 0, 18, 10, 0); err != nil || len(ms) != 2 {
		t.Fatalf("fetch without wait: %d messages, %v", len(ms), err)
	}
	if ms, err := k.Fetch(ctx, "t", 0, 20, 10, 0); err != nil || len(ms) != 0 {
		t.Fatalf("fetch without wait at the end: %v %v", ms, err)
	}
}

func TestFetchWaitsForNewMessages(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	got := make(chan []topic.Message, 1)
	go func() {
		ms, _ := k.Fetch(ctx, "t", 0, 0, 10, 30*time.Second)
		got <- ms
	}()
	if err := k.Produce(ctx, "t", []topic.Message{{Value: []byte("late")}}); err != nil {
		t.Fatal(err)
	}
	if ms := <-got; len(ms) != 1 || string(ms[0].Value) != "late" {
		t.Fatalf("waiting fetch returned %+v", ms)
	}
}

func TestCommitSurvivesRestart(t *testing.T) {
	ctx := ctxT(t)
	addrs := cluster(t)
	a := connect(t, broker(addrs...))
	a.Create(ctx, "t", topic.Spec{Partitions: 2})
	if _, ok, err := a.Committed(ctx, "g", "t", 0); ok || err != nil {
		t.Fatalf("committed before any commit: ok %v, %v", ok, err)
	}
	for _, c := range []struct {
		p    int32
		next int64
	}{{0, 5}, {1, 3}, {0, 9}} {
		if err := a.Commit(ctx, "g", "t", c.p, c.next); err != nil {
			t.Fatal(err)
		}
	}
	// A late, lower commit does not rewind the group.
	if err := a.Commit(ctx, "g", "t", 0, 4); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b := connect(t, broker(addrs...))
	for p, want := range map[int32]int64{0: 9, 1: 3} {
		next, ok, err := b.Committed(ctx, "g", "t", p)
		if err != nil || !ok || next != want {
			t.Fatalf("after restart partition %d: %d %v %v, want %d", p, next, ok, err, want)
		}
	}
	if _, ok, err := b.Committed(ctx, "other", "t", 0); ok || err != nil {
		t.Fatalf("another group: ok %v, %v", ok, err)
	}
}

func TestHighWatermarkAndOffsetForTime(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	if hw, err := k.HighWatermark(ctx, "t", 0); err != nil || hw != 0 {
		t.Fatalf("empty topic: %d %v", hw, err)
	}
	t0 := time.UnixMilli(1_767_225_600_000)
	var msgs []topic.Message
	for i := range 10 {
		msgs = append(msgs, topic.Message{Value: []byte("v"), Time: t0.Add(time.Duration(i) * time.Second)})
	}
	if err := k.Produce(ctx, "t", msgs); err != nil {
		t.Fatal(err)
	}
	if hw, err := k.HighWatermark(ctx, "t", 0); err != nil || hw != 10 {
		t.Fatalf("high watermark %d %v", hw, err)
	}
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{t0.Add(-time.Hour), 0},
		{t0, 0},
		{t0.Add(3 * time.Second), 3},
		{t0.Add(2500 * time.Millisecond), 3},
		{t0.Add(2*time.Second + 500*time.Microsecond), 3}, // sub-millisecond: after the 2 s record
		{t0.Add(time.Hour), 10},
	} {
		if got, err := k.OffsetForTime(ctx, "t", 0, c.at); err != nil || got != c.want {
			t.Errorf("offset for %s: %d %v, want %d", c.at.Sub(t0), got, err, c.want)
		}
	}
	if _, err := k.HighWatermark(ctx, "nope", 0); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestCreateDescribeAndUnknownTopics(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	if _, err := k.Describe(ctx, "missing"); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("describe missing: %v", err)
	}
	// Without auto-create, publishing to a missing topic fails at once.
	if err := k.Produce(ctx, "missing", []topic.Message{{Value: []byte("x")}}); !errors.Is(err, topic.ErrUnknownTopic) {
		t.Fatalf("produce to missing: %v", err)
	}
	if err := k.Create(ctx, "three", topic.Spec{Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, "three", topic.Spec{Partitions: 5}); err != nil {
		t.Fatalf("creating an existing topic: %v", err)
	}
	if s, err := k.Describe(ctx, "three"); err != nil || s != (topic.Spec{Partitions: 3, ReplicationFactor: 1}) {
		t.Fatalf("describe: %+v %v", s, err)
	}
	// settings.topic applied through pipeline.EnsureTopic, as run does.
	set := config.TopicSettings{AutoCreate: false, RequireTopicExists: true, DefaultPartitions: 2, DefaultReplicationFactor: 1}
	if err := pipeline.EnsureTopic(ctx, k, set, "req", nil, "sources.x.topic", nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("require_topic_exists: %v", err)
	}
	set.AutoCreate = true
	if err := pipeline.EnsureTopic(ctx, k, set, "req", &config.TopicConfig{Partitions: 6}, "sources.x.topic", nil); err != nil {
		t.Fatal(err)
	}
	if s, err := k.Describe(ctx, "req"); err != nil || s.Partitions != 6 {
		t.Fatalf("topic_config partitions: %+v %v", s, err)
	}
	// Auto-create on first use with the defaults.
	k.AutoCreate, k.Default = true, topic.Spec{Partitions: 2, ReplicationFactor: 1}
	if err := k.Produce(ctx, "auto", []topic.Message{{Key: []byte("k"), Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if n, err := k.Partitions(ctx, "auto"); err != nil || n != 2 {
		t.Fatalf("auto-created with %d partitions, %v", n, err)
	}
	for _, bad := range []string{"", "a b", "x/y", "..", strings.Repeat("a", 250)} {
		if err := k.Create(ctx, bad, topic.Spec{}); err == nil {
			t.Errorf("created invalid topic %q", bad)
		}
	}
}

func TestSeedBrokerFailover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	ctx := ctxT(t)
	k := connect(t, broker(append([]string{dead}, cluster(t)...)...))
	k.AutoCreate = true
	if err := k.Produce(ctx, "t", []topic.Message{{Value: []byte("via the second seed")}}); err != nil {
		t.Fatal(err)
	}
	if ms := readAll(t, k, "t")[0]; len(ms) != 1 {
		t.Fatalf("read %d messages", len(ms))
	}
	// No seed alive: New says so, naming the servers.
	_, err = New(ctx, broker(dead))
	if err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("New with no live broker: %v", err)
	}
	if _, err := New(ctx, &config.Broker{}); err == nil || !strings.Contains(err.Error(), "bootstrap_servers") {
		t.Fatalf("New without servers: %v", err)
	}
}

func TestProduceErrorReportsMessages(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	if _, err := k.Partitions(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := k.Produce(cctx, "t", []topic.Message{{Value: []byte("a")}, {Value: []byte("b")}})
	var pe *ProduceError
	if !errors.As(err, &pe) || len(pe.Failed) != 2 || pe.Total != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("produce with a cancelled context: %v", err)
	}
}

// TestFetchErrorThenRecovers: an error the broker returns for a fetch is
// reported (the runner backs off and retries), and the next Fetch works on
// a fresh consumer.
func TestFetchErrorThenRecovers(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := ctxT(t)
	k := connect(t, broker(c.ListenAddrs()...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	if err := k.Produce(ctx, "t", []topic.Message{{Value: []byte("a")}, {Value: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fr := req.(*kmsg.FetchRequest)
		resp := fr.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range fr.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	if ms, err := k.Fetch(ctx, "t", 0, 0, 10, 5*time.Second); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("fetch refused by the broker returned %v, %v", ms, err)
	}
	ms, err := k.Fetch(ctx, "t", 0, 0, 10, 5*time.Second)
	if err != nil || len(ms) != 2 || string(ms[1].Value) != "b" {
		t.Fatalf("fetch after the error: %+v %v", ms, err)
	}
}
