package state

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestEpochFencing(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		ctx := context.Background()
		c := connector(t, r)
		t.Cleanup(func() { r.client.Del(context.Background(), Key(c, EpochSuffix)) })
		if e, err := r.Epoch(ctx, c); err != nil || e != 0 {
			t.Fatalf("no epoch yet: %d %v", e, err)
		}
		now := time.UnixMilli(1_000)
		a, err := r.AcquireEpoch(ctx, c, now)
		if err != nil || a != 1_000 {
			t.Fatalf("first epoch %d %v (the clock term wins over 1)", a, err)
		}
		// Same millisecond (or a clock behind): still strictly higher.
		b, _ := r.AcquireEpoch(ctx, c, now)
		if b != a+1 {
			t.Fatalf("second epoch %d", b)
		}
		if err := r.CommitOffsetFenced(ctx, c, b, "pos", []byte("p1")); err != nil {
			t.Fatal(err)
		}
		err = r.CommitOffsetFenced(ctx, c, a, "pos", []byte("stale"))
		var fe *FencedError
		if !errors.Is(err, ErrFenced) || !errors.As(err, &fe) || fe.Epoch != a || fe.Current != b {
			t.Fatalf("stale commit: %v", err)
		}
		if pos, _ := r.Offset(ctx, c, "pos"); string(pos) != "p1" {
			t.Fatalf("stale commit was stored: %q", pos)
		}
		if cur, _ := r.Epoch(ctx, c); cur != b {
			t.Fatalf("current epoch %d", cur)
		}
	})
}

// TestEpochsAreUnique: concurrent instances never share an epoch.
func TestEpochsAreUnique(t *testing.T) {
	backends(t, func(t *testing.T, r *Redis) {
		c := connector(t, r)
		t.Cleanup(func() { r.client.Del(context.Background(), Key(c, EpochSuffix)) })
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := r.AcquireEpoch(context.Background(), c, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if seen[e] {
					t.Errorf("epoch %d handed out twice", e)
				}
				seen[e] = true
			}()
		}
		wg.Wait()
	})
}
