package objectstorage

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/pipeline"
)

// TestObjectsNamedByDeliveryPosition: records of a log (topic, partition,
// offset) delivered through the engine's Handler are written under the
// Kafka Connect S3 sink's name, <topic>+<partition>+<startOffset>, so the
// same records delivered again in a different grouping — a redelivery
// starts at the first record not recorded as written — replace the
// objects of the first delivery instead of adding to them: every record
// is in the bucket once. Before, objects were named after a hash of the
// batch's events, and each grouping added objects of its own.
func TestObjectsNamedByDeliveryPosition(t *testing.T) {
	evs := orders(10, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
	records := func(from, to int) []pipeline.Record {
		var recs []pipeline.Record
		for i := from; i < to; i++ {
			// A fresh event per delivery, as a trigger decodes one.
			e := *evs[i]
			recs = append(recs, pipeline.Record{ID: fmt.Sprintf("orders-3-%d", 40+i), Topic: "orders", Partition: 3,
				Offset: int64(40 + i), HasOffset: true, Event: &e})
		}
		return recs
	}
	for _, c := range []struct {
		name       string
		deliveries [][2]int // record ranges, delivered in this order
		want       []string // object names
	}{
		{"one batch, then redelivered as two", [][2]int{{0, 10}, {0, 5}, {5, 10}},
			[]string{"orders+3+0000000040.jsonl", "orders+3+0000000045.jsonl"}},
		{"half a batch, then redelivered whole", [][2]int{{0, 5}, {0, 10}},
			[]string{"orders+3+0000000040.jsonl"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			h := &pipeline.Handler{Name: "lake", Sink: mustSink(t, localConfig(root, "format: jsonl\n"))}
			for _, d := range c.deliveries {
				res, err := h.Handle(context.Background(), records(d[0], d[1]))
				if err != nil || len(res.Failed) != 0 {
					t.Fatalf("handle %v: %v, failed %v", d, err, res.Failed)
				}
			}
			objs := listLocal(t, filepath.Join(root, "lake"))
			var names []string
			seen := map[string]int{}
			for _, o := range objs {
				names = append(names, path.Base(o.key))
				if !strings.HasPrefix(o.key, "events/") {
					t.Errorf("key %s is not under the prefix", o.key)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(o.body)), "\n") {
					seen[line]++
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, c.want) {
				t.Errorf("objects %v, want %v", names, c.want)
			}
			if len(seen) != 10 {
				t.Errorf("%d distinct records in the bucket, want 10", len(seen))
			}
			for line, n := range seen {
				if n != 1 {
					t.Errorf("record written %d times: %s", n, line)
				}
			}
		})
	}
}

// Records of a queue (no offsets) are named after the topic and the first
// record's message id; events a sink gets without a delivery (called
// directly) keep the hash name. The position is only there during Write.
func TestObjectNamesWithoutOffsets(t *testing.T) {
	root := t.TempDir()
	h := &pipeline.Handler{Name: "lake", Sink: mustSink(t, localConfig(root, "format: jsonl\n"))}
	evs := orders(2, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
	recs := []pipeline.Record{
		{ID: "059f36b4-87a3-44ab-83d2-661975830a7d", Topic: "orders", Event: evs[0]},
		{ID: "2e1424d4-f796-459a-8184-9c92662be6da", Topic: "orders", Event: evs[1]},
	}
	if res, err := h.Handle(context.Background(), recs); err != nil || len(res.Failed) != 0 {
		t.Fatalf("%v %v", err, res.Failed)
	}
	objs := listLocal(t, filepath.Join(root, "lake"))
	if len(objs) != 1 || path.Base(objs[0].key) != "orders+059f36b4-87a3-44ab-83d2-661975830a7d.jsonl" {
		t.Fatalf("objects %v", objs)
	}
	for _, e := range evs {
		if e.Delivered != nil {
			t.Fatal("the delivery position outlived the Write")
		}
	}
}
