package mysqlcdc

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// position is what the engine stores and hands back as resume bytes (it is
// each event's Metadata.Position, JSON-encoded).
//
// File/Pos and GTID always name a transaction boundary: the end of the last
// transaction before the one the event belongs to (never the middle of a
// transaction, where a restart could not start reading). Skip is how many
// captured rows of the transaction starting at that boundary were already
// emitted; a restart re-reads that transaction and drops the first Skip
// rows, so a crash in the middle of a large transaction neither loses nor
// duplicates rows.
//
// Snap is set while a snapshot runs. During the initial snapshot
// File/Pos/GTID are the snapshot's binlog position (where streaming will
// start) and Snap says how far the snapshot got. A snapshot resumed after
// a crash runs alongside the stream (incremental.go): File/Pos/GTID/Skip
// are then the stream's position as always, and Snap.From is where the
// stream started noting which rows it changed.
type position struct {
	File string     `json:"file,omitempty"`
	Pos  uint32     `json:"pos,omitempty"`
	GTID string     `json:"gtid,omitempty"`
	Skip int        `json:"skip,omitempty"`
	Snap *snapState `json:"snap,omitempty"`
}

// snapState is the snapshot's progress: the tables in snapshot order, the
// index of the table being read and the primary key (hex of each column's
// text form) of the last row emitted from it.
type snapState struct {
	Tables []string `json:"tables"`
	Index  int      `json:"i"`
	After  []string `json:"after,omitempty"`
	// Done counts the rows of the current table already emitted (progress).
	Done int64 `json:"done,omitempty"`
	// From is where the stream of a snapshot resumed alongside it began:
	// the first snapshot's position (nil during the initial snapshot,
	// which streams nothing).
	From *position `json:"from,omitempty"`
}

func parsePosition(b []byte) (*position, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("stored position %q is not a mysql-cdc position: %w", truncate(string(b), 80), err)
	}
	if p.File == "" && p.GTID == "" && p.Snap == nil {
		return nil, fmt.Errorf("stored position %q has neither file nor gtid", truncate(string(b), 80))
	}
	if p.GTID != "" {
		if _, err := parseGTIDSet(p.GTID); err != nil {
			return nil, fmt.Errorf("stored position: %w", err)
		}
	}
	return &p, nil
}

func (p *position) encode() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// human is the position as SourceInfo shows it: the GTID set when there is
// one, else file:pos.
func (p *position) human() string {
	if p.GTID != "" {
		return p.GTID
	}
	return p.File + ":" + strconv.FormatUint(uint64(p.Pos), 10)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
