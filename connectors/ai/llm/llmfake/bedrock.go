package llmfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Bedrock is an Amazon Bedrock runtime endpoint: POST
// /model/{modelId}/converse and POST /model/{modelId}/invoke for Titan
// Text Embeddings and Cohere Embed bodies. Every request must carry a
// SigV4 signature of the configured key for service "bedrock" in Region,
// verified by signing the request again with the SDK's own signer.
type Bedrock struct {
	*httptest.Server
	AccessKey, SecretKey, Region string
	// Answer makes the Converse answer and its stopReason (default: the
	// prompt's word count, end_turn).
	Answer func(system, prompt string) (string, string)
	// Fault, when set, may fail the n-th request (1-based).
	Fault func(n int64, path string) *Fault

	Requests    atomic.Int64
	Signed      atomic.Int64 // requests whose signature verified
	EmbedInputs atomic.Int64
	LastBody    atomic.Value // []byte of the last accepted request body
}

// NewBedrock starts the fake with a test key pair in us-east-1.
func NewBedrock() *Bedrock {
	f := &Bedrock{AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", Region: "us-east-1"}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// awsError answers the restJson1 error shape: the type in
// X-Amzn-ErrorType and {"message": ...}.
func awsError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (f *Bedrock) serve(w http.ResponseWriter, r *http.Request) {
	n := f.Requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		awsError(w, http.StatusBadRequest, "ValidationException", "unreadable body")
		return
	}
	if err := VerifySigV4(r, body, f.AccessKey, f.SecretKey, f.Region, "bedrock"); err != nil {
		awsError(w, http.StatusForbidden, "AccessDeniedException", "The request signature we calculated does not match the signature you provided. "+err.Error())
		return
	}
	f.Signed.Add(1)
	if f.Fault != nil {
		if ft := f.Fault(n, r.URL.Path); ft != nil {
			if ft.RetryAfter != "" {
				w.Header().Set("Retry-After", ft.RetryAfter)
			}
			if ft.Status == http.StatusTooManyRequests {
				awsError(w, ft.Status, "ThrottlingException", "Too many requests, please wait before trying again.")
			} else {
				awsError(w, ft.Status, "InternalServerException", "The server encountered an internal error.")
			}
			return
		}
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if r.Method != http.MethodPost || len(parts) != 3 || parts[0] != "model" {
		awsError(w, http.StatusNotFound, "UnknownOperationException", "unknown operation "+r.Method+" "+r.URL.Path)
		return
	}
	model := parts[1]
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		awsError(w, http.StatusBadRequest, "ValidationException", "Malformed input request, please reformat your input and try again.")
		return
	}
	f.LastBody.Store(body)
	switch parts[2] {
	case "converse":
		f.converse(w, req)
	case "invoke":
		f.invoke(w, model, req)
	default:
		awsError(w, http.StatusNotFound, "UnknownOperationException", "unknown operation "+parts[2])
	}
}

func (f *Bedrock) converse(w http.ResponseWriter, req map[string]any) {
	msgs, _ := req["messages"].([]any)
	if len(msgs) == 0 {
		awsError(w, http.StatusBadRequest, "ValidationException", "A conversation must start with a user message.")
		return
	}
	var system, prompt string
	for _, s := range asList(req["system"]) {
		t, _ := s.(map[string]any)["text"].(string)
		system += t
	}
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		role, _ := mm["role"].(string)
		if role != "user" && role != "assistant" {
			awsError(w, http.StatusBadRequest, "ValidationException", "role must be user or assistant")
			return
		}
		for _, c := range asList(mm["content"]) {
			if t, ok := c.(map[string]any)["text"].(string); ok && role == "user" {
				prompt += t
			}
		}
	}
	if ic, ok := req["inferenceConfig"].(map[string]any); ok {
		if t, ok := ic["temperature"].(float64); ok && (t < 0 || t > 1) {
			awsError(w, http.StatusBadRequest, "ValidationException", "temperature must be within 0 and 1")
			return
		}
	}
	text, stop := fmt.Sprintf("%d words", len(strings.Fields(prompt))), "end_turn"
	if f.Answer != nil {
		text, stop = f.Answer(system, prompt)
	}
	resp := doc("bedrock-converse-response.json")
	resp["output"].(map[string]any)["message"].(map[string]any)["content"] = []any{map[string]any{"text": text}}
	resp["stopReason"] = stop
	in, out := len(strings.Fields(system+" "+prompt)), len(strings.Fields(text))
	resp["usage"] = map[string]any{"inputTokens": in, "outputTokens": out, "totalTokens": in + out}
	writeJSON(w, resp)
}

func (f *Bedrock) invoke(w http.ResponseWriter, model string, req map[string]any) {
	switch {
	case strings.Contains(model, "cohere.embed"):
		texts := asList(req["texts"])
		if len(texts) == 0 || len(texts) > 96 {
			awsError(w, http.StatusBadRequest, "ValidationException", "texts must hold 1 to 96 strings")
			return
		}
		switch req["input_type"] {
		case "search_document", "search_query", "classification", "clustering":
		default:
			awsError(w, http.StatusBadRequest, "ValidationException", "Malformed input request: input_type is required")
			return
		}
		resp := doc("bedrock-cohere-embed-response.json")
		vs := make([]any, len(texts))
		for i, t := range texts {
			vs[i] = HashEmbedding(fmt.Sprint(t), 1024)
		}
		resp["embeddings"], resp["texts"] = vs, texts
		f.EmbedInputs.Add(int64(len(texts)))
		writeJSON(w, resp)
	case strings.Contains(model, "titan-embed-text"):
		text, _ := req["inputText"].(string)
		if text == "" {
			awsError(w, http.StatusBadRequest, "ValidationException", "Malformed input request: inputText is required")
			return
		}
		dim := 1024
		if d, ok := req["dimensions"]; ok {
			switch d {
			case 256.0, 512.0, 1024.0:
				dim = int(d.(float64))
			default:
				awsError(w, http.StatusBadRequest, "ValidationException", "Malformed input request: dimensions must be one of 256, 512, 1024")
				return
			}
		}
		v := HashEmbedding(text, dim)
		resp := doc("bedrock-titan-embed-v2-response.json")
		resp["embedding"], resp["embeddingsByType"] = v, map[string]any{"float": v}
		resp["inputTextTokenCount"] = len(strings.Fields(text))
		f.EmbedInputs.Add(1)
		writeJSON(w, resp)
	default:
		awsError(w, http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid.")
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

// VerifySigV4 checks a request's AWS Signature Version 4: the credential
// scope names accessKey, region and service, and signing the same
// method, path, query, signed headers and body again with the SDK's
// signer and secretKey gives the same signature.
func VerifySigV4(r *http.Request, body []byte, accessKey, secretKey, region, service string) error {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return errors.New("no AWS4-HMAC-SHA256 Authorization header")
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] != accessKey || scope[2] != region || scope[3] != service || scope[4] != "aws4_request" {
		return fmt.Errorf("credential scope %q is not %s/…/%s/%s/aws4_request", fields["Credential"], accessKey, region, service)
	}
	t, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("no X-Amz-Date")
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	again.Header = http.Header{}
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		switch h {
		case "host":
		case "content-length":
			again.ContentLength = int64(len(body))
		default:
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	if !strings.Contains(";"+fields["SignedHeaders"]+";", ";content-length;") {
		again.ContentLength = 0
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, region, t); err != nil {
		return err
	}
	_, want, _ := strings.Cut(again.Header.Get("Authorization"), "Signature=")
	if want == "" || want != fields["Signature"] {
		return errors.New("signature mismatch")
	}
	return nil
}
