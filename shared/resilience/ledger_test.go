package resilience

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
)

func items(topic string, part int32, from, to int64) []Item {
	var out []Item
	for o := from; o < to; o++ {
		out = append(out, Item{Stream: StreamOf(topic, part), Offset: o, Member: fmt.Sprintf("%s:%d:%d", topic, part, o)})
	}
	return out
}

func doneOf(a Admission) string {
	b := make([]byte, len(a.Done))
	for i, d := range a.Done {
		b[i] = '0'
		if d {
			b[i] = '1'
		}
	}
	return string(b)
}

func TestLedgerOffsets(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		l, err := NewLedger(c, LedgerConfig{Connector: connector(t, c), Dedup: DedupOffsets})
		if err != nil {
			t.Fatal(err)
		}
		batch := items("orders", 2, 10, 16)
		a, err := l.Begin(ctx, batch)
		if err != nil || !a.Allowed || doneOf(a) != "000000" {
			t.Fatalf("first delivery: %+v %v", a, err)
		}
		// 10..12 written, 13 failed, 14..15 written: commit 13, remember 14, 15.
		if _, _, err := l.End(ctx, Settlement{Outcome: WriteOK,
			Commits: []Commit{{StreamOf("orders", 2), 13}},
			Done:    []string{batch[4].Member, batch[5].Member},
			Failed:  []string{batch[3].Member}}); err != nil {
			t.Fatal(err)
		}
		// The trigger redelivers from 13 (and, say, the whole batch again).
		a, _ = l.Begin(ctx, items("orders", 2, 10, 18))
		if got := doneOf(a); got != "11101100" {
			t.Fatalf("redelivery done flags %s", got)
		}
		if a.Attempts[3] != 1 || a.Attempts[6] != 0 {
			t.Fatalf("attempts %v", a.Attempts)
		}
		// Other partitions are independent; commits never go backwards.
		if a, _ := l.Begin(ctx, items("orders", 3, 10, 12)); doneOf(a) != "00" {
			t.Fatalf("partition 3: %s", doneOf(a))
		}
		l.End(ctx, Settlement{Outcome: WriteOK, Commits: []Commit{{StreamOf("orders", 2), 11}}})
		if n, _ := l.Committed(ctx, StreamOf("orders", 2)); n != 13 {
			t.Fatalf("committed %d after a lower commit", n)
		}
	})
}

func TestLedgerIDsExpire(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		clk := newManualClock()
		l, _ := NewLedger(c, LedgerConfig{Connector: connector(t, c), Dedup: DedupIDs, TTL: time.Minute, Now: clk.Now})
		batch := []Item{{Stream: "q:0", Member: "q:0:a"}, {Stream: "q:0", Member: "q:0:b"}, {Stream: "q:0", Member: "q:0:c"}}
		l.Begin(ctx, batch)
		l.End(ctx, Settlement{Outcome: WriteOK, Done: []string{"q:0:a", "q:0:c"}, Failed: []string{"q:0:b"}})
		a, _ := l.Begin(ctx, batch)
		if doneOf(a) != "101" || a.Attempts[1] != 1 {
			t.Fatalf("redelivery: %s %v", doneOf(a), a.Attempts)
		}
		l.End(ctx, Settlement{Outcome: WriteFailed, Failed: []string{"q:0:b"}})
		a, _ = l.Begin(ctx, batch[1:2])
		if a.Attempts[0] != 2 {
			t.Fatalf("attempts %v", a.Attempts)
		}
		l.End(ctx, Settlement{Outcome: WriteOK, Done: []string{"q:0:b"}, Clear: []string{"q:0:b"}})
		clk.Advance(time.Minute)
		// After the TTL the IDs are forgotten (and pruned on the next End).
		a, _ = l.Begin(ctx, batch)
		if doneOf(a) != "000" || a.Attempts[1] != 0 {
			t.Fatalf("after TTL: %s %v", doneOf(a), a.Attempts)
		}
	})
}

func TestLedgerFencing(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		name := connector(t, c)
		store := state.NewRedisClient(c)
		old, _ := store.AcquireEpoch(ctx, name, time.Now())
		l, _ := NewLedger(c, LedgerConfig{Connector: name, Dedup: DedupOffsets, Epoch: old})
		if _, err := l.Begin(ctx, items("t", 0, 0, 2)); err != nil {
			t.Fatal(err)
		}
		newer, _ := store.AcquireEpoch(ctx, name, time.Now())
		if newer <= old {
			t.Fatalf("epoch %d after %d", newer, old)
		}
		_, _, err := l.End(ctx, Settlement{Outcome: WriteOK, Commits: []Commit{{StreamOf("t", 0), 2}}})
		var fe *state.FencedError
		if !errors.Is(err, state.ErrFenced) || !errors.As(err, &fe) || fe.Current != newer {
			t.Fatalf("End from the old epoch: %v", err)
		}
		if n, _ := l.Committed(ctx, StreamOf("t", 0)); n != -1 {
			t.Fatalf("fenced commit was stored: %d", n)
		}
		if _, err := l.Begin(ctx, items("t", 0, 0, 2)); !errors.Is(err, state.ErrFenced) {
			t.Fatalf("Begin from the old epoch: %v", err)
		}
	})
}

