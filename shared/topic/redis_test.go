package topic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// redisBackends runs fn on the embedded store and on the real Redis.
func redisBackends(t *testing.T, fn func(t *testing.T, r *Redis)) {
	t.Run("embedded", func(t *testing.T) {
		e, err := state.NewEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		fn(t, NewRedis(e.Client()))
	})
	t.Run("redis", func(t *testing.T) {
		testenv.RequireService(t, "redis", "127.0.0.1:6379")
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		t.Cleanup(func() { _ = c.Close() })
		fn(t, NewRedis(c))
	})
}

func uniqueTopic(t *testing.T, r *Redis) string {
	name := fmt.Sprintf("t-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	t.Cleanup(func() { _ = r.Delete(context.Background(), name) })
	return name
}

func TestRedisTransportProduceFetch(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		if _, err := r.Describe(ctx, name); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("describe unknown: %v", err)
		}
		if err := r.Produce(ctx, name, []Message{{Value: []byte("x")}}); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("produce to unknown topic without auto-create: %v", err)
		}
		if err := r.Create(ctx, name, Spec{Partitions: 3, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
		if err := r.Create(ctx, name, Spec{Partitions: 7}); err != nil {
			t.Fatal(err)
		}
		if s, _ := r.Describe(ctx, name); s.Partitions != 3 {
			t.Fatalf("re-create changed the topic: %+v", s)
		}
		var msgs []Message
		for i := range 30 {
			msgs = append(msgs, Message{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "v%d", i),
				Headers: []Header{{Key: "trace", Value: []byte{0, byte(i)}}}})
		}
		if err := r.Produce(ctx, name, msgs); err != nil {
			t.Fatal(err)
		}
		total := 0
		for p := range int32(3) {
			hw, _ := r.HighWatermark(ctx, name, p)
			got, err := r.Fetch(ctx, name, p, 0, 100, 0)
			if err != nil || int64(len(got)) != hw {
				t.Fatalf("partition %d: %d messages, hw %d, %v", p, len(got), hw, err)
			}
			for i, m := range got {
				// Same partitioner as Kafka and the in-memory transport.
				if m.Offset != int64(i) || Partition(m.Key, 3, 0) != p {
					t.Fatalf("message %+v at %d of partition %d", m, i, p)
				}
				if len(m.Headers) != 1 || m.Headers[0].Key != "trace" || len(m.Headers[0].Value) != 2 || m.Time.IsZero() {
					t.Fatalf("headers/time lost: %+v", m)
				}
			}
			total += len(got)
			// From an offset on.
			if hw > 1 {
				tail, _ := r.Fetch(ctx, name, p, hw-1, 100, 0)
				if len(tail) != 1 || tail[0].Offset != hw-1 {
					t.Fatalf("fetch from %d: %+v", hw-1, tail)
				}
			}
		}
		if total != 30 {
			t.Fatalf("%d messages stored", total)
		}
	})
}

func TestRedisTransportBlockingFetch(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		r.Create(ctx, name, Spec{Partitions: 1})
		if got, err := r.Fetch(ctx, name, 0, 0, 10, 10*time.Millisecond); err != nil || len(got) != 0 {
			t.Fatalf("empty topic: %v %v", got, err)
		}
		done := make(chan []Message, 1)
		go func() {
			got, err := r.Fetch(ctx, name, 0, 0, 10, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			done <- got
		}()
		time.Sleep(20 * time.Millisecond) // let the reader block (not an assertion)
		r.Produce(ctx, name, []Message{{Value: []byte("late")}})
		if got := <-done; len(got) != 1 || string(got[0].Value) != "late" {
			t.Fatalf("blocked fetch got %+v", got)
		}
	})
}

