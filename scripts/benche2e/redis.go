package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisRun starts `run source` (datagen, n events) and `run sink` (drop)
// on one new Redis Streams topic and measures each until the sink has
// committed all n: the source up to its last publish, the sink (and the
// pipeline end to end) up to its last commit.
func redisRun(bin, addr string, n int) ([]string, []result, error) {
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
  gen_%s:
    connector: datagen
    topic: %s
    config: {pattern: orders, events_per_second: 0, max_events: %d, seed: 42}
sinks:
  drop_%s:
    connector: drop
    topics: [%s]
`, addr, tok, topic, n, tok, topic)
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		return nil, nil, err
	}
	cmdsBefore, err := commandsProcessed(ctx, rc)
	if err != nil {
		return nil, nil, err
	}
	src := exec.Command(bin, "run", "source", "gen_"+tok, "-c", file)
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
			if hw, _ := rc.HGet(ctx, "rivven:topic:{"+topic+"}:meta", "hw:0").Int64(); hw >= int64(n) {
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
	cmdsAfter, err := commandsProcessed(ctx, rc)
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
	fmt.Printf("      Redis commands per 1000 events: %.1f (every client of this Redis)\n", float64(cmdsAfter-cmdsBefore)*1000/float64(n))
	return []string{"run source", "run sink (end to end)"}, []result{rs, rk}, nil
}

func commandsProcessed(ctx context.Context, rc *redis.Client) (int64, error) {
	info, err := rc.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no total_commands_processed in INFO stats")
}
