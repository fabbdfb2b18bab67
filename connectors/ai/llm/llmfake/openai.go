// Package llmfake holds in-process servers that speak the OpenAI and
// Amazon Bedrock runtime APIs as their references document them, for the
// tests of the LLM transforms and of pipelines using them: requests are
// checked the way the service checks them (auth, SigV4, body shape),
// answers are the documented example bodies (testdata/) with generated
// text and vectors. It also holds the deterministic embedding the RAG
// sample's test uses. It is test support, linked by tests only.
package llmfake

import (
	"embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

//go:embed testdata/*.json
var testdata embed.FS

func doc(name string) map[string]any {
	b, err := testdata.ReadFile("testdata/" + name)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// HashEmbedding is a deterministic embedding: each lower-cased word is
// hashed (FNV-1a) to one of dim slots with a sign, and the sum is scaled
// to unit length. Texts sharing words point the same way, which is all a
// test of a vector pipeline needs.
func HashEmbedding(text string, dim int) []float64 {
	v := make([]float64, dim)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := h.Sum64()
		s := 1.0
		if x>>63 == 1 {
			s = -1
		}
		v[x%uint64(dim)] += s
	}
	var n float64
	for _, f := range v {
		n += f * f
	}
	if n > 0 {
		n = math.Sqrt(n)
		for i := range v {
			v[i] /= n
		}
	}
	return v
}

// Fault is an error the fake answers instead of serving a request.
type Fault struct {
	Status     int
	RetryAfter string // Retry-After header; "" = none
}

// OpenAI is an OpenAI-compatible server (POST /v1/chat/completions and
// POST /v1/embeddings, not streamed). Set the exported fields before the
// first request.
type OpenAI struct {
	*httptest.Server
	// APIKey, when set, must come as "Authorization: Bearer KEY".
	APIKey string
	// Answer makes the chat answer and its finish_reason (default: the
	// prompt's word count as text, "stop").
	Answer func(system, prompt string) (string, string)
	// Dim is the size of the vectors when the request has no dimensions
	// (default 64).
	Dim int
	// ForceDim, when set, is the size of every vector whatever the
	// request asked (a model that ignores the dimensions hint).
	ForceDim int
	// Delay is how long each request takes.
	Delay time.Duration
	// Fault, when set, may fail the n-th request (1-based) on path.
	Fault func(n int64, path string) *Fault

	Requests    atomic.Int64 // every request
	EmbedCalls  atomic.Int64 // embedding requests served
	EmbedInputs atomic.Int64 // texts embedded
	ChatCalls   atomic.Int64 // chat requests served
	inflight    atomic.Int64
	MaxInFlight atomic.Int64 // most requests served at once

	mu      sync.Mutex
	prompts []string
}

// NewOpenAI starts the server; base_url is URL()+"/v1".
func NewOpenAI() *OpenAI {
	f := &OpenAI{Dim: 64}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// BaseURL is what a pipeline's base_url should say.
func (f *OpenAI) BaseURL() string { return f.URL + "/v1" }

// Prompts returns the user prompts received, in order of arrival.
func (f *OpenAI) Prompts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.prompts...)
}

func openaiError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (f *OpenAI) serve(w http.ResponseWriter, r *http.Request) {
	n := f.Requests.Add(1)
	cur := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.MaxInFlight.Load()
		if cur <= m || f.MaxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	if r.Method != http.MethodPost {
		openaiError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", "", "Only POST is supported")
		return
	}
	if f.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+f.APIKey {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(doc("openai-error-invalid-api-key.json"))
		return
	}
	if f.Fault != nil {
		if ft := f.Fault(n, r.URL.Path); ft != nil {
			if ft.RetryAfter != "" {
				w.Header().Set("Retry-After", ft.RetryAfter)
			}
			if ft.Status == http.StatusTooManyRequests {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(ft.Status)
				_ = json.NewEncoder(w).Encode(doc("openai-error-rate-limit.json"))
				return
			}
			openaiError(w, ft.Status, "server_error", "", "", "The server had an error while processing your request. Sorry about that!")
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "", "Content-Type must be application/json, got "+ct)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "", "We could not parse the JSON body of your request.")
		return
	}
	switch r.URL.Path {
	case "/v1/chat/completions":
		f.chat(w, body)
	case "/v1/embeddings":
		f.embeddings(w, body)
	default:
		openaiError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "", "Unknown request URL: POST "+r.URL.Path)
	}
}

