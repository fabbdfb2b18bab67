package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/topic"
)

func TestGather(t *testing.T) {
	m := topic.NewMemory()
	ctx := context.Background()
	if err := m.Create(ctx, "t", topic.Spec{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produce := func(n int) {
		msgs := make([]topic.Message, n)
		for i := range msgs {
			msgs[i].Value = []byte("x")
		}
		if err := m.Produce(ctx, "t", msgs); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(fctx context.Context, from int64, limit int, more bool) ([]topic.Message, error) {
		msgs, err := m.Fetch(fctx, "t", 0, from, limit)
		if more && fctx.Err() != nil && ctx.Err() == nil {
			return nil, errLingerOver
		}
		return msgs, err
	}
	produce(3)
	// No linger: what one fetch returns.
	if got, _ := gather(ctx, 10, 0, 0, fetch); len(got) != 3 {
		t.Fatalf("no linger: %d messages, want 3", len(got))
	}
	// A partial batch goes out once the linger passes, although nothing
	// more arrives.
	if got, _ := gather(ctx, 10, 50*time.Millisecond, 0, fetch); len(got) != 3 {
		t.Fatalf("linger, nothing more: %d messages, want 3", len(got))
	}
	// What arrives during the linger joins the batch, up to max.
	go func() {
		time.Sleep(10 * time.Millisecond)
		produce(20)
	}()
	got, _ := gather(ctx, 10, 10*time.Second, 0, fetch)
	if len(got) != 10 {
		t.Fatalf("linger with more arriving: %d messages, want 10", len(got))
	}
	for i, msg := range got {
		if msg.Offset != int64(i) {
			t.Fatalf("message %d has offset %d", i, msg.Offset)
		}
	}
	// Stopping while gathering hands back nothing (it is read again).
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if got, err := gather(cctx, 100, 10*time.Second, 20, fetch); got != nil || err == nil {
		t.Fatalf("cancelled: %d messages, %v", len(got), err)
	}
}
