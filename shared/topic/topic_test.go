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
	m.Trim("t", 0, 3) // less than half: kept for now
	if got, _ := m.Fetch(ctx, "t", 0, 0, 1); string(got[0].Value) != "0" {
		t.Fatalf("trimmed too early: %s", got[0].Value)
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
