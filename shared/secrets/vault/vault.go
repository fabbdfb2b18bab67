// Package vault is the secrets provider for HashiCorp Vault and OpenBao:
// vault:<path>#<key> references read KV v2 (or any logical path: KV v1,
// dynamic database credentials) through github.com/hashicorp/vault/api.
//
// Authentication is a token, AppRole (role_id / secret_id), Kubernetes
// (the pod's service account token) or AWS IAM (a signed
// sts:GetCallerIdentity, as `vault login -method=aws` sends it). Tokens
// from a login, and renewable tokens given as they are, are renewed in
// the background for as long as Vault allows, then obtained again by a
// new login; leased secrets (dynamic credentials) are renewed the same
// way. A read refused with 403 logs in again once (the token may have
// been revoked) before the refusal is reported.
package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	vapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() { secrets.Register(secrets.Vault, Open) }

// Config is the secrets.config block of provider vault.
type Config struct {
	Address   string `yaml:"address" doc:"Vault or OpenBao address, e.g. https://vault.example.com:8200; VAULT_ADDR when empty."`
	Namespace string `yaml:"namespace" doc:"Vault Enterprise / OpenBao namespace; VAULT_NAMESPACE when empty."`
	Auth      string `yaml:"auth" enum:"token,approle,kubernetes,aws" doc:"Auth method. Default: approle when role_id is set, kubernetes when kubernetes_role is, aws when aws_role is, else token."`

	Token string `yaml:"token" secret:"true" doc:"Token for auth token; VAULT_TOKEN when empty."`

	RoleID       string `yaml:"role_id" doc:"AppRole role ID."`
	SecretID     string `yaml:"secret_id" secret:"true" doc:"AppRole secret ID."`
	AppRoleMount string `yaml:"approle_mount" default:"approle" doc:"Mount path of the AppRole auth method."`

	KubernetesRole      string `yaml:"kubernetes_role" doc:"Vault role for Kubernetes auth."`
	KubernetesMount     string `yaml:"kubernetes_mount" default:"kubernetes" doc:"Mount path of the Kubernetes auth method."`
	KubernetesTokenPath string `yaml:"kubernetes_token_path" default:"/var/run/secrets/kubernetes.io/serviceaccount/token" doc:"The pod's service account token."`

	AWSRole     string `yaml:"aws_role" doc:"Vault role for AWS IAM auth (credentials from the default chain: the function's or task's role)."`
	AWSMount    string `yaml:"aws_mount" default:"aws" doc:"Mount path of the AWS auth method."`
	AWSRegion   string `yaml:"aws_region" doc:"STS region signed for; us-east-1 (the global endpoint) when empty."`
	AWSServerID string `yaml:"aws_server_id" doc:"Value of the X-Vault-AWS-IAM-Server-ID header, when the auth method requires one."`

	CACert        string `yaml:"ca_cert" doc:"CA bundle (PEM file) for Vault's TLS certificate; VAULT_CACERT when empty."`
	TLSServerName string `yaml:"tls_server_name" doc:"Server name to verify Vault's certificate against."`
	TimeoutSecs   int    `yaml:"timeout_secs" default:"30" min:"1" max:"600" doc:"Timeout of each request to Vault."`
}

// Validate checks that the chosen auth method has what it needs.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	switch c.method() {
	case "approle":
		if c.RoleID == "" {
			ps = append(ps, spec.Problem{Path: "role_id", Message: "required with auth approle"})
		}
		if c.SecretID == "" {
			ps = append(ps, spec.Problem{Path: "secret_id", Message: "required with auth approle"})
		}
	case "kubernetes":
		if c.KubernetesRole == "" {
			ps = append(ps, spec.Problem{Path: "kubernetes_role", Message: "required with auth kubernetes"})
		}
	case "aws":
		if c.AWSRole == "" {
			ps = append(ps, spec.Problem{Path: "aws_role", Message: "required with auth aws"})
		}
	}
	return ps
}

func (c *Config) method() string {
	switch {
	case c.Auth != "":
		return c.Auth
	case c.RoleID != "":
		return "approle"
	case c.KubernetesRole != "":
		return "kubernetes"
	case c.AWSRole != "":
		return "aws"
	}
	return "token"
}

// Provider reads secrets from Vault.
type Provider struct {
	cfg    *Config
	client *vapi.Client

	mu       sync.Mutex // serialises logins
	stop     chan struct{}
	wg       sync.WaitGroup
	loggedIn time.Time
	closed   bool
}

