package objectstorage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/linkedin/goavro/v2"
	"github.com/pierrec/lz4/v4"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// orders makes n datagen-like order records, the first at start and each
// next one step later.
func orders(n int, start time.Time, step time.Duration) []*events.Event {
	out := make([]*events.Event, n)
	statuses := []string{"pending", "paid", "shipped", "delivered", "cancelled"}
	for i := range out {
		row := map[string]any{
			"order_id":    int64(100000 + i),
			"customer_id": int64(1000 + i%97),
			"product":     fmt.Sprintf("SKU-%05d", (i*7919)%10000),
			"quantity":    int64(1 + i%5),
			"price":       float64(i%1000) + 0.99,
			"status":      statuses[i%len(statuses)],
			"created_at":  start.Add(time.Duration(i) * step).UTC().Format(time.RFC3339Nano),
		}
		out[i] = &events.Event{
			Type:      events.Record,
			Stream:    "orders",
			Timestamp: start.Add(time.Duration(i) * step).UTC(),
			Data:      events.ValuePayload(row),
			Metadata:  events.Metadata{Position: strconv.Itoa(i)},
			Key:       json.RawMessage(`{"order_id":` + strconv.Itoa(100000+i) + `}`),
		}
	}
	return out
}

// object is one stored object as a test reads it back.
type object struct {
	key             string
	contentType     string
	contentEncoding string
	body            []byte
}

// objectsByKey sorts objects by key.
func objectsByKey(objs []object) []object {
	sort.Slice(objs, func(i, j int) bool { return objs[i].key < objs[j].key })
	return objs
}

// decompress undoes the text compression named by the key's extension.
func decompress(t *testing.T, key string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch {
	case strings.HasSuffix(key, ".gz"):
		gr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: gzip: %v", key, err)
		}
		r = gr
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: zstd: %v", key, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(key, ".snappy"), strings.HasSuffix(key, ".sz"): // the framing format; .sz in older format versions
		r = snappy.NewReader(bytes.NewReader(body))
	case strings.HasSuffix(key, ".lz4"):
		r = lz4.NewReader(bytes.NewReader(body))
	default:
		return body
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: decompress: %v", key, err)
	}
	return out
}

// countRows reads an object back with an independent reader and returns
// how many events (rows) it holds.
func countRows(t *testing.T, key string, body []byte) int {
	t.Helper()
	plain := decompress(t, key, body)
	base := key
	for _, ext := range []string{".gz", ".zst", ".snappy", ".sz", ".lz4"} {
		base = strings.TrimSuffix(base, ext)
	}
	switch {
	case strings.HasSuffix(base, ".jsonl"):
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(plain))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var v map[string]any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s line %d: %v", key, n+1, err)
			}
			n++
		}
		return n
	case strings.HasSuffix(base, ".json"):
		var arr []map[string]any
		if err := json.Unmarshal(plain, &arr); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return len(arr)
	case strings.HasSuffix(base, ".csv"):
		recs, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return len(recs) - 1 // the header
	case strings.HasSuffix(base, ".avro"):
		r, err := goavro.NewOCFReader(bytes.NewReader(plain))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		n := 0
		for r.Scan() {
			if _, err := r.Read(); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			n++
		}
		if err := r.Err(); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return n
	case strings.HasSuffix(base, ".parquet"):
		r, err := file.NewParquetReader(bytes.NewReader(plain))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		defer r.Close()
		return int(r.NumRows())
	}
	t.Fatalf("%s: unknown extension", key)
	return 0
}

// metricsCtx returns a context with a runtime whose metrics land in reg.
func metricsCtx(reg *telemetry.Registry) context.Context {
	return connector.WithRuntime(context.Background(), &connector.Runtime{Name: "sink", Metrics: reg})
}

// counter reads a counter of the runtime in ctx (labelled as the runtime
// labels it).
func counter(ctx context.Context, name string) uint64 {
	return connector.RuntimeFrom(ctx).Counter(name, "").Value()
}

// formatCase is one format × compression combination, as the YAML lines
// that select it.
type formatCase struct {
	name string
	yaml string
}

// formatCases lists every format with every compression it takes: the
// text formats with each text codec, avro and parquet with each of their
// internal codecs.
func formatCases() []formatCase {
	var out []formatCase
	for _, f := range []string{format.JSON, format.JSONL, format.CSV} {
		for _, c := range []string{"none", "gzip", "zstd", "snappy", "lz4"} {
			out = append(out, formatCase{f + "/" + c, "format: " + f + "\ncompression: " + c + "\n"})
		}
	}
	for _, c := range []string{"none", "deflate", "snappy"} {
		out = append(out, formatCase{"avro/" + c, "format: avro\navro:\n  compression: " + c + "\n"})
	}
	for _, c := range []string{"none", "snappy", "gzip", "lz4", "zstd", "brotli"} {
		out = append(out, formatCase{"parquet/" + c, "format: parquet\nparquet:\n  compression: " + c + "\n"})
	}
	return out
}

// decodeConfig decodes a config block the way the engine does (tags,
// defaults, Validate) and fails the test on any problem.
func decodeConfig(t testing.TB, src string) *Config {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](src, "config")
	if len(ps) > 0 {
		t.Fatalf("config problems: %v\n%s", spec.Problems(ps), src)
	}
	return cfg
}

// mustSink builds a sink from a config block.
func mustSink(t testing.TB, src string) *Sink {
	t.Helper()
	s, err := newSink(context.Background(), decodeConfig(t, src))
	if err != nil {
		t.Fatalf("newSink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// checkLastOffset: the last offset Put stores with an object is what
// LastOffset reads back from the provider (as its metadata comes back:
// S3 and GCS as given, Azure with names in the case it chooses), and
// objects without one, or none at all, are told apart.
func checkLastOffset(t *testing.T, s *Sink) {
	t.Helper()
	ctx := context.Background()
	key := "last-offset/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if _, st, err := s.store.LastOffset(ctx, key+"-absent"); err != nil || st != objectAbsent {
		t.Fatalf("absent object: state %v, %v", st, err)
	}
	if err := s.store.Put(ctx, key+"-unmarked", []byte("x\n"), "text/plain", "", -1); err != nil {
		t.Fatal(err)
	}
	if _, st, err := s.store.LastOffset(ctx, key+"-unmarked"); err != nil || st != objectUnmarked {
		t.Fatalf("object without a last offset: state %v, %v", st, err)
	}
	for _, last := range []int64{42, 1234567890123} {
		if err := s.store.Put(ctx, key, []byte("x\n"), "text/plain", "", last); err != nil {
			t.Fatal(err)
		}
		if got, st, err := s.store.LastOffset(ctx, key); err != nil || st != objectMarked || got != last {
			t.Fatalf("last offset %d, state %v, %v; want %d", got, st, err, last)
		}
	}
	for _, k := range []string{key, key + "-unmarked"} {
		if err := s.store.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}
