package iceberg

import (
	"encoding/json"
	"strconv"

	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/rivven/rivven-connect/shared/tablerow"
)

// Effectively once: every snapshot this sink commits records in its summary
// what it holds, the way the Kafka Connect and Flink Iceberg sinks record
// their offsets and checkpoint ids:
//
//   - rivven.offsets.<sink name>: for records delivered from a log with
//     offsets (Kafka, MSK, Redis Streams), a JSON object topic ->
//     partition -> highest offset committed so far. It is cumulative (each
//     snapshot carries the previous one's forward), so the newest
//     snapshot of this sink says everything.
//   - rivven.batch-id.<sink name>: for other events (queue deliveries, a
//     sink called directly), a hash of the batch's message ids (or of the
//     events' encodings when nothing delivered them).
//
// Before writing, a batch is checked against the table as it is now
// committed: records at or below the committed offset of their partition,
// and a batch whose id a recent snapshot names, are left out. A batch
// redelivered after its commit (the process died before acknowledging)
// is thus skipped, however the redelivery groups the records.

const (
	offsetsKeyPrefix = "rivven.offsets."
	batchKeyPrefix   = "rivven.batch-id."
	// batchIDLookback is how many of this table's newest snapshots are
	// searched for a batch id: a redelivery comes soon after the commit.
	batchIDLookback = 1000
)

// delivered is what the table already holds of this sink's input.
type delivered struct {
	offsets map[string]map[int32]int64
	batches map[string]bool
}

// committedState reads it from the snapshots' summaries, newest first.
func committedState(meta table.Metadata, name string) delivered {
	d := delivered{offsets: map[string]map[int32]int64{}, batches: map[string]bool{}}
	snap := meta.CurrentSnapshot()
	gotOffsets := false
	for n := 0; snap != nil && n < batchIDLookback; n++ {
		if snap.Summary != nil {
			p := snap.Summary.Properties
			if id := p[batchKeyPrefix+name]; id != "" {
				d.batches[id] = true
			}
			if v, ok := p[offsetsKeyPrefix+name]; ok && !gotOffsets {
				gotOffsets = true
				d.offsets = decodeOffsets(v)
			}
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = meta.SnapshotByID(*snap.ParentSnapshotID)
	}
	return d
}

func decodeOffsets(v string) map[string]map[int32]int64 {
	var raw map[string]map[string]int64
	out := map[string]map[int32]int64{}
	if json.Unmarshal([]byte(v), &raw) != nil {
		return out
	}
	for topic, parts := range raw {
		m := map[int32]int64{}
		for p, off := range parts {
			if n, err := strconv.ParseInt(p, 10, 32); err == nil {
				m[int32(n)] = off
			}
		}
		out[topic] = m
	}
	return out
}

func encodeOffsets(o map[string]map[int32]int64) string {
	raw := map[string]map[string]int64{}
	for topic, parts := range o {
		m := map[string]int64{}
		for p, off := range parts {
			m[strconv.Itoa(int(p))] = off
		}
		raw[topic] = m
	}
	b, _ := json.Marshal(raw) // maps of strings and numbers always marshal
	return string(b)
}

// marker is what a batch about to be committed holds.
type marker struct {
	offsets map[string]map[int32]int64 // highest offset per partition in the batch
	batchID string                     // of the rows without offsets
}

// pending returns the rows not yet committed and the batch's marker.
func (d delivered) pending(rows []row) ([]row, marker) {
	m := marker{offsets: map[string]map[int32]int64{}}
	out := rows[:0:0]
	var other []row
	for _, r := range rows {
		p := r.Event.Delivered
		if p == nil || !p.HasOffset || p.Topic == "" {
			other = append(other, r)
			continue
		}
		if committed, ok := d.offsets[p.Topic][p.Partition]; ok && p.Offset <= committed {
			continue
		}
		parts := m.offsets[p.Topic]
		if parts == nil {
			parts = map[int32]int64{}
			m.offsets[p.Topic] = parts
		}
		if cur, ok := parts[p.Partition]; !ok || p.Offset > cur {
			parts[p.Partition] = p.Offset
		}
		out = append(out, r)
	}
	if len(other) > 0 {
		id := tablerow.BatchID(other)
		if !d.batches[id] {
			m.batchID = id
			out = append(out, other...)
		}
	}
	return out, m
}

// summary is the snapshot summary properties recording the batch: the
// committed offsets carried forward and raised by the batch's, and its id.
func (m marker) summary(name string, prev delivered, _ []row) ice.Properties {
	props := ice.Properties{"rivven.sink": name}
	if len(m.offsets) > 0 || len(prev.offsets) > 0 {
		merged := map[string]map[int32]int64{}
		for topic, parts := range prev.offsets {
			merged[topic] = map[int32]int64{}
			for p, off := range parts {
				merged[topic][p] = off
			}
		}
		for topic, parts := range m.offsets {
			if merged[topic] == nil {
				merged[topic] = map[int32]int64{}
			}
			for p, off := range parts {
				if cur, ok := merged[topic][p]; !ok || off > cur {
					merged[topic][p] = off
				}
			}
		}
		props[offsetsKeyPrefix+name] = encodeOffsets(merged)
	}
	if m.batchID != "" {
		props[batchKeyPrefix+name] = m.batchID
	}
	return props
}
