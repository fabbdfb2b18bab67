package llm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
)

// ChatRequest is one prompt.
type ChatRequest struct {
	Model       string
	System      string
	Prompt      string
	Temperature *float64
	MaxTokens   *int
}

// Finish reasons, normalised across providers.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishContentFilter = "content_filter"
	FinishOther         = "other"
)

// ChatResult is a model's answer.
type ChatResult struct {
	Text                                   string
	Finish                                 string // one of the Finish constants
	PromptTokens, CompletionTokens, Tokens int64
}

// Chatter answers prompts.
type Chatter interface {
	Chat(ctx context.Context, req ChatRequest) (ChatResult, error)
}

// EmbedRequest is texts to embed with one model.
type EmbedRequest struct {
	Model      string
	Texts      []string
	Dimensions int    // 0 = the model's own
	InputType  string // Cohere on Bedrock: search_document, search_query, ...
}

// EmbedResult holds one vector per text, in order.
type EmbedResult struct {
	Vectors              [][]float64
	PromptTokens, Tokens int64
}

// Embedder turns texts into vectors.
type Embedder interface {
	Embed(ctx context.Context, req EmbedRequest) (EmbedResult, error)
	// MaxBatch is how many texts one request may carry for the model.
	MaxBatch(model string) int
}

// Settings are the keys both transforms share.
type Settings struct {
	Provider       string
	APIKey         string
	BaseURL        string
	Region         string
	Timeout        time.Duration
	MaxRetries     int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Concurrency    int
}

// Call runs one provider request with a per-attempt timeout and the retry
// policy; it counts retries and timeouts.
func Call(ctx context.Context, s Settings, m *Metrics, fn func(ctx context.Context) error) error {
	// Timeouts, 5xx and network failures are retried, and 429 after the
	// server's Retry-After; any other 4xx is the request's own fault and
	// would fail the same way every time.
	return retry(ctx, s, m.Retries.Inc, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		err := fn(actx)
		if err != nil && actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			m.Timeouts.Inc()
			err = &Error{Kind: Timeout, Err: fmt.Errorf("no answer within %v: %w", s.Timeout, err)}
		}
		return err
	})
}

// Metrics are the reference's counters for one transform (prefix
// llm.chat or llm.embedding).
type Metrics struct {
	Success, Failed, Timeouts, Retries *metric.Counter
	Duration                           *metric.Histogram
	PromptTokens, CompletionTokens     *metric.Counter
	Tokens                             *metric.Counter
	FinishLength, FinishFilter         *metric.Counter
	FinishOther                        *metric.Counter
	CacheHits                          *metric.Counter
}

// MetricNames are the names NewMetrics exports for prefix (llm.chat or
// llm.embedding): the reference's, then retries and cache hits. The
// transforms declare them in their catalog entries.
func MetricNames(prefix string) []string {
	names := []string{".requests.success", ".requests.failed", ".requests.timeout", ".requests.retried", ".duration_ms", ".tokens.prompt", ".tokens.total", ".cache.hits"}
	if prefix == "llm.chat" {
		names = append(names, ".tokens.completion", ".finish_reason.length", ".finish_reason.content_filter", ".finish_reason.other")
	}
	for i := range names {
		names[i] = prefix + names[i]
	}
	return names
}