func (f *OpenAI) chat(w http.ResponseWriter, body map[string]any) {
	model, _ := body["model"].(string)
	if model == "" {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "model", "you must provide a model parameter")
		return
	}
	if s, ok := body["stream"]; ok && s != false {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "stream", "this fake serves non-streamed completions only")
		return
	}
	if t, ok := body["temperature"].(float64); ok && (t < 0 || t > 2) {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "temperature", fmt.Sprintf("%v is greater than the maximum of 2 - 'temperature'", t))
		return
	}
	if mt, ok := body["max_tokens"]; ok {
		if x, ok := mt.(float64); !ok || x < 1 || x != math.Trunc(x) {
			openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "max_tokens", "max_tokens must be a positive integer")
			return
		}
	}
	msgs, _ := body["messages"].([]any)
	if len(msgs) == 0 {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "messages", "[] is too short - 'messages'")
		return
	}
	var system, prompt string
	for i, m := range msgs {
		mm, _ := m.(map[string]any)
		role, _ := mm["role"].(string)
		content, ok := mm["content"].(string)
		if !ok {
			openaiError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf("messages.[%d].content", i), "content must be a string in this fake")
			return
		}
		switch role {
		case "system", "developer":
			system = content
		case "user":
			prompt = content
		case "assistant":
		default:
			openaiError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf("messages.[%d].role", i), fmt.Sprintf("'%s' is not one of ['system', 'assistant', 'user', 'tool', 'function', 'developer']", role))
			return
		}
	}
	f.mu.Lock()
	f.prompts = append(f.prompts, prompt)
	f.mu.Unlock()
	text, finish := fmt.Sprintf("%d words", len(strings.Fields(prompt))), "stop"
	if f.Answer != nil {
		text, finish = f.Answer(system, prompt)
	}
	resp := doc("openai-chat-completion.json")
	resp["model"] = model
	choice := resp["choices"].([]any)[0].(map[string]any)
	choice["message"].(map[string]any)["content"] = text
	choice["finish_reason"] = finish
	pt, ct := len(strings.Fields(system+" "+prompt)), len(strings.Fields(text))
	u := resp["usage"].(map[string]any)
	u["prompt_tokens"], u["completion_tokens"], u["total_tokens"] = pt, ct, pt+ct
	f.ChatCalls.Add(1)
	writeJSON(w, resp)
}

func (f *OpenAI) embeddings(w http.ResponseWriter, body map[string]any) {
	model, _ := body["model"].(string)
	if model == "" {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "model", "you must provide a model parameter")
		return
	}
	if ef, ok := body["encoding_format"]; ok && ef != "float" {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "encoding_format", "this fake answers encoding_format float only")
		return
	}
	dim := f.Dim
	if d, ok := body["dimensions"]; ok {
		x, ok := d.(float64)
		if !ok || x < 1 || x != math.Trunc(x) {
			openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "dimensions", "dimensions must be a positive integer")
			return
		}
		dim = int(x)
	}
	if f.ForceDim > 0 {
		dim = f.ForceDim
	}
	var texts []string
	switch in := body["input"].(type) {
	case string:
		texts = []string{in}
	case []any:
		for _, x := range in {
			s, ok := x.(string)
			if !ok {
				openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "input", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
				return
			}
			texts = append(texts, s)
		}
	}
	if len(texts) == 0 || len(texts) > 2048 {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "input", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
		return
	}
	for _, s := range texts {
		if s == "" {
			openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "input", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
			return
		}
	}
	resp := doc("openai-embeddings.json")
	resp["model"] = model
	item := resp["data"].([]any)[0].(map[string]any)
	data := make([]any, len(texts))
	tokens := 0
	for i, s := range texts {
		d := map[string]any{}
		for k, v := range item {
			d[k] = v
		}
		d["embedding"], d["index"] = HashEmbedding(s, dim), i
		data[i] = d
		tokens += len(strings.Fields(s))
	}
	resp["data"] = data
	resp["usage"] = map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}
	f.EmbedCalls.Add(1)
	f.EmbedInputs.Add(int64(len(texts)))
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
