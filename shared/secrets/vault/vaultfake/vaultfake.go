// Package vaultfake is an in-process HTTP server speaking the part of the
// HashiCorp Vault (and OpenBao) HTTP API that secret references use, as
// Vault documents it: KV v2 reads and writes (/v1/<mount>/data/<path>),
// AppRole, Kubernetes and AWS IAM logins (/v1/auth/<mount>/login), and
// token lookup-self / renew-self. Tokens expire after their TTL, reads need
// a live token (X-Vault-Token) and answer 403 otherwise, missing secrets
// answer 404, with the {"errors": [...]} bodies Vault sends.
//
// Tests anywhere in the repository use it to run pipelines with vault:
// references:
//
//	v := vaultfake.Start(t)
//	v.Put("secret/data/postgres", map[string]any{"password": "s3cr3t"})
//	v.AddAppRole("role-1", "secret-1")
//	// secrets: {provider: vault, config: {address: v.URL, role_id: role-1, secret_id: secret-1}}
package vaultfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake Vault.
type Server struct {
	// URL is the server's address, for secrets.config.address.
	URL string
	// TokenTTL is the lease duration of tokens issued by logins (default
	// one hour); renew-self extends a token by it.
	TokenTTL time.Duration

	srv *httptest.Server

	mu       sync.Mutex
	kv       map[string]*entry // logical path (secret/data/x) → versions
	tokens   map[string]time.Time
	approles map[string]string // role_id → secret_id
	k8s      map[string]string // role → jwt
	awsRoles map[string]bool
	logins   map[string]int // auth method → successful logins
	reqs     []Request
}

type entry struct {
	data    map[string]any
	version int
	created time.Time
}

// Request is one request the server answered.
type Request struct {
	Method, Path string
	Token        string // X-Vault-Token
	Status       int
	Body         map[string]any // the JSON body, if any
}

// Start starts a fake Vault, stopped when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := New()
	tb.Cleanup(s.Close)
	return s
}

// New starts a fake Vault; Close stops it.
func New() *Server {
	s := &Server{
		TokenTTL: time.Hour,
		kv:       map[string]*entry{}, tokens: map[string]time.Time{}, approles: map[string]string{},
		k8s: map[string]string{}, awsRoles: map[string]bool{}, logins: map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Put writes a KV v2 secret at its logical path (secret/data/postgres),
// as a new version.
func (s *Server) Put(path string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(strings.Trim(path, "/"), data)
}

func (s *Server) put(path string, data map[string]any) *entry {
	e := s.kv[path]
	if e == nil {
		e = &entry{}
		s.kv[path] = e
	}
	cp := make(map[string]any, len(data))
	for k, v := range data {
		cp[k] = v
	}
	e.data, e.version, e.created = cp, e.version+1, time.Now().UTC()
	return e
}

// AddToken makes token valid for ttl (0: never expires).
func (s *Server) AddToken(token string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := time.Time{}
	if ttl > 0 {
		exp = time.Now().Add(ttl)
	}
	s.tokens[token] = exp
}

// RevokeAll invalidates every token (as a revocation or an expiry would).
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
}

// AddAppRole accepts AppRole logins with this role ID and secret ID.
func (s *Server) AddAppRole(roleID, secretID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approles[roleID] = secretID
}

// AddKubernetesRole accepts Kubernetes logins to role with this service
// account token (JWT).
func (s *Server) AddKubernetesRole(role, jwt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.k8s[role] = jwt
}

// AddAWSRole accepts AWS IAM logins to role whose signed
// sts:GetCallerIdentity request is well formed (the fake does not call
// STS; it checks the request's method, URL, body and SigV4 header).
func (s *Server) AddAWSRole(role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.awsRoles[role] = true
}

// Logins returns how many logins succeeded with an auth method
// ("approle", "kubernetes", "aws").
func (s *Server) Logins(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins[method]
}

// Requests returns the requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "hvs." + hex.EncodeToString(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	req := Request{Method: r.Method, Path: r.URL.Path, Token: r.Header.Get("X-Vault-Token"), Body: body}
	status, resp := s.handle(r, req, body)
	req.Status = status
	s.reqs = append(s.reqs, req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func errs(msgs ...string) map[string]any {
	if msgs == nil {
		msgs = []string{}
	}
	return map[string]any{"errors": msgs}
}

func (s *Server) handle(r *http.Request, req Request, body map[string]any) (int, map[string]any) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return http.StatusNotFound, errs()
	}
	path = strings.Trim(path, "/")
	if mount, ok := strings.CutSuffix(path, "/login"); ok && strings.HasPrefix(mount, "auth/") && r.Method != http.MethodGet {
		return s.login(strings.TrimPrefix(mount, "auth/"), body)
	}
	if !s.live(req.Token) {
		return http.StatusForbidden, errs("permission denied")
	}
	switch {
	case path == "auth/token/lookup-self" && r.Method == http.MethodGet:
		exp := s.tokens[req.Token]
		ttl := 0
		if !exp.IsZero() {
			ttl = int(time.Until(exp).Seconds())
		}
		return http.StatusOK, map[string]any{"data": map[string]any{
			"id": req.Token, "policies": []string{"default"}, "renewable": !exp.IsZero(), "ttl": ttl,
			"creation_ttl": int(s.TokenTTL.Seconds()), "num_uses": 0, "orphan": true, "path": "auth/token/create",
		}}
	case path == "auth/token/renew-self" && r.Method != http.MethodGet:
		if !s.tokens[req.Token].IsZero() {
			s.tokens[req.Token] = time.Now().Add(s.TokenTTL)
		}
		return http.StatusOK, s.authResponse(req.Token, nil)
	case strings.Contains("/"+path+"/", "/data/"):
		switch r.Method {
		case http.MethodGet:
			e := s.kv[path]
			if e == nil {
				return http.StatusNotFound, errs()
			}
			return http.StatusOK, map[string]any{
				"request_id": newToken(), "lease_id": "", "renewable": false, "lease_duration": 0,
				"data":      map[string]any{"data": e.data, "metadata": s.metadata(e)},
				"wrap_info": nil, "warnings": nil, "auth": nil,
			}
		case http.MethodPost, http.MethodPut:
			data, _ := body["data"].(map[string]any)
			if data == nil {
				return http.StatusBadRequest, errs("no data provided")
			}
			return http.StatusOK, map[string]any{"data": s.metadata(s.put(path, data))}
		}
	}
	return http.StatusNotFound, errs()
}

