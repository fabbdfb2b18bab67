package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/secrets/vault/vaultfake"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// canary is the secret: it must reach the webhook and nothing else.
const canary = "Lk9-leak-canary-7f3e2a91"

// hook is a webhook receiver that wants "Bearer <canary>" and, when
// refusing, quotes the header it got in its answer, as careless servers
// do: the sink's error then carries the value, and only redaction keeps it
// out of what the CLI prints.
type hook struct {
	srv      *httptest.Server
	refuse   atomic.Bool
	accepted atomic.Int64
	mu       sync.Mutex
	badAuth  []string
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		auth := r.Header.Get("Authorization")
		if h.refuse.Load() || auth != "Bearer "+canary {
			if auth != "Bearer "+canary {
				h.mu.Lock()
				h.badAuth = append(h.badAuth, auth)
				h.mu.Unlock()
			}
			http.Error(w, "token rejected: "+auth, http.StatusUnauthorized)
			return
		}
		h.accepted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func leakPipeline(v *vaultfake.Server, hookURL, ref, extra string) string {
	return fmt.Sprintf(`
secrets:
  provider: vault
  config:
    address: %s
    role_id: connect-role
    secret_id: connect-secret-id
settings:
  log_level: debug
  max_consecutive_errors: 2
  retry: {max_retries: 1, initial_backoff_ms: 10, max_backoff_ms: 20}
%s
sources:
  orders:
    connector: datagen
    topic: leak.orders
    config: {pattern: orders, events_per_second: 0, max_events: 25, seed: 3}
sinks:
  hook:
    connector: http-webhook
    topics: [leak.orders]
    config:
      url: %s
      headers:
        Authorization: %s
      retry: {max_attempts: 1}
    circuit_breaker: {enabled: false}
`, v.URL, extra, hookURL, ref)
}

// TestSecretsNeverLeak runs validate, check, local, run and invoke of the
// built CLI on a pipeline whose webhook token is a vault: reference, lets
// the webhook refuse it with an answer quoting the token, and greps
// everything the processes printed (stdout, stderr, the logs on it) and
// served (/metrics, /health) for the value. The webhook getting the right
// token shows the value was resolved and used.
func TestSecretsNeverLeak(t *testing.T) {
	bin := buildCLI(t)
	v := vaultfake.Start(t)
	v.Put("secret/data/hook", map[string]any{"authorization": "Bearer " + canary})
	v.AddAppRole("connect-role", "connect-secret-id")
	h := newHook(t)
	const ref = "vault:secret/data/hook#authorization"
	file := writeFile(t, leakPipeline(v, h.srv.URL, ref, ""))

	var outputs []string
	exe := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "REDIS_URL=")
		out, err := cmd.CombinedOutput()
		outputs = append(outputs, strings.Join(args, " ")+"\n"+string(out))
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}

	if code, out := exe("validate", "-c", file); code != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("validate: exit %d\n%s", code, out)
	}
	if code, out := exe("validate", "--json", "-c", file); code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("validate --json: exit %d\n%s", code, out)
	}
	// An unresolvable reference: its YAML path and the refusing provider.
	bad := writeFile(t, leakPipeline(v, h.srv.URL, "vault:secret/data/hook#nokey", ""))
	if code, out := exe("validate", "--json", "-c", bad); code != exitUsage ||
		!strings.Contains(out, `"path": "sinks.hook.config.headers.Authorization"`) ||
		!strings.Contains(out, `secret reference vault:secret/data/hook#nokey: the vault provider refused it`) ||
		!strings.Contains(out, `has no key \"nokey\"`) {
		t.Fatalf("validate --json of a bad reference: exit %d\n%s", code, out)
	}
	exe("check", "-c", file)

	if code, out := exe("local", "-c", file, "--quiet"); code != 0 || h.accepted.Load() == 0 {
		t.Fatalf("local: exit %d, webhook accepted %d (refused: %q)\n%s", code, h.accepted.Load(), h.badAuth, out)
	}
	// Refused with the token quoted in the answer: failures get logged.
	h.refuse.Store(true)
	exe("local", "-c", file, "--quiet")
	exe("invoke", "--function", "sink/http-webhook", "--event", samples+"events/sqs.json", "-c", file)
	h.refuse.Store(false)
	exe("invoke", "--function", "sink/http-webhook", "--event", samples+"events/sqs.json", "-c", file)

	// local with the metrics and health endpoints, scraped while it runs.
	port := freePort(t)
	served := writeFile(t, strings.Replace(leakPipeline(v, h.srv.URL, ref, fmt.Sprintf("  metrics: {enabled: true, port: %d}\n  health: {enabled: true, port: %d}", port, port)),
		"max_events: 25", "max_events: 0", 1))
	h.refuse.Store(true)
	p := start(t, bin, "local", "-c", served, "--quiet")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	scrape := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	until(t, "the sink's failures to show in /metrics", func() bool {
		return strings.Contains(scrape("/metrics"), `name="hook"`) || p.exited()
	})
	for _, path := range []string{"/metrics", "/health", "/health/live", "/health/ready"} {
		outputs = append(outputs, "GET "+path+"\n"+scrape(path))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t)
	outputs = append(outputs, "local (served)\n"+p.stderr.String())
	h.refuse.Store(false)

	// run: the sink as a service on Redis Streams, when Redis is here.
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err == nil {
		c.Close()
		e := newRunEnv(t)
		runFile := writeFile(t, strings.NewReplacer("leak.orders", e.topc, "  orders:\n", "  "+e.source+":\n", "  hook:\n", "  "+e.sink+":\n").
			Replace(leakPipeline(v, h.srv.URL, ref, fmt.Sprintf("  state: {redis_url: \"redis://%s/0\"}\n  metrics: {enabled: true, port: %d}", redisAddr, port))))
		src := start(t, bin, "run", "source", e.source, "-c", runFile)
		snk := start(t, bin, "run", "sink", e.sink, "-c", runFile)
		until(t, "run sink to serve its metrics", func() bool {
			return strings.Contains(scrape("/metrics"), "rivven_connector") || snk.exited()
		})
		outputs = append(outputs, "run sink /metrics\n"+scrape("/metrics"), "run sink /health\n"+scrape("/health"))
		until(t, "run sink to deliver", func() bool { return h.accepted.Load() > 30 || snk.exited() })
		for _, p := range []*proc{src, snk} {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.wait(t)
		}
		outputs = append(outputs, "run source\n"+src.stderr.String(), "run sink\n"+snk.stderr.String())
	} else if testenv.Required() {
		t.Fatalf("redis at %s: %v", redisAddr, err)
	}

	all := strings.Join(outputs, "\n----\n")
	if strings.Contains(all, canary) {
		i := strings.Index(all, canary)
		t.Fatalf("the secret value appears in the output:\n...%s...", all[max(0, i-400):min(len(all), i+100)])
	}
	// The failures were there to leak: the refusals were logged.
	if !strings.Contains(all, "token rejected: ****") {
		t.Errorf("no refusal was printed, so redaction was not exercised:\n%s", all)
	}
}
