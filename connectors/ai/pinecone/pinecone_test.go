package pinecone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/connectors/ai/llm/llmfake"
	"github.com/rivven/rivven-connect/connectors/ai/pinecone/pineconefake"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

func start(t *testing.T, dim int) *pineconefake.Server {
	t.Helper()
	f, err := pineconefake.Start("pc-key", "products", dim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func build(t *testing.T, yaml string) (*sink, *llmfake.Metrics) {
	t.Helper()
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
	t.Cleanup(func() { _ = s.(*sink).Close(context.Background()) })
	return s.(*sink), m
}

func ev(typ events.Type, key, data string) *events.Event {
	e := events.New(typ, "products", events.RawPayload([]byte(data)))
	if key != "" {
		e.Key = json.RawMessage(key)
	}
	return e
}

func TestUpsertMetadataNamespaceAndDelete(t *testing.T) {
	f := start(t, 3)
	s, m := build(t, "api_key: pc-key\nindex_host: "+f.Host()+"\nnamespace: prod\n")
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, "", `{"id":"doc-1","title":"Shoe","price":12.5,"tags":["a","b"],"dims":{"w":1},"gone":null,"embedding":[0.1,0.2,0.3]}`),
		ev(events.Insert, "", `{"id":7,"title":"Hat","embedding":[1,2,3]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	vs := f.Vectors("prod")
	v := vs["doc-1"]
	if fmt.Sprint(v.Values) != "[0.1 0.2 0.3]" || v.Metadata["title"] != "Shoe" || v.Metadata["price"] != 12.5 ||
		fmt.Sprint(v.Metadata["tags"]) != "[a b]" || v.Metadata["dims"] != `{"w":1}` || v.Metadata["embedding"] != nil {
		t.Fatalf("vector %+v", v)
	}
	if _, has := v.Metadata["gone"]; has {
		t.Error("a null was sent as metadata")
	}
	if _, ok := vs["7"]; !ok || len(f.Vectors("")) != 0 {
		t.Fatalf("vectors %v, default namespace %v", vs, f.Vectors(""))
	}
	if err := s.Write(context.Background(), []*events.Event{ev(events.Delete, "", `{"id":"doc-1"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Vectors("prod")["doc-1"]; ok || m.Value("pinecone.records.written") != 3 {
		t.Fatalf("after delete: %v, written %d", f.Vectors("prod"), m.Value("pinecone.records.written"))
	}
	for _, n := range []string{"pinecone.batches.success", "pinecone.batches.failed", "pinecone.batches.retried", "pinecone.records.written",
		"pinecone.records.failed", "pinecone.circuit_breaker.rejected", "pinecone.batch.size", "pinecone.batch.duration_ms"} {
		if !m.Registered(n) {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestHostFromControlPlaneAndDimensionCheck(t *testing.T) {
	f := start(t, 4)
	s, _ := build(t, "api_key: pc-key\nindex_name: products\ncontrol_plane_host: "+f.Control.URL+"\nid_strategy: hash\n")
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, `{"sku":"A1"}`, `{"sku":"A1","embedding":[1,2,3,4]}`),
		ev(events.Insert, `{"sku":"B2"}`, `{"sku":"B2","embedding":[1,2,3]}`),
	})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || !strings.Contains(we.Failed[1].Error(), "has 3 dimensions, the index has 4") {
		t.Fatalf("err = %v", err)
	}
	// the same key again overwrites (hash of the key)
	if err := s.Write(context.Background(), []*events.Event{ev(events.Update, `{"sku":"A1"}`, `{"before":null,"after":{"sku":"A1","embedding":[4,3,2,1]}}`)}); err != nil {
		t.Fatal(err)
	}
	if vs := f.Vectors(""); len(vs) != 1 {
		t.Fatalf("vectors %v", vs)
	}

	s, _ = build(t, "api_key: pc-key\nindex_name: nope\ncontrol_plane_host: "+f.Control.URL+"\n")
	if err := s.Check(context.Background()); resilience.ClassOf(err) != resilience.NotFound {
		t.Fatalf("unknown index: %v", err)
	}
	// data plane only: the dimension comes from describe_index_stats
	s, _ = build(t, "api_key: pc-key\nindex_host: "+f.Host()+"\n")
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, "", `{"id":"x","embedding":[1,2]}`)}); err == nil {
		t.Fatal("a 2-dimension vector was accepted by a 4-dimension index")
	}
}

