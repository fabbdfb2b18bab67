package objectstorage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/pipeline"
)

// TestObjectsNamedByDeliveryPosition: records of a log (topic, partition,
// offset) delivered through the engine's Handler are cut into objects at
// fixed windows of batch_size offsets and named after the Kafka Connect S3
// sink's <topic>+<partition>+<startOffset>; each object carries its last
// offset. The same records delivered again in another grouping — a
// redelivery starts at the first record not recorded as written — write
// the first delivery's objects again (or find them stored and write
// nothing), except where a cut of the redelivery falls inside a window
// after the first delivery's object there; and no object is ever
// replaced by one holding fewer records, so nothing stored is lost.
// Before, objects were cut every batch_size records from the batch's
// start: a batch cut elsewhere replaced an object with a shorter one and
// duplicated every later one.
func TestObjectsNamedByDeliveryPosition(t *testing.T) {
	evs := orders(13, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
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
		deliveries [][2]int // record ranges (offset 40 + i), delivered in this order
		want       []string // object names
		twice      []int    // offsets stored twice; every other one once
	}{
		{"whole, then redelivered cut inside a window", [][2]int{{0, 13}, {0, 3}, {3, 13}},
			[]string{"orders+3+0000000040", "orders+3+0000000043", "orders+3+0000000045", "orders+3+0000000050"},
			[]int{43, 44}},
		{"whole, then redelivered cut at a window", [][2]int{{0, 13}, {0, 5}, {5, 13}},
			[]string{"orders+3+0000000040", "orders+3+0000000045", "orders+3+0000000050"}, nil},
		{"half a window, then whole", [][2]int{{0, 3}, {0, 13}},
			[]string{"orders+3+0000000040", "orders+3+0000000045", "orders+3+0000000050"}, nil},
		{"cut elsewhere, then whole", [][2]int{{0, 7}, {7, 13}, {0, 13}},
			[]string{"orders+3+0000000040", "orders+3+0000000045", "orders+3+0000000047", "orders+3+0000000050"},
			[]int{47, 48, 49}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			cfg := "provider: local\nbucket: lake\nprefix: /events/\nbatch_size: 5\nformat: jsonl\nlocal:\n  root: " + root + "\n"
			h := &pipeline.Handler{Name: "lake", Sink: mustSink(t, cfg)}
			held := map[string]int{} // records each object held after the last delivery
			for _, d := range c.deliveries {
				res, err := h.Handle(context.Background(), records(d[0], d[1]))
				if err != nil || len(res.Failed) != 0 {
					t.Fatalf("handle %v: %v, failed %v", d, err, res.Failed)
				}
				for _, o := range listLocal(t, filepath.Join(root, "lake")) {
					n := strings.Count(string(o.body), "\n")
					if n < held[o.key] {
						t.Errorf("after delivering %v, %s holds %d records instead of %d", d, o.key, n, held[o.key])
					}
					held[o.key] = n
				}
			}
			objs := listLocal(t, filepath.Join(root, "lake"))
			var names []string
			seen := map[int64]int{}
			for _, o := range objs {
				names = append(names, strings.TrimSuffix(path.Base(o.key), ".jsonl"))
				if !strings.HasPrefix(o.key, "events/") {
					t.Errorf("key %s is not under the prefix", o.key)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(o.body)), "\n") {
					var row struct {
						Data struct {
							OrderID int64 `json:"order_id"`
						} `json:"data"`
					}
					if err := json.Unmarshal([]byte(line), &row); err != nil {
						t.Fatal(err)
					}
					seen[row.Data.OrderID-100000+40]++
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, c.want) {
				t.Errorf("objects %v, want %v", names, c.want)
			}
			for off := int64(40); off < 53; off++ {
				want := 1
				if slices.Contains(c.twice, int(off)) {
					want = 2
				}
				if seen[off] != want {
					t.Errorf("offset %d stored %d times, want %d", off, seen[off], want)
				}
			}
		})
	}
}

// An object of unknown content at a log object's name (written by an
// older version, which cut objects elsewhere, or by something else) is
// never replaced: the object goes beside it, under the name with its
// last offset too.
func TestLogObjectBesideAnUnmarkedOne(t *testing.T) {
	root := t.TempDir()
	cfg := "provider: local\nbucket: lake\nprefix: /events/\nbatch_size: 5\nformat: jsonl\nlocal:\n  root: " + root + "\n"
	old := filepath.Join(root, "lake", "events", "orders+3+0000000040.jsonl")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	body := []byte("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"a\":5}\n{\"a\":6}\n{\"a\":7}\n")
	if err := os.WriteFile(old, body, 0o644); err != nil {
		t.Fatal(err)
	}
	h := &pipeline.Handler{Name: "lake", Sink: mustSink(t, cfg)}
	var recs []pipeline.Record
	for i, e := range orders(3, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Second) {
		recs = append(recs, pipeline.Record{ID: fmt.Sprint(40 + i), Topic: "orders", Partition: 3, Offset: int64(40 + i), HasOffset: true, Event: e})
	}
	if res, err := h.Handle(context.Background(), recs); err != nil || len(res.Failed) != 0 {
		t.Fatalf("%v %v", err, res.Failed)
	}
	if b, err := os.ReadFile(old); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("the unmarked object was replaced: %q, %v", b, err)
	}
	var names []string
	for _, o := range listLocal(t, filepath.Join(root, "lake")) {
		names = append(names, path.Base(o.key))
	}
	slices.Sort(names)
	if want := []string{"orders+3+0000000040+0000000042.jsonl", "orders+3+0000000040.jsonl"}; !slices.Equal(names, want) {
		t.Fatalf("objects %v, want %v", names, want)
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
