package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// snapshottingSource reports half of a table done and then waits, as a
// source does in the middle of a long snapshot.
type snapshottingSource struct{}

func (snapshottingSource) Read(ctx context.Context, _ []byte, _ Emitter) error {
	RuntimeFrom(ctx).Progress("public.orders", 500, 1000)
	<-ctx.Done()
	return nil
}

// With ProgressEvery set (as `run` sets it), a source's long task is
// logged as it goes: table, rows done of the estimate, percent, rate and
// time left.
func TestSourceRunnerLogsProgress(t *testing.T) {
	r, _ := newRunner(t, snapshottingSource{}, nil)
	var logs lockedBuffer
	r.Log = slog.New(slog.NewTextHandler(&logs, nil))
	r.ProgressEvery = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "msg=progress") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress line:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	line := logs.String()[strings.Index(logs.String(), "msg=progress"):]
	line = line[:strings.IndexByte(line, '\n')]
	for _, want := range []string{"source=src", "task=public.orders", "done=500", "total=1000", "percent=50", "rate_per_sec="} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %s", line, want)
		}
	}
}