func (s *Server) metadata(e *entry) map[string]any {
	return map[string]any{"created_time": e.created.Format(time.RFC3339Nano), "custom_metadata": nil,
		"deletion_time": "", "destroyed": false, "version": e.version}
}

func (s *Server) live(token string) bool {
	exp, ok := s.tokens[token]
	return ok && (exp.IsZero() || time.Now().Before(exp))
}

func (s *Server) authResponse(token string, meta map[string]any) map[string]any {
	return map[string]any{"request_id": newToken(), "lease_id": "", "renewable": false, "lease_duration": 0, "data": nil,
		"auth": map[string]any{
			"client_token": token, "accessor": newToken(), "policies": []string{"default"}, "token_policies": []string{"default"},
			"metadata": meta, "lease_duration": int(s.TokenTTL.Seconds()), "renewable": true,
		}}
}

func (s *Server) issue(method string, meta map[string]any) (int, map[string]any) {
	tok := newToken()
	s.tokens[tok] = time.Now().Add(s.TokenTTL)
	s.logins[method]++
	return http.StatusOK, s.authResponse(tok, meta)
}

func str(m map[string]any, k string) string { v, _ := m[k].(string); return v }

func (s *Server) login(mount string, body map[string]any) (int, map[string]any) {
	switch mount {
	case "approle":
		roleID, secretID := str(body, "role_id"), str(body, "secret_id")
		if roleID == "" {
			return http.StatusBadRequest, errs("missing role_id")
		}
		if want, ok := s.approles[roleID]; !ok || want != secretID {
			return http.StatusBadRequest, errs("invalid role or secret ID")
		}
		return s.issue("approle", map[string]any{"role_name": roleID})
	case "kubernetes":
		role, jwt := str(body, "role"), str(body, "jwt")
		if role == "" || jwt == "" {
			return http.StatusBadRequest, errs("missing role or jwt")
		}
		if want, ok := s.k8s[role]; !ok || want != jwt {
			return http.StatusForbidden, errs("permission denied")
		}
		return s.issue("kubernetes", map[string]any{"role": role})
	case "aws":
		role := str(body, "role")
		if !s.awsRoles[role] {
			return http.StatusBadRequest, errs("entry for role " + role + " not found")
		}
		if msg := checkIAM(body); msg != "" {
			return http.StatusBadRequest, errs(msg)
		}
		return s.issue("aws", map[string]any{"role": role})
	}
	return http.StatusNotFound, errs("no handler for route \"auth/" + mount + "/login\". route entry not found.")
}

// checkIAM checks an AWS IAM login as Vault does before it replays it to
// STS: a POST of GetCallerIdentity, signed with SigV4.
func checkIAM(body map[string]any) string {
	dec := func(k string) string {
		b, err := base64.StdEncoding.DecodeString(str(body, k))
		if err != nil {
			return ""
		}
		return string(b)
	}
	if str(body, "iam_http_request_method") != http.MethodPost {
		return "iam_http_request_method must be POST"
	}
	if u := dec("iam_request_url"); !strings.HasPrefix(u, "https://sts.") {
		return "iam_request_url is not an STS endpoint"
	}
	if dec("iam_request_body") != "Action=GetCallerIdentity&Version=2011-06-15" {
		return "iam_request_body is not GetCallerIdentity"
	}
	var hdr map[string][]string
	if err := json.Unmarshal([]byte(dec("iam_request_headers")), &hdr); err != nil {
		return "iam_request_headers is not a JSON object"
	}
	auth := strings.Join(hdr["Authorization"], "")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=") || !strings.Contains(auth, "/sts/aws4_request") || len(hdr["X-Amz-Date"]) == 0 {
		return "iam_request_headers carry no SigV4 signature for sts"
	}
	return ""
}
