package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
	"github.com/rivven/rivven-connect/shared/topic"
)

const redisAddr = "127.0.0.1:6379"

// runEnv is one test's names on the shared Redis, removed afterwards.
type runEnv struct {
	c                  redis.UniversalClient
	tr                 *topic.Redis
	source, sink, topc string
}

func newRunEnv(t *testing.T) *runEnv {
	t.Helper()
	testenv.RequireService(t, "redis", redisAddr)
	c := redis.NewClient(&redis.Options{Addr: redisAddr})
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	e := &runEnv{c: c, tr: topic.NewRedis(c), source: "gen-" + id, sink: "out-" + id, topc: "run-" + id}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pat := range []string{"rivven:{" + e.source + "}:*", "rivven:{sink:" + e.sink + "}:*", "rivven:topic:{" + e.topc + "*"} {
			if keys, _ := c.Keys(ctx, pat).Result(); len(keys) > 0 {
				c.Del(ctx, keys...)
			}
		}
		c.Close()
	})
	return e
}

// pipelineFile writes a pipeline with the env's names: datagen (config
// given) → topic → sink (connector given).
func (e *runEnv) pipelineFile(t *testing.T, genConfig, sinkConnector string) string {
	return writeFile(t, fmt.Sprintf(`
settings:
  state: {redis_url: "redis://%s/0"}
  topic: {default_partitions: 4}
sources:
  %s:
    connector: datagen
    topic: %s
    config: %s
sinks:
  %s:
    connector: %s
    topics: [%s]
`, redisAddr, e.source, e.topc, genConfig, e.sink, sinkConnector, e.topc))
}

// published is how many messages the topic holds.
func (e *runEnv) published(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	n, err := e.tr.Partitions(ctx, e.topc)
	if err != nil {
		return 0
	}
	var total int64
	for p := range n {
		hw, _ := e.tr.HighWatermark(ctx, e.topc, int32(p))
		total += hw
	}
	return total
}

// buildCLI builds the command once per test that needs real processes.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rivven-connect")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer the process's output copier and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a CLI subprocess.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, bin, nil, args...)
}

