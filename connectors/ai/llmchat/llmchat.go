// Package llmchat is the llm-chat transform: it renders a prompt from each
// event, asks a chat model (OpenAI or any OpenAI-compatible server, or
// Amazon Bedrock) and writes the answer into the event.
package llmchat

import (
	"context"
	"errors"
	"strconv"

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
	Model          string   `yaml:"model" required:"true" doc:"Model identifier (gpt-4o-mini, anthropic.claude-3-haiku-20240307-v1:0, ...)."`
	SystemPrompt   string   `yaml:"system_prompt" doc:"System prompt for the model's persona and behaviour."`
	PromptTemplate string   `yaml:"prompt_template" required:"true" doc:"Prompt with {{field}} placeholders (dot paths), {{_data}} (the row as JSON), {{_stream}}, {{_timestamp}}; values are never expanded again."`
	OutputField    string   `yaml:"output_field" default:"llm_response" doc:"Field the answer is written to (dot path)."`
	Temperature    *float64 `yaml:"temperature" min:"0" max:"2" doc:"Sampling temperature; the model's default when absent."`
	MaxTokens      *int     `yaml:"max_tokens" min:"1" doc:"Maximum answer tokens; the model's default when absent."`
	TimeoutSecs    int      `yaml:"timeout_secs" default:"60" min:"1" max:"3600" doc:"Timeout of one request, in seconds."`
	SkipOnError    bool     `yaml:"skip_on_error" default:"false" doc:"Pass the event on unchanged when the model fails (after retries); otherwise it goes to the dead-letter topic with the provider's error."`
	SkipOnMissing  bool     `yaml:"skip_on_missing" default:"false" doc:"Pass the event on unchanged when a field the template names is missing or null; otherwise that is an error naming the field."`
	MaxConcurrency int      `yaml:"max_concurrency" default:"16" min:"1" max:"1024" doc:"Requests of one batch in flight at once."`
	llm.Retries    `yaml:",inline"`
	CacheSize      int `yaml:"cache_size" default:"10000" min:"0" doc:"Answers remembered so that a redelivered event is not sent again (0 = none)."`
	CacheTTLSecs   int `yaml:"cache_ttl_secs" default:"3600" min:"0" doc:"How long an answer is remembered: the dedup window of the pipeline's ledger (1 h)."`
}

// Validate checks the template, the output path and the key.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.PromptTemplate != "" {
		if _, err := llm.ParseTemplate(c.PromptTemplate); err != nil {
			ps = append(ps, spec.Problem{Path: "prompt_template", Message: err.Error()})
		}
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
		Name: "llm-chat", Category: catalog.Transforms, Subcategory: "AI",
		Description: "Enriches events with a chat model's answer to a prompt rendered from them (OpenAI-compatible or Bedrock)",
		Tags:        []string{"ai", "llm", "openai", "bedrock", "enrich", "classify"},
		Metrics:     llm.MetricNames("llm.chat"),
	}, New)
}

// Settings are the provider settings of a config.
func (c *Config) Settings() llm.Settings {
	return c.Connection.Settings(c.TimeoutSecs, c.Retries, c.MaxConcurrency)
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	tmpl, err := llm.ParseTemplate(cfg.PromptTemplate)
	if err != nil {
		return nil, err
	}
	out, err := row.ParsePath(cfg.OutputField)
	if err != nil {
		return nil, err
	}
	s := cfg.Settings()
	client, err := llm.NewChatter(ctx, s)
	if err != nil {
		return nil, err
	}
	rt := connector.RuntimeFrom(ctx)
	return &chat{
		cfg: cfg, s: s, tmpl: tmpl, out: out, client: client,
		m: llm.NewMetrics(rt, "llm.chat"), log: rt.Logger(),
		cache: llm.NewCache[string](cfg.CacheSize, llm.Secs(cfg.CacheTTLSecs)),
	}, nil
}

type chat struct {
	cfg    *Config
	s      llm.Settings
	tmpl   *llm.Template
	out    row.Path
	client llm.Chatter
	m      *llm.Metrics
	log    interface {
		Warn(msg string, args ...any)
	}
	cache *llm.Cache[string]
}

type job struct {
	i   int
	e   *events.Event
	r   map[string]any
	req llm.ChatRequest
	key [32]byte
	res llm.ChatResult
	err error
}

// Apply asks the model about every event of the batch, up to
// max_concurrency at once, and writes the answers.
// InPlace says Apply returns the events it was given, changed in place, so
// the sink handler sends it whole batches (concurrent requests) rather than
// one record at a time.
func (c *chat) InPlace() {}

func (c *chat) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	failed := map[int]error{}
	var jobs []*job
	for i, e := range batch {
		r, err := llm.Row(e)
		if err != nil {
			failed[i] = err
			continue
		}
		if r == nil {
			continue // deletes, schema and control events pass unchanged
		}
		prompt, err := c.tmpl.Render(e, r)
		if err != nil {
			var mf *llm.MissingFieldError
			if errors.As(err, &mf) && c.cfg.SkipOnMissing {
				continue
			}
			failed[i] = err
			continue
		}
		req := llm.ChatRequest{Model: c.cfg.Model, System: c.cfg.SystemPrompt, Prompt: prompt, Temperature: c.cfg.Temperature, MaxTokens: c.cfg.MaxTokens}
		key := llm.Key(c.cfg.Provider, c.cfg.BaseURL, req.Model, req.System, req.Prompt, fmtOpt(req.Temperature), fmtIntOpt(req.MaxTokens))
		if ans, ok := c.cache.Get(key); ok {
			c.m.CacheHits.Inc()
			if err := c.set(e, r, ans); err != nil {
				failed[i] = err
			}
			continue
		}
		jobs = append(jobs, &job{i: i, e: e, r: r, req: req, key: key})
	}
	llm.Parallel(len(jobs), c.cfg.MaxConcurrency, func(k int) {
		j := jobs[k]
		j.res, j.err = llm.ChatOnce(ctx, c.client, c.s, c.m, j.req)
	})
	for _, j := range jobs {
		if j.err != nil {
			if c.cfg.SkipOnError && ctx.Err() == nil {
				c.log.Warn("llm-chat: passing the event on unchanged (skip_on_error)", "stream", j.e.Stream, "error", j.err)
				continue
			}
			failed[j.i] = j.err
			continue
		}
		c.cache.Put(j.key, j.res.Text)
		if err := c.set(j.e, j.r, j.res.Text); err != nil {
			failed[j.i] = err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the host retries the whole batch
	}
	return llm.Split(batch, failed)
}

func (c *chat) set(e *events.Event, r map[string]any, answer string) error {
	row.Changed(e)
	return c.out.Set(r, answer)
}

func fmtOpt(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

func fmtIntOpt(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}