// Open opens the provider: it builds the client and logs in (so a wrong
// role or secret ID fails here, at start).
func Open(ctx context.Context, node *yaml.Node, path string) (secrets.Provider, error) {
	if node == nil || node.Kind == 0 {
		node = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	cfg, ps := spec.Decode[Config](node, path)
	if len(ps) > 0 {
		return nil, spec.Problems(ps)
	}
	return New(ctx, cfg)
}

// New opens a provider from a decoded config.
func New(ctx context.Context, cfg *Config) (*Provider, error) {
	vc := vapi.DefaultConfig()
	if vc.Error != nil {
		return nil, vc.Error
	}
	if cfg.Address != "" {
		vc.Address = cfg.Address
	}
	if cfg.TimeoutSecs > 0 {
		vc.Timeout = time.Duration(cfg.TimeoutSecs) * time.Second
	}
	if cfg.CACert != "" || cfg.TLSServerName != "" {
		if err := vc.ConfigureTLS(&vapi.TLSConfig{CACert: cfg.CACert, TLSServerName: cfg.TLSServerName}); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	client, err := vapi.NewClient(vc)
	if err != nil {
		return nil, err
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	p := &Provider{cfg: cfg, client: client, stop: make(chan struct{})}
	if err := p.login(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Client is the Vault client (after login), for tests.
func (p *Provider) Client() *vapi.Client { return p.client }

// login authenticates with the configured method and starts renewing the
// token it got.
func (p *Provider) login(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var (
		auth *vapi.Secret
		err  error
	)
	switch p.cfg.method() {
	case "token":
		tok := p.cfg.Token
		if tok == "" {
			tok = os.Getenv(vapi.EnvVaultToken)
		}
		if tok == "" {
			return errors.New("no token: set secrets.config.token or VAULT_TOKEN, or configure role_id/secret_id (AppRole), kubernetes_role or aws_role")
		}
		p.client.SetToken(tok)
		// A renewable token given as it is is renewed too; a lookup that
		// is refused (a token without lookup-self) just means no renewal.
		if s, lerr := p.client.Auth().Token().LookupSelfWithContext(ctx); lerr == nil && s != nil {
			renewable, _ := s.TokenIsRenewable()
			ttl, _ := s.TokenTTL()
			if renewable && ttl > 0 {
				auth = &vapi.Secret{Auth: &vapi.SecretAuth{ClientToken: tok, Renewable: true, LeaseDuration: int(ttl.Seconds())}}
			}
		}
	case "approle":
		var m *approle.AppRoleAuth
		m, err = approle.NewAppRoleAuth(p.cfg.RoleID, &approle.SecretID{FromString: p.cfg.SecretID}, approle.WithMountPath(p.cfg.AppRoleMount))
		if err == nil {
			auth, err = p.client.Auth().Login(ctx, m)
		}
	case "kubernetes":
		var m *kubernetes.KubernetesAuth
		m, err = kubernetes.NewKubernetesAuth(p.cfg.KubernetesRole, kubernetes.WithMountPath(p.cfg.KubernetesMount),
			kubernetes.WithServiceAccountTokenPath(p.cfg.KubernetesTokenPath))
		if err == nil {
			auth, err = p.client.Auth().Login(ctx, m)
		}
	case "aws":
		auth, err = p.awsLogin(ctx)
	}
	if err != nil {
		return fmt.Errorf("%s login: %w", p.cfg.method(), oneLine(err))
	}
	p.loggedIn = time.Now()
	if auth != nil && auth.Auth != nil && auth.Auth.Renewable && auth.Auth.LeaseDuration > 0 {
		p.watch(auth, func() {
			// The token reached its max TTL or could not be renewed: log
			// in again (a given token cannot be replaced; reads will tell).
			if p.cfg.method() != "token" {
				lctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(p.cfg.TimeoutSecs, 1))*time.Second)
				_ = p.login(lctx)
				cancel()
			}
		})
	}
	return nil
}

// watch renews secret (a token or a lease) in the background until it can
// no longer be renewed, then calls done.
func (p *Provider) watch(secret *vapi.Secret, done func()) {
	if p.closed {
		return
	}
	w, err := p.client.NewLifetimeWatcher(&vapi.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		go w.Start()
		defer w.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-w.RenewCh():
			case <-w.DoneCh():
				select {
				case <-p.stop:
				default:
					done()
				}
				return
			}
		}
	}()
}

// awsLogin logs in with AWS IAM auth: a signed sts:GetCallerIdentity
// request, which Vault replays to STS to learn who is calling.
func (p *Provider) awsLogin(ctx context.Context) (*vapi.Secret, error) {
	region := p.cfg.AWSRegion
	if region == "" {
		region = "us-east-1"
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, err
	}
	creds, err := ac.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS credentials: %w", err)
	}
	data, err := SignedIAMLogin(ctx, creds, region, p.cfg.AWSServerID, time.Now())
	if err != nil {
		return nil, err
	}
	data["role"] = p.cfg.AWSRole
	s, err := p.client.Logical().WriteWithContext(ctx, "auth/"+strings.Trim(p.cfg.AWSMount, "/")+"/login", data)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, errors.New("the login answered no token")
	}
	p.client.SetToken(s.Auth.ClientToken)
	return s, nil
}

