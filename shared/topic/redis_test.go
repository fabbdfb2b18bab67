package topic

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
