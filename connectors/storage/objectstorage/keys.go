package objectstorage

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// Object keys are
//
//	prefix/[year=YYYY/month=MM/day=DD/[hour=HH/]]YYYYMMDD_HHMMSS_<id><ext>
//
// where the time is the first event's timestamp (UTC) and <id> is the
// first 16 hex digits of a SHA-256 over the events' wire encodings. All of
// it comes from the events, nothing from the clock or a counter, so a
// redelivered batch gets the same key and its upload overwrites the object
// written the first time instead of adding a duplicate.
//
// The engine hands sinks events, not topic offsets (a Record's topic,
// partition and offset stay in the handler), and an event's
// Metadata.Position is the source's position, which is not unique either
// (a snapshot's rows can share one). The wire encoding holds the position,
// stream, key, timestamp and data, so its hash identifies the batch; unlike
// the encoded object it is independent of the format (an Avro container's
// sync marker is random).

const idHexDigits = 16

// partitionOf returns the Hive-style partition path of t in UTC ("" for
// partitioning none).
func partitionOf(mode string, t time.Time) string {
	t = t.UTC()
	switch mode {
	case PartitionDay:
		return fmt.Sprintf("year=%04d/month=%02d/day=%02d", t.Year(), int(t.Month()), t.Day())
	case PartitionHour:
		return fmt.Sprintf("year=%04d/month=%02d/day=%02d/hour=%02d", t.Year(), int(t.Month()), t.Day(), t.Hour())
	}
	return ""
}

// cleanPrefix drops leading and trailing slashes: "/events/" is "events".
func cleanPrefix(p string) string { return strings.Trim(p, "/") }

// objectKey joins the parts of a key; empty parts are left out.
func objectKey(prefix, partition string, first time.Time, id, ext string) string {
	name := first.UTC().Format("20060102_150405") + "_" + id + ext
	parts := make([]string, 0, 3)
	for _, p := range []string{prefix, partition, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}

// hasher computes batch IDs, reusing its encoding buffer.
type hasher struct{ buf []byte }

// batchID returns the ID of a chunk of events: the same events in the same
// order give the same ID.
func (h *hasher) batchID(evs []*events.Event) (string, error) {
	sum := sha256.New()
	var n [8]byte
	for _, e := range evs {
		var err error
		h.buf, err = events.Rivven.Append(h.buf[:0], e)
		if err != nil {
			return "", fmt.Errorf("object-storage: encoding event for its batch id: %w", err)
		}
		// Length-prefix each event so that no two different sequences
		// hash the same bytes.
		binary.BigEndian.PutUint64(n[:], uint64(len(h.buf)))
		sum.Write(n[:])
		sum.Write(h.buf)
	}
	return hex.EncodeToString(sum.Sum(nil))[:idHexDigits], nil
}

// probeKey is where Check writes its probe object.
func probeKey(prefix, name string) string {
	return path.Join(cleanPrefix(prefix), "_rivven_probe", name)
}
