package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/testenv"
	"github.com/rivven/rivven-connect/shared/topic/kafkatopic"
)

// With a broker block, `run source` publishes to Kafka (kfake, the real
// wire protocol in process) and `run sink` consumes from it, committing
// the group's offsets there; Redis keeps only epochs and the ledger.
func TestRunOnKafka(t *testing.T) {
	testenv.RequireService(t, "redis", redisAddr)
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	bin := buildCLI(t)
	e := newRunEnv(t)
	const total = 2000
	file := writeFile(t, fmt.Sprintf(`
broker:
  bootstrap_servers: [%q]
settings:
  state: {redis_url: "redis://%s/0"}
  topic: {auto_create: true, default_partitions: 3}
sources:
  %s:
    connector: datagen
    topic: %s
    config: {pattern: orders, events_per_second: 0, max_events: %d}
sinks:
  %s:
    connector: drop
    topics: [%s]
`, c.ListenAddrs()[0], redisAddr, e.source, e.topc, total, e.sink, e.topc))

	src := start(t, bin, "run", "source", e.source, "-c", file)
	if code := src.wait(t); code != exitOK {
		t.Fatalf("source exited %d:\n%s", code, src.stderr)
	}
	if !strings.Contains(src.stderr.String(), `"transport":"kafka"`) {
		t.Errorf("the source did not say it runs on Kafka:\n%s", src.stderr)
	}
	k, err := kafkatopic.New(context.Background(), &config.Broker{BootstrapServers: c.ListenAddrs(), ConnectionTimeoutMs: 5000, RequestTimeoutMs: 10000, MetadataRefreshMs: 300000})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx := context.Background()
	n, err := k.Partitions(ctx, e.topc)
	if err != nil || n != 3 {
		t.Fatalf("%d partitions (%v), want 3 (settings.topic.default_partitions)", n, err)
	}
	// Where each partition's data ends: the source publishes in
	// transactions, so commit markers sit between the records.
	next := make([]int64, n)
	records := 0
	for p := range int32(n) {
		for {
			msgs, err := k.Fetch(ctx, e.topc, p, next[p], 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			records += len(msgs)
			next[p] = msgs[len(msgs)-1].Offset + 1
		}
	}
	if records != total {
		t.Fatalf("%d records on the topic, want %d", records, total)
	}
	consumed := func() bool {
		for p := range int32(n) {
			off, _, err := k.Committed(ctx, e.sink, e.topc, p)
			if err != nil {
				t.Fatal(err)
			}
			if off < next[p] {
				return false
			}
		}
		return true
	}
	sink := start(t, bin, "run", "sink", e.sink, "-c", file)
	until(t, "the sink to commit everything", func() bool { return consumed() || sink.exited() })
	if sink.exited() {
		t.Fatalf("sink exited %d:\n%s", sink.code, sink.stderr)
	}
	sink.cmd.Process.Signal(syscall.SIGTERM)
	if code := sink.wait(t); code != exitOK {
		t.Fatalf("sink exited %d on SIGTERM:\n%s", code, sink.stderr)
	}
}
