package topic

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Kafka's own test vectors (UtilsTest.testMurmur2), as signed Java ints.
func TestMurmur2MatchesKafka(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range cases {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestPartitionSameKeySamePartition(t *testing.T) {
	seen := map[int32]bool{}
	for i := range 100 {
		key := []byte(fmt.Sprintf(`{"id":%d}`, i))
		p := Partition(key, 8, uint32(i))
		if q := Partition(key, 8, uint32(i+7)); p != q {
			t.Fatalf("key %s went to %d then %d", key, p, q)
		}
		if p < 0 || p >= 8 {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) < 6 {
		t.Errorf("100 keys used only %d of 8 partitions", len(seen))
	}
	if Partition(nil, 4, 5) != 1 || Partition(nil, 4, 6) != 2 {
		t.Error("keyless messages should round-robin")
	}
}

func TestMemoryProduceFetchCommit(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	if err := m.Produce(ctx, "t", []Message{{Value: []byte("x")}}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("produce to missing topic without auto-create: %v", err)
	}
	m.AutoCreate = true
	m.Default = Spec{Partitions: 3}
	var msgs []Message
	for i := range 30 {
		msgs = append(msgs, Message{Key: []byte{byte('a' + i%5)}, Value: []byte(fmt.Sprint(i))})
	}
	if err := m.Produce(ctx, "t", msgs); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Partitions("t"); n != 3 {
		t.Fatalf("partitions = %d", n)
	}
	total := 0
	for p := range int32(3) {
		hw := m.HighWatermark("t", p)
		if hw == 0 {
			continue
		}
		got, err := m.Fetch(ctx, "t", p, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != hw {
			t.Fatalf("fetched %d, high watermark %d", len(got), hw)
		}
		last := map[string]int{}
		for i, g := range got {
			if g.Offset != int64(i) || g.Partition != p || g.Topic != "t" {
				t.Fatalf("bad coordinates %+v", g)
			}
			var v int
			fmt.Sscan(string(g.Value), &v)
			if prev, ok := last[string(g.Key)]; ok && v <= prev {
				t.Fatalf("key %s out of order: %d after %d", g.Key, v, prev)
			}
			last[string(g.Key)] = v
		}
		total += len(got)
	}
	if total != 30 {
		t.Fatalf("total %d", total)
	}
	m.Commit("g", "t", 0, 2)
	m.Commit("g", "t", 0, 1) // commits never go backwards
	if off, ok := m.Committed("g", "t", 0); !ok || off != 2 {
		t.Fatalf("committed = %d %v", off, ok)
	}
}

func TestMemoryFetchWaitsAndCancels(t *testing.T) {
	m := NewMemory()
	m.Create(context.Background(), "t", Spec{Partitions: 1})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []Message, 1)
	go func() {
		msgs, _ := m.Fetch(ctx, "t", 0, 0, 10)
		got <- msgs
	}()
	m.Produce(context.Background(), "t", []Message{{Value: []byte("late")}})
	select {
	case msgs := <-got:
		if len(msgs) != 1 || string(msgs[0].Value) != "late" {
			t.Fatalf("got %v", msgs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fetch did not wake up on produce")
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Fetch(ctx, "t", 0, 1, 10)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("fetch after cancel: %v", err)
	}
}

func TestMemoryTrimKeepsOffsets(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	m.Create(ctx, "t", Spec{Partitions: 1})
	for i := range 10 {
		m.Produce(ctx, "t", []Message{{Value: []byte(fmt.Sprint(i))}})
	}
	m.Trim("t", 0, 3)
	if got, _ := m.Fetch(ctx, "t", 0, 0, 1); got[0].Offset != 3 || string(got[0].Value) != "3" {
		t.Fatalf("after trim to 3: %+v", got)
	}
	m.Trim("t", 0, 7)
	got, _ := m.Fetch(ctx, "t", 0, 0, 100)
	if len(got) != 3 || got[0].Offset != 7 || string(got[0].Value) != "7" {
		t.Fatalf("after trim: %+v", got)
	}
	m.Produce(ctx, "t", []Message{{Value: []byte("10")}})
	if hw := m.HighWatermark("t", 0); hw != 11 {
		t.Fatalf("high watermark %d", hw)
	}
	got, _ = m.Fetch(ctx, "t", 0, 10, 5)
	if len(got) != 1 || got[0].Offset != 10 {
		t.Fatalf("fetch after trim+produce: %+v", got)
	}
}

// A subscribed topic releases what every reader committed, and a producer
// waits for room while a partition is full, until a commit or the last
// reader leaving frees some.
func TestMemorySubscribedTopicIsBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	m.MaxMessages = 4
	m.Create(ctx, "t", Spec{Partitions: 1})
	m.Subscribe("a", "t")
	m.Subscribe("b", "t")
	batch := func(vals ...string) []Message {
		out := make([]Message, len(vals))
		for i, v := range vals {
			out[i] = Message{Value: []byte(v)}
		}
		return out
	}
	if err := m.Produce(ctx, "t", batch("0", "1", "2", "3")); err != nil {
		t.Fatal(err)
	}
	produced := make(chan error, 1)
	go func() { produced <- m.Produce(ctx, "t", batch("4", "5")) }()
	select {
	case err := <-produced:
		t.Fatalf("produce into a full partition returned (%v) before anything was committed", err)
	case <-time.After(50 * time.Millisecond):
	}
	m.Commit("a", "t", 0, 3)
	if n, _ := m.Held("t", 0); n != 4 {
		t.Fatalf("one reader committed: %d held, want all 4", n)
	}
	select {
	case err := <-produced:
		t.Fatalf("produce returned (%v) while b committed nothing", err)
	case <-time.After(50 * time.Millisecond):
	}
	m.Commit("b", "t", 0, 2)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if n, b := m.Held("t", 0); n != 4 || b != 4 {
		t.Fatalf("after both committed 2 and 2 more came: %d messages, %d bytes held, want 4, 4", n, b)
	}
	if got, _ := m.Fetch(ctx, "t", 0, 0, 10); got[0].Offset != 2 || len(got) != 4 || string(got[3].Value) != "5" {
		t.Fatalf("kept: %+v", got)
	}

	// The partition is full; a reader that leaves lets the producer on.
	go func() { produced <- m.Produce(ctx, "t", batch("6")) }()
	select {
	case err := <-produced:
		t.Fatalf("produce returned (%v) into a full partition", err)
	case <-time.After(50 * time.Millisecond):
	}
	m.Unsubscribe("b", "t") // a is at 3: offset 2 goes
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	m.Unsubscribe("a", "t")
	for i := range 20 { // nobody reads: no bound, nothing released
		if err := m.Produce(ctx, "t", batch(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := m.Held("t", 0); n != 24 {
		t.Fatalf("unread topic holds %d, want 24", n)
	}

	// A producer waiting for room stops with its context.
	m.Subscribe("a", "t")
	cctx, cancel := context.WithCancel(ctx)
	go func() { produced <- m.Produce(cctx, "t", batch("x")) }()
	cancel()
	if err := <-produced; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled produce: %v", err)
	}
}

// Releasing entries while others are appended keeps every offset and
// value: the log compacts into new arrays, never over what a fetch
// returned before.
func TestMemoryReleaseKeepsFetchedEntries(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	m.MaxMessages = 100
	m.Create(ctx, "t", Spec{Partitions: 1})
	m.Subscribe("g", "t")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 4998; i += 3 {
			// Batches of 3 do not fill the array exactly.
			b := []Message{{Value: []byte(fmt.Sprint(i))}, {Value: []byte(fmt.Sprint(i + 1))}, {Value: []byte(fmt.Sprint(i + 2))}}
			if err := m.Produce(ctx, "t", b); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var next int64
	for next < 4998 {
		got, err := m.Fetch(ctx, "t", 0, next, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range got {
			if msg.Offset != next || string(msg.Value) != fmt.Sprint(next) {
				t.Fatalf("at %d got offset %d value %q", next, msg.Offset, msg.Value)
			}
			next++
		}
		m.Commit("g", "t", 0, next)
		if n, _ := m.Held("t", 0); n > 100+3 {
			t.Fatalf("%d held, bound 100 (+ one batch)", n)
		}
		// The array behind the log does not grow with what went through it.
		p := m.topics["t"].partitions[0]
		p.mu.Lock()
		c := cap(p.log)
		p.mu.Unlock()
		if c > 8*100 {
			t.Fatalf("log array of %d entries after %d messages, bound 100", c, next)
		}
	}
	<-done
}

// A consumer that stays behind the producer (the log never empties) keeps
// the array behind the log bounded too: released entries are compacted
// away rather than kept while the array grows.
func TestMemoryLaggingConsumerKeepsLogBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	m.MaxMessages = 100
	m.Create(ctx, "t", Spec{Partitions: 1})
	m.Subscribe("g", "t")
	var produced, next int64
	for next < 10000 {
		if n, _ := m.Held("t", 0); n < 100 {
			b := []Message{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}
			if err := m.Produce(ctx, "t", b); err != nil {
				t.Fatal(err)
			}
			produced += 3
		}
		got, err := m.Fetch(ctx, "t", 0, next, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Offset != next {
			t.Fatalf("fetched offset %d, want %d", got[0].Offset, next)
		}
		next += int64(len(got))
		m.Commit("g", "t", 0, next)
		p := m.topics["t"].partitions[0]
		p.mu.Lock()
		c := cap(p.log)
		p.mu.Unlock()
		// Compacting at half released, growing by doubling (and size
		// class rounding) keeps it within a few times the bound.
		if c > 8*100 {
			t.Fatalf("log array of %d entries after %d messages, bound 100", c, next)
		}
	}
}
