package pipeline

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/topic"
)

// fencedRunner is a source runner publishing to the Redis transport with
// fencing on, as `run source` builds it.
func fencedRunner(b storeBackend, name, tp string, src Source, tr topic.Producer) *SourceRunner {
	return &SourceRunner{
		Name: name, Source: src, Topic: tp, Producer: tr, Store: b.store, Fencer: b.store,
		Status: NewStatus(name, "chan", "source"), Log: quiet, Clock: &fakeClock{},
	}
}

// TestSourceFencingTwoInstances: once the newer instance started, nothing
// the older one publishes or commits is accepted, and it stops fenced.
func TestSourceFencingTwoInstances(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name, tp := uniqueName(t, c, "src"), uniqueName(t, c, "topic")
		tr := topic.NewRedis(c)
		tr.AutoCreate = true
		tr.Create(ctx, tp, topic.Spec{Partitions: 3})

		srcA := newChanSource()
		a := fencedRunner(b, name, tp, srcA, tr)
		aDone := make(chan error, 1)
		go func() { aDone <- a.Run(ctx) }()
		if err := srcA.emit(t, seqBatch(0, 10)); err != nil {
			t.Fatal(err)
		}

		srcB := newChanSource()
		bctx, stopB := context.WithCancel(ctx)
		defer stopB()
		bRun := fencedRunner(b, name, tp, srcB, tr)
		bDone := make(chan error, 1)
		go func() { bDone <- bRun.Run(bctx) }()
		waitFor(t, "the newer instance to start", func() bool { return bRun.Status.State() == Running })
		if bRun.Status.Epoch.Load() <= a.Status.Epoch.Load() {
			t.Fatalf("newer epoch %d is not above %d", bRun.Status.Epoch.Load(), a.Status.Epoch.Load())
		}

		// The older instance goes on publishing: refused, and it stops.
		if err := srcA.emit(t, seqBatch(10, 20)); !errors.Is(err, state.ErrFenced) {
			t.Fatalf("older instance's publish after the takeover: %v", err)
		}
		if err := <-aDone; !errors.Is(err, state.ErrFenced) || !errors.Is(err, ErrFatal) {
			t.Fatalf("older instance ended with %v, want fenced", err)
		}
		if a.Status.State() != Failed {
			t.Fatalf("older instance state %v", a.Status.State())
		}
		// Its commit is refused too (a transport without fencing of its
		// own still cannot move the position).
		if err := b.store.CommitOffsetFenced(ctx, name, a.Status.Epoch.Load(), positionKey, []byte("19")); !errors.Is(err, state.ErrFenced) {
			t.Fatalf("older commit accepted: %v", err)
		}

		if err := srcB.emit(t, seqBatch(20, 25)); err != nil {
			t.Fatal(err)
		}
		msgs := readAll(t, tr, tp)
		if len(msgs) != 15 {
			t.Fatalf("topic has %d messages, want 10 from the older + 5 from the newer", len(msgs))
		}
		byEpoch := map[string]int{}
		for _, m := range msgs {
			e := m.Headers[len(m.Headers)-1]
			if e.Key != topic.EpochHeader {
				t.Fatalf("message without epoch: %+v", m)
			}
			byEpoch[string(e.Value)]++
		}
		older, newer := strconv.FormatInt(a.Status.Epoch.Load(), 10), strconv.FormatInt(bRun.Status.Epoch.Load(), 10)
		if byEpoch[older] != 10 || byEpoch[newer] != 5 || len(byEpoch) != 2 {
			t.Fatalf("messages by epoch %v, want 10 from %s and 5 from %s", byEpoch, older, newer)
		}
		if pos, _ := b.store.Offset(ctx, name, positionKey); string(pos) != "24" {
			t.Fatalf("committed position %q, want 24 (from the newer instance)", pos)
		}
		if pos, _ := tr.LastPosition(ctx, tp, name); string(pos) != "24" {
			t.Fatalf("position stored with the data %q", pos)
		}
		stopB()
		if err := <-bDone; err != nil {
			t.Fatal(err)
		}
	})
}

