// Package objectstorage is the object-storage sink: batches of events
// become objects (files) in S3 (and S3-compatible stores), Google Cloud
// Storage, Azure Blob Storage or a local directory, serialized by
// shared/format and named deterministically so that a redelivered batch
// overwrites its own object. The legacy names s3, gcs and azure-blob are
// the same sink with the provider fixed.
package objectstorage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// Metric names.
const (
	metricObjects = "object_storage.objects_written"
	metricBytes   = "object_storage.bytes_written"
	metricEvents  = "object_storage.events_written"
	metricLatency = "object_storage.flush_latency_seconds"
	metricErrors  = "object_storage.write_errors"
)

// connectorName is the connector's catalog name; the legacy names stand in for it.
const connectorName = "object-storage"

var metrics = []string{metricObjects, metricBytes, metricEvents, metricLatency, metricErrors}

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        connectorName,
		Aliases:     []string{"object-store", "blob-storage"},
		Category:    catalog.Storage,
		Subcategory: "Object",
		Description: "Writes batches of events as objects (json, jsonl, csv, avro, parquet; optionally compressed, Hive-style time partitioned) to S3 or S3-compatible stores, Google Cloud Storage, Azure Blob Storage or a local directory, with deterministic keys so redeliveries overwrite instead of duplicating.",
		Tags:        []string{"s3", "gcs", "azure", "blob", "minio", "r2", "object", "storage", "data-lake", "parquet", "avro", "csv", "jsonl", "local", "file"},
		Metrics:     metrics,
	}, New)
	registerLegacy[legacyS3]("s3", "Amazon S3")
	registerLegacy[legacyGCS]("gcs", "Google Cloud Storage")
	registerLegacy[legacyAzure]("azure-blob", "Azure Blob Storage")
}

// registerLegacy registers a legacy name: the object-storage sink with the
// provider fixed. Catalog aliases cannot carry a setting, so each is its own
// entry whose constructor fills in the provider and calls New.
func registerLegacy[P legacyName](legacy, what string) {
	catalog.RegisterSink[LegacyConfig[P]](catalog.Meta{
		Name:        legacy,
		Category:    catalog.Storage,
		Subcategory: "Object",
		Description: "Legacy name of object-storage with provider fixed to " + what + "; new pipelines should use object-storage.",
		Tags:        []string{"object", "storage", "legacy", legacy},
		Metrics:     metrics,
		LegacyOf:    connectorName,
	}, func(ctx context.Context, c *LegacyConfig[P]) (connector.Sink, error) { return New(ctx, c.config()) })
}

// BatchPolicy asks long-lived runners for batches of batch_size events,
// holding a partial batch at most flush_interval_secs (pipeline.Batcher),
// so that objects are as large as configured without the sink keeping
// data the engine already believes written.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Sink writes batches as objects.
type Sink struct {
	cfg    Config
	prefix string
	enc    format.Encoder
	// rowsOnly: the format writes rows only, so events without a row
	// (schema, truncate) produce nothing and are not uploaded.
	rowsOnly bool
	store    store

	mu  sync.Mutex // Write is not concurrency-safe (the encoder is not)
	buf bytes.Buffer
	h   hasher
	// readDenied warns once that object metadata cannot be read.
	readDenied sync.Once
}

// New builds an object-storage sink.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) {
	return newSink(ctx, cfg)
}

func newSink(ctx context.Context, cfg *Config) (*Sink, error) {
	enc, err := format.New(cfg.Options)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	f := cfg.Format
	return &Sink{
		cfg:      *cfg,
		prefix:   cleanPrefix(cfg.Prefix),
		enc:      enc,
		rowsOnly: (f != "" && f != format.JSON && f != format.JSONL) || cfg.Envelope == format.EnvelopeRow,
		store:    st,
	}, nil
}

// Check writes a small probe object under prefix/_rivven_probe/ and
// deletes it: the bucket exists, the credentials work and may write and
// delete. The probe's name is random so that instances checking at the
// same time do not delete each other's probe.
func (s *Sink) Check(ctx context.Context) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	key := probeKey(s.prefix, time.Now().UTC().Format("20060102T150405Z")+"-"+hex.EncodeToString(b[:]))
	if err := s.store.Put(ctx, key, []byte("rivven-connect object-storage probe\n"), "text/plain", "", -1); err != nil {
		return fmt.Errorf("object-storage: %s is not writable (probe %s): %w", s.store.URL(), key, err)
	}
	if err := s.store.Delete(ctx, key); err != nil {
		return fmt.Errorf("object-storage: cannot delete the probe %s in %s: %w", key, s.store.URL(), err)
	}
	return nil
}

