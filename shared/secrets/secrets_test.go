package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func TestParseRef(t *testing.T) {
	for _, c := range []struct {
		in                string
		ok                bool
		scheme, path, key string
	}{
		{"vault:secret/data/postgres#password", true, "vault", "secret/data/postgres", "password"},
		{"vault:secret/app", true, "vault", "secret/app", ""},
		{"vault:8200", false, "", "", ""},
		{"vault:", false, "", "", ""},
		{"aws-sm:prod/db#password", true, "aws-sm", "prod/db", "password"},
		{"aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", true, "aws-sm", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", ""},
		{"gcp-sm:projects/p/secrets/s/versions/latest", true, "gcp-sm", "projects/p/secrets/s/versions/latest", ""},
		{"postgres://u:p@h/db", false, "", "", ""},
		{"file:///tmp/x", false, "", "", ""},
	} {
		r, ok := ParseRef(c.in)
		if ok != c.ok || ok && (r.Scheme != c.scheme || r.Path != c.path || r.Key != c.key) {
			t.Errorf("ParseRef(%q) = %+v, %v", c.in, r, ok)
		}
	}
}

func TestEnvProviderAndResolveNode(t *testing.T) {
	t.Setenv("APP_SECRET_DATA_POSTGRES_PASSWORD", "pg-env-value-1")
	cfg := node(t, "prefix: APP_")
	r := NewResolver(Env, cfg)
	in := node(t, "host: db\npassword: vault:secret/data/postgres#password\nlist: [a, 'vault:secret/data/postgres#password']\n")
	out, refs, err := r.ResolveNode(context.Background(), in, "sources.db.config")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Raw != "vault:secret/data/postgres#password" {
		t.Errorf("refs = %v", refs)
	}
	if got := spec.Find(out, "password").Value; got != "pg-env-value-1" {
		t.Errorf("password = %q", got)
	}
	if got := spec.Find(out, "list").Content[1].Value; got != "pg-env-value-1" {
		t.Errorf("list[1] = %q", got)
	}
	// The original document keeps the reference.
	if got := spec.Find(in, "password").Value; got != "vault:secret/data/postgres#password" {
		t.Errorf("input changed: %q", got)
	}
	if Redact("x pg-env-value-1 y") != "x **** y" {
		t.Errorf("value not remembered for redaction")
	}
}

func TestUnresolvableNamesPathAndProvider(t *testing.T) {
	r := NewResolver(Env, nil)
	in := node(t, "user: app\npassword: vault:secret/data/missing#password\n")
	_, _, err := r.ResolveNode(context.Background(), in, "sinks.pg.config")
	var ps spec.Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("err = %v", err)
	}
	p := ps[0]
	if p.Path != "sinks.pg.config.password" || p.Line != 2 || !strings.Contains(p.Message, "the env provider refused it") ||
		!strings.Contains(p.Message, "SECRET_DATA_MISSING_PASSWORD is not set") {
		t.Errorf("problem = %+v", p)
	}
	// No secrets block: a vault: reference says so.
	_, _, err = NewResolver("", nil).ResolveNode(context.Background(), in, "sinks.pg.config")
	if err == nil || !strings.Contains(err.Error(), "needs a secrets: block") {
		t.Errorf("err = %v", err)
	}
	// A provider that is not linked says which tag links it.
	_, _, err = NewResolver("", nil).ResolveNode(context.Background(), node(t, "k: aws-sm:db#password"), "x")
	if !Linked(AWS) && (err == nil || !strings.Contains(err.Error(), "secrets.awssm")) {
		t.Errorf("err = %v", err)
	}
}

func TestFileProvider(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secret", "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secret", "data", "postgres.json"), []byte(`{"password":"file-pw-123","port":5432}`), 0o600)
	os.WriteFile(filepath.Join(dir, "secret", "data", "key.pem"), []byte("-----BEGIN KEY-----\nabc\n-----END KEY-----\n"), 0o600)
	r := NewResolver(File, node(t, "dir: "+dir))
	ctx := context.Background()
	for ref, want := range map[string]string{
		"vault:secret/data/postgres#password": "file-pw-123",
		"vault:secret/data/postgres#port":     "5432",
		"vault:secret/data/key.pem":           "-----BEGIN KEY-----\nabc\n-----END KEY-----",
	} {
		rf, _ := ParseRef(ref)
		got, err := r.Resolve(ctx, rf)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v", ref, got, err)
		}
	}
	for ref, want := range map[string]string{
		"vault:secret/data/postgres#user": `has no key "user"`,
		"vault:secret/data/nothing#x":     "not found",
		"vault:../../etc/passwd":          "leaves the secrets directory",
	} {
		rf, _ := ParseRef(ref)
		_, err := r.Resolve(ctx, rf)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "file-pw-123") {
			t.Errorf("%s: err = %v", ref, err)
		}
	}
}

type countingProvider struct {
	n   int
	val string
}

func (c *countingProvider) Get(context.Context, Ref) (string, error) { c.n++; return c.val, nil }

func TestCacheAndRefresh(t *testing.T) {
	cp := &countingProvider{val: "first-value"}
	Register("test-counting", func(context.Context, *yaml.Node, string) (Provider, error) { return cp, nil })
	r := NewResolver("test-counting", nil)
	ref, _ := ParseRef("vault:secret/data/x#k")
	ctx := context.Background()
	for range 3 {
		if v, err := r.Resolve(ctx, ref); err != nil || v != "first-value" {
			t.Fatalf("Resolve = %q, %v", v, err)
		}
	}
	if cp.n != 1 {
		t.Errorf("provider read %d times; the cache should answer after the first", cp.n)
	}
	if changed, err := r.Refresh(ctx, []Ref{ref}); err != nil || changed {
		t.Errorf("Refresh without rotation = %v, %v", changed, err)
	}
	cp.val = "second-value"
	if changed, err := r.Refresh(ctx, []Ref{ref}); err != nil || !changed {
		t.Errorf("Refresh after rotation = %v, %v", changed, err)
	}
	if v, _ := r.Resolve(ctx, ref); v != "second-value" {
		t.Errorf("after refresh: %q", v)
	}
}

func TestRedactWriterAndError(t *testing.T) {
	Remember(`quote"and\back`)
	var b strings.Builder
	w := RedactWriter(&b)
	w.Write([]byte(`{"msg":"quote\"and\\back"} plain quote"and\back`))
	if strings.Contains(b.String(), "quote") {
		t.Errorf("leaked: %s", b.String())
	}
	err := RedactError(errors.New(`dsn with quote"and\back inside`))
	if strings.Contains(err.Error(), "quote") {
		t.Errorf("leaked: %v", err)
	}
}
