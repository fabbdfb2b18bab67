package postgrescdc

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/rivven/rivven-connect/events"
)

// A change's position and identity come from its transaction's commit LSN
// and its index in the transaction, not from the last position the
// stream confirmed (which depends on where streaming resumed and on
// keepalives): the same change read after a restart from an earlier
// point keeps both.
func TestChangeIdentityIgnoresResumePoint(t *testing.T) {
	stamp := func(committed pglogrepl.LSN) *events.Event {
		st := &streamer{s: &Source{}, committed: committed, finalLSN: 0x16E9060, n: 2, xid: "556"}
		e := st.s.newEvent(events.Insert, "public", "customers", time.Unix(1, 0), nil, false)
		st.stamp(e, 0x16E9058)
		return e
	}
	a, b := stamp(0x1000), stamp(0x16E9000)
	if a.Metadata.Position != b.Metadata.Position {
		t.Errorf("positions differ with the resume point: %s / %s", a.Metadata.Position, b.Metadata.Position)
	}
	p, err := parsePosition([]byte(a.Metadata.Position))
	if err != nil || p.TxLSN != 0x16E9060 || p.TxN != 2 || p.LSN >= p.TxLSN {
		t.Errorf("position %s: %+v %v (must resume before the commit and skip 2 changes)", a.Metadata.Position, p, err)
	}
	id := func(e *events.Event) string {
		var ce struct{ ID string }
		b, _ := events.CloudEvents.Append(nil, e)
		_ = json.Unmarshal(b, &ce)
		return ce.ID
	}
	if id(a) != id(b) || id(a) != "public.customers:0/16e9060:2" {
		t.Errorf("CloudEvents ids %q / %q", id(a), id(b))
	}
	if a.Source.Commit != "0/16e9060" || a.Source.LastCommit != "0/1000" || *a.Metadata.Sequence != 2 {
		t.Errorf("source %+v", a.Source)
	}
}
