package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

func seqMsgs(from, to int) []topic.Message {
	var out []topic.Message
	for i := from; i < to; i++ {
		out = append(out, topic.Message{Key: fmt.Appendf(nil, "k%d", i%3), Value: fmt.Appendf(nil, "%d", i)})
	}
	return out
}

// values lists what a read_committed reader sees of a topic, sorted.
func values(t *testing.T, k *Kafka, name string) []string {
	t.Helper()
	var out []string
	for _, ms := range readAll(t, k, name) {
		for _, m := range ms {
			out = append(out, string(m.Value))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		var a, b int
		fmt.Sscan(out[i], &a)
		fmt.Sscan(out[j], &b)
		return a < b
	})
	return out
}

// TestFencingWithTransactions: two processes run the same source; once the
// newer one claimed, the older one can neither commit its open transaction
// nor publish again, its aborted messages stay invisible, and the position
// stored with the data survives for the newer one and for a third client.
func TestFencingWithTransactions(t *testing.T) {
	ctx := ctxT(t)
	addrs := cluster(t)
	older, newer := connect(t, broker(addrs...)), connect(t, broker(addrs...))
	if err := older.Create(ctx, "t", topic.Spec{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if pos, err := older.LastPosition(ctx, "t", "src"); pos != nil || err != nil {
		t.Fatalf("position before any publish: %q %v", pos, err)
	}
	for _, tp := range []string{"t", "t.dlq"} { // one transactional id for both
		if err := older.Claim(ctx, tp, "src", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := older.ProduceFenced(ctx, "t", seqMsgs(0, 5), topic.Fence{Producer: "src", Epoch: 1, Position: []byte("4")}); err != nil {
		t.Fatal(err)
	}
	if pos, err := older.LastPosition(ctx, "t", "src"); string(pos) != "4" || err != nil {
		t.Fatalf("position after the first batch: %q %v", pos, err)
	}
	// The older instance is mid-transaction, its messages on the broker,
	// when the newer one claims the source.
	txn := older.txns["src"]
	txn.mu.Lock()
	fence := topic.Fence{Producer: "src", Epoch: 1}
	if err := txn.begin("t", fence); err != nil {
		t.Fatal(err)
	}
	open := []*kgo.Record{record("t", topic.Message{Value: []byte("100")}), record("t", topic.Message{Value: []byte("101")})}
	if err := produceAll(ctx, txn.cl, "t", open, older.timeout); err != nil {
		t.Fatal(err)
	}
	if err := newer.Claim(ctx, "t", "src", 2); err != nil {
		t.Fatal(err)
	}
	err := txn.end(ctx, true, older.timeout, "t", fence)
	txn.mu.Unlock()
	if !errors.Is(err, state.ErrFenced) {
		t.Fatalf("the older instance committed its open transaction after the takeover: %v", err)
	}
	err = older.ProduceFenced(ctx, "t", seqMsgs(5, 10), topic.Fence{Producer: "src", Epoch: 1, Position: []byte("9")})
	var fe *FencedError
	if !errors.Is(err, state.ErrFenced) || !errors.As(err, &fe) || fe.TransactionalID != "rivven-source-src" {
		t.Fatalf("the older instance published after the takeover: %v", err)
	}
	// Refused for good, without another round trip.
	if err := older.ProduceFenced(ctx, "t", seqMsgs(5, 6), topic.Fence{Producer: "src", Epoch: 1}); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("second publish of the fenced instance: %v", err)
	}

	if pos, err := newer.LastPosition(ctx, "t", "src"); string(pos) != "4" || err != nil {
		t.Fatalf("the newer instance resumes from %q (%v), want 4", pos, err)
	}
	if err := newer.ProduceFenced(ctx, "t", seqMsgs(5, 8), topic.Fence{Producer: "src", Epoch: 2, Position: []byte("7")}); err != nil {
		t.Fatal(err)
	}
	// A routed batch without a position, and a position without messages.
	if err := newer.ProduceFenced(ctx, "t", seqMsgs(8, 9), topic.Fence{Producer: "src", Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	if err := newer.ProduceFenced(ctx, "t", nil, topic.Fence{Producer: "src", Epoch: 2, Position: []byte("8")}); err != nil {
		t.Fatal(err)
	}
	// In one process an older epoch is refused before Kafka is asked.
	var sfe *state.FencedError
	if err := newer.Claim(ctx, "t", "src", 1); !errors.As(err, &sfe) || sfe.Current != 2 {
		t.Fatalf("claim with an older epoch: %v", err)
	}

	reader := connect(t, broker(addrs...))
	got := fmt.Sprint(values(t, reader, "t"))
	if want := fmt.Sprint([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8"}); got != want {
		t.Fatalf("read_committed reader sees %s, want %s (nothing of the aborted or refused batches)", got, want)
	}
	if pos, err := reader.LastPosition(ctx, "t", "src"); string(pos) != "8" || err != nil {
		t.Fatalf("position for a new process %q %v", pos, err)
	}
	if pos, err := reader.LastPosition(ctx, "t", "other"); pos != nil || err != nil {
		t.Fatalf("position of a source that never published %q %v", pos, err)
	}
}

// TestLastPositionScansBack: other sources' records after a source's last
// position (more than one read window) do not hide it.
func TestLastPositionScansBack(t *testing.T) {
	ctx := ctxT(t)
	k := connect(t, broker(cluster(t)...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	if err := k.ProduceFenced(ctx, "t", seqMsgs(0, 1), topic.Fence{Producer: "quiet", Epoch: 1, Position: []byte("p-quiet")}); err != nil {
		t.Fatal(err)
	}
	n, err := k.Partitions(ctx, PositionsTopic)
	if err != nil {
		t.Fatal(err)
	}
	target := topic.Partition([]byte(positionKey("t", "quiet")), n, 0)
	var noise []topic.Message
	for i := 0; len(noise) < 2000; i++ {
		key := fmt.Appendf(nil, "t/busy-%d", i)
		if topic.Partition(key, n, 0) == target {
			noise = append(noise, topic.Message{Key: key, Value: []byte("x")})
		}
	}
	if err := k.Produce(ctx, PositionsTopic, noise); err != nil {
		t.Fatal(err)
	}
	if pos, err := k.LastPosition(ctx, "t", "quiet"); string(pos) != "p-quiet" || err != nil {
		t.Fatalf("position behind 2000 other records: %q %v", pos, err)
	}
}

// chanSource emits the batches it is handed and reports each Emit's
// result; it remembers the position it was resumed from.
type chanSource struct {
	batches chan []*events.Event
	results chan error
	resumed chan []byte
}

func newChanSource() *chanSource {
	return &chanSource{batches: make(chan []*events.Event), results: make(chan error), resumed: make(chan []byte, 1)}
}

func (s *chanSource) Read(ctx context.Context, resume []byte, emit pipeline.Emitter) error {
	s.resumed <- resume
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.batches:
			err := emit.Emit(ctx, b)
			s.results <- err
			if err != nil {
				return err
			}
		}
	}
}

func (s *chanSource) emit(from, to int) error {
	var b []*events.Event
	for i := from; i < to; i++ {
		e := events.New(events.Insert, "s", events.RawPayload(fmt.Appendf(nil, `{"i":%d}`, i)))
		e.Key = fmt.Appendf(nil, `{"k":%d}`, i%5)
		e.Metadata.Position = strconv.Itoa(i)
		b = append(b, e)
	}
	s.batches <- b
	return <-s.results
}

// TestSourceRunnersFencedOnKafka: `run source` twice for one source, in
// two processes: once the newer instance started, the older one's
// publish is refused and it stops fenced; the newer resumes from the
// position stored with the data; every event is on the topic once.
func TestSourceRunnersFencedOnKafka(t *testing.T) {
	ctx := ctxT(t)
	addrs := cluster(t)
	store, err := state.NewEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runner := func(k *Kafka, src pipeline.Source) *pipeline.SourceRunner {
		return &pipeline.SourceRunner{Name: "src", Source: src, Topic: "t", Producer: k, Store: store, Fencer: store,
			Status: pipeline.NewStatus("src", "chan", "source"), Log: quiet}
	}
	kA, kB := connect(t, broker(addrs...)), connect(t, broker(addrs...))
	kA.AutoCreate, kA.Default = true, topic.Spec{Partitions: 3}
	kB.AutoCreate = true

	srcA := newChanSource()
	a := runner(kA, srcA)
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(ctx) }()
	if r := <-srcA.resumed; r != nil {
		t.Fatalf("first instance resumed from %q", r)
	}
	if err := srcA.emit(0, 10); err != nil {
		t.Fatal(err)
	}

	srcB := newChanSource()
	bctx, stopB := context.WithCancel(ctx)
	defer stopB()
	b := runner(kB, srcB)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(bctx) }()
	if r := <-srcB.resumed; string(r) != "9" {
		t.Fatalf("newer instance resumed from %q, want 9", r)
	}
	if err := srcA.emit(10, 20); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("older instance's publish after the takeover: %v", err)
	}
	if err := <-aDone; !errors.Is(err, state.ErrFenced) || !errors.Is(err, pipeline.ErrFatal) {
		t.Fatalf("older instance ended with %v, want fenced", err)
	}
	if err := srcB.emit(10, 15); err != nil {
		t.Fatal(err)
	}
	stopB()
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	var got []int
	byEpoch := map[string]int{}
	for _, ms := range readAll(t, connect(t, broker(addrs...)), "t") {
		for _, m := range ms {
			e, err := events.DecodeAny(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.Atoi(e.Metadata.Position)
			got = append(got, n)
			if h := m.Headers[len(m.Headers)-1]; h.Key == topic.EpochHeader {
				byEpoch[string(h.Value)]++
			}
		}
	}
	olderEpoch, newerEpoch := strconv.FormatInt(a.Status.Epoch.Load(), 10), strconv.FormatInt(b.Status.Epoch.Load(), 10)
	if byEpoch[olderEpoch] != 10 || byEpoch[newerEpoch] != 5 || len(byEpoch) != 2 {
		t.Fatalf("messages by epoch %v, want 10 from %s and 5 from %s", byEpoch, olderEpoch, newerEpoch)
	}
	sort.Ints(got)
	if fmt.Sprint(got) != fmt.Sprint([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}) {
		t.Fatalf("topic holds positions %v, want 0..14 once each", got)
	}
	if pos, _ := kB.LastPosition(ctx, "t", "src"); string(pos) != "14" {
		t.Fatalf("position stored with the data %q", pos)
	}
}

// TestTransactionInDoubtIsSettled: a commit that fails without a verdict
// (the coordinator answers with an error that is not a refusal) leaves the
// producer in doubt; reading the position claims it again, which aborts
// the open transaction, and the replayed batch is stored once.
func TestTransactionInDoubtIsSettled(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the client's Close, which connect registers next
	ctx := ctxT(t)
	k := connect(t, broker(c.ListenAddrs()...))
	k.Create(ctx, "t", topic.Spec{Partitions: 1})
	f := func(pos string) topic.Fence { return topic.Fence{Producer: "src", Epoch: 1, Position: []byte(pos)} }
	if err := k.ProduceFenced(ctx, "t", seqMsgs(0, 3), f("2")); err != nil {
		t.Fatal(err)
	}
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp, nil, true
	})
	err = k.ProduceFenced(ctx, "t", seqMsgs(3, 6), f("5"))
	if err == nil || errors.Is(err, state.ErrFenced) {
		t.Fatalf("commit without a verdict: %v", err)
	}
	if pos, err := k.LastPosition(ctx, "t", "src"); string(pos) != "2" || err != nil {
		t.Fatalf("position after the batch in doubt: %q %v, want 2", pos, err)
	}
	if err := k.ProduceFenced(ctx, "t", seqMsgs(3, 6), f("5")); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(t, k, "t")); got != "[0 1 2 3 4 5]" {
		t.Fatalf("topic holds %s, want 0..5 once each", got)
	}
	if pos, err := k.LastPosition(ctx, "t", "src"); string(pos) != "5" || err != nil {
		t.Fatalf("position %q %v, want 5", pos, err)
	}
}
