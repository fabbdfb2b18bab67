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
//	prefix/[year=YYYY/month=MM/day=DD/[hour=HH/]]<name><ext>
//
// where <name>, for records delivered from a log with offsets (Kafka, MSK,
// Redis Streams under run sink), is the Kafka Connect S3 sink's
// <topic>+<partition>+<startOffset>: the topic, partition and offset of
// the object's first record, the offset zero-padded to 10 digits as Kafka
// Connect pads it (followed by +<last offset> when an object of unknown
// content holds the name: see Sink.placeLogObject). For records a queue
// delivered (SQS, Kinesis, Pub/Sub) it is <topic>+<message id of the
// first record>. A log's objects are cut at fixed offset windows, so a
// redelivery grouped into other batches writes the objects of the first
// delivery again under the same names, and each carries its last offset
// so that none is replaced by a shorter one.
//
// Events no trigger delivered (a sink called directly) are named
// YYYYMMDD_HHMMSS_<id>: the first event's timestamp (UTC) and the first
// 16 hex digits of a SHA-256 over the events' wire encodings, which holds
// their position, stream, key, timestamp and data (unlike the encoded
// object it is independent of the format: an Avro container's sync marker
// is random). The same events in the same order get the same name.

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

// offsetDigits is Kafka Connect's default zero padding of start offsets
// (zero.pad.width), so that names sort in offset order.
const offsetDigits = 10

// positionName names an object after where its first record was
// delivered; false when its events carry no delivery position.
func positionName(evs []*events.Event) (string, bool) {
	d := evs[0].Delivered
	switch {
	case d == nil || d.Topic == "":
		return "", false
	case d.HasOffset:
		return fmt.Sprintf("%s+%d+%0*d", keySafe(d.Topic), d.Partition, offsetDigits, d.Offset), true
	case d.ID != "":
		return keySafe(d.Topic) + "+" + keySafe(d.ID), true
	}
	return "", false
}

// lastSuffix is what the name of a log's object gains when it must not
// replace an object of unknown content (Sink.placeLogObject).
func lastSuffix(last int64) string { return fmt.Sprintf("+%0*d", offsetDigits, last) }

// keySafe keeps a topic or message id one path segment of a key: a /
// (or \) becomes _.
func keySafe(s string) string { return strings.NewReplacer("/", "_", `\`, "_").Replace(s) }

// hashName is the name of events no trigger delivered.
func hashName(first time.Time, id string) string {
	return first.UTC().Format("20060102_150405") + "_" + id
}

// objectKey joins the parts of a key; empty parts are left out.
func objectKey(prefix, partition, name string) string {
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
