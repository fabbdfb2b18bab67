// Package llmembedding is the llm-embedding transform: it turns a text
// field of each event into a vector with an embedding model (OpenAI or any
// OpenAI-compatible server, or Amazon Bedrock Titan / Cohere) for the
// vector sinks downstream.
package llmembedding

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/rivven/rivven-connect/connectors/ai/llm"
	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration: the reference's keys, then
// throughput, retry and cache keys of this implementation.
type Config struct {
	llm.Connection `yaml:",inline"`
	Model          string `yaml:"model" required:"true" doc:"Embedding model identifier (text-embedding-3-small, amazon.titan-embed-text-v2:0, cohere.embed-english-v3, ...)."`
	InputField     string `yaml:"input_field" default:"text" doc:"Field holding the text to embed (dot path); numbers and objects are embedded as their JSON text."`
	OutputField    string `yaml:"output_field" default:"embedding" doc:"Field the vector is written to (dot path), as an array of numbers."`
	Dimensions     int    `yaml:"dimensions" default:"0" min:"0" max:"100000" doc:"Embedding dimensions: passed to the API as a hint (OpenAI text-embedding-3, Titan v2) and checked on every answer (0 = skip)."`
	InputType      string `yaml:"input_type" enum:"search_document,search_query,classification,clustering" doc:"Input type hint for Cohere models on Bedrock (search_document when absent)."`
	TimeoutSecs    int    `yaml:"timeout_secs" default:"60" min:"1" max:"3600" doc:"Timeout of one request, in seconds."`
	SkipOnMissing  bool   `yaml:"skip_on_missing" default:"false" doc:"Pass the event on unchanged when the input field is missing, null or empty; otherwise that is an error naming the field."`
	SkipOnError    bool   `yaml:"skip_on_error" default:"false" doc:"Pass the event on unchanged when embedding fails (after retries); otherwise it goes to the dead-letter topic with the provider's error."`
	BatchSize      int    `yaml:"batch_size" default:"100" min:"1" max:"2048" doc:"Texts per embedding request (OpenAI takes up to 2048; Cohere on Bedrock 96, Titan 1, whichever is lower applies)."`
	MaxConcurrency int    `yaml:"max_concurrency" default:"16" min:"1" max:"1024" doc:"Embedding requests of one batch in flight at once."`
	llm.Retries    `yaml:",inline"`
	CacheSize      int `yaml:"cache_size" default:"10000" min:"0" doc:"Vectors remembered so that a redelivered event is not sent again (0 = none)."`
	CacheTTLSecs   int `yaml:"cache_ttl_secs" default:"3600" min:"0" doc:"How long a vector is remembered: the dedup window of the pipeline's ledger (1 h)."`
}

// Validate checks the paths and the key.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if _, err := row.ParsePath(c.InputField); err != nil {
		ps = append(ps, spec.Problem{Path: "input_field", Message: err.Error()})
	}
	if _, err := row.ParsePath(c.OutputField); err != nil {
		ps = append(ps, spec.Problem{Path: "output_field", Message: err.Error()})
	}
	if c.Provider == "openai" && c.APIKey == "" && c.BaseURL == "" {
		ps = append(ps, spec.Problem{Path: "api_key", Message: "api_key is required for provider openai (set base_url for a server without auth)"})
	}
	if c.InitialBackoff > c.MaxBackoff {
		ps = append(ps, spec.Problem{Path: "initial_backoff_ms", Message: "initial_backoff_ms " + strconv.Itoa(c.InitialBackoff) + " is above max_backoff_ms " + strconv.Itoa(c.MaxBackoff)})
	}
	return ps
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "llm-embedding", Category: catalog.Transforms, Subcategory: "AI",
		Description: "Adds a vector embedding of a text field to events, in batched requests (OpenAI-compatible or Bedrock)",
		Tags:        []string{"ai", "llm", "embedding", "vector", "openai", "bedrock", "rag"},
		Metrics:     llm.MetricNames("llm.embedding"),
	}, New)
}