func TestRedisTransportFencing(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		r.Create(ctx, name, Spec{Partitions: 2})
		old := Fence{Producer: "src", Epoch: 10, Position: []byte("p1")}
		if err := r.ProduceFenced(ctx, name, []Message{{Key: []byte("a"), Value: []byte("1")}}, old); err != nil {
			t.Fatal(err)
		}
		if pos, _ := r.LastPosition(ctx, name, "src"); string(pos) != "p1" {
			t.Fatalf("position %q", pos)
		}
		// A newer instance claims the topic before it reads anything.
		if err := r.Claim(ctx, name, "src", 11); err != nil {
			t.Fatal(err)
		}
		old.Position = []byte("p2")
		err := r.ProduceFenced(ctx, name, []Message{{Key: []byte("a"), Value: []byte("2")}}, old)
		if !errors.Is(err, state.ErrFenced) {
			t.Fatalf("old instance published after the claim: %v", err)
		}
		if pos, _ := r.LastPosition(ctx, name, "src"); string(pos) != "p1" {
			t.Fatalf("fenced publish moved the position to %q", pos)
		}
		var n int64
		for p := range int32(2) {
			hw, _ := r.HighWatermark(ctx, name, p)
			n += hw
		}
		if n != 1 {
			t.Fatalf("%d messages: the fenced one was stored", n)
		}
		if err := r.Claim(ctx, name, "src", 10); !errors.Is(err, state.ErrFenced) {
			t.Fatalf("older claim accepted: %v", err)
		}
		// Another producer is not affected.
		if err := r.ProduceFenced(ctx, name, []Message{{Value: []byte("x")}}, Fence{Producer: "other", Epoch: 1}); err != nil {
			t.Fatal(err)
		}
		// The epoch travels with each message.
		msgs, _ := r.Fetch(ctx, name, Partition([]byte("a"), 2, 0), 0, 10, 0)
		if len(msgs) == 0 || msgs[0].Headers[len(msgs[0].Headers)-1].Key != EpochHeader || string(msgs[0].Headers[len(msgs[0].Headers)-1].Value) != "10" {
			t.Fatalf("epoch header: %+v", msgs)
		}
	})
}

// TestRedisTransportRetriedBatchIsStoredOnce replays the exact script call
// a client-side retry would send: the batch token makes it a no-op.
func TestRedisTransportRetriedBatchIsStoredOnce(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		r.Create(ctx, name, Spec{Partitions: 1})
		keys := []string{topicKey(name, "meta"), topicKey(name, "fence"), partKey(name, 0)}
		args := []any{"src", 5, "1", "p9", "token-1", 0, 1, 0, "", "payload", ""}
		for range 2 {
			if err := publish.Run(ctx, r.c, keys, args...).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if hw, _ := r.HighWatermark(ctx, name, 0); hw != 1 {
			t.Fatalf("retried batch stored %d times", hw)
		}
	})
}

