package qdrant

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
	"github.com/rivven/rivven-connect/connectors/ai/qdrant/qdrantfake"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

func start(t *testing.T) *qdrantfake.Server {
	t.Helper()
	f, err := qdrantfake.Start()
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
	e := events.New(typ, "reviews", events.RawPayload([]byte(data)))
	if key != "" {
		e.Key = json.RawMessage(key)
	}
	return e
}

func TestUpsertHashIDsPayloadAndRedelivery(t *testing.T) {
	f := start(t)
	f.APIKey = "secret-key"
	f.CreateCollection("reviews", 4)
	s, m := build(t, "url: "+f.URL()+"\ncollection: reviews\napi_key: secret-key\n")
	batch := []*events.Event{
		ev(events.Insert, `{"id":1}`, `{"id":1,"text":"great","stars":5,"tags":["a"],"embedding":[0.1,0.2,0.3,0.4]}`),
		ev(events.Record, `{"id":2}`, `{"id":2,"text":"bad","price":1.5,"embedding":[1,0,0,0]}`),
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	// A redelivery of the same batch and an update of row 1 overwrite.
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	upd := ev(events.Update, `{"id":1}`, `{"before":{"id":1},"after":{"id":1,"text":"great!","stars":4,"embedding":[0,0,0,1]}}`)
	if err := s.Write(context.Background(), []*events.Event{upd}); err != nil {
		t.Fatal(err)
	}
	pts := f.Points("reviews")
	if len(pts) != 2 {
		t.Fatalf("%d points, want 2: %+v", len(pts), pts)
	}
	byText := map[string]qdrantfake.Point{}
	for _, p := range pts {
		byText[fmt.Sprint(p.Payload["text"])] = p
	}
	p1, p2 := byText["great!"], byText["bad"]
	if fmt.Sprint(p1.Vectors[""]) != "[0 0 0 1]" || p1.Payload["stars"] != int64(4) || p1.Payload["embedding"] != nil {
		t.Errorf("point 1 = %+v", p1)
	}
	if p2.Payload["price"] != 1.5 || p2.Payload["id"] != int64(2) {
		t.Errorf("point 2 = %+v", p2)
	}
	if len(p1.ID) != 36 || p1.ID == p2.ID {
		t.Errorf("hash IDs %q %q", p1.ID, p2.ID)
	}
	if f.Waited.Load() != 3 || m.Value("qdrant.batches.success") != 3 || m.Value("qdrant.records.written") != 5 {
		t.Errorf("waited %d success %d written %d", f.Waited.Load(), m.Value("qdrant.batches.success"), m.Value("qdrant.records.written"))
	}
	for _, n := range []string{"qdrant.batches.success", "qdrant.batches.failed", "qdrant.batches.retried", "qdrant.records.written",
		"qdrant.records.failed", "qdrant.circuit_breaker.rejected", "qdrant.batch.size", "qdrant.batch.duration_ms"} {
		if !m.Registered(n) {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestFieldAndUUIDStrategies(t *testing.T) {
	f := start(t)
	f.CreateCollection("c", 2)
	s, _ := build(t, "url: "+f.URL()+"\ncollection: c\nid_strategy: field\nid_field: row_id\n")
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, "", `{"row_id":42,"embedding":[1,2]}`),
		ev(events.Insert, "", `{"row_id":"43","embedding":[1,2]}`),
		ev(events.Insert, "", `{"row_id":"abc","embedding":[1,2]}`),
		ev(events.Insert, "", `{"row_id":-1,"embedding":[1,2]}`),
	})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 2 || !strings.Contains(we.Failed[2].Error(), `id field "row_id": "abc" is not an unsigned 64-bit integer`) || we.Failed[3] == nil {
		t.Fatalf("err = %v", err)
	}
	if pts := f.Points("c"); len(pts) != 2 || pts[0].ID != "42" || pts[1].ID != "43" {
		t.Fatalf("points %+v", pts)
	}

	s, _ = build(t, "url: "+f.URL()+"\ncollection: c\nid_strategy: uuid\nid_field: doc\n")
	err = s.Write(context.Background(), []*events.Event{
		ev(events.Insert, "", `{"doc":"550E8400E29B41D4A716446655440000","embedding":[1,2]}`),
		ev(events.Insert, "", `{"doc":"550e8400-e29b-41d4-a716-44665544000","embedding":[1,2]}`),
	})
	if !errors.As(err, &we) || len(we.Failed) != 1 || !strings.Contains(we.Failed[1].Error(), "is not a UUID") {
		t.Fatalf("err = %v", err)
	}
	found := false
	for _, p := range f.Points("c") {
		found = found || p.ID == "550e8400-e29b-41d4-a716-446655440000"
	}
	if !found {
		t.Fatalf("uuid point missing: %+v", f.Points("c"))
	}
}

func TestDeletesFollowTheBatchOrder(t *testing.T) {
	f := start(t)
	f.CreateCollection("c", 2)
	s, _ := build(t, "url: "+f.URL()+"\ncollection: c\n")
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, `{"id":1}`, `{"id":1,"embedding":[1,2]}`),
		ev(events.Insert, `{"id":2}`, `{"id":2,"embedding":[1,2]}`),
		ev(events.Insert, `{"id":3}`, `{"id":3,"embedding":[1,2]}`),
		ev(events.Delete, `{"id":1}`, `{"id":1}`),
		// ExtractNewRecordState's delete_handling: rewrite
		ev(events.Record, `{"id":2}`, `{"id":2,"__deleted":"true"}`),
		ev(events.Insert, `{"id":1}`, `{"id":1,"embedding":[3,4]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	pts := f.Points("c")
	if len(pts) != 2 {
		t.Fatalf("points %+v", pts)
	}
	if f.Calls("Upsert") != 2 || f.Calls("Delete") != 1 {
		t.Fatalf("upserts %d deletes %d", f.Calls("Upsert"), f.Calls("Delete"))
	}
}

func TestInvalidVectorsAreNamed(t *testing.T) {
	f := start(t)
	f.CreateCollection("c", 3)
	s, m := build(t, "url: "+f.URL()+"\ncollection: c\nvector_field: vec.dense\n")
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, `{"id":1}`, `{"id":1,"vec":{"dense":[1,2,3]}}`),
		ev(events.Insert, `{"id":2}`, `{"id":2,"vec":{"dense":[1,2]}}`),
		ev(events.Insert, `{"id":3}`, `{"id":3,"vec":{"dense":[1,2,1e39]}}`),
		ev(events.Insert, `{"id":4}`, `{"id":4,"vec":{"dense":[1,"x",3]}}`),
		ev(events.Insert, `{"id":5}`, `{"id":5}`),
		ev(events.Insert, `{"id":6}`, `{"id":6,"vec":{"dense":[]}}`),
	})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 5 {
		t.Fatalf("err = %v", err)
	}
	for i, want := range map[int]string{
		1: `vector field "vec.dense" has 2 dimensions, the index has 3`,
		2: `vector field "vec.dense"[2] = 1e+39 overflows float32`,
		3: `vector field "vec.dense"[1] is a string, not a number`,
		4: `vector field "vec.dense" is missing`,
		5: `vector field "vec.dense" is empty`,
	} {
		if we.Failed[i] == nil || !strings.Contains(we.Failed[i].Error(), want) {
			t.Errorf("event %d: %v, want %q", i, we.Failed[i], want)
		}
	}
	if len(f.Points("c")) != 1 || m.Value("qdrant.records.failed") != 5 {
		t.Fatalf("points %d failed %d", len(f.Points("c")), m.Value("qdrant.records.failed"))
	}

	s, _ = build(t, "url: "+f.URL()+"\ncollection: c\nskip_invalid_events: true\n")
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":9}`, `{"id":9}`)}); err != nil {
		t.Fatalf("skip_invalid_events: %v", err)
	}
}

