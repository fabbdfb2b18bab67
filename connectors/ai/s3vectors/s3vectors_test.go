package s3vectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/ai/llm/llmfake"
	"github.com/rivven/rivven-connect/connectors/ai/s3vectors/s3vectorsfake"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

func start(t *testing.T) *s3vectorsfake.Server {
	t.Helper()
	f := s3vectorsfake.Start()
	t.Cleanup(f.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", f.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", f.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return f
}

func build(t *testing.T, f *s3vectorsfake.Server, extra string) (*sink, *llmfake.Metrics) {
	t.Helper()
	yaml := "region: us-east-1\nendpoint_url: " + f.URL + "\nvector_bucket_name: my-vectors\nindex_name: products\ndimension: 3\n" + extra
	cfg, ps := spec.DecodeString[Config](yaml, "sinks.v.config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	m := &llmfake.Metrics{}
	ctx := connector.WithRuntime(context.Background(), &connector.Runtime{Name: "v", Metrics: m})
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*sink), m
}

func ev(typ events.Type, key, data string) *events.Event {
	e := events.New(typ, "products", events.RawPayload([]byte(data)))
	ns := "public"
	e.Namespace = &ns
	if key != "" {
		e.Key = json.RawMessage(key)
	}
	return e
}

func TestAutoCreatePutMetadataAndDelete(t *testing.T) {
	f := start(t)
	s, m := build(t, f, "distance_metric: euclidean\nmetadata_fields: [category, price, info]\n")
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, "", `{"id":"p1","category":"shoes","price":12.5,"info":{"a":[1,true,null]},"secret":"x","embedding":[0.5,0.25,1]}`),
		ev(events.Insert, "", `{"id":2,"category":"hats","embedding":[1,2,3]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	ix := f.Index("my-vectors", "products")
	if ix == nil || ix.DistanceMetric != "euclidean" || ix.Dimension != 3 || ix.DataType != "float32" {
		t.Fatalf("index %+v", ix)
	}
	v := ix.Vectors["p1"]
	md := v.Metadata
	if fmt.Sprint(v.Data) != "[0.5 0.25 1]" || md["category"] != "shoes" || md["price"] != 12.5 || fmt.Sprint(md["info"]) != "map[a:[1 true <nil>]]" || md["secret"] != nil {
		t.Fatalf("vector %+v", v)
	}
	if md["_event_type"] != "insert" || md["_stream"] != "products" || md["_namespace"] != "public" || md["_key"] != "p1" || md["_timestamp"] == nil {
		t.Fatalf("auto metadata %v", md)
	}
	if _, ok := ix.Vectors["2"]; !ok {
		t.Fatalf("vectors %v", ix.Vectors)
	}
	if err := s.Write(context.Background(), []*events.Event{ev(events.Delete, "", `{"id":"p1"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Index("my-vectors", "products").Vectors["p1"]; ok {
		t.Fatal("p1 not deleted")
	}
	if f.Calls("CreateVectorBucket") != 1 || f.Calls("CreateIndex") != 1 || m.Value("s3vectors.records.written") != 3 {
		t.Fatalf("creates %d %d written %d", f.Calls("CreateVectorBucket"), f.Calls("CreateIndex"), m.Value("s3vectors.records.written"))
	}
	for _, n := range []string{"s3vectors.batches.success", "s3vectors.batches.failed", "s3vectors.batches.retried", "s3vectors.records.written",
		"s3vectors.records.failed", "s3vectors.circuit_breaker.rejected", "s3vectors.batch.size", "s3vectors.batch.duration_ms"} {
		if !m.Registered(n) {
			t.Errorf("metric %s not registered", n)
		}
	}
}

// TestProvisioningRaces: a second sink finds bucket and index made; a
// third, for another index, meets the bucket's ConflictException (another
// replica made it) and goes on to create its index.
func TestProvisioningRaces(t *testing.T) {
	f := start(t)
	s1, _ := build(t, f, "")
	if err := s1.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2, _ := build(t, f, "")
	if err := s2.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	s3, _ := build(t, f, "")
	s3.cfg.IndexName = "other"
	// the bucket exists: CreateVectorBucket's ConflictException is fine
	if err := s3.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.Calls("CreateVectorBucket") != 2 || f.Index("my-vectors", "other") == nil {
		t.Fatalf("CreateVectorBucket calls %d", f.Calls("CreateVectorBucket"))
	}
}

func TestNoAutoCreateAndDimension(t *testing.T) {
	f := start(t)
	s, _ := build(t, f, "auto_create: false\n")
	if err := s.Check(context.Background()); !errors.Is(err, connector.ErrFatal) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	s, _ = build(t, f, "")
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := *s.cfg
	cfg.Dimension = 8
	s8, err := New(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s8.(*sink).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "has dimension 3, the config says 8") {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidVectorsAndBatches(t *testing.T) {
	f := start(t)
	s, m := build(t, f, "batch_size: 1000\n")
	var b []*events.Event
	for i := range 600 {
		b = append(b, ev(events.Insert, "", fmt.Sprintf(`{"id":"k%d","embedding":[1,2,3]}`, i)))
	}
	b = append(b, ev(events.Insert, "", `{"id":"big","embedding":[1,2,3.5e38]}`), ev(events.Insert, "", `{"id":"short","embedding":[1,2]}`))
	err := s.Write(context.Background(), b)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 2 || !strings.Contains(we.Failed[600].Error(), `vector field "embedding"[2] = 3.5e+38 overflows float32`) ||
		!strings.Contains(we.Failed[601].Error(), "has 2 dimensions, the index has 3") {
		t.Fatalf("err = %v", err)
	}
	if f.Puts.Load() != 2 || len(f.Index("my-vectors", "products").Vectors) != 600 || m.Value("s3vectors.records.failed") != 2 {
		t.Fatalf("puts %d vectors %d", f.Puts.Load(), len(f.Index("my-vectors", "products").Vectors))
	}
}

func TestThrottlingIsRetriedAndSignatureChecked(t *testing.T) {
	f := start(t)
	f.Fault = func(op string, n int64) int {
		if op == "PutVectors" && n <= 2 {
			return 429
		}
		return 0
	}
	s, m := build(t, f, "initial_backoff_ms: 1\nmax_backoff_ms: 2\n")
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, "", `{"id":"a","embedding":[1,2,3]}`)}); err != nil {
		t.Fatal(err)
	}
	if m.Value("s3vectors.batches.retried") != 2 {
		t.Fatalf("retried %d", m.Value("s3vectors.batches.retried"))
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	s, _ = build(t, f, "")
	err := s.Check(context.Background())
	if resilience.ClassOf(err) != resilience.Auth || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	base := "region: r\nindex_name: i\ndimension: 3\n"
	for _, c := range []struct{ yaml, want string }{
		{base + "vector_bucket_name: My_Bucket", "must be 3-63 characters"},
		{base + "vector_bucket_name: ok-name\nmetadata_fields: [_stream]", "metadata_fields[0]"},
		{base + "vector_bucket_name: ok-name\ndistance_metric: dot", "cosine, euclidean"},
		{"region: r\nindex_name: i\nvector_bucket_name: abc\ndimension: 10001", "dimension"},
		{"index_name: i\nvector_bucket_name: abc\ndimension: 1", "sinks.v.config.region"},
	} {
		_, ps := spec.DecodeString[Config](c.yaml, "sinks.v.config")
		if got := spec.Problems(ps).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%q: %q, want %q", c.yaml, got, c.want)
		}
	}
}
