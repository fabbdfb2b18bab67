package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Bedrock talks to Amazon Bedrock's runtime with aws-sdk-go-v2: Converse
// for chat (one request shape for every chat model), InvokeModel with the
// Titan or Cohere body for embeddings. Region and credentials follow the
// AWS default chain (environment, shared config, SSO, instance or task
// role); base_url replaces the endpoint (a VPC endpoint, a test server).
type Bedrock struct {
	client *bedrockruntime.Client
}

// NewBedrock loads the AWS configuration and makes a client. hc may be nil.
func NewBedrock(ctx context.Context, s Settings, hc *http.Client) (*Bedrock, error) {
	opts := []func(*awsconfig.LoadOptions) error{}
	if s.Region != "" {
		opts = append(opts, awsconfig.WithRegion(s.Region))
	}
	if hc != nil {
		opts = append(opts, awsconfig.WithHTTPClient(hc))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("bedrock: aws config: %w", err)
	}
	client := bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) {
		if s.BaseURL != "" {
			o.BaseEndpoint = aws.String(s.BaseURL)
		}
		// Call retries (timeouts, 5xx, 429 after Retry-After) and counts
		// them; the SDK's own retries would hide them.
		o.RetryMaxAttempts = 1
	})
	return &Bedrock{client: client}, nil
}

// Chat implements Chatter with Converse.
func (b *Bedrock) Chat(ctx context.Context, req ChatRequest) (ChatResult, error) {
	in := &bedrockruntime.ConverseInput{
		ModelId: aws.String(req.Model),
		Messages: []types.Message{{
			Role:    types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: req.Prompt}},
		}},
	}
	if req.System != "" {
		in.System = []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: req.System}}
	}
	if req.Temperature != nil || req.MaxTokens != nil {
		in.InferenceConfig = &types.InferenceConfiguration{}
		if req.Temperature != nil {
			in.InferenceConfig.Temperature = aws.Float32(float32(*req.Temperature))
		}
		if req.MaxTokens != nil {
			in.InferenceConfig.MaxTokens = aws.Int32(int32(*req.MaxTokens))
		}
	}
	out, err := b.client.Converse(ctx, in)
	if err != nil {
		return ChatResult{}, ProviderError("bedrock", classifyAWS(err))
	}
	var res ChatResult
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return res, Errorf("bedrock: the answer has no message")
	}
	var text strings.Builder
	for _, c := range msg.Value.Content {
		if t, ok := c.(*types.ContentBlockMemberText); ok {
			text.WriteString(t.Value)
		}
	}
	res.Text = text.String()
	switch out.StopReason {
	case types.StopReasonEndTurn, types.StopReasonStopSequence:
		res.Finish = FinishStop
	case types.StopReasonMaxTokens, types.StopReasonModelContextWindowExceeded:
		res.Finish = FinishLength
	case types.StopReasonContentFiltered, types.StopReasonGuardrailIntervened:
		res.Finish = FinishContentFilter
	default:
		res.Finish = FinishOther
	}
	if u := out.Usage; u != nil {
		res.PromptTokens = int64(aws.ToInt32(u.InputTokens))
		res.CompletionTokens = int64(aws.ToInt32(u.OutputTokens))
		res.Tokens = int64(aws.ToInt32(u.TotalTokens))
	}
	return res, nil
}

// isCohere says whether a model id (or inference profile) is a Cohere
// embedding model, whose body takes many texts; Titan takes one.
func isCohere(model string) bool { return strings.Contains(model, "cohere.") }

// maxCohereTexts is Cohere Embed's limit of texts per call on Bedrock.
const maxCohereTexts = 96

// MaxBatch implements Embedder.
func (b *Bedrock) MaxBatch(model string) int {
	if isCohere(model) {
		return maxCohereTexts
	}
	return 1
}

// Embed implements Embedder with InvokeModel.
func (b *Bedrock) Embed(ctx context.Context, req EmbedRequest) (EmbedResult, error) {
	body, err := bedrockEmbedBody(req)
	if err != nil {
		return EmbedResult{}, err
	}
	out, err := b.client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId:     aws.String(req.Model),
		Body:        body,
		ContentType: aws.String("application/json"),
		Accept:      aws.String("application/json"),
	})
	if err != nil {
		return EmbedResult{}, ProviderError("bedrock", classifyAWS(err))
	}
	return parseBedrockEmbed(req, out.Body)
}

// bedrockEmbedBody is the model's request body: Titan Text Embeddings
// ({"inputText", "dimensions", "normalize"}; v1 takes inputText only) or
// Cohere Embed ({"texts", "input_type"}).
func bedrockEmbedBody(req EmbedRequest) ([]byte, error) {
	if isCohere(req.Model) {
		it := req.InputType
		if it == "" {
			it = "search_document" // required by Cohere; what a pipeline indexing documents means
		}
		return json.Marshal(map[string]any{"texts": req.Texts, "input_type": it})
	}
	if len(req.Texts) != 1 {
		return nil, fmt.Errorf("bedrock: Titan embeds one text per request, got %d", len(req.Texts))
	}
	m := map[string]any{"inputText": req.Texts[0]}
	if req.Dimensions > 0 && !strings.Contains(req.Model, "titan-embed-text-v1") {
		m["dimensions"] = req.Dimensions
	}
	return json.Marshal(m)
}

func parseBedrockEmbed(req EmbedRequest, body []byte) (EmbedResult, error) {
	if isCohere(req.Model) {
		var r struct {
			Embeddings json.RawMessage `json:"embeddings"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return EmbedResult{}, Errorf("bedrock: cohere answer: %v", err)
		}
		var vs [][]float64
		// embeddings_floats answers carry a list; with embedding_types
		// (and Embed v4) it is an object keyed by type.
		if err := json.Unmarshal(r.Embeddings, &vs); err != nil {
			var byType struct {
				Float [][]float64 `json:"float"`
			}
			if err2 := json.Unmarshal(r.Embeddings, &byType); err2 != nil || byType.Float == nil {
				return EmbedResult{}, Errorf("bedrock: cohere answer has no float embeddings")
			}
			vs = byType.Float
		}
		return EmbedResult{Vectors: vs}, nil
	}
	var r struct {
		Embedding           []float64 `json:"embedding"`
		InputTextTokenCount int64     `json:"inputTextTokenCount"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Embedding == nil {
		return EmbedResult{}, Errorf("bedrock: titan answer has no embedding")
	}
	return EmbedResult{Vectors: [][]float64{r.Embedding}, PromptTokens: r.InputTextTokenCount, Tokens: r.InputTextTokenCount}, nil
}

// classifyAWS classifies an SDK error by its HTTP status, with the
// service's error code and message and its Retry-After.
func classifyAWS(err error) error {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		msg := err.Error()
		var ae smithy.APIError
		if errors.As(err, &ae) {
			msg = ae.ErrorCode() + ": " + ae.ErrorMessage()
		}
		e := fmt.Errorf("HTTP %d %s", re.HTTPStatusCode(), msg)
		return FromHTTP(re.HTTPStatusCode(), re.Response.Header.Get("Retry-After"), e)
	}
	return err
}