func TestCreateCollectionWithNamedAndSparseVectors(t *testing.T) {
	f := start(t)
	s, _ := build(t, "url: "+f.URL()+`
collection: hybrid
create_collection: true
vector_size: 2
distance: Dot
vector_name: dense
sparse_vector_name: keywords
sparse_indices_field: sp_idx
sparse_values_field: sp_val
`)
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.Distance("hybrid").String() != "Dot" {
		t.Fatalf("distance %v", f.Distance("hybrid"))
	}
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, `{"id":1}`, `{"id":1,"embedding":[1,2],"sp_idx":[3,7],"sp_val":[0.5,0.25]}`),
		ev(events.Insert, `{"id":2}`, `{"id":2,"embedding":[1,2],"sp_idx":[3],"sp_val":[0.5,0.25]}`),
	})
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || !strings.Contains(we.Failed[1].Error(), "sparse vector has 1 indices and 2 values") {
		t.Fatalf("err = %v", err)
	}
	p := f.Points("hybrid")[0]
	if fmt.Sprint(p.Vectors["dense"]) != "[1 2]" || fmt.Sprint(p.Sparse["keywords"]) != "{[3 7] [0.5 0.25]}" || p.Payload["sp_idx"] != nil {
		t.Fatalf("point %+v", p)
	}
	// a second instance finds the collection made
	s2, _ := build(t, "url: "+f.URL()+"\ncollection: hybrid\ncreate_collection: true\nvector_size: 2\nvector_name: dense\n")
	if err := s2.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	f := start(t)
	f.CreateCollection("c", 4)
	s, _ := build(t, "url: "+f.URL()+"\ncollection: missing\n")
	if err := s.Check(context.Background()); !errors.Is(err, connector.ErrFatal) || !strings.Contains(err.Error(), `collection "missing" does not exist`) {
		t.Fatalf("missing collection: %v", err)
	}
	s, _ = build(t, "url: "+f.URL()+"\ncollection: c\nvector_size: 8\n")
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "vectors of 4 dimensions, vector_size says 8") {
		t.Fatalf("dimension: %v", err)
	}
	f.APIKey = "k"
	s, _ = build(t, "url: "+f.URL()+"\ncollection: c\napi_key: wrong-key\n")
	err := s.Check(context.Background())
	if resilience.ClassOf(err) != resilience.Auth || strings.Contains(err.Error(), "wrong-key") {
		t.Fatalf("auth: %v (%v)", err, resilience.ClassOf(err))
	}
}