func TestRedisTransportGroups(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		r.Create(ctx, name, Spec{Partitions: 1})
		if _, ok, err := r.Committed(ctx, "g", name, 0); ok || err != nil {
			t.Fatalf("fresh group committed: %v %v", ok, err)
		}
		r.Commit(ctx, "g", name, 0, 7)
		r.Commit(ctx, "g", name, 0, 3) // late and lower: ignored
		if n, ok, _ := r.Committed(ctx, "g", name, 0); !ok || n != 7 {
			t.Fatalf("committed %d %v", n, ok)
		}
		r.AutoCreate = true
		auto := uniqueTopic(t, r)
		if err := r.Produce(ctx, auto, []Message{{Value: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		if s, err := r.Describe(ctx, auto); err != nil || s.Partitions != 1 {
			t.Fatalf("auto-created %+v %v", s, err)
		}
		if err := r.Create(ctx, "bad{name}", Spec{}); err == nil {
			t.Fatal("braces accepted in a topic name")
		}
	})
}

// A topic created again under the same name (deleted, or lost with a Redis
// restarted empty and created by the next publish) is a new topic: a new
// id, offsets from 0, and offsets committed on the old one are neither
// returned nor accepted, even when the group's hash outlived it.
func TestRedisTransportTopicRecreated(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		if hw, id, err := r.HighWatermarkID(ctx, name, 0); hw != 0 || id != "" || err != nil {
			t.Fatalf("missing topic: %d %q %v", hw, id, err)
		}
		r.Create(ctx, name, Spec{Partitions: 1})
		r.Produce(ctx, name, []Message{{Value: []byte("a")}, {Value: []byte("b")}})
		hw, id1, err := r.HighWatermarkID(ctx, name, 0)
		if hw != 2 || len(id1) != 16 || err != nil {
			t.Fatalf("end %d, id %q, %v", hw, id1, err)
		}
		if err := r.CommitOn(ctx, "g", name, 0, 2, id1); err != nil {
			t.Fatal(err)
		}
		if n, ok, id, _ := r.CommittedID(ctx, "g", name, 0); !ok || n != 2 || id != id1 {
			t.Fatalf("committed %d %v on %q", n, ok, id)
		}

		// The topic's messages and metadata go; its groups stay.
		if err := r.c.Del(ctx, topicKey(name, "meta"), partKey(name, 0)).Err(); err != nil {
			t.Fatal(err)
		}
		r.Create(ctx, name, Spec{Partitions: 1})
		r.Produce(ctx, name, []Message{{Value: []byte("c")}})
		hw, id2, _ := r.HighWatermarkID(ctx, name, 0)
		if hw != 1 || id2 == id1 || id2 == "" {
			t.Fatalf("recreated: end %d, id %q (was %q)", hw, id2, id1)
		}
		if _, ok, id, _ := r.CommittedID(ctx, "g", name, 0); ok || id != id2 {
			t.Fatalf("the old topic's offset is returned for the new one (ok=%v, id %q)", ok, id)
		}
		if _, ok, _ := r.Committed(ctx, "g", name, 0); ok {
			t.Fatal("Committed returns the old topic's offset")
		}
		// A consumer that read on the old topic cannot commit on the new.
		if err := r.CommitOn(ctx, "g", name, 0, 5, id1); !errors.Is(err, ErrTopicRecreated) {
			t.Fatalf("commit with the old id: %v", err)
		}
		// On the new one the offset may be lower than the old topic's.
		if err := r.CommitOn(ctx, "g", name, 0, 1, id2); err != nil {
			t.Fatal(err)
		}
		if n, ok, _ := r.Committed(ctx, "g", name, 0); !ok || n != 1 {
			t.Fatalf("committed %d %v", n, ok)
		}
		r.Commit(ctx, "g", name, 0, 0) // still never backwards within one topic
		if n, _, _ := r.Committed(ctx, "g", name, 0); n != 1 {
			t.Fatalf("committed moved back to %d", n)
		}
	})
}

// countingHook counts the commands a client sends (a pipeline counts
// each of its commands): each is a round trip, or part of one.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// A batch is published in one round trip however large it is, lands
// whole with dense offsets from where the partition stood, and keeps the
// order of each key; a batch refused (fenced, or naming no valid
// partition) stores none of its messages.
func TestRedisTransportBatchIsOneRoundTrip(t *testing.T) {
	testenv.RequireService(t, "redis", "127.0.0.1:6379")
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = c.Close() })
	hook := &countingHook{}
	c.AddHook(hook)
	r := NewRedis(c)
	ctx := context.Background()
	name := uniqueTopic(t, r)
	if err := r.Create(ctx, name, Spec{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	// Warm up: the partition count is cached, the script loaded.
	if err := r.ProduceFenced(ctx, name, []Message{{Key: []byte("k0"), Value: []byte("warm")}}, Fence{Producer: "src", Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "%d", i)}
	}
	before := hook.n.Load()
	if err := r.ProduceFenced(ctx, name, msgs, Fence{Producer: "src", Epoch: 1, Position: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if trips := hook.n.Load() - before; trips != 1 {
		t.Fatalf("a batch of %d took %d commands, want one round trip", n, trips)
	}
	seen := 0
	last := map[string]int{"k0": -1} // the warm-up message is k0's first
	for p := range int32(3) {
		hw, _ := r.HighWatermark(ctx, name, p)
		got, err := r.Fetch(ctx, name, p, 0, 2*n, 0)
		if err != nil || int64(len(got)) != hw {
			t.Fatalf("partition %d: %d messages, end %d, %v", p, len(got), hw, err)
		}
		for i, m := range got {
			if m.Offset != int64(i) {
				t.Fatalf("partition %d: offset %d at %d", p, m.Offset, i)
			}
			if string(m.Value) == "warm" {
				continue
			}
			v, _ := strconv.Atoi(string(m.Value))
			if prev, ok := last[string(m.Key)]; ok && v <= prev {
				t.Fatalf("key %s: %d after %d", m.Key, v, prev)
			}
			last[string(m.Key)] = v
			seen++
		}
	}
	if seen != n {
		t.Fatalf("%d of %d messages stored", seen, n)
	}
	// Refused batches store nothing: a stale epoch, a partition out of
	// range (checked before the first message is appended).
	if err := r.Claim(ctx, name, "src", 2); err != nil {
		t.Fatal(err)
	}
	ends := func() (sum int64) {
		for p := range int32(3) {
			hw, _ := r.HighWatermark(ctx, name, p)
			sum += hw
		}
		return sum
	}
	was := ends()
	if err := r.ProduceFenced(ctx, name, msgs, Fence{Producer: "src", Epoch: 1}); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("stale epoch: %v", err)
	}
	keys := []string{topicKey(name, "meta"), topicKey(name, "fence"), partKey(name, 0), partKey(name, 1), partKey(name, 2)}
	args := []any{"", 0, "0", "", "", 0, 2, 0, "", "a", "", 3, "", "b", ""}
	if err := publish.Run(ctx, c, keys, args...).Err(); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("partition 3 of 3: %v", err)
	}
	if now := ends(); now != was {
		t.Fatalf("refused batches stored %d messages", now-was)
	}
}

