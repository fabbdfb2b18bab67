package sqlservercdc

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
)

// lsn is a SQL Server log sequence number as the CDC functions return it:
// binary(10), which orders as bytes.
type lsn [10]byte

// maxSeq orders after every __$seqval: a position whose seq is maxSeq
// has everything of its LSN done.
var maxSeq = lsn{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func lsnOf(b []byte) (lsn, error) {
	var l lsn
	if len(b) != len(l) {
		return l, fmt.Errorf("an LSN is 10 bytes, got %d", len(b))
	}
	copy(l[:], b)
	return l, nil
}

func (l lsn) cmp(o lsn) int  { return bytes.Compare(l[:], o[:]) }
func (l lsn) isZero() bool   { return l == lsn{} }
func (l lsn) String() string { return "0x" + hex.EncodeToString(l[:]) }

// MarshalText writes the LSN as SQL Server shows it (0x + 20 hex digits).
func (l lsn) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

func (l *lsn) UnmarshalText(b []byte) error {
	s := string(b)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("LSN %q is not hex", string(b))
	}
	v, err := lsnOf(raw)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// point is where a change sits in the log: the commit LSN of its
// transaction and its sequence value in it (__$start_lsn, __$seqval).
type point struct {
	LSN lsn `json:"lsn"`
	Seq lsn `json:"seq"`
}

func (p point) cmp(o point) int {
	if c := p.LSN.cmp(o.LSN); c != 0 {
		return c
	}
	return p.Seq.cmp(o.Seq)
}

// position is what the engine stores and hands back as resume bytes: the
// last change emitted (commit LSN + sequence value; a restart reads from
// its LSN and drops what is not after it), the tables captured then (so
// that a restart can tell a table whose changes cleanup removed from one
// enabled since), floors below which a table's changes are already in a
// snapshot, and the state of a running snapshot.
type position struct {
	point
	Tables []string       `json:"tables,omitempty"`
	Floors map[string]lsn `json:"floors,omitempty"`
	// Begins holds, for a table whose capture instance started after
	// the LSN of the snapshot that read it, that start: the change tables
	// need to reach back only to it, so its being above the position is
	// not a loss.
	Begins map[string]lsn `json:"begins,omitempty"`
	Snap   *snapState     `json:"snap,omitempty"`
}

// snapState is a snapshot's progress: the tables in order, the index of
// the one being read, the key of the last row emitted from it (JSON
// values) and the LSN the snapshot is consistent with (streaming covers
// what follows it). Full says the snapshot covers every captured table
// (the stream then restarts at At); otherwise its tables get floors.
type snapState struct {
	Tables []string          `json:"tables"`
	Index  int               `json:"i"`
	After  []json.RawMessage `json:"after,omitempty"`
	Done   int64             `json:"done,omitempty"`
	At     *lsn              `json:"at,omitempty"` // nil until read (a zero LSN is a valid answer: nothing captured yet)
	Full   bool              `json:"full,omitempty"`
	Begins map[string]lsn    `json:"begins,omitempty"`
}

func parsePosition(b []byte) (*position, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("stored position %.80q is not a sqlserver-cdc position: %w", b, err)
	}
	return &p, nil
}

func (p *position) encode() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// clone copies the parts a snapshot or stream changes.
func (p *position) clone() *position {
	c := *p
	c.Tables = append([]string(nil), p.Tables...)
	c.Floors = maps.Clone(p.Floors)
	c.Begins = maps.Clone(p.Begins)
	if p.Snap != nil {
		s := *p.Snap
		if p.Snap.At != nil {
			at := *p.Snap.At
			s.At = &at
		}
		s.Tables = append([]string(nil), p.Snap.Tables...)
		s.Begins = maps.Clone(p.Snap.Begins)
		s.After = append([]json.RawMessage(nil), p.Snap.After...)
		c.Snap = &s
	}
	return &c
}