func TestLedgerBreaker(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		clk := newManualClock()
		cfg := BreakerConfig{FailureThreshold: 2, ResetTimeout: 5 * time.Second, SuccessThreshold: 1}
		l, _ := NewLedger(c, LedgerConfig{Connector: connector(t, c), Breaker: &cfg, Now: clk.Now})
		a, _ := l.Begin(ctx, nil)
		s := Settlement{Outcome: WriteOK}
		if !a.Allowed || l.NeedsEnd(a, &s) {
			t.Fatalf("healthy closed breaker: %+v, needs end %v", a, l.NeedsEnd(a, &s))
		}
		for i := range 2 {
			a, _ = l.Begin(ctx, nil)
			if !a.Allowed {
				t.Fatal("rejected while closed")
			}
			// The failure that opens the circuit says when the first
			// probe goes: reset_timeout from now.
			st, wait, _ := l.End(ctx, Settlement{Outcome: WriteFailed})
			if want := [2]time.Duration{0, 5 * time.Second}[i]; wait != want || (i == 1) != (st == Open) {
				t.Fatalf("failure %d: %v, probe in %v (want %v)", i+1, st, wait, want)
			}
		}
		if a, _ = l.Begin(ctx, nil); a.Allowed || a.State != Open || a.ProbeIn != 5*time.Second {
			t.Fatalf("after 2 failures: %+v", a)
		}
		clk.Advance(3 * time.Second)
		if a, _ = l.Begin(ctx, nil); a.Allowed || a.ProbeIn != 2*time.Second {
			t.Fatalf("3 s after opening: %+v", a)
		}
		clk.Advance(2 * time.Second)
		a, _ = l.Begin(ctx, nil)
		if !a.Allowed || !a.Probe {
			t.Fatalf("probe: %+v", a)
		}
		// Another instance meanwhile waits for the probe's lease.
		clk.Advance(time.Second)
		if b, _ := l.Begin(ctx, nil); b.Allowed || b.ProbeIn != 4*time.Second {
			t.Fatalf("while a probe is out: %+v", b)
		}
		// A probe with nothing to write frees the slot for another.
		l.End(ctx, Settlement{Outcome: NoWrite, Probe: true})
		a, _ = l.Begin(ctx, nil)
		if !a.Allowed || !a.Probe {
			t.Fatalf("second probe: %+v", a)
		}
		if st, wait, _ := l.End(ctx, Settlement{Outcome: WriteOK, Probe: true}); st != Closed || wait != 0 {
			t.Fatalf("after a successful probe: %v", st)
		}
		if s, _ := l.BreakerSnapshot(ctx); s.State != Closed {
			t.Fatalf("snapshot %+v", s)
		}
	})
}

// TestLedgerTriggerSizedBatches runs the largest batch a trigger sends
// (10,000 records: SQS and Kafka on Lambda) and more through Begin and End
// in both dedup modes, on the embedded store (whose Lua has a fixed-size
// stack) and on Redis: no error, and every flag and count comes back for
// the right record.
func TestLedgerTriggerSizedBatches(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		for _, n := range []int{10000, 25000} {
			for _, mode := range []DedupMode{DedupOffsets, DedupIDs} {
				t.Run(fmt.Sprintf("n=%d/mode=%d", n, mode), func(t *testing.T) {
					l, err := NewLedger(c, LedgerConfig{Connector: connector(t, c), Dedup: mode,
						Breaker: &BreakerConfig{FailureThreshold: 5, ResetTimeout: time.Minute, SuccessThreshold: 1}})
					if err != nil {
						t.Fatal(err)
					}
					batch := items("big", 0, 0, int64(n))
					a, err := l.Begin(ctx, batch)
					if err != nil || !a.Allowed || len(a.Done) != n || strings.Contains(doneOf(a), "1") {
						t.Fatalf("first delivery of %d: %d flags, %v", n, len(a.Done), err)
					}
					// Every third record failed, the rest were written.
					var done, failed []string
					for i, it := range batch {
						if i%3 == 0 {
							failed = append(failed, it.Member)
						} else {
							done = append(done, it.Member)
						}
					}
					if _, _, err := l.End(ctx, Settlement{Outcome: WriteOK, Commits: []Commit{{StreamOf("big", 0), 0}}, Done: done, Failed: failed}); err != nil {
						t.Fatal(err)
					}
					a, err = l.Begin(ctx, batch)
					if err != nil || len(a.Done) != n || len(a.Attempts) != n {
						t.Fatalf("redelivery of %d: %d flags, %d counts, %v", n, len(a.Done), len(a.Attempts), err)
					}
					for i := range batch {
						if a.Done[i] != (i%3 != 0) || (i%3 == 0) != (a.Attempts[i] == 1) {
							t.Fatalf("record %d: done %v, attempts %d", i, a.Done[i], a.Attempts[i])
						}
					}
				})
			}
		}
	})
}

