package postgrescdc

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"
)

// position is what Metadata.Position holds and what Read gets back as
// resume bytes. It is JSON:
//
//	{"lsn":"0/16B3748"}                          streaming: every transaction ending at or before lsn was emitted
//	{"lsn":"0/16B3748","tx":"0/16C0000","n":500} ...plus the first 500 changes of the transaction committing at tx
//	{"lsn":"0/16B3748","snapshot":{"done":["public.a"],"at":{"public.b":["41"]}}}
//	                                             snapshot in progress: lsn is the slot's consistent point,
//	                                             done lists finished tables, at the text of the last
//	                                             emitted primary key per started table ([] = no key, restart it)
//	{"lsn":"0/16B3748","inc":{"since":{"public.b":"0/16A0000"},"done":[...],"at":{...}}}
//	                                             streaming (lsn, tx, n as above) while a watermarked snapshot
//	                                             runs alongside: inc is its progress, as snapshot's, and since
//	                                             where the stream began noting the changed keys of each table
//	                                             not done (the slot is confirmed no further than the lowest)
type position struct {
	LSN   pglogrepl.LSN
	TxLSN pglogrepl.LSN
	TxN   int64
	Snap  *snapState
	Inc   *snapState
}

type snapState struct {
	// Since is, per table of a watermarked snapshot not done yet, the
	// LSN from which the stream's changes of it are left out of its
	// chunks (see incremental). Empty in snapshot positions: there it is
	// the position's own lsn.
	Since map[string]string    `json:"since,omitempty"`
	Done  []string             `json:"done,omitempty"`
	At    map[string][]*string `json:"at,omitempty"`
}

// sinceMin is the lowest Since (0: none, or one that does not parse).
func (st *snapState) sinceMin() pglogrepl.LSN {
	var low pglogrepl.LSN
	for _, v := range st.Since {
		lsn, err := pglogrepl.ParseLSN(v)
		if err != nil {
			return 0
		}
		if low == 0 || lsn < low {
			low = lsn
		}
	}
	return low
}

type positionJSON struct {
	LSN      string     `json:"lsn"`
	Tx       string     `json:"tx,omitempty"`
	N        int64      `json:"n,omitempty"`
	Snapshot *snapState `json:"snapshot,omitempty"`
	Inc      *snapState `json:"inc,omitempty"`
}

func parsePosition(b []byte) (*position, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var pj positionJSON
	if err := json.Unmarshal(b, &pj); err != nil {
		return nil, fmt.Errorf("resume position %q is not a postgres-cdc position: %w", b, err)
	}
	lsn, err := pglogrepl.ParseLSN(pj.LSN)
	if err != nil {
		return nil, fmt.Errorf("resume position: lsn: %w", err)
	}
	p := &position{LSN: lsn, TxN: pj.N, Snap: pj.Snapshot, Inc: pj.Inc}
	if pj.Tx != "" {
		if p.TxLSN, err = pglogrepl.ParseLSN(pj.Tx); err != nil {
			return nil, fmt.Errorf("resume position: tx: %w", err)
		}
	}
	for _, st := range []*snapState{p.Snap, p.Inc} {
		if st != nil && st.At == nil {
			st.At = map[string][]*string{}
		}
	}
	return p, nil
}

// streamPosition renders a streaming position without reflection: it is
// written for every change. suffix is "" or `,"inc":{...}` (incSuffix).
func streamPosition(buf []byte, lsn, tx pglogrepl.LSN, n int64, suffix ...string) string {
	buf = append(buf[:0], `{"lsn":"`...)
	buf = appendLSN(buf, lsn)
	buf = append(buf, '"')
	if tx != 0 {
		buf = append(buf, `,"tx":"`...)
		buf = appendLSN(buf, tx)
		buf = append(buf, `","n":`...)
		buf = strconv.AppendInt(buf, n, 10)
	}
	for _, sfx := range suffix {
		buf = append(buf, sfx...)
	}
	buf = append(buf, '}')
	return string(buf)
}

// incSuffix renders the inc member of streaming positions for the state
// of a watermarked snapshot ("" once there is none).
func incSuffix(st *snapState) string {
	if st == nil {
		return ""
	}
	b, _ := json.Marshal(st)
	return `,"inc":` + string(b)
}

func appendLSN(dst []byte, lsn pglogrepl.LSN) []byte {
	dst = strconv.AppendUint(dst, uint64(lsn>>32), 16)
	dst = append(dst, '/')
	return strconv.AppendUint(dst, uint64(uint32(lsn)), 16)
}

func lsnString(lsn pglogrepl.LSN) string { return string(appendLSN(nil, lsn)) }

// snapshotPosition renders a snapshot position.
func snapshotPosition(lsn pglogrepl.LSN, st *snapState) string {
	b, _ := json.Marshal(positionJSON{LSN: lsnString(lsn), Snapshot: st})
	return string(b)
}