// NewMetrics registers the counters of a transform with the runtime.
func NewMetrics(rt *connector.Runtime, prefix string) *Metrics {
	m := &Metrics{
		Success:      rt.Counter(prefix+".requests.success", "Provider requests answered."),
		Failed:       rt.Counter(prefix+".requests.failed", "Provider requests failed after retries."),
		Timeouts:     rt.Counter(prefix+".requests.timeout", "Provider request attempts that hit timeout_secs."),
		Retries:      rt.Counter(prefix+".requests.retried", "Provider request attempts retried (timeouts, 5xx, 429 after Retry-After)."),
		Duration:     rt.Histogram(prefix+".duration_ms", "Latency of an answered provider request, in milliseconds.", metric.LatencyMillis),
		PromptTokens: rt.Counter(prefix+".tokens.prompt", "Prompt (input) tokens the provider counted."),
		Tokens:       rt.Counter(prefix+".tokens.total", "Total tokens the provider counted."),
		CacheHits:    rt.Counter(prefix+".cache.hits", "Events answered from the result cache (a redelivery) without a request."),
	}
	if prefix == "llm.chat" {
		m.CompletionTokens = rt.Counter(prefix+".tokens.completion", "Completion (output) tokens the provider counted.")
		m.FinishLength = rt.Counter(prefix+".finish_reason.length", "Answers cut at max_tokens (truncated).")
		m.FinishFilter = rt.Counter(prefix+".finish_reason.content_filter", "Answers withheld or cut by the provider's content filter.")
		m.FinishOther = rt.Counter(prefix+".finish_reason.other", "Answers that ended for another reason than stop, length or content_filter.")
	}
	return m
}

// observe records one answered request.
func (m *Metrics) observe(start time.Time, prompt, completion, total int64) {
	m.Success.Inc()
	m.Duration.Observe(float64(time.Since(start).Microseconds()) / 1000)
	m.PromptTokens.Add(uint64(max(prompt, 0)))
	if m.CompletionTokens != nil {
		m.CompletionTokens.Add(uint64(max(completion, 0)))
	}
	m.Tokens.Add(uint64(max(total, 0)))
}

// Finish counts a chat answer's finish reason.
func (m *Metrics) Finish(reason string) {
	switch reason {
	case FinishStop:
	case FinishLength:
		m.FinishLength.Inc()
	case FinishContentFilter:
		m.FinishFilter.Inc()
	default:
		m.FinishOther.Inc()
	}
}

// ChatOnce sends one prompt through Call and records the outcome.
func ChatOnce(ctx context.Context, c Chatter, s Settings, m *Metrics, req ChatRequest) (ChatResult, error) {
	var res ChatResult
	start := time.Now()
	err := Call(ctx, s, m, func(ctx context.Context) error {
		start = time.Now()
		var err error
		res, err = c.Chat(ctx, req)
		return err
	})
	if err != nil {
		m.Failed.Inc()
		return res, err
	}
	m.observe(start, res.PromptTokens, res.CompletionTokens, res.Tokens)
	m.Finish(res.Finish)
	return res, nil
}

// EmbedOnce sends one embedding request through Call, checks that every
// text got a vector, and records the outcome.
func EmbedOnce(ctx context.Context, c Embedder, s Settings, m *Metrics, req EmbedRequest) (EmbedResult, error) {
	var res EmbedResult
	start := time.Now()
	err := Call(ctx, s, m, func(ctx context.Context) error {
		start = time.Now()
		var err error
		res, err = c.Embed(ctx, req)
		if err == nil && len(res.Vectors) != len(req.Texts) {
			err = Errorf("asked for %d embeddings, got %d", len(req.Texts), len(res.Vectors))
		}
		return err
	})
	if err != nil {
		m.Failed.Inc()
		return res, err
	}
	m.observe(start, res.PromptTokens, 0, res.Tokens)
	return res, nil
}

// Parallel runs fn(i) for i in [0, n) with at most limit running at once
// and waits for all of them.
func Parallel(n, limit int, fn func(i int)) {
	if limit < 1 {
		limit = 1
	}
	if n == 1 || limit == 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	sem := make(chan struct{}, limit)
	done := make(chan struct{}, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			fn(i)
		}()
	}
	for range n {
		<-done
	}
}

// ProviderError says what the provider answered, for the dead-letter
// reason; it keeps the class for the retry decision.
func ProviderError(provider string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return &Error{Kind: ce.Kind, Err: fmt.Errorf("%s: %w", provider, ce.Err), RetryAfter: ce.RetryAfter}
	}
	return fmt.Errorf("%s: %w", provider, err)
}
