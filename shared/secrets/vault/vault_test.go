package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/secrets/vault"
	"github.com/rivven/rivven-connect/shared/secrets/vault/vaultfake"
	"github.com/rivven/rivven-connect/shared/spec"
)

func cfg(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func ref(s string) secrets.Ref {
	r, ok := secrets.ParseRef(s)
	if !ok {
		panic(s)
	}
	return r
}

func open(t *testing.T, src string) *vault.Provider {
	t.Helper()
	p, err := vault.Open(context.Background(), cfg(t, src), "secrets.config")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*vault.Provider).Close() })
	return p.(*vault.Provider)
}

// The reference's example: AppRole with role_id and secret_id, then a
// KV v2 read of secret/data/postgres#password.
func TestAppRoleAndKVv2(t *testing.T) {
	v := vaultfake.Start(t)
	v.Put("secret/data/postgres", map[string]any{"password": "pg-vault-pw", "user": "app", "port": 5432})
	v.AddAppRole("role-abc", "sid-xyz")
	p := open(t, "address: "+v.URL+"\nrole_id: role-abc\nsecret_id: sid-xyz\n")
	ctx := context.Background()
	for r, want := range map[string]string{
		"vault:secret/data/postgres#password": "pg-vault-pw",
		"vault:secret/data/postgres#port":     "5432",
	} {
		got, err := p.Get(ctx, ref(r))
		if err != nil || got != want {
			t.Errorf("%s = %q, %v", r, got, err)
		}
	}
	if v.Logins("approle") != 1 {
		t.Errorf("approle logins = %d", v.Logins("approle"))
	}
	// The login is what the Vault docs show: POST auth/approle/login with
	// role_id and secret_id, and reads carry the token it returned.
	var login, read *vaultfake.Request
	for _, r := range v.Requests() {
		switch r.Path {
		case "/v1/auth/approle/login":
			login = &r
		case "/v1/secret/data/postgres":
			read = &r
		}
	}
	if login == nil || login.Method != "PUT" && login.Method != "POST" || login.Body["role_id"] != "role-abc" || login.Body["secret_id"] != "sid-xyz" {
		t.Errorf("login = %+v", login)
	}
	if read == nil || read.Method != "GET" || !strings.HasPrefix(read.Token, "hvs.") || read.Status != 200 {
		t.Errorf("read = %+v", read)
	}
	for r, want := range map[string]string{
		"vault:secret/data/postgres#nope":   `has no key "nope"`,
		"vault:secret/data/postgres":        "has 3 keys (password, port, user): name one after #",
		"vault:secret/data/absent#password": "no secret at this path",
	} {
		_, err := p.Get(ctx, ref(r))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pg-vault-pw") {
			t.Errorf("%s: err = %v", r, err)
		}
	}
}

func TestWrongSecretIDFailsAtOpen(t *testing.T) {
	v := vaultfake.Start(t)
	v.AddAppRole("role-abc", "sid-xyz")
	_, err := vault.Open(context.Background(), cfg(t, "address: "+v.URL+"\nrole_id: role-abc\nsecret_id: wrong-secret-id\n"), "secrets.config")
	if err == nil || !strings.Contains(err.Error(), "approle login: HTTP 400: invalid role or secret ID") || strings.Contains(err.Error(), "wrong-secret-id") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigProblemsNamePaths(t *testing.T) {
	_, err := vault.Open(context.Background(), cfg(t, "auth: approle\nrole_id: r\nsecret_id: 42s3cret-x\nauth_typo: 1\n"), "secrets.config")
	ps, ok := err.(spec.Problems)
	if !ok || !strings.Contains(err.Error(), "secrets.config.auth_typo") {
		t.Fatalf("err = %v", err)
	}
	_ = ps
	_, err = vault.Open(context.Background(), cfg(t, "auth: kubernetes\n"), "secrets.config")
	if err == nil || !strings.Contains(err.Error(), "secrets.config.kubernetes_role") {
		t.Errorf("err = %v", err)
	}
}

func TestTokenAuth(t *testing.T) {
	v := vaultfake.Start(t)
	v.Put("secret/data/app", map[string]any{"api_key": "k-123456"})
	v.AddToken("root-token-1", 0)
	p := open(t, "address: "+v.URL+"\ntoken: root-token-1\n")
	if got, err := p.Get(context.Background(), ref("vault:secret/data/app")); err != nil || got != "k-123456" {
		t.Errorf("single key = %q, %v", got, err)
	}
	// VAULT_TOKEN and VAULT_ADDR are read when the block leaves them out.
	t.Setenv("VAULT_ADDR", v.URL)
	t.Setenv("VAULT_TOKEN", "root-token-1")
	p2 := open(t, "{}")
	if got, err := p2.Get(context.Background(), ref("vault:secret/data/app#api_key")); err != nil || got != "k-123456" {
		t.Errorf("from env = %q, %v", got, err)
	}
	t.Setenv("VAULT_TOKEN", "")
	_, err := vault.Open(context.Background(), cfg(t, "address: "+v.URL), "secrets.config")
	if err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("err = %v", err)
	}
}

