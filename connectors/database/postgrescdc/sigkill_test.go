package postgrescdc

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
	"github.com/rivven/rivven-connect/shared/topic"
)

const (
	redisAddr  = "127.0.0.1:6379"
	childEnv   = "PGCDC_SIGKILL_CHILD"
	childTopic = "PGCDC_CHILD_TOPIC"
	childCfg   = "PGCDC_CHILD_CONFIG"
	childSpool = "PGCDC_CHILD_SPOOL"
)

// TestMain lets the test binary double as the source process that
// TestSigkill kills: the engine's SourceRunner with the Redis topic
// transport and state store, as `rivven-connect run source` wires them.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	os.Exit(testenv.Main(m, testenv.Usability{Name: "postgres", Addr: pgAddr, Check: serverUsable}))
}

func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, ps := spec.DecodeString[Config](os.Getenv(childCfg), "config")
	if len(ps) > 0 {
		log.Error("config", "problems", spec.Problems(ps))
		return 2
	}
	src, err := newSource(cfg)
	if err != nil {
		log.Error("new", "error", err)
		return 2
	}
	src.extraParams = map[string]string{"logical_decoding_work_mem": "64kB"}
	src.maxBatch = 200
	src.spillDir = os.Getenv(childSpool)
	store, err := state.NewRedis("redis://" + redisAddr + "/0")
	if err != nil {
		log.Error("redis", "error", err)
		return 1
	}
	defer store.Close()
	tr := topic.NewRedis(store.Client())
	tr.AutoCreate = true
	tr.Default = topic.Spec{Partitions: 3, ReplicationFactor: 1}
	name := os.Getenv(childEnv)
	r := &pipeline.SourceRunner{
		Name: name, Source: src, Topic: os.Getenv(childTopic), Producer: tr, Store: store, Fencer: store,
		Status: pipeline.NewStatus(name, "postgres-cdc", "source"), Log: log,
	}
	if err := r.Run(ctx); err != nil {
		log.Error("run", "error", err)
		return 1
	}
	return 0
}

// TestSigkill runs the source as a real process under the engine and
// kills it with SIGKILL at random points of the snapshot and of a big
// streamed transaction; after the restarts the topic holds every row
// state exactly once, per key in order. Between the snapshot's kills rows
// it has not read yet are changed, so the restarts resume it alongside
// the stream: those rows arrive through their changes only, never again
// as a read.
func TestSigkill(t *testing.T) {
	testenv.RequireService(t, "redis", redisAddr)
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id bigint PRIMARY KEY, v int NOT NULL)`, `INSERT INTO $T SELECT g, 0 FROM generate_series(1, 4000) g`)
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rc.Close()
	tr := topic.NewRedis(rc)
	topicName, srcName := h.name+"_topic", h.name+"_src"
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pat := range []string{"rivven:{" + srcName + "}:*", "rivven:topic:{" + topicName + "*"} {
			if keys, _ := rc.Keys(ctx, pat).Result(); len(keys) > 0 {
				rc.Del(ctx, keys...)
			}
		}
	})
	y := fmt.Sprintf("host: 127.0.0.1\ndatabase: test\nuser: postgres\npassword: \"\"\nslot_name: %s\npublication_name: %s\npublication_tables: [public.%s]\ntls: {mode: disable}\nsnapshot: {batch_size: 300, parallel_tables: 1}\n", h.name, h.name, h.name)

	// read decodes everything the topic holds.
	read := func() []*events.Event {
		ctx := context.Background()
		n, err := tr.Partitions(ctx, topicName)
		if err != nil {
			return nil
		}
		var out []*events.Event
		for p := range n {
			for from := int64(0); ; {
				msgs, err := tr.Fetch(ctx, topicName, int32(p), from, 5000, 0)
				if err != nil || len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					e, err := events.Rivven.Decode(m.Value)
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					out = append(out, e)
				}
				from = msgs[len(msgs)-1].Offset + 1
			}
		}
		return out
	}
	published := func() int64 {
		ctx := context.Background()
		n, err := tr.Partitions(ctx, topicName)
		if err != nil {
			return 0
		}
		var total int64
		for p := range n {
			hw, _ := tr.HighWatermark(ctx, topicName, int32(p))
			total += hw
		}
		return total
	}
	spool := t.TempDir()
	startChild := func() (*exec.Cmd, chan error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+srcName, childTopic+"="+topicName, childCfg+"="+y, childSpool+"="+spool)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd, done
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	kills := 0
	// killAt runs the source until target messages are published, then
	// kills it.
	killAt := func(target int64) {
		cmd, done := startChild()
		deadline := time.Now().Add(60 * time.Second)
		for published() < target {
			select {
			case err := <-done:
				t.Fatalf("source process exited before the kill: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("source published only %d of %d messages", published(), target)
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		kills++
	}
	finish := func(what string) {
		cmd, done := startChild()
		waitFor(t, 90*time.Second, what, func() bool { return caughtUp(h, h.name, read()) })
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("source process ignored SIGTERM")
		}
	}
	t.Logf("seed %d", seed)
	for i, target := range []int64{300 + rng.Int64N(1000), 1500 + rng.Int64N(1000), 2800 + rng.Int64N(1000)} {
		killAt(target)
		// While it is down: rows ahead of every kill point.
		lo := 3850 + 50*i
		h.exec(fmt.Sprintf(`UPDATE $T SET v = v + 1 WHERE id BETWEEN %d AND %d OR id = 3999`, lo, lo+20))
	}
	finish("snapshot delivered")
	base := published()
	// Streaming: one big transaction (spooled, 200-event batches) and
	// small ones, with kills in the middle of the big one.
	h.exec(`INSERT INTO $T SELECT g, 0 FROM generate_series(4001, 10000) g`, `UPDATE $T SET v = v + 1 WHERE id % 5 = 0`)
	for i := 0; i < 30; i++ {
		h.exec(`UPDATE $T SET v = v + 1 WHERE id = ` + strconv.Itoa(1+i*311))
	}
	for _, target := range []int64{base + 500 + rng.Int64N(2000), base + 3000 + rng.Int64N(2000), base + 6000 + rng.Int64N(1500)} {
		killAt(target)
	}
	finish("stream delivered")
	// The last run stopped cleanly and removed its spools; what killed
	// runs left was removed by their successors.
	if left, _ := filepath.Glob(filepath.Join(spool, "*", "*.spool")); len(left) > 0 {
		t.Fatalf("spool files left behind: %v", left)
	}
	all := read()
	if repeats := checkOrdered(t, h, h.name, all, 0); repeats > 0 {
		t.Fatalf("%d snapshot reads repeat a state the stream delivered", repeats)
	}
	// The rows changed ahead of the snapshot arrived as changes only.
	first := map[int64]events.Type{}
	for _, e := range dataEvents(all, h.name) {
		if id := num(rowOf(t, e)["id"]); first[id] == "" {
			first[id] = e.Type
		}
	}
	changedFirst := 0
	for _, typ := range first {
		if typ == events.Update {
			changedFirst++
		}
	}
	if changedFirst == 0 {
		t.Fatal("no row arrived through a change instead of a read: the snapshot was not resumed alongside the stream")
	}
	t.Logf("%d rows arrived through their changes instead of a read", changedFirst)
	t.Logf("%d SIGKILLs, %d messages on the topic, each row state once", kills, len(all))
}