// startEnv is start with the environment env (nil: this process's).
func startEnv(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit (bounded, so a hang fails the test
// instead of the whole run) and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(60 * time.Second):
		t.Fatalf("process did not exit; stderr:\n%s", p.stderr)
		return 0
	}
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunService runs the CLI as real processes against Redis: a newer
// source instance fences the older one (exit 3, "fenced"), and a source
// killed with SIGKILL at random points still delivers every event once.
func TestRunService(t *testing.T) {
	testenv.RequireService(t, "redis", redisAddr)
	bin := buildCLI(t)

	t.Run("newer instance fences the older", func(t *testing.T) {
		e := newRunEnv(t)
		file := e.pipelineFile(t, "{pattern: orders, events_per_second: 2000}", "drop")
		older := start(t, bin, "run", "source", e.source, "-c", file)
		until(t, "the first instance to publish", func() bool { return e.published(t) > 0 || older.exited() })
		if older.exited() {
			t.Fatalf("first instance exited %d:\n%s", older.code, older.stderr)
		}
		newer := start(t, bin, "run", "source", e.source, "-c", file)
		code := older.wait(t)
		if code != exitFenced || !strings.Contains(older.stderr.String(), "fenced") {
			t.Fatalf("older instance exited %d, want %d with \"fenced\":\n%s", code, exitFenced, older.stderr)
		}
		until(t, "the newer instance to publish", func() bool {
			return strings.Contains(newer.stderr.String(), "holds its epoch") && e.published(t) > 0
		})
		// In every partition the older epoch's entries all come before
		// the newer's: nothing of the older was accepted after the takeover.
		ctx := context.Background()
		epochs := map[string]bool{}
		for p := range int32(4) {
			last := int64(0)
			for from := int64(0); ; {
				msgs, err := e.tr.Fetch(ctx, e.topc, p, from, 1000, 0)
				if err != nil {
					t.Fatal(err)
				}
				if len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					ep, _ := strconv.ParseInt(string(m.Headers[len(m.Headers)-1].Value), 10, 64)
					if ep < last {
						t.Fatalf("partition %d offset %d: epoch %d written after epoch %d", p, m.Offset, ep, last)
					}
					last = ep
					epochs[strconv.FormatInt(ep, 10)] = true
				}
				from = msgs[len(msgs)-1].Offset + 1
			}
		}
		newer.cmd.Process.Signal(syscall.SIGTERM)
		if code := newer.wait(t); code != exitOK {
			t.Fatalf("newer instance exited %d on SIGTERM:\n%s", code, newer.stderr)
		}
		if len(epochs) > 2 {
			t.Fatalf("%d epochs on the topic, want at most 2", len(epochs))
		}
	})

	t.Run("SIGKILL at random points loses and repeats nothing", func(t *testing.T) {
		const total = 100_000
		e := newRunEnv(t)
		file := e.pipelineFile(t, fmt.Sprintf("{pattern: orders, events_per_second: 0, max_events: %d, seed: 7}", total), "drop")

		// The sink side runs in this process through the same Handler
		// and ledger as `run sink`; it is restarted from scratch (its
		// group offsets wiped, as after a crash before any commit) at
		// every kill, so only the ledger stands between it and duplicates.
		rec := &recordingSink{seen: map[string]int{}}
		sinkCtx, stopSink := context.WithCancel(context.Background())
		defer stopSink()
		var sinkWG sync.WaitGroup
		var skipped atomic.Uint64
		runSink := func(ctx context.Context) {
			l, err := resilience.NewLedger(e.c, resilience.LedgerConfig{Connector: pipeline.SinkStateName(e.sink), Dedup: resilience.DedupOffsets, Breaker: &resilience.DefaultBreaker})
			if err != nil {
				t.Error(err)
				return
			}
			h := &pipeline.Handler{Name: e.sink, Sink: rec, Ledger: l, Log: quietLog}
			r := &pipeline.SinkRunner{Handler: h, Transport: e.tr, Topics: []string{e.topc}, Group: e.sink, Wait: 20 * time.Millisecond, Log: quietLog}
			sinkWG.Add(1)
			go func() {
				defer sinkWG.Done()
				if err := r.Run(ctx); err != nil {
					t.Error(err)
				}
				skipped.Add(h.Status.Duplicates.Load())
			}()
		}
		cycle, stopCycle := context.WithCancel(sinkCtx)
		until(t, "the topic", func() bool {
			return pipeline.EnsureTopic(context.Background(), e.tr, topicSettings, e.topc, nil, "t", nil) == nil
		})
		runSink(cycle)

		targets := make([]int64, 12)
		for i := range targets {
			targets[i] = 2_000 + rand.Int64N(total-10_000)
		}
		slices.Sort(targets)
		kills := 0
		for _, target := range targets {
			p := start(t, bin, "run", "source", e.source, "-c", file)
			until(t, fmt.Sprintf("%d events published", target), func() bool { return e.published(t) >= target || p.exited() })
			if p.exited() {
				if p.code != 0 || e.published(t) < target {
					t.Fatalf("source exited %d before the kill:\n%s", p.code, p.stderr)
				}
				continue
			}
			p.cmd.Process.Signal(syscall.SIGKILL)
			p.wait(t)
			kills++
			// Crash the sink consumer too, forgetting its group offsets.
			stopCycle()
			sinkWG.Wait()
			e.c.Del(context.Background(), "rivven:topic:{"+e.topc+"}:groups")
			cycle, stopCycle = context.WithCancel(sinkCtx)
			runSink(cycle)
		}
		if kills < 10 {
			t.Fatalf("only %d kills landed during the stream", kills)
		}
		last := start(t, bin, "run", "source", e.source, "-c", file)
		if code := last.wait(t); code != 0 {
			t.Fatalf("final run exited %d:\n%s", code, last.stderr)
		}
		if n := e.published(t); n != total {
			t.Fatalf("the topic holds %d messages for %d events: publish and position came apart", n, total)
		}
		until(t, "the sink to receive everything", func() bool { return rec.count() >= total })
		stopCycle()
		stopSink()
		sinkWG.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.seen) != total || rec.writes != total {
			t.Fatalf("sink saw %d distinct events in %d writes, want %d exactly once", len(rec.seen), rec.writes, total)
		}
		for i := range total {
			if rec.seen[strconv.Itoa(i)] != 1 {
				t.Fatalf("event %d seen %d times", i, rec.seen[strconv.Itoa(i)])
			}
		}
		t.Logf("%d SIGKILLs; %d events, each written once; %d redeliveries skipped by the ledger", kills, total, skipped.Load())
	})
}

// recordingSink counts each event by its datagen sequence number.
type recordingSink struct {
	mu     sync.Mutex
	seen   map[string]int
	writes int
}