// Settings are the provider settings of a config.
func (c *Config) Settings() llm.Settings {
	return c.Connection.Settings(c.TimeoutSecs, c.Retries, c.MaxConcurrency)
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	in, err := row.ParsePath(cfg.InputField)
	if err != nil {
		return nil, err
	}
	out, err := row.ParsePath(cfg.OutputField)
	if err != nil {
		return nil, err
	}
	s := cfg.Settings()
	client, err := llm.NewEmbedder(ctx, s)
	if err != nil {
		return nil, err
	}
	rt := connector.RuntimeFrom(ctx)
	batch := min(cfg.BatchSize, client.MaxBatch(cfg.Model))
	return &embed{
		cfg: cfg, s: s, in: in, out: out, client: client, batch: max(batch, 1),
		m: llm.NewMetrics(rt, "llm.embedding"), log: rt.Logger(),
		cache: llm.NewCache[[]float64](cfg.CacheSize, llm.Secs(cfg.CacheTTLSecs)),
	}, nil
}

type embed struct {
	cfg    *Config
	s      llm.Settings
	in     row.Path
	out    row.Path
	client llm.Embedder
	batch  int
	m      *llm.Metrics
	log    *slog.Logger
	cache  *llm.Cache[[]float64]
}

// target is an event waiting for the vector of one text.
type target struct {
	i int
	e *events.Event
	r map[string]any
}

// text is one distinct text of the batch and the events that hold it.
type text struct {
	s       string
	key     [32]byte
	targets []target
	vec     []float64
	err     error
}

// InPlace says Apply returns the events it was given, changed in place, so
// the sink handler sends it whole batches (batched, concurrent requests)
// rather than one record at a time.
func (t *embed) InPlace() {}

// Apply embeds the input field of every event: distinct texts are sent
// batch_size per request, up to max_concurrency requests at once.
func (t *embed) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	failed := map[int]error{}
	byText := map[string]*text{}
	var todo []*text
	for i, e := range batch {
		r, err := llm.Row(e)
		if err != nil {
			failed[i] = err
			continue
		}
		if r == nil {
			continue // deletes, schema and control events pass unchanged
		}
		v, ok := t.in.Get(r)
		s := ""
		if ok && v != nil {
			s = llm.Text(v)
		}
		if strings.TrimSpace(s) == "" {
			if !t.cfg.SkipOnMissing {
				failed[i] = fmt.Errorf("input field %q is missing, null or empty", t.in.String())
			}
			continue
		}
		tg := target{i: i, e: e, r: r}
		if x, ok := byText[s]; ok {
			x.targets = append(x.targets, tg)
			continue
		}
		key := llm.Key(t.cfg.Provider, t.cfg.BaseURL, t.cfg.Model, strconv.Itoa(t.cfg.Dimensions), t.cfg.InputType, s)
		x := &text{s: s, key: key, targets: []target{tg}}
		byText[s] = x
		if vec, ok := t.cache.Get(key); ok {
			t.m.CacheHits.Inc()
			x.vec = vec
			continue
		}
		todo = append(todo, x)
	}
	chunks := (len(todo) + t.batch - 1) / t.batch
	llm.Parallel(chunks, t.cfg.MaxConcurrency, func(c int) {
		part := todo[c*t.batch : min((c+1)*t.batch, len(todo))]
		req := llm.EmbedRequest{Model: t.cfg.Model, Dimensions: t.cfg.Dimensions, InputType: t.cfg.InputType, Texts: make([]string, len(part))}
		for k, x := range part {
			req.Texts[k] = x.s
		}
		res, err := llm.EmbedOnce(ctx, t.client, t.s, t.m, req)
		for k, x := range part {
			if err != nil {
				x.err = err
				continue
			}
			x.vec = res.Vectors[k]
			if d := t.cfg.Dimensions; d > 0 && len(x.vec) != d {
				x.err = llm.Errorf("embedding has %d dimensions, expected %d (dimensions)", len(x.vec), d)
				x.vec = nil
				continue
			}
			t.cache.Put(x.key, x.vec)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err // the host retries the whole batch
	}
	for _, x := range byText {
		for _, tg := range x.targets {
			if x.err != nil {
				if t.cfg.SkipOnError {
					t.log.Warn("llm-embedding: passing the event on unchanged (skip_on_error)", "stream", tg.e.Stream, "error", x.err)
					continue
				}
				failed[tg.i] = x.err
				continue
			}
			row.Changed(tg.e)
			// Each event gets its own copy: a later transform may change
			// one event's vector in place.
			if err := t.out.Set(tg.r, toAny(x.vec)); err != nil {
				failed[tg.i] = err
			}
		}
	}
	return llm.Split(batch, failed)
}

// toAny copies a vector into the []any a decoded JSON array would be, so
// that every reader of the row (conditions, other transforms, encoders)
// sees the shape it expects.
func toAny(v []float64) []any {
	out := make([]any, len(v))
	for i, f := range v {
		out[i] = f
	}
	return out
}
