package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisRun starts `run source` (datagen, n events) and `run sink` (drop)
// on one new Redis Streams topic and measures each until the sink has
// committed all n: the source up to its last publish, the sink (and the
// pipeline end to end) up to its last commit.
func redisRun(bin, addr string, n int) ([]string, []result, error) {
	return redisPipeline(bin, addr, n, func(tok, topic string) (string, func(), error) {
		return fmt.Sprintf(`    connector: datagen
    topic: %s
    config: {pattern: orders, events_per_second: 0, max_events: %d, seed: 42}
`, topic, n), func() {}, nil
	})
}

// sourceFunc prepares the source of a measured run: the body of its entry
// under sources (connector, topic, config, indented four spaces) for
// topic, and what undoes the preparation. tok names the run.
type sourceFunc func(tok, topic string) (body string, cleanup func(), err error)

// redisPipeline runs the source that source makes and `run sink` (drop) on one new
// Redis Streams topic of the Redis at addr, at the same time, and measures
// each until the sink has committed n events: the source up to the
// publish that brought the topic to n, the sink (and so the pipeline end
// to end) up to its commit of the n-th. A source that does not end by
// itself (CDC) is stopped then.
func redisPipeline(bin, addr string, n int, source sourceFunc) ([]string, []result, error) {
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	topic := "benche2e." + tok
	defer func() {
		// The topic's keys and the pipeline's state carry the token.
		iter := rc.Scan(ctx, 0, "*"+tok+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
	}()
	body, cleanup, err := source(tok, topic)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	dir, err := os.MkdirTemp("", "benche2e")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "redis.yaml")
	y := fmt.Sprintf(`version: "1.0"
settings:
  state: {redis_url: "redis://%s/0"}
sources:
  src_%s:
%ssinks:
  drop_%s:
    connector: drop
    topics: [%s]
`, addr, tok, body, tok, topic)
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		return nil, nil, err
	}
	statsBefore, err := commandStats(ctx, rc)
	if err != nil {
		return nil, nil, err
	}
	redisCPU := private.cpu()
	var trips *tripCounter
	if monitorTrips {
		if trips, err = countTrips(addr); err != nil {
			return nil, nil, err
		}
	}
	src := exec.Command(bin, "run", "source", "src_"+tok, "-c", file)
	sink := exec.Command(bin, "run", "sink", "drop_"+tok, "-c", file)
	var srcErr, sinkErr strings.Builder
	src.Stderr, sink.Stderr = &srcErr, &sinkErr
	start := time.Now()
	if err := sink.Start(); err != nil {
		return nil, nil, err
	}
	if err := src.Start(); err != nil {
		_ = sink.Process.Kill()
		return nil, nil, err
	}
	srcDone := make(chan error, 1)
	go func() { srcDone <- src.Wait() }()
	stop := func(c *exec.Cmd, done <-chan error) error {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			return fmt.Errorf("%s did not stop within 30 s of SIGTERM", strings.Join(c.Args, " "))
		}
	}
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sink.Wait() }()

	var srcWall, sinkWall time.Duration
	srcExited := false
	deadline := time.After(10 * time.Minute)
	for sinkWall == 0 {
		select {
		case err := <-srcDone:
			srcExited = true
			if err != nil {
				_ = stop(sink, sinkDone)
				return nil, nil, fmt.Errorf("run source: %v\n%s", err, srcErr.String())
			}
		case err := <-sinkDone:
			_ = stop(src, srcDone)
			return nil, nil, fmt.Errorf("run sink stopped early: %v\n%s", err, sinkErr.String())
		case <-deadline:
			_ = src.Process.Kill()
			_ = sink.Process.Kill()
			return nil, nil, fmt.Errorf("not done after 10 minutes")
		case <-time.After(10 * time.Millisecond):
		}
		if srcWall == 0 {
			// HGETALL, which the pipeline never sends, keeps the
			// harness's polling apart in the command counts.
			meta, _ := rc.HGetAll(ctx, "rivven:topic:{"+topic+"}:meta").Result()
			if hw, _ := strconv.ParseInt(meta["hw:0"], 10, 64); hw >= int64(n) {
				srcWall = time.Since(start)
			}
		}
		groups, err := rc.HGetAll(ctx, "rivven:topic:{"+topic+"}:groups").Result()
		if err != nil {
			return nil, nil, err
		}
		for k, v := range groups {
			if c, err := strconv.ParseInt(v, 10, 64); err == nil && !strings.HasSuffix(k, ":id") && c >= int64(n) {
				sinkWall = time.Since(start)
			}
		}
	}
	statsAfter, err := commandStats(ctx, rc)
	if err != nil {
		return nil, nil, err
	}
	if !srcExited {
		if err := stop(src, srcDone); err != nil {
			return nil, nil, fmt.Errorf("run source: %v\n%s", err, srcErr.String())
		}
	}
	if err := stop(sink, sinkDone); err != nil {
		return nil, nil, fmt.Errorf("run sink: %v\n%s", err, sinkErr.String())
	}
	rs, err := usage(src, n, srcWall)
	if err != nil {
		return nil, nil, err
	}
	rk, err := usage(sink, n, sinkWall)
	if err != nil {
		return nil, nil, err
	}
	if trips != nil {
		fmt.Println("      " + trips.report(n))
		return nil, nil, nil
	}
	fmt.Println("      " + commandReport(statsBefore, statsAfter, n))
	if private != nil {
		fmt.Printf("      redis-server: %.2f µs CPU/event\n", float64((private.cpu()-redisCPU).Nanoseconds())/1e3/float64(n))
	}
	return []string{"run source", "run sink (end to end)"}, []result{rs, rk}, nil
}