// Fetch reads the raw reply itself: it must read what it wrote under
// both protocols a client may speak (RESP2 arrays, RESP3 maps), hand out
// values an append cannot spill from, and report error replies as Redis
// errors, a short reply as an error, and a null reply as no messages.
func TestRedisTransportFetchRawReply(t *testing.T) {
	testenv.RequireService(t, "redis", "127.0.0.1:6379")
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Protocol: proto})
			t.Cleanup(func() { _ = c.Close() })
			r := NewRedis(c)
			ctx := context.Background()
			name := uniqueTopic(t, r)
			r.Create(ctx, name, Spec{Partitions: 1})
			in := []Message{
				{Key: []byte("a"), Value: []byte("first"), Headers: []Header{{Key: "x", Value: []byte("1")}}},
				{Value: []byte("")},
				{Key: []byte("c"), Value: []byte("third\r\nwith CRLF")},
			}
			if err := r.ProduceFenced(ctx, name, in, Fence{Producer: "p", Epoch: 7}); err != nil {
				t.Fatal(err)
			}
			got, err := r.Fetch(ctx, name, 0, 0, 10, 0)
			if err != nil || len(got) != 3 {
				t.Fatalf("%d messages, %v", len(got), err)
			}
			for i, m := range got {
				if m.Offset != int64(i) || string(m.Key) != string(in[i].Key) || string(m.Value) != string(in[i].Value) || m.Time.IsZero() {
					t.Fatalf("message %d: %+v", i, m)
				}
				last := m.Headers[len(m.Headers)-1]
				if last.Key != EpochHeader || string(last.Value) != "7" {
					t.Fatalf("message %d: epoch header %+v", i, m.Headers)
				}
			}
			if len(got[0].Headers) != 2 || got[0].Headers[0].Key != "x" || string(got[0].Headers[0].Value) != "1" {
				t.Fatalf("headers %+v", got[0].Headers)
			}
			_ = append(got[0].Value, "XXXXXXXXXXXXXXXX"...)
			if string(got[1].Value) != "" || string(got[2].Value) != "third\r\nwith CRLF" {
				t.Fatal("an append to one value changed the next")
			}
			if got, err := r.Fetch(ctx, name, 0, 3, 10, 0); err != nil || len(got) != 0 {
				t.Fatalf("past the end: %v %v", got, err)
			}
			// The parsed way a redirected fetch takes reads the same.
			parsed, err := r.fetchParsed(ctx, name, 0, 0, 10, 0)
			if err != nil || fmt.Sprint(parsed) != fmt.Sprint(got) {
				t.Fatalf("parsed fetch:\n%v %v\nraw fetch:\n%v", parsed, err, got)
			}
			if got, err := r.fetchParsed(ctx, name, 0, 3, 10, 0); err != nil || len(got) != 0 {
				t.Fatalf("parsed fetch past the end: %v %v", got, err)
			}
			// A key of the wrong type: Redis answers with an error reply.
			c.Set(ctx, partKey(name, 5), "not a stream", time.Minute)
			t.Cleanup(func() { c.Del(context.Background(), partKey(name, 5)) })
			var rerr redis.Error
			if _, err := r.Fetch(ctx, name, 5, 0, 10, 0); !errors.As(err, &rerr) || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("error reply: %v", err)
			}
		})
	}
	for _, raw := range []string{"*1\r\n*2\r\n$3\r\nkey\r\n*1\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\nv\r\n$9\r\nshort", "*1\r\n*2\r\n$3\r\nkey\r\n*1\r\n*2\r\n$3\r\n1-x\r\n*0\r\n"} {
		if _, err := decodeXRead([]byte(raw), "t", 0); err == nil {
			t.Fatalf("accepted %q", raw)
		}
	}
	for raw, want := range map[string]bool{"-MOVED 3999 127.0.0.1:6381\r\n": true, "-ASK 3999 127.0.0.1:6381\r\n": true, "-WRONGTYPE Operation\r\n": false} {
		if _, err := decodeXRead([]byte(raw), "t", 0); redirected(err) != want {
			t.Fatalf("%q: redirected %v, want %v", raw, redirected(err), want)
		}
	}
	for _, null := range []string{"*-1\r\n", "_\r\n", "*0\r\n", "%0\r\n"} {
		if got, err := decodeXRead([]byte(null), "t", 0); err != nil || len(got) != 0 {
			t.Fatalf("%q: %v %v", null, got, err)
		}
	}
}

