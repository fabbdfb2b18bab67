package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// OpenAI talks to the OpenAI API or any server speaking it (Azure OpenAI's
// v1 endpoint, Ollama, vLLM, LM Studio) through base_url, with the official
// openai-go client. Its own retries are off: Call retries, so that only
// timeouts, 5xx and 429 are retried and the retry counters are right.
type OpenAI struct {
	client openai.Client
}

// maxOpenAIInputs is the most inputs the embeddings endpoint takes in one
// request (API reference: "must not exceed ... 2048 dimensions" for the
// array of inputs).
const maxOpenAIInputs = 2048

// NewOpenAI makes a client. hc may be nil (http.DefaultClient's transport).
func NewOpenAI(s Settings, hc *http.Client) *OpenAI {
	opts := []option.RequestOption{option.WithMaxRetries(0)}
	if s.APIKey != "" {
		opts = append(opts, option.WithAPIKey(s.APIKey))
	} else {
		// Local servers (Ollama, vLLM) need no key, but the client
		// refuses to run without one unless it is set explicitly.
		opts = append(opts, option.WithAPIKey("unused"))
	}
	if s.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(s.BaseURL))
	}
	if hc != nil {
		opts = append(opts, option.WithHTTPClient(hc))
	}
	return &OpenAI{client: openai.NewClient(opts...)}
}

// Chat implements Chatter with POST /chat/completions (not streamed).
func (o *OpenAI) Chat(ctx context.Context, req ChatRequest) (ChatResult, error) {
	var msgs []openai.ChatCompletionMessageParamUnion
	if req.System != "" {
		msgs = append(msgs, openai.SystemMessage(req.System))
	}
	msgs = append(msgs, openai.UserMessage(req.Prompt))
	p := openai.ChatCompletionNewParams{Model: req.Model, Messages: msgs}
	if req.Temperature != nil {
		p.Temperature = openai.Float(*req.Temperature)
	}
	if req.MaxTokens != nil {
		p.MaxTokens = openai.Int(int64(*req.MaxTokens))
	}
	resp, err := o.client.Chat.Completions.New(ctx, p)
	if err != nil {
		return ChatResult{}, ProviderError("openai", classifyOpenAI(err))
	}
	if len(resp.Choices) == 0 {
		return ChatResult{}, Errorf("openai: the answer has no choices")
	}
	c := resp.Choices[0]
	res := ChatResult{
		Text:             c.Message.Content,
		PromptTokens:     resp.Usage.PromptTokens,
		CompletionTokens: resp.Usage.CompletionTokens,
		Tokens:           resp.Usage.TotalTokens,
	}
	switch c.FinishReason {
	case "stop":
		res.Finish = FinishStop
	case "length":
		res.Finish = FinishLength
	case "content_filter":
		res.Finish = FinishContentFilter
	default:
		res.Finish = FinishOther
	}
	if c.Message.Refusal != "" && res.Text == "" {
		// The model refused: there is no answer to write.
		return res, Errorf("openai: the model refused: %s", c.Message.Refusal)
	}
	return res, nil
}

// MaxBatch implements Embedder.
func (o *OpenAI) MaxBatch(string) int { return maxOpenAIInputs }

// Embed implements Embedder with POST /embeddings, many inputs per call.
func (o *OpenAI) Embed(ctx context.Context, req EmbedRequest) (EmbedResult, error) {
	p := openai.EmbeddingNewParams{
		Model:          req.Model,
		Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: req.Texts},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
	}
	if req.Dimensions > 0 {
		p.Dimensions = openai.Int(int64(req.Dimensions))
	}
	resp, err := o.client.Embeddings.New(ctx, p)
	if err != nil {
		return EmbedResult{}, ProviderError("openai", classifyOpenAI(err))
	}
	out := EmbedResult{Vectors: make([][]float64, len(req.Texts)), PromptTokens: resp.Usage.PromptTokens, Tokens: resp.Usage.TotalTokens}
	for _, d := range resp.Data {
		// The data list is ordered by index per the API, but index is
		// what names the input, so place by it.
		if d.Index < 0 || int(d.Index) >= len(out.Vectors) || out.Vectors[d.Index] != nil {
			return EmbedResult{}, Errorf("openai: embedding index %d out of range or repeated", d.Index)
		}
		out.Vectors[d.Index] = d.Embedding
	}
	for i, v := range out.Vectors {
		if v == nil {
			return EmbedResult{}, Errorf("openai: no embedding for input %d", i)
		}
	}
	return out, nil
}

// classifyOpenAI turns the client's error into a classified one carrying
// the status, the provider's message and Retry-After.
func classifyOpenAI(err error) error {
	var ae *openai.Error
	if errors.As(err, &ae) {
		msg := ae.Message
		if msg == "" {
			msg = http.StatusText(ae.StatusCode)
		}
		e := fmt.Errorf("HTTP %d: %s", ae.StatusCode, msg)
		if ae.Code != "" {
			e = fmt.Errorf("HTTP %d %s: %s", ae.StatusCode, ae.Code, msg)
		}
		ra := ""
		if ae.Response != nil {
			ra = ae.Response.Header.Get("Retry-After")
			if ra == "" {
				// OpenAI also sends retry-after-ms.
				if ms := ae.Response.Header.Get("Retry-After-Ms"); ms != "" {
					if d, perr := time.ParseDuration(ms + "ms"); perr == nil {
						ra = fmt.Sprint(int(d.Seconds() + 0.999))
					}
				}
			}
		}
		return FromHTTP(ae.StatusCode, ra, e)
	}
	return err
}