// commandStats is INFO commandstats: calls per command name. Commands a
// script makes count under their own names, besides the EVALSHA.
func commandStats(ctx context.Context, rc *redis.Client) (map[string]int64, error) {
	info, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("INFO commandstats: %q: %w", l, err)
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out, nil
}

// commandReport says how many commands Redis executed over the run, those
// scripts make included (every client of this Redis: the pipeline's alone
// on a private server), per 1000 events; the round trips are counted
// under MONITOR (countTrips).
func commandReport(before, after map[string]int64, n int) string {
	var all int64
	var names []string
	for name, calls := range after {
		d := calls - before[name]
		if d <= 0 || name == "info" || name == "hgetall" || name == "scan" {
			continue // the harness's own polling
		}
		all += d
		names = append(names, fmt.Sprintf("%s %.1f", name, float64(d)*1000/float64(n)))
	}
	slices.Sort(names)
	return fmt.Sprintf("Redis executed %.1f commands per 1000 events, those scripts make included (%s)",
		float64(all)*1000/float64(n), strings.Join(names, ", "))
}

// monitorTrips makes redisPipeline count the round trips under MONITOR
// and report them instead of its measurements.
var monitorTrips bool

// tripCounter counts, from MONITOR, the commands clients send (not the
// ones scripts make, which MONITOR tags "lua"), by name; the harness's
// own (HGETALL, INFO, SCAN, DEL) are left out.
type tripCounter struct {
	stop  func()
	mu    sync.Mutex
	count map[string]int
}

func countTrips(addr string) (*tripCounter, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-cli", "-h", host, "-p", port, "MONITOR")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-cli MONITOR: %w", err)
	}
	t := &tripCounter{count: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			// 1700000000.000000 [0 127.0.0.1:5000] "XREAD" "COUNT" ...
			_, rest, ok := strings.Cut(sc.Text(), "[")
			if !ok {
				continue
			}
			client, rest, _ := strings.Cut(rest, "] ")
			if strings.HasSuffix(client, "lua") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			name = strings.ToLower(strings.Trim(name, `"`))
			switch name {
			case "hgetall", "info", "scan", "del", "monitor", "":
				continue
			}
			t.mu.Lock()
			t.count[name]++
			t.mu.Unlock()
		}
	}()
	t.stop = func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	}
	// MONITOR answers OK once it is on.
	time.Sleep(200 * time.Millisecond)
	return t, nil
}

func (t *tripCounter) report(n int) string {
	time.Sleep(200 * time.Millisecond) // the last lines in flight
	t.stop()
	total := 0
	var names []string
	for name, c := range t.count {
		total += c
		names = append(names, fmt.Sprintf("%s %.1f", name, float64(c)*1024/float64(n)))
	}
	slices.Sort(names)
	return fmt.Sprintf("Redis round trips (MONITOR, a run of %d events): %.1f per 1024 events, source and sink together (%s)",
		n, float64(total)*1024/float64(n), strings.Join(names, ", "))
}

// redisServer is a redis-server the harness started for itself.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
}

// private is the redis-server of this run, nil when -redis named one.
var private *redisServer

// startRedis starts redis-server on a free port, configured as the CI's
// Redis is (no snapshots, no append-only file), and waits for it.
func startRedis(bin string) (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd}
	rc := redis.NewClient(&redis.Options{Addr: s.addr})
	defer rc.Close()
	for range 100 {
		if rc.Ping(context.Background()).Err() == nil {
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("%s did not answer on %s", bin, s.addr)
}

func (s *redisServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// cpu is the server's CPU time so far (user + system, from /proc); 0
// without a private server.
func (s *redisServer) cpu() time.Duration {
	if s == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / ticks
}