// Close releases the provider client. Nothing is buffered: every Write
// uploaded its batch before returning.
func (s *Sink) Close(context.Context) error { return s.store.Close() }

// chunk is the events of one object, by index into the batch.
type chunk struct {
	partition string
	idx       []int
}

// Write uploads the batch before it returns: events are grouped by
// partition (keeping their order), each group is cut into objects of at
// most batch_size events, and each object is encoded and uploaded under its
// deterministic key. Events that cannot be encoded fail alone (a Schema
// error, not retried); an upload that fails fails its object's events, and
// those of the objects not yet uploaded, with the provider's error,
// classified retryable or not. Nothing is held across calls, so a nil
// return means every object is stored.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := connector.RuntimeFrom(ctx)
	failed := map[int]error{}
	var putErr error
	for _, c := range s.chunks(batch) {
		if putErr != nil {
			// The store just failed: the next uploads would most likely
			// fail too, each after the SDK's own retries. Hand the rest
			// back at once; the redelivery writes them.
			for _, i := range c.idx {
				failed[i] = putErr
			}
			continue
		}
		putErr = s.writeChunk(ctx, rt, batch, c, failed)
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(failed) == len(batch):
		// One shared cause (the usual case: the store is down) reads
		// better as a whole-batch error.
		var first error
		same := true
		for _, err := range failed {
			if first == nil {
				first = err
			} else if err != first {
				same = false
				break
			}
		}
		if same {
			return first
		}
	}
	return &connector.WriteError{Failed: failed}
}

