package postgrescdc

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

// TestSnapshotHoldsSlot: while a watermarked snapshot runs, acks are
// confirmed no further than the lowest since of its tables; a new table
// lowers that at once, a table done raises it only with the next events
// handed on (whose positions no longer name it), and a released hold
// (the slot near max_slot_wal_keep_size) lets acks through.
func TestSnapshotHoldsSlot(t *testing.T) {
	inc := &incremental{
		state:     &snapState{},
		todo:      make(chan *snapTable, 4),
		pending:   map[string]bool{},
		since:     map[string]pglogrepl.LSN{},
		delivered: map[string]map[string]bool{},
	}
	tab := func(name string) *snapTable { return &snapTable{t: &table{Schema: "public", Name: name}} }
	if got := inc.holdAck(500, false); got != 500 {
		t.Fatalf("no snapshot: ack %d, want 500", got)
	}
	inc.add(tab("a"), 100)
	inc.add(tab("b"), 300)
	if got := inc.holdAck(500, true); got != 100 {
		t.Fatalf("ack %d, want the lowest since 100", got)
	}
	// a is done: its since stays in force until events carry that.
	delete(inc.pending, "public.a")
	inc.setHold()
	if got := inc.holdAck(500, false); got != 100 {
		t.Fatalf("ack without events after a table finished: %d, want 100", got)
	}
	if got := inc.holdAck(500, true); got != 300 {
		t.Fatalf("ack with events after a table finished: %d, want 300", got)
	}
	// A table added with a lower since lowers the hold at once.
	inc.add(tab("c"), 200)
	if got := inc.holdAck(500, false); got != 200 {
		t.Fatalf("ack after a table with since 200 was added: %d, want 200", got)
	}
	if !inc.holding.Load() {
		t.Fatal("holding not set while tables are pending")
	}
	inc.released.Store(true)
	if got := inc.holdAck(500, false); got != 500 {
		t.Fatalf("released hold: ack %d, want 500", got)
	}
	// Once nothing is pending the release is over: a later snapshot
	// holds the slot again.
	for name := range inc.pending {
		delete(inc.pending, name)
	}
	inc.setHold()
	if got := inc.holdAck(600, true); got != 600 || inc.holding.Load() || inc.released.Load() {
		t.Fatalf("no snapshot pending: ack %d, holding %v, released %v", got, inc.holding.Load(), inc.released.Load())
	}
	inc.add(tab("d"), 700)
	if got := inc.holdAck(800, false); got != 700 {
		t.Fatalf("a later snapshot: ack %d, want 700", got)
	}
	if inc.state.Since["public.c"] != "0/c8" {
		t.Fatalf("state since %v", inc.state.Since)
	}
}
