package awssm_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/secrets/awssm"
)

// fakeSM serves Secrets Manager's JSON 1.1 protocol as the API reference
// documents GetSecretValue: POST / with X-Amz-Target
// secretsmanager.GetSecretValue, a {"SecretId", "VersionStage"} body and a
// SigV4 signature for the service secretsmanager; the answer carries ARN,
// Name, SecretString, VersionId and VersionStages, errors a __type.
type fakeSM struct {
	mu      sync.Mutex
	secrets map[string]string // name → SecretString
	calls   []map[string]any
}

func (f *fakeSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(status int, typ, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1") {
		fail(400, "InvalidRequestException", "unexpected request "+r.Method+" "+r.URL.Path+" "+r.Header.Get("X-Amz-Target"))
		return
	}
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/secretsmanager/aws4_request") {
		fail(400, "IncompleteSignature", "no SigV4 signature for secretsmanager")
		return
	}
	var in map[string]any
	json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	id, _ := in["SecretId"].(string)
	name := id
	if strings.HasPrefix(id, "arn:") {
		name = strings.TrimSuffix(id[strings.LastIndex(id, ":")+1:], "-AbCdEf")
	}
	v, ok := f.secrets[name]
	if !ok {
		fail(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"ARN":  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:" + name + "-AbCdEf",
		"Name": name, "SecretString": v, "VersionId": "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1",
		"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.523477145713e9,
	})
}

func TestGetSecretValue(t *testing.T) {
	f := &fakeSM{secrets: map[string]string{
		"prod/db": `{"username":"app","password":"aws-sm-pw-1","port":5432}`,
		"plain":   "just-a-token-value",
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	var cfg yaml.Node
	yaml.Unmarshal([]byte("provider: x\nconfig: {region: eu-west-1, endpoint: "+srv.URL+"}"), &cfg)
	// Through the resolver, as a pipeline uses it: the secrets block
	// names this provider, so aws-sm: references get its config.
	r := secrets.NewResolver(secrets.AWS, cfg.Content[0].Content[3])
	ctx := context.Background()
	for ref, want := range map[string]string{
		"aws-sm:prod/db#password": "aws-sm-pw-1",
		"aws-sm:prod/db#port":     "5432",
		"aws-sm:plain":            "just-a-token-value",
		"aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:plain-AbCdEf": "just-a-token-value",
	} {
		rf, _ := secrets.ParseRef(ref)
		got, err := r.Resolve(ctx, rf)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v", ref, got, err)
		}
	}
	for ref, want := range map[string]string{
		"aws-sm:missing#x":    "the aws-secrets-manager provider refused it: GetSecretValue missing: ResourceNotFoundException: Secrets Manager can't find the specified secret.",
		"aws-sm:prod/db#nope": `the secret has no key "nope"`,
		"aws-sm:plain#key":    "is not a JSON object",
	} {
		rf, _ := secrets.ParseRef(ref)
		_, err := r.Resolve(ctx, rf)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "aws-sm-pw-1") || strings.Contains(err.Error(), "just-a-token") {
			t.Errorf("%s: err = %v", ref, err)
		}
	}
	if f.calls[0]["SecretId"] == nil || f.calls[0]["VersionStage"] != nil {
		t.Errorf("request body = %v", f.calls[0])
	}
	_ = awssm.Config{}
}
