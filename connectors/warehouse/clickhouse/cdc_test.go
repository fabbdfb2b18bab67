package clickhouse

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// cdcBatch inserts 1, 2, 3, updates 2, deletes 3 (full before images).
func cdcBatch() []*events.Event {
	seq := func(e *events.Event, n uint64) *events.Event { e.Metadata.Sequence = &n; return e }
	return []*events.Event{
		seq(ev(events.Insert, `{"id":1,"name":"one"}`), 1),
		seq(ev(events.Insert, `{"id":2,"name":"two"}`), 2),
		seq(ev(events.Insert, `{"id":3,"name":"three"}`), 3),
		seq(ev(events.Update, `{"before":{"id":2,"name":"two"},"after":{"id":2,"name":"TWO"}}`), 4),
		seq(ev(events.Delete, `{"id":3,"name":"three"}`), 5),
		ev(events.Schema, `{}`),
	}
}

// TestCollapsingMergeTree: deletes and the before images of updates
// become cancel rows (sign -1); the collapsed table equals the source.
func TestCollapsingMergeTree(t *testing.T) {
	table := chTable(t, `CREATE TABLE $T (id UInt32, name String, sign Int8) ENGINE = CollapsingMergeTree(sign) ORDER BY id`)
	s := newSink(t, "url: http://"+chAddr+"\ntable: "+table+"\nsign_column: sign\n")
	if err := s.Write(context.Background(), cdcBatch()); err != nil {
		t.Fatal(err)
	}
	got := chRows(t, "SELECT id, name FROM "+table+" FINAL ORDER BY id")
	if want := []string{"1\tone", "2\tTWO"}; !slices.Equal(got, want) {
		t.Errorf("FINAL: %q, want %q", got, want)
	}
	got = chRows(t, "SELECT id, name, sign FROM "+table+" ORDER BY id, sign")
	if len(got) != 6 {
		t.Errorf("rows before merging: %q, want 6 (3 inserts, update cancel + state, delete cancel)", got)
	}
}

// TestReplacingMergeTree: the version column takes the event sequence,
// so FINAL keeps each key's last change; deletes are skipped (there is no
// is_deleted column on 18.16).
func TestReplacingMergeTree(t *testing.T) {
	table := chTable(t, `CREATE TABLE $T (id UInt32, name String, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY id`)
	s := newSink(t, "url: http://"+chAddr+"\ntable: "+table+"\nversion_column: ver\n")
	batch := cdcBatch()
	// Redelivered out of order: the versions still pick the last change.
	slices.Reverse(batch[:4])
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	got := chRows(t, "SELECT id, name, ver FROM "+table+" FINAL ORDER BY id")
	if want := []string{"1\tone\t1", "2\tTWO\t4", "3\tthree\t3"}; !slices.Equal(got, want) {
		t.Errorf("FINAL: %q, want %q", got, want)
	}
}

// TestEnvelopeLayout writes the reference's table.
func TestEnvelopeLayout(t *testing.T) {
	table := chTable(t, `CREATE TABLE $T (event_type String, stream String, namespace String, timestamp String, data String, metadata String, _ingested_at String) ENGINE = MergeTree() ORDER BY (stream, timestamp)`)
	s := newSink(t, "url: http://"+chAddr+"\ntable: "+table+"\n")
	e := ev(events.Update, `{"before":{"id":1},"after":{"id":1,"n":2}}`)
	ns := "shop"
	e.Namespace = &ns
	e.Metadata.Position = "0/16B3748"
	d := ev(events.Delete, `{"id":1}`)
	if err := s.Write(context.Background(), []*events.Event{e, d}); err != nil {
		t.Fatal(err)
	}
	got := chRows(t, "SELECT event_type, stream, namespace, timestamp, data, metadata, length(_ingested_at) > 0 FROM "+table+" ORDER BY event_type DESC")
	ts := func(e *events.Event) string { return e.Timestamp.UTC().Format(time.RFC3339Nano) }
	want := []string{
		"update\tt\tshop\t" + ts(e) + `	{"before":{"id":1},"after":{"id":1,"n":2}}	{"position":"0/16B3748"}	1`,
		"delete\tt\t\t" + ts(d) + `	{"id":1}	{}	1`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows:\n got %q\nwant %q", got, want)
	}
}