var (
	quietLog      = slog.New(slog.NewTextHandler(io.Discard, nil))
	topicSettings = config.TopicSettings{AutoCreate: true, DefaultPartitions: 4, DefaultReplicationFactor: 1}
)

func (s *recordingSink) Write(_ context.Context, b []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b {
		s.seen[e.Metadata.Position]++
		s.writes++
	}
	return nil
}

func (s *recordingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func TestRunSinkConsumesOnceAndIsFenced(t *testing.T) {
	e := newRunEnv(t)
	file := e.pipelineFile(t, "{pattern: users, events_per_second: 0, max_events: 300, seed: 1}", "stdout")
	if code, _, errOut := cli(t, "run", "source", e.source, "-c", file); code != 0 {
		t.Fatalf("run source exited %d:\n%s", code, errOut)
	}
	if n := e.published(t); n != 300 {
		t.Fatalf("published %d", n)
	}
	// run sink writes every event to stdout, then is stopped (SIGTERM).
	out := filepath.Join(t.TempDir(), "out")
	runSink := func(ctx context.Context) (int, string) {
		f, _ := os.Create(out)
		defer f.Close()
		real := os.Stdout
		os.Stdout = f
		defer func() { os.Stdout = real }()
		var errOut bytes.Buffer
		code := run(ctx, []string{"run", "sink", e.sink, "-c", file}, f, &errOut)
		return code, errOut.String()
	}
	lines := func() int {
		b, _ := os.ReadFile(out)
		return bytes.Count(b, []byte("\n"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { code, _ := runSink(ctx); done <- code }()
	until(t, "300 events on stdout", func() bool { return lines() >= 300 })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run sink exited %d on shutdown", code)
	}
	if n := lines(); n != 300 {
		t.Fatalf("stdout has %d events, want 300", n)
	}
	// A second instance resumes after the committed offsets: nothing again.
	st := state.NewRedisClient(e.c)
	firstEpoch, _ := st.Epoch(context.Background(), pipeline.SinkStateName(e.sink))
	ctx, cancel = context.WithCancel(context.Background())
	go func() { code, _ := runSink(ctx); done <- code }()
	var second int64
	until(t, "the second instance's epoch", func() bool {
		second, _ = st.Epoch(context.Background(), pipeline.SinkStateName(e.sink))
		return second > firstEpoch
	})
	// A third instance takes over; the second's next batch is refused
	// before anything is written, and it stops with the fenced exit code.
	if third, _ := st.AcquireEpoch(context.Background(), pipeline.SinkStateName(e.sink), time.Now()); third <= second {
		t.Fatalf("epoch %d after %d", third, second)
	}
	ev, _ := events.Marshal(events.New(events.Insert, "late", events.RawPayload([]byte(`{"n":1}`))))
	if err := e.tr.Produce(context.Background(), e.topc, []topic.Message{{Value: ev}}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitFenced {
			t.Fatalf("superseded sink exited %d, want %d", code, exitFenced)
		}
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("superseded sink kept running")
	}
	cancel()
	if n := lines(); n != 0 {
		t.Fatalf("second instance wrote %d events again", n)
	}
}

func TestRunUsageErrors(t *testing.T) {
	base := `
sources:
  gen: {connector: datagen, topic: t, config: {pattern: users}}
`
	cases := []struct {
		name, file string
		args       []string
		want       string
	}{
		{"no redis", base, []string{"source", "gen"}, "settings.state.redis_url or REDIS_URL"},
		{"kind", base, []string{"pipe", "gen"}, "must be source or sink"},
		{"missing name", base, []string{"source"}, "usage: rivven-connect run"},
	}
	t.Setenv("REDIS_URL", "")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run"}, c.args...)
			args = append(args, "-c", writeFile(t, c.file))
			code, _, errOut := cli(t, args...)
			if code != exitUsage || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant %q", code, errOut, c.want)
			}
		})
	}
	e := newRunEnv(t)
	file := e.pipelineFile(t, "{pattern: users}", "drop")
	if code, _, errOut := cli(t, "run", "source", "nope", "-c", file); code != exitUsage || !strings.Contains(errOut, `no enabled source \"nope\"`) {
		t.Fatalf("unknown source: %d %s", code, errOut)
	}
	// On SQS a sink is a function the queue triggers, not a service.
	sqsFile := writeFile(t, fmt.Sprintf("broker: {transport: sqs, sqs: {region: eu-west-1}}\nsettings: {state: {redis_url: \"redis://%s/0\"}}\nsinks:\n  %s: {connector: drop, topics: [t]}\n", redisAddr, e.sink))
	if code, _, errOut := cli(t, "run", "sink", e.sink, "-c", sqsFile); code != exitUsage || !strings.Contains(errOut, "runs as a function its queue triggers") {
		t.Fatalf("sink on sqs: %d %s", code, errOut)
	}
}

