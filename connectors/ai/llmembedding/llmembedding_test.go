package llmembedding

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/ai/llm/llmfake"
	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func build(t testing.TB, yaml string) (connector.Transform, *llmfake.Metrics) {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](yaml, "transforms[0].config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	m := &llmfake.Metrics{}
	ctx := connector.WithRuntime(context.Background(), &connector.Runtime{Name: "t", Metrics: m})
	tr, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, m
}

func openaiConfig(f *llmfake.OpenAI, extra string) string {
	return "api_key: sk-test\nbase_url: " + f.BaseURL() + "\nmodel: text-embedding-3-small\ninitial_backoff_ms: 1\nmax_backoff_ms: 5\n" + extra
}

func vector(t testing.TB, e *events.Event, name string) []float64 {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(transformtest.Data(t, e)), &m); err != nil {
		t.Fatal(err)
	}
	raw, ok := m[name].([]any)
	if !ok {
		return nil
	}
	out := make([]float64, len(raw))
	for i, x := range raw {
		out[i] = x.(float64)
	}
	return out
}

func same(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func events_(n int, text func(i int) string) []*events.Event {
	out := make([]*events.Event, n)
	for i := range out {
		b, _ := json.Marshal(map[string]any{"id": i, "text": text(i)})
		out[i] = transformtest.Event(events.Insert, string(b))
	}
	return out
}

// TestBatchedOpenAI embeds 250 distinct texts in requests of 100 and a
// text that appears twice once.
func TestBatchedOpenAI(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	f.APIKey = "sk-test"
	tr, m := build(t, openaiConfig(f, "dimensions: 32\nbatch_size: 100\n"))
	in := events_(250, func(i int) string { return fmt.Sprintf("review number %d", i) })
	in = append(in, transformtest.Event(events.Insert, `{"id":999,"text":"review number 7"}`))
	out, err := tr.Apply(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 251 {
		t.Fatalf("%d events out", len(out))
	}
	for i, e := range out {
		want := llmfake.HashEmbedding(fmt.Sprintf("review number %d", i), 32)
		if i == 250 {
			want = llmfake.HashEmbedding("review number 7", 32)
		}
		if got := vector(t, e, "embedding"); !same(got, want) {
			t.Fatalf("event %d: vector %v, want %v", i, got, want)
		}
	}
	if f.EmbedCalls.Load() != 3 || f.EmbedInputs.Load() != 250 {
		t.Fatalf("%d requests with %d inputs; want 3 with 250", f.EmbedCalls.Load(), f.EmbedInputs.Load())
	}
	if m.Value("llm.embedding.requests.success") != 3 || m.Value("llm.embedding.tokens.prompt") != 750 || m.Value("llm.embedding.tokens.total") != 750 {
		t.Fatalf("success %d prompt tokens %d", m.Value("llm.embedding.requests.success"), m.Value("llm.embedding.tokens.prompt"))
	}
	for _, name := range []string{"llm.embedding.requests.success", "llm.embedding.requests.failed", "llm.embedding.requests.timeout",
		"llm.embedding.duration_ms", "llm.embedding.tokens.prompt", "llm.embedding.tokens.total"} {
		if !m.Registered(name) {
			t.Errorf("metric %s not registered", name)
		}
	}
}

func TestDimensionsAreChecked(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	f.ForceDim = 16 // a model that ignores the hint
	tr, _ := build(t, openaiConfig(f, "dimensions: 32\n"))
	e := transformtest.Event(events.Insert, `{"text":"x"}`)
	out, err := tr.Apply(context.Background(), []*events.Event{e})
	var te *connector.TransformError
	if !errors.As(err, &te) || len(out) != 0 || !strings.Contains(te.Failed[0].Err.Error(), "embedding has 16 dimensions, expected 32") {
		t.Fatalf("out %v err %v", out, err)
	}
}

func TestMissingInput(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	tr, _ := build(t, openaiConfig(f, "input_field: review.body\n"))
	ok := transformtest.Event(events.Insert, `{"review":{"body":"good"}}`)
	for _, data := range []string{`{"review":{}}`, `{"review":{"body":null}}`, `{"review":{"body":"  "}}`} {
		bad := transformtest.Event(events.Insert, data)
		out, err := tr.Apply(context.Background(), []*events.Event{ok, bad})
		var te *connector.TransformError
		if !errors.As(err, &te) || len(te.Failed) != 1 || !strings.Contains(te.Failed[0].Err.Error(), `input field "review.body" is missing, null or empty`) || len(out) != 1 {
			t.Fatalf("%s: out %v err %v", data, out, err)
		}
	}
	tr, _ = build(t, openaiConfig(f, "input_field: review.body\nskip_on_missing: true\n"))
	bad := transformtest.Event(events.Insert, `{"review":{}}`)
	out, err := tr.Apply(context.Background(), []*events.Event{bad})
	if err != nil || len(out) != 1 || vector(t, out[0], "embedding") != nil {
		t.Fatalf("skip_on_missing: out %v err %v", out, err)
	}
}

func TestRetryAfterOnEmbeddings(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	var mu sync.Mutex
	var at []time.Time
	f.Fault = func(n int64, _ string) *llmfake.Fault {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n == 1 {
			return &llmfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"}
		}
		return nil
	}
	tr, m := build(t, openaiConfig(f, ""))
	out, err := tr.Apply(context.Background(), events_(3, func(i int) string { return fmt.Sprint("t", i) }))
	if err != nil || len(out) != 3 {
		t.Fatal(err)
	}
	if len(at) != 2 || at[1].Sub(at[0]) < time.Second || m.Value("llm.embedding.requests.retried") != 1 {
		t.Fatalf("requests at %v, retried %d", at, m.Value("llm.embedding.requests.retried"))
	}
}

func TestSkipOnErrorAndDeadLetter(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	f.Fault = func(int64, string) *llmfake.Fault { return &llmfake.Fault{Status: http.StatusServiceUnavailable} }
	tr, _ := build(t, openaiConfig(f, "max_retries: 0\n"))
	out, err := tr.Apply(context.Background(), events_(2, func(i int) string { return fmt.Sprint("t", i) }))
	var te *connector.TransformError
	if !errors.As(err, &te) || len(te.Failed) != 2 || len(out) != 0 || !strings.Contains(te.Failed[0].Err.Error(), "openai: HTTP 503") {
		t.Fatalf("out %v err %v", out, err)
	}
	tr, m := build(t, openaiConfig(f, "max_retries: 0\nskip_on_error: true\n"))
	out, err = tr.Apply(context.Background(), events_(2, func(i int) string { return fmt.Sprint("t", i) }))
	if err != nil || len(out) != 2 || vector(t, out[0], "embedding") != nil || m.Value("llm.embedding.requests.failed") != 1 {
		t.Fatalf("skip_on_error: out %v err %v", out, err)
	}
}

func TestCacheAnswersRedeliveries(t *testing.T) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	tr, m := build(t, openaiConfig(f, ""))
	for range 3 {
		if _, err := tr.Apply(context.Background(), events_(5, func(i int) string { return fmt.Sprint("t", i) })); err != nil {
			t.Fatal(err)
		}
	}
	if f.EmbedInputs.Load() != 5 || m.Value("llm.embedding.cache.hits") != 10 {
		t.Fatalf("inputs %d hits %d", f.EmbedInputs.Load(), m.Value("llm.embedding.cache.hits"))
	}
}

func bedrockEnv(t *testing.T, f *llmfake.Bedrock) {
	t.Setenv("AWS_ACCESS_KEY_ID", f.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", f.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestBedrockTitan(t *testing.T) {
	f := llmfake.NewBedrock()
	defer f.Close()
	bedrockEnv(t, f)
	tr, m := build(t, "provider: bedrock\nbase_url: "+f.URL+"\nmodel: amazon.titan-embed-text-v2:0\ndimensions: 256\n")
	out, err := tr.Apply(context.Background(), events_(3, func(i int) string { return fmt.Sprint("text ", i) }))
	if err != nil {
		t.Fatal(err)
	}
	if !same(vector(t, out[2], "embedding"), llmfake.HashEmbedding("text 2", 256)) {
		t.Fatal("wrong vector")
	}
	if f.Signed.Load() != 3 || f.EmbedInputs.Load() != 3 || m.Value("llm.embedding.tokens.prompt") != 6 {
		t.Fatalf("signed %d inputs %d tokens %d", f.Signed.Load(), f.EmbedInputs.Load(), m.Value("llm.embedding.tokens.prompt"))
	}
	var body map[string]any
	_ = json.Unmarshal(f.LastBody.Load().([]byte), &body)
	if body["dimensions"] != 256.0 || body["inputText"] == nil {
		t.Fatalf("titan body %v", body)
	}
}

func TestBedrockCohereBatchesAndInputType(t *testing.T) {
	f := llmfake.NewBedrock()
	defer f.Close()
	bedrockEnv(t, f)
	tr, _ := build(t, "provider: bedrock\nbase_url: "+f.URL+"\nmodel: cohere.embed-english-v3\ninput_type: search_query\nbatch_size: 500\n")
	out, err := tr.Apply(context.Background(), events_(150, func(i int) string { return fmt.Sprint("query ", i) }))
	if err != nil || len(out) != 150 {
		t.Fatal(err)
	}
	// 150 texts at Cohere's 96 per call: two requests.
	if f.Requests.Load() != 2 || f.Signed.Load() != 2 || f.EmbedInputs.Load() != 150 {
		t.Fatalf("requests %d signed %d inputs %d", f.Requests.Load(), f.Signed.Load(), f.EmbedInputs.Load())
	}
	var body map[string]any
	_ = json.Unmarshal(f.LastBody.Load().([]byte), &body)
	if body["input_type"] != "search_query" {
		t.Fatalf("cohere body input_type %v", body["input_type"])
	}
	if !same(vector(t, out[149], "embedding"), llmfake.HashEmbedding("query 149", 1024)) {
		t.Fatal("wrong vector")
	}
}

// BenchmarkEmbedding measures events/s through llm-embedding against a
// server that takes 20 ms per request: one text per request one at a time
// (sequential), and batches of 100 with 64 requests in flight.
func BenchmarkEmbedding(b *testing.B) {
	f := llmfake.NewOpenAI()
	defer f.Close()
	f.Delay = 20 * time.Millisecond
	for _, c := range []struct {
		name        string
		batch, conc int
		events      int
	}{
		{"sequential", 1, 1, 50},
		{"batch100_conc64", 100, 64, 64 * 100},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr, _ := build(b, openaiConfig(f, fmt.Sprintf("batch_size: %d\nmax_concurrency: %d\ncache_size: 0\n", c.batch, c.conc)))
			n := 0
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				in := events_(c.events, func(k int) string { return fmt.Sprintf("text %d %d", i, k) })
				if _, err := tr.Apply(context.Background(), in); err != nil {
					b.Fatal(err)
				}
				n += c.events
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		})
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`api_key: k`, `transforms[0].config.model`},
		{"model: m\napi_key: k\ninput_field: ''", `input_field`},
		{"model: m\napi_key: k\ninput_type: other", `search_document, search_query`},
		{"model: m\napi_key: k\nbatch_size: 5000", `batch_size`},
		{"model: m", `api_key is required`},
	} {
		if got := transformtest.Problems[Config](c.yaml); !strings.Contains(got, c.want) {
			t.Errorf("%q: problems %q, want %q", c.yaml, got, c.want)
		}
	}
}