func TestRetriesAndCircuitBreaker(t *testing.T) {
	f := start(t)
	f.CreateCollection("c", 2)
	fail := 2
	f.Fault = func(method string, n int64) error {
		if method == "Upsert" && n <= int64(fail) {
			return status.Error(codes.Unavailable, "service unavailable")
		}
		return nil
	}
	s, m := build(t, "url: "+f.URL()+"\ncollection: c\ninitial_backoff_ms: 1\nmax_backoff_ms: 2\n")
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`, `{"id":1,"embedding":[1,2]}`)}); err != nil {
		t.Fatal(err)
	}
	if m.Value("qdrant.batches.retried") != 2 || m.Value("qdrant.batches.success") != 1 {
		t.Fatalf("retried %d", m.Value("qdrant.batches.retried"))
	}

	fail = 1 << 30
	s, m = build(t, "url: "+f.URL()+"\ncollection: c\nmax_retries: 0\ncircuit_breaker: {failure_threshold: 2, reset_timeout_secs: 3600}\n")
	e := []*events.Event{ev(events.Insert, `{"id":1}`, `{"id":1,"embedding":[1,2]}`)}
	for range 2 {
		if err := s.Write(context.Background(), e); resilience.ClassOf(err) != resilience.Connection {
			t.Fatalf("err = %v", err)
		}
	}
	before := f.Calls("Upsert")
	err := s.Write(context.Background(), e)
	if !errors.Is(err, resilience.ErrOpen) || f.Calls("Upsert") != before {
		t.Fatalf("open circuit: err %v, calls %d -> %d", err, before, f.Calls("Upsert"))
	}
	if m.Value("qdrant.circuit_breaker.rejected") != 1 || m.Value("qdrant.batches.failed") != 2 {
		t.Fatalf("rejected %d failed %d", m.Value("qdrant.circuit_breaker.rejected"), m.Value("qdrant.batches.failed"))
	}
}

func TestBatchSize(t *testing.T) {
	f := start(t)
	f.CreateCollection("c", 2)
	s, m := build(t, "url: "+f.URL()+"\ncollection: c\nbatch_size: 10\n")
	var b []*events.Event
	for i := range 25 {
		b = append(b, ev(events.Insert, fmt.Sprintf(`{"id":%d}`, i), fmt.Sprintf(`{"id":%d,"embedding":[1,2]}`, i)))
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if f.Upserts.Load() != 3 || len(f.Points("c")) != 25 || m.Value("qdrant.records.written") != 25 {
		t.Fatalf("upserts %d points %d", f.Upserts.Load(), len(f.Points("c")))
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"collection: c", "sinks.v.config.url"},
		{"url: ftp://x\ncollection: c", "scheme must be http or https"},
		{"url: http://x\ncollection: 'a/b'", "must be 1-255 letters"},
		{"url: http://x\ncollection: c\nid_strategy: random", "field, uuid, hash"},
		{"url: http://x\ncollection: c\ncreate_collection: true", "create_collection needs vector_size"},
		{"url: http://x\ncollection: c\nsparse_indices_field: i", "must be set together"},
		{"url: http://x\ncollection: c\nbatch_size: 0", "batch_size"},
		{"url: http://x\ncollection: c\ncircuit_breaker: {failure_threshold: 101}", "failure_threshold"},
	} {
		_, ps := spec.DecodeString[Config](c.yaml, "sinks.v.config")
		if got := spec.Problems(ps).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%q: %q, want %q", c.yaml, got, c.want)
		}
	}
}