func TestSecretValuesAreCollected(t *testing.T) {
	p, err := loadPipeline(writeFile(t, `
settings:
  state: {redis_url: "redis://app:hunter2@cache:6379/0"}
sources:
  gen: {connector: datagen, topic: t, config: {pattern: users}}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := secretValues(p)
	if !slices.Contains(got, "hunter2") {
		t.Fatalf("secret values %v lack the Redis password", got)
	}
	r := resilience.NewRedactor(got...)
	if s := r.Redact("AUTH failed for hunter2 at cache"); strings.Contains(s, "hunter2") {
		t.Fatalf("not redacted: %s", s)
	}
}

// TestRunSinkLogsFailuresAndBreaker: while `run sink` cannot write, its
// log says so — each failed batch with the reason, the circuit breaker
// opening, each probe, the circuit closing once the target is back, and
// the sink going Failed — and every line is JSON. The target is the
// object-storage sink's local provider; its bucket directory is replaced
// by a plain file to make every write fail.
func TestRunSinkLogsFailuresAndBreaker(t *testing.T) {
	e := newRunEnv(t)
	root := t.TempDir()
	bucket := filepath.Join(root, "lake")
	if err := os.Mkdir(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, fmt.Sprintf(`
settings:
  state: {redis_url: "redis://%s/0"}
  topic: {default_partitions: 1}
  max_consecutive_errors: 6
  retry: {max_retries: 1000, initial_backoff_ms: 10, max_backoff_ms: 100}
sinks:
  %s:
    connector: object-storage
    topics: [%s]
    circuit_breaker: {failure_threshold: 2, reset_timeout_secs: 1, success_threshold: 1}
    config: {provider: local, bucket: lake, local: {root: %q}, format: jsonl, batch_size: 1}
`, redisAddr, e.sink, e.topc, root))
	moved := 0
	breakBucket := func() {
		// Renamed aside, atomically: the sink may be writing into it.
		moved++
		if err := os.Rename(bucket, fmt.Sprintf("%s.%d", bucket, moved)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bucket, []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repairBucket := func() {
		if err := os.Remove(bucket); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(bucket, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	produce := func(n int) {
		var msgs []topic.Message
		for i := range n {
			ev, _ := events.Marshal(events.New(events.Insert, "orders", events.RawPayload(fmt.Appendf(nil, `{"n":%d}`, i))))
			msgs = append(msgs, topic.Message{Value: ev})
		}
		if err := e.tr.Produce(context.Background(), e.topc, msgs); err != nil {
			t.Fatal(err)
		}
	}
	errOut := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		var out bytes.Buffer
		done <- run(context.Background(), []string{"run", "sink", e.sink, "-c", file, "--log-level", "info"}, &out, errOut)
	}()
	logged := func(msg string) bool { return strings.Contains(errOut.String(), `"msg":"`+msg) }
	until(t, "the sink to run", func() bool { return logged("running") })
	// A first event written shows the sink is up (health check passed).
	produce(1)
	until(t, "the first object", func() bool {
		n := 0
		filepath.WalkDir(bucket, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".jsonl") {
				n++
			}
			return nil
		})
		return n > 0
	})

	breakBucket()
	produce(3)
	until(t, "the breaker to open", func() bool { return logged("circuit breaker open") })
	repairBucket()
	until(t, "the breaker to close", func() bool { return logged("circuit breaker closed") })

	breakBucket()
	produce(3)
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("run sink did not stop Failed:\n%s", errOut)
	}
	if code != exitFailed {
		t.Fatalf("exit %d, want %d:\n%s", code, exitFailed, errOut)
	}
	log := errOut.String()
	for _, want := range []string{
		`"msg":"records failed or dead-lettered"`,
		"not a directory",
		`"msg":"circuit breaker open`,
		`"msg":"circuit breaker half-open: this batch is the probe"`,
		`"msg":"circuit breaker closed`,
		`"msg":"sink failed: too many consecutive write errors`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	// The failure line names each failed record (its offset) and why.
	if !regexp.MustCompile(`"msg":"records failed or dead-lettered".*"first":\["\d+: [^"]*not a directory`).MatchString(log) {
		t.Errorf("no failure line names a record's offset and its reason")
	}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}