func TestKubernetesAuth(t *testing.T) {
	v := vaultfake.Start(t)
	v.Put("secret/data/app", map[string]any{"k": "kube-value"})
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.sig"
	v.AddKubernetesRole("connect", jwt)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(jwt), 0o600)
	p := open(t, "address: "+v.URL+"\nkubernetes_role: connect\nkubernetes_token_path: "+tokenFile+"\n")
	if got, err := p.Get(context.Background(), ref("vault:secret/data/app#k")); err != nil || got != "kube-value" {
		t.Errorf("= %q, %v", got, err)
	}
	if v.Logins("kubernetes") != 1 {
		t.Errorf("logins = %d", v.Logins("kubernetes"))
	}
	os.WriteFile(tokenFile, []byte("other.jwt.value"), 0o600)
	_, err := vault.Open(context.Background(), cfg(t, "address: "+v.URL+"\nkubernetes_role: connect\nkubernetes_token_path: "+tokenFile+"\n"), "secrets.config")
	if err == nil || !strings.Contains(err.Error(), "kubernetes login: HTTP 403: permission denied") {
		t.Errorf("err = %v", err)
	}
}

func TestAWSIAMAuth(t *testing.T) {
	v := vaultfake.Start(t)
	v.Put("secret/data/app", map[string]any{"k": "aws-value"})
	v.AddAWSRole("connect-role")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	p := open(t, "address: "+v.URL+"\naws_role: connect-role\naws_server_id: vault.example.com\n")
	if got, err := p.Get(context.Background(), ref("vault:secret/data/app#k")); err != nil || got != "aws-value" {
		t.Errorf("= %q, %v", got, err)
	}
	var login *vaultfake.Request
	for _, r := range v.Requests() {
		if r.Path == "/v1/auth/aws/login" {
			login = &r
		}
	}
	if login == nil || login.Body["role"] != "connect-role" {
		t.Fatalf("login = %+v", login)
	}
	// The secret access key itself is never sent, only the signature.
	for _, val := range login.Body {
		if s, _ := val.(string); strings.Contains(s, "wJalrXUtnFEMI") {
			t.Errorf("the secret key was sent: %v", login.Body)
		}
	}
}

// A token revoked behind the provider's back: the 403 makes it log in
// again once and the read succeeds.
func TestReloginAfterRevocation(t *testing.T) {
	v := vaultfake.Start(t)
	v.Put("secret/data/app", map[string]any{"k": "value-1"})
	v.AddAppRole("r", "s")
	p := open(t, "address: "+v.URL+"\nrole_id: r\nsecret_id: s\n")
	time.Sleep(1100 * time.Millisecond) // logins closer than 1s apart are not repeated
	v.RevokeAll()
	if got, err := p.Get(context.Background(), ref("vault:secret/data/app#k")); err != nil || got != "value-1" {
		t.Errorf("= %q, %v", got, err)
	}
	if v.Logins("approle") != 2 {
		t.Errorf("logins = %d, want 2", v.Logins("approle"))
	}
}

// Tokens are renewed before they expire (renew-self), so a provider kept
// open past the token's TTL still reads.
func TestTokenRenewal(t *testing.T) {
	v := vaultfake.Start(t)
	v.TokenTTL = 2 * time.Second
	v.Put("secret/data/app", map[string]any{"k": "value-1"})
	v.AddAppRole("r", "s")
	p := open(t, "address: "+v.URL+"\nrole_id: r\nsecret_id: s\n")
	deadline := time.Now().Add(10 * time.Second)
	for renewed := false; !renewed; {
		for _, r := range v.Requests() {
			renewed = renewed || r.Path == "/v1/auth/token/renew-self" && r.Status == 200
		}
		if time.Now().After(deadline) {
			t.Fatal("the token was never renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := p.Get(context.Background(), ref("vault:secret/data/app#k")); err != nil || got != "value-1" {
		t.Errorf("= %q, %v", got, err)
	}
}