func TestSparseValuesAndMetadataLimit(t *testing.T) {
	f := start(t, 2)
	s, m := build(t, "api_key: pc-key\nindex_host: "+f.Host()+"\nsparse_vector_indices_field: si\nsparse_vector_values_field: sv\nmetadata_fields: [body]\n")
	big := strings.Repeat("x", 41*1024)
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, "", `{"id":"a","embedding":[1,2],"si":[1,5],"sv":[0.5,0.25],"body":"short","other":"not sent"}`),
		ev(events.Insert, "", `{"id":"b","embedding":[1,2],"si":[1,5],"sv":[0.5]}`),
		ev(events.Insert, "", `{"id":"c","embedding":[1,2],"si":[1],"sv":[0.5],"body":"`+big+`"}`),
		ev(events.Insert, "", `{"id":"d","embedding":[1,2],"si":[-1],"sv":[0.5]}`),
	})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 3 {
		t.Fatalf("err = %v", err)
	}
	for i, want := range map[int]string{
		1: "sparse vector has 2 indices and 1 values",
		2: "above Pinecone's limit of 40960 bytes (40 KB) per vector",
		3: `sparse indices field "si"[0] = -1 is not a u32`,
	} {
		if !strings.Contains(we.Failed[i].Error(), want) {
			t.Errorf("event %d: %v, want %q", i, we.Failed[i], want)
		}
	}
	a := f.Vectors("")["a"]
	if fmt.Sprint(a.SparseIndices, a.SparseValues) != "[1 5] [0.5 0.25]" || a.Metadata["body"] != "short" || a.Metadata["other"] != nil {
		t.Fatalf("vector a %+v", a)
	}
	if m.Value("pinecone.records.failed") != 3 {
		t.Fatalf("records.failed %d", m.Value("pinecone.records.failed"))
	}
}

func TestAuthRetriesAndBreaker(t *testing.T) {
	f := start(t, 2)
	s, _ := build(t, "api_key: wrong-key\nindex_host: "+f.Host()+"\n")
	err := s.Check(context.Background())
	if resilience.ClassOf(err) != resilience.Auth || strings.Contains(err.Error(), "wrong-key") {
		t.Fatalf("auth: %v", err)
	}
	fail := int64(2)
	f.Fault = func(method string, n int64) error {
		if method == "Upsert" && n <= fail {
			return status.Error(codes.Unavailable, "upstream connect error")
		}
		return nil
	}
	s, m := build(t, "api_key: pc-key\nindex_host: "+f.Host()+"\ninitial_backoff_ms: 1\nmax_backoff_ms: 2\nbatch_size: 2\n")
	var b []*events.Event
	for i := range 5 {
		b = append(b, ev(events.Insert, "", fmt.Sprintf(`{"id":"%d","embedding":[1,2]}`, i)))
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if m.Value("pinecone.batches.retried") != 2 || f.Upserts.Load() != 3 || len(f.Vectors("")) != 5 {
		t.Fatalf("retried %d upserts %d vectors %d", m.Value("pinecone.batches.retried"), f.Upserts.Load(), len(f.Vectors("")))
	}
	fail = 1 << 40
	s, m = build(t, "api_key: pc-key\nindex_host: "+f.Host()+"\nmax_retries: 0\ncircuit_breaker: {failure_threshold: 1}\n")
	if err := s.Write(context.Background(), b[:1]); err == nil {
		t.Fatal("no error")
	}
	calls := f.Calls("Upsert")
	if err := s.Write(context.Background(), b[:1]); !errors.Is(err, resilience.ErrOpen) || f.Calls("Upsert") != calls || m.Value("pinecone.circuit_breaker.rejected") != 1 {
		t.Fatalf("open circuit: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"index_host: h", "sinks.v.config.api_key"},
		{"api_key: k", "set index_host, or index_name"},
		{"api_key: k\nindex_host: h\nsparse_vector_indices_field: i", "must be set together"},
		{"api_key: k\nindex_host: h\ntimeout_secs: 301", "timeout_secs"},
	} {
		_, ps := spec.DecodeString[Config](c.yaml, "sinks.v.config")
		if got := spec.Problems(ps).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%q: %q, want %q", c.yaml, got, c.want)
		}
	}
}