func TestLedgerWarm(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		l, err := NewLedger(c, LedgerConfig{Connector: connector(t, c), Dedup: DedupIDs,
			Breaker: &BreakerConfig{FailureThreshold: 1, SuccessThreshold: 1, ResetTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Warm(ctx); err != nil {
			t.Fatal(err)
		}
		// Redis holds both scripts: the first batch sends their hashes.
		loaded, err := c.ScriptExists(ctx, ledgerBegin.Hash(), ledgerEnd.Hash()).Result()
		if err != nil || len(loaded) != 2 || !loaded[0] || !loaded[1] {
			t.Fatalf("scripts loaded: %v %v", loaded, err)
		}
		// Warming wrote nothing: no breaker, ledger, dedup or attempts key.
		if n, err := c.Exists(ctx, l.keys...).Result(); err != nil || n != 0 {
			t.Fatalf("keys after Warm: %d %v", n, err)
		}
		a, err := l.Begin(ctx, items("orders", 0, 0, 2))
		if err != nil || !a.Allowed || a.State != Closed || doneOf(a) != "00" {
			t.Fatalf("first batch after Warm: %+v %v", a, err)
		}
	})
}

// Records named by their offset (Member "") go to Begin as ranges: they
// must come back exactly as the same records named explicitly do — done
// below the committed offset, done by name when written after a failure,
// failure counts by name — also in a batch that mixes both kinds, several
// streams and a gap in the offsets.
func TestLedgerOffsetNamedRecords(t *testing.T) {
	backends(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := context.Background()
		named := func(its []Item) []Item {
			out := make([]Item, len(its))
			for i, it := range its {
				it.Member = MemberOf(it.Stream, it.Offset)
				out[i] = it
			}
			return out
		}
		anon := func(its []Item) []Item {
			out := make([]Item, len(its))
			for i, it := range its {
				it.Member = ""
				out[i] = it
			}
			return out
		}
		if got := MemberOf("orders:2", 10); got != items("orders", 2, 10, 11)[0].Member {
			t.Fatalf("MemberOf %q, the explicit name %q", got, items("orders", 2, 10, 11)[0].Member)
		}
		mixed := func(its []Item) []Item {
			out := anon(its)
			for i := range out {
				if i%4 == 1 {
					out[i].Member = MemberOf(out[i].Stream, out[i].Offset)
				}
			}
			return out
		}
		var results []string
		for _, form := range []func([]Item) []Item{named, anon, mixed} {
			l, err := NewLedger(c, LedgerConfig{Connector: connector(t, c), Dedup: DedupOffsets})
			if err != nil {
				t.Fatal(err)
			}
			first := append(items("o", 0, 10, 16), items("o", 1, 3, 5)...)
			if a, err := l.Begin(ctx, form(first)); err != nil || doneOf(a) != "00000000" {
				t.Fatalf("first delivery: %s %v", doneOf(a), err)
			}
			// Partition 0: 10..12 written, 13 failed, 14..15 written;
			// partition 1: both written.
			if _, _, err := l.End(ctx, Settlement{Outcome: WriteOK,
				Commits: []Commit{{StreamOf("o", 0), 13}, {StreamOf("o", 1), 5}},
				Done:    []string{MemberOf(StreamOf("o", 0), 14), MemberOf(StreamOf("o", 0), 15)},
				Failed:  []string{MemberOf(StreamOf("o", 0), 13)}}); err != nil {
				t.Fatal(err)
			}
			// The redelivery, with a gap (no 16) and new records after it.
			again := append(append(items("o", 0, 9, 16), items("o", 0, 17, 19)...), items("o", 1, 4, 7)...)
			a, err := l.Begin(ctx, form(again))
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, fmt.Sprintf("%s %v", doneOf(a), a.Attempts))
		}
		want := "111101100100 [0 0 0 0 1 0 0 0 0 0 0 0]"
		for i, got := range results {
			if got != want {
				t.Fatalf("form %d: %s, want %s", i, got, want)
			}
		}
	})
}