// chunks groups the batch into objects: by time partition and, for
// events delivered from a log, by the log's topic and partition, since an
// object is named after its first record's position there (objectName).
// A log's records are cut at fixed offset windows (offsetWindows), other
// events every batch_size events.
func (s *Sink) chunks(batch []*events.Event) []chunk {
	type group struct{ partition, stream string }
	var order []group
	groups := map[group][]int{}
	for i, e := range batch {
		if s.rowsOnly && !e.Type.IsData() {
			continue
		}
		g := group{partition: partitionOf(s.cfg.Partitioning, e.Timestamp)}
		if d := e.Delivered; d != nil && d.HasOffset {
			g.stream = d.Topic + "\x00" + strconv.Itoa(int(d.Partition))
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	var out []chunk
	for _, g := range order {
		idx := groups[g]
		if g.stream != "" {
			out = s.offsetWindows(out, g.partition, batch, idx)
			continue
		}
		for len(idx) > 0 {
			n := min(len(idx), s.cfg.BatchSize)
			out = append(out, chunk{partition: g.partition, idx: idx[:n:n]})
			idx = idx[n:]
		}
	}
	return out
}

// offsetWindows cuts one log partition's events (idx, in offset order)
// into objects at fixed windows of batch_size offsets — [0, n), [n, 2n),
// … — instead of every batch_size events from wherever the batch starts.
// The cuts then depend on the offsets alone, as Kafka Connect's do on
// its committed offsets: a redelivery grouped into other batches cuts
// where the first delivery did, except inside the window where a batch
// of either delivery ended, and its objects replace the first delivery's
// instead of overlapping them.
func (s *Sink) offsetWindows(out []chunk, partition string, batch []*events.Event, idx []int) []chunk {
	n := int64(s.cfg.BatchSize)
	window := func(i int) int64 { return batch[i].Delivered.Offset / n }
	for len(idx) > 0 {
		w, k := window(idx[0]), 1
		for k < len(idx) && window(idx[k]) == w {
			k++
		}
		out = append(out, chunk{partition: partition, idx: idx[:k:k]})
		idx = idx[k:]
	}
	return out
}

// writeChunk encodes and uploads one object, recording failed events in
// failed; it returns the upload's error (encoding problems are per event
// and not returned).
func (s *Sink) writeChunk(ctx context.Context, rt *connector.Runtime, batch []*events.Event, c chunk, failed map[int]error) error {
	evs := make([]*events.Event, len(c.idx))
	for j, i := range c.idx {
		evs[j] = batch[i]
	}
	idx := c.idx
	s.buf.Reset()
	if err := s.enc.Encode(&s.buf, evs); err != nil {
		// Find the events the format rejects, fail those alone and write
		// the rest.
		evs, idx = s.isolate(evs, idx, failed)
		if len(evs) == 0 {
			return nil
		}
		s.buf.Reset()
		if err := s.enc.Encode(&s.buf, evs); err != nil {
			s.failAll(rt, idx, resilience.New(resilience.Schema, fmt.Errorf("object-storage: encoding as %s: %w", s.enc.Extension(), err)), failed)
			return nil
		}
	}
	name, ok := positionName(evs)
	last := int64(-1) // the last offset, for the objects of a log
	if ok && evs[0].Delivered.HasOffset {
		last = evs[len(evs)-1].Delivered.Offset
	}
	if !ok {
		id, err := s.h.batchID(evs)
		if err != nil {
			s.failAll(rt, idx, resilience.New(resilience.Schema, err), failed)
			return nil
		}
		name = hashName(evs[0].Timestamp, id)
	}
	key := objectKey(s.prefix, c.partition, name+s.enc.Extension())
	if last >= 0 {
		var write bool
		var err error
		if key, write, err = s.placeLogObject(ctx, rt, key, objectKey(s.prefix, c.partition, name+lastSuffix(last)+s.enc.Extension()), last); err != nil {
			err = fmt.Errorf("object-storage: head %s/%s: %w", s.store.URL(), key, err)
			s.failAll(rt, idx, err, failed)
			return err
		}
		if !write {
			return nil
		}
	}
	start := time.Now()
	if err := s.store.Put(ctx, key, s.buf.Bytes(), s.enc.ContentType(), s.enc.ContentEncoding(), last); err != nil {
		err = fmt.Errorf("object-storage: put %s/%s: %w", s.store.URL(), key, err)
		s.failAll(rt, idx, err, failed)
		return err
	}
	rt.Gauge(metricLatency, "Seconds the last object upload took.").Set(time.Since(start).Seconds())
	rt.Counter(metricObjects, "Objects written.").Inc()
	rt.Counter(metricBytes, "Bytes of objects written (after compression).").Add(uint64(s.buf.Len()))
	rt.Counter(metricEvents, "Events written into objects.").Add(uint64(len(evs)))
	return nil
}

// placeLogObject decides where the object of a log partition's records
// from its first offset to last goes, by what the store holds at its name
// (key; one HEAD request). The object at a name always holds every
// delivered record of the partition from the name's offset to the last
// offset marked on it, so: nothing there, or a lower last offset — the
// object goes there and replaces the shorter one; the same or a higher
// last offset — these records are stored already, and nothing is
// written; an object with no mark (written by an older version, or by
// something else) — nobody knows what it holds, so the object goes
// beside it under the name with its last offset too (wide), never over
// it. That way an object is never replaced by one holding fewer records.
// Credentials that may write but not read objects (S3 answers a HEAD
// without s3:GetObject, or of a missing key without s3:ListBucket, with
// 403) leave what is there unknown too: the wide name, and a warning.
func (s *Sink) placeLogObject(ctx context.Context, rt *connector.Runtime, key, wide string, last int64) (string, bool, error) {
	stored, st, err := s.store.LastOffset(ctx, key)
	switch {
	case resilience.ClassOf(err) == resilience.Auth:
		s.readDenied.Do(func() {
			rt.Logger().Warn("object-storage: may not read object metadata, so objects of a log are written under names with their last offset, and a redelivery cut otherwise may store records twice; grant read (s3:GetObject and s3:ListBucket, or the provider's equivalent)",
				"bucket", s.store.URL(), "error", err)
		})
		return wide, true, nil
	case err != nil:
		return key, false, err
	case st == objectUnmarked:
		return wide, true, nil
	case st == objectMarked && stored >= last:
		return key, false, nil
	}
	return key, true, nil
}

// isolate encodes each event alone and fails those the encoder rejects; it
// returns the others.
func (s *Sink) isolate(evs []*events.Event, idx []int, failed map[int]error) ([]*events.Event, []int) {
	var okEvs []*events.Event
	var okIdx []int
	var scratch bytes.Buffer
	for j, e := range evs {
		scratch.Reset()
		if err := s.enc.Encode(&scratch, []*events.Event{e}); err != nil {
			failed[idx[j]] = resilience.New(resilience.Schema, fmt.Errorf("object-storage: event cannot be encoded as %s: %w", s.enc.Extension(), err))
			continue
		}
		okEvs, okIdx = append(okEvs, e), append(okIdx, idx[j])
	}
	return okEvs, okIdx
}

func (s *Sink) failAll(rt *connector.Runtime, idx []int, err error, failed map[int]error) {
	rt.Counter(metricErrors, "Objects that could not be encoded or uploaded.").Inc()
	for _, i := range idx {
		failed[i] = err
	}
}
