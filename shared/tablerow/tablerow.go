// Package tablerow holds what the table-format sinks (iceberg, delta-lake)
// do alike with a batch before they plan files: take the rows of its data
// events, and name a batch that has no log offsets so that a redelivery of
// it can be recognised in the table's commit history.
package tablerow

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// Row is one event's row, by its index in the batch.
type Row struct {
	Index int
	Event *events.Event
	Cells map[string]any
}

// Extract takes the rows of data events; events without a row (schema
// changes, heartbeats) are not written; undecodable ones fail, their
// errors prefixed with who.
func Extract(batch []*events.Event, who string) ([]Row, map[int]error) {
	rows := make([]Row, 0, len(batch))
	failed := map[int]error{}
	for i, e := range batch {
		if !e.Type.IsData() {
			continue
		}
		m, err := e.Row()
		if err != nil {
			failed[i] = resilience.New(resilience.Schema, fmt.Errorf("%s: %w", who, err))
			continue
		}
		if m == nil {
			failed[i] = resilience.New(resilience.Schema, errors.New(who+": event has no row"))
			continue
		}
		rows = append(rows, Row{Index: i, Event: e, Cells: m})
	}
	return rows, failed
}

// BatchID identifies rows delivered without log offsets: the same
// deliveries (or, without a delivery, the same events) in the same order
// give the same id, so a redelivered batch maps to the commit it made.
func BatchID(rows []Row) string {
	sum := sha256.New()
	var n [8]byte
	var buf []byte
	for _, r := range rows {
		buf = buf[:0]
		if p := r.Event.Delivered; p != nil && p.ID != "" {
			buf = append(append(append(buf, p.Topic...), 0), p.ID...)
		} else {
			var err error
			if buf, err = events.Rivven.Append(buf, r.Event); err != nil {
				// Unencodable events cannot be redelivered identically
				// either; their row still names them.
				buf, _ = json.Marshal(r.Cells)
			}
		}
		// Length-prefixed, so that no two sequences hash the same bytes.
		binary.BigEndian.PutUint64(n[:], uint64(len(buf)))
		sum.Write(n[:])
		sum.Write(buf)
	}
	return hex.EncodeToString(sum.Sum(nil))[:32]
}