// TestSourceFencingCommitOnUnfencedTransport: on a transport that cannot
// fence (in-memory), the older instance's commit is still refused.
func TestSourceFencingCommitOnUnfencedTransport(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		name := uniqueName(t, b.store.Client(), "src")
		m := topic.NewMemory()
		m.AutoCreate = true
		srcA := newChanSource()
		a := fencedRunner(b, name, "t", srcA, m)
		aDone := make(chan error, 1)
		go func() { aDone <- a.Run(ctx) }()
		if err := srcA.emit(t, seqBatch(0, 3)); err != nil {
			t.Fatal(err)
		}
		newer, _ := b.store.AcquireEpoch(ctx, name, time.Now())
		err := srcA.emit(t, seqBatch(3, 6))
		if !errors.Is(err, state.ErrFenced) {
			t.Fatalf("commit after takeover: %v", err)
		}
		var fe *state.FencedError
		if !errors.As(err, &fe) || fe.Current != newer {
			t.Fatalf("fencing error %v does not name the newer epoch %d", err, newer)
		}
		if err := <-aDone; !errors.Is(err, state.ErrFenced) {
			t.Fatal(err)
		}
		if pos, _ := b.store.Offset(ctx, name, positionKey); string(pos) != "2" {
			t.Fatalf("position %q, want 2", pos)
		}
	})
}

// TestSourceFencedWhileIdle: an idle older instance notices the takeover
// by itself and stops.
func TestSourceFencedWhileIdle(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		name := uniqueName(t, b.store.Client(), "src")
		a := fencedRunner(b, name, "t", newChanSource(), topic.NewMemory())
		a.FenceCheck = 5 * time.Millisecond
		aDone := make(chan error, 1)
		go func() { aDone <- a.Run(ctx) }()
		waitFor(t, "the instance to start", func() bool { return a.Status.State() == Running })
		b.store.AcquireEpoch(ctx, name, time.Now())
		select {
		case err := <-aDone:
			if !errors.Is(err, state.ErrFenced) {
				t.Fatalf("idle instance ended with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("idle instance did not notice the takeover")
		}
	})
}

// TestSourceResumesFromPositionStoredWithData: publish and position are one
// step on the Redis transport; a process that died before its separate
// commit resumes after what it published, not before.
func TestSourceResumesFromPositionStoredWithData(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name, tp := uniqueName(t, c, "src"), uniqueName(t, c, "topic")
		tr := topic.NewRedis(c)
		tr.AutoCreate = true
		// The previous instance published up to 41 and died before its
		// commit (the store still says 20).
		e, _ := b.store.AcquireEpoch(ctx, name, time.Now())
		tr.Create(ctx, tp, topic.Spec{Partitions: 1})
		tr.ProduceFenced(ctx, tp, nil, topic.Fence{Producer: name, Epoch: e, Position: []byte("41")})
		b.store.CommitOffset(ctx, name, positionKey, []byte("20"))
		src := &flakySource{}
		r := fencedRunner(b, name, tp, src, tr)
		if err := r.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got := string(src.resumes[0]); got != "41" {
			t.Fatalf("resumed from %q, want 41", got)
		}
	})
}

// TestSinkRunnerFencedWhileIdle: an idle `run sink` instance notices that a
// newer one took over and stops; it wrote nothing after the takeover.
func TestSinkRunnerFencedWhileIdle(t *testing.T) {
	redisBackends(t, func(t *testing.T, b storeBackend) {
		ctx := context.Background()
		c := b.store.Client()
		name, tp := uniqueName(t, c, "snk"), uniqueName(t, c, "topic")
		tr := topic.NewRedis(c)
		tr.Create(ctx, tp, topic.Spec{Partitions: 2})
		epoch, _ := b.store.AcquireEpoch(ctx, SinkStateName(name), time.Now())
		sink := &countingSink{}
		h := &Handler{Name: name, Sink: sink, Log: quiet, Ledger: ledgerFor(t, c, name, resilience.LedgerConfig{Dedup: resilience.DedupOffsets, Epoch: epoch})}
		h.init()
		h.Status.Epoch.Store(epoch)
		r := &SinkRunner{Handler: h, Transport: tr, Topics: []string{tp}, Group: name, Fencer: b.store,
			FenceCheck: 5 * time.Millisecond, Wait: 5 * time.Millisecond, Log: quiet}
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		waitFor(t, "the sink to run", func() bool { return h.Status.State() == Running })
		b.store.AcquireEpoch(ctx, SinkStateName(name), time.Now())
		select {
		case err := <-done:
			if !errors.Is(err, state.ErrFenced) || h.Status.State() != Failed {
				t.Fatalf("idle sink ended with %v in state %v", err, h.Status.State())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("idle sink did not notice the takeover")
		}
	})
}