// A fetch's buffer is sized from its partition's last reply: a batch
// like the last gets a buffer it fits in, a smaller limit a smaller one,
// and a partition whose last fetch found nothing (an idle one, polled
// every second) a small one, whatever its neighbours read.
func TestRedisTransportFetchBufferFollowsThePartition(t *testing.T) {
	redisBackends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		name := uniqueTopic(t, r)
		r.Create(ctx, name, Spec{Partitions: 2})
		msgs := make([]Message, 200)
		for i := range msgs {
			msgs[i] = Message{Key: []byte("busy"), Value: []byte(strings.Repeat("v", 1000))}
		}
		if err := r.Produce(ctx, name, msgs); err != nil {
			t.Fatal(err)
		}
		busy, idle := Partition([]byte("busy"), 2, 0), 1-Partition([]byte("busy"), 2, 0)
		got, err := r.Fetch(ctx, name, busy, 0, 200, 0)
		if err != nil || len(got) != 200 {
			t.Fatalf("%d messages, %v", len(got), err)
		}
		if size := r.replySize(partKey(name, int(busy)), 200); size < 200*1000 || size > 400*1000 {
			t.Fatalf("a batch like the last: %d bytes", size)
		}
		if size := r.replySize(partKey(name, int(busy)), 1); size > 4000 {
			t.Fatalf("one message: %d bytes", size)
		}
		if got, err := r.Fetch(ctx, name, idle, 0, 200, 5*time.Millisecond); err != nil || len(got) != 0 {
			t.Fatalf("idle partition: %v %v", got, err)
		}
		if size := r.replySize(partKey(name, int(idle)), 200); size > 1024 {
			t.Fatalf("idle partition: %d bytes", size)
		}
		// The busy partition caught up: its next poll waits with a small buffer.
		if got, err := r.Fetch(ctx, name, busy, 200, 200, 5*time.Millisecond); err != nil || len(got) != 0 {
			t.Fatalf("caught up: %v %v", got, err)
		}
		if size := r.replySize(partKey(name, int(busy)), 200); size > 1024 {
			t.Fatalf("caught-up partition: %d bytes", size)
		}
	})
}