// SignedIAMLogin returns the iam_* fields of an AWS IAM login: a
// sts:GetCallerIdentity request signed with creds (SigV4), base64-encoded
// as Vault's aws auth method expects them.
func SignedIAMLogin(ctx context.Context, creds aws.Credentials, region, serverID string, now time.Time) (map[string]any, error) {
	const body = "Action=GetCallerIdentity&Version=2011-06-15"
	endpoint := "https://sts.amazonaws.com/"
	if region != "us-east-1" {
		endpoint = "https://sts." + region + ".amazonaws.com/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if serverID != "" {
		req.Header.Set("X-Vault-AWS-IAM-Server-ID", serverID)
	}
	sum := "ab821ae955788b0e33ebd34c208442ccfc2d406e2edc5e7a39bd6458fbb4f843" // SHA-256 of body
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, sum, "sts", region, now); err != nil {
		return nil, err
	}
	headers, err := json.Marshal(req.Header)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"iam_http_request_method": http.MethodPost,
		"iam_request_url":         base64.StdEncoding.EncodeToString([]byte(endpoint)),
		"iam_request_body":        base64.StdEncoding.EncodeToString([]byte(body)),
		"iam_request_headers":     base64.StdEncoding.EncodeToString(headers),
	}, nil
}

// Get reads ref's path and returns its key: from the data.data object of
// a KV v2 read, else from data.
func (p *Provider) Get(ctx context.Context, ref secrets.Ref) (string, error) {
	path := strings.Trim(ref.Path, "/")
	s, err := p.client.Logical().ReadWithContext(ctx, path)
	if isForbidden(err) && p.cfg.method() != "token" && time.Since(p.loginTime()) > time.Second {
		// The token may have been revoked or expired: log in once more.
		if lerr := p.login(ctx); lerr == nil {
			s, err = p.client.Logical().ReadWithContext(ctx, path)
		}
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, oneLine(err))
	}
	if s == nil || s.Data == nil {
		return "", fmt.Errorf("read %s: no secret at this path (KV v2 paths include data/, e.g. secret/data/app): %w", path, secrets.ErrNotFound)
	}
	data := s.Data
	if inner, ok := data["data"].(map[string]any); ok && strings.Contains("/"+path+"/", "/data/") {
		data = inner
	}
	if s.LeaseID != "" && s.Renewable {
		p.mu.Lock()
		p.watch(s, func() {})
		p.mu.Unlock()
	}
	return pick(data, ref, path)
}

func (p *Provider) loginTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loggedIn
}

// pick returns key of a secret's data; without a key, the only field.
func pick(data map[string]any, ref secrets.Ref, path string) (string, error) {
	key := ref.Key
	if key == "" {
		if len(data) != 1 {
			names := make([]string, 0, len(data))
			for k := range data {
				names = append(names, k)
			}
			sort.Strings(names)
			return "", fmt.Errorf("%s has %d keys (%s): name one after #", path, len(names), strings.Join(names, ", "))
		}
		for k := range data {
			key = k
		}
	}
	v, ok := data[key]
	if !ok {
		return "", fmt.Errorf("%s has no key %q: %w", path, key, secrets.ErrNotFound)
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("%s key %q: %v", path, key, err)
		}
		return string(b), nil
	}
}

func isForbidden(err error) bool {
	var re *vapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// oneLine turns Vault's multi-line API errors into "HTTP 403: permission
// denied" (it names no value: Vault's errors never echo request bodies).
func oneLine(err error) error {
	var re *vapi.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		if msg == "" {
			msg = http.StatusText(re.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", re.StatusCode, msg)
	}
	return err
}

// Close stops the renewals.
func (p *Provider) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}
