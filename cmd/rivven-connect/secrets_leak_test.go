package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// The same for a reference in the settings block.
	badSettings := writeFile(t, leakPipeline(v, h.srv.URL, ref, "  state: {redis_url: \"vault:secret/data/redis#nourl\"}"))
	if code, out := exe("validate", "--json", "-c", badSettings); code != exitUsage ||
		!strings.Contains(out, `"path": "settings.state.redis_url"`) ||
		!strings.Contains(out, `secret reference vault:secret/data/redis#nourl: the vault provider refused it`) {
		t.Fatalf("validate --json of a bad settings reference: exit %d\n%s", code, out)
	}
	if code, out := exe("local", "-c", badSettings, "--quiet"); code != exitUsage ||
		!strings.Contains(out, "settings.state.redis_url: secret reference vault:secret/data/redis#nourl: the vault provider refused it") {
		t.Fatalf("local with a bad settings reference: exit %d\n%s", code, out)
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
		// The services find Redis through a reference in settings.
		v.Put("secret/data/redis", map[string]any{"url": "redis://" + redisAddr + "/0"})
		runFile := writeFile(t, strings.NewReplacer("leak.orders", e.topc, "  orders:\n", "  "+e.source+":\n", "  hook:\n", "  "+e.sink+":\n").
			Replace(leakPipeline(v, h.srv.URL, ref, fmt.Sprintf("  state: {redis_url: \"vault:secret/data/redis#url\"}\n  metrics: {enabled: true, port: %d}", port))))
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

// TestSecretsNeverLeakInPanics builds a CLI with a sink that panics with
// its vault: token in the panic value (testdata/panicplugin), once in its
// Write (a goroutine the engine started, ended by secrets.Crash) and once
// in a goroutine of its own (printed by the Go runtime, redacted by the
// CLI's supervising parent), and runs it in local, invoke and run sink:
// each run must report the panic, exit 2 as a panic does, and never show
// the token.
func TestSecretsNeverLeakInPanics(t *testing.T) {
	if testing.Short() {
		testenv.Unavailable(t, "-short: this test builds a CLI")
	}
	v := vaultfake.Start(t)
	v.Put("secret/data/panicker", map[string]any{"token": canary})
	v.AddAppRole("connect-role", "connect-secret-id")
	pipelineFor := func(in, source, sink, topic, extra string) string {
		return fmt.Sprintf(`
secrets:
  provider: vault
  config: {address: %s, role_id: connect-role, secret_id: connect-secret-id}
settings:
  retry: {max_retries: 1, initial_backoff_ms: 10, max_backoff_ms: 20}
%s
sources:
  %s:
    connector: datagen
    topic: %s
    config: {pattern: orders, events_per_second: 0, max_events: 5, seed: 3}
sinks:
  %s:
    connector: test-panicker
    topics: [%s]
    config: {token: "vault:secret/data/panicker#token", in: %s}
`, v.URL, extra, source, topic, sink, topic, in)
	}

	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	dir := t.TempDir()
	if code, out, errOut := cli(t, "build", "-c", writeFile(t, pipelineFor("write", "orders", "boom", "panic.orders", "")),
		"--with", "example.com/rivven-panicker=testdata/panicplugin", "--out", dir); code != 0 {
		t.Fatalf("build: exit %d: %s%s", code, out, errOut)
	}
	bin := filepath.Join(dir, "rivven-connect")

	// check looks at one run's output: the panic reported with the token
	// blanked out, exit status 2, and the token nowhere.
	check := func(what string, code int, out string) {
		t.Helper()
		if strings.Contains(out, canary) {
			i := strings.Index(out, canary)
			t.Errorf("%s: the secret value appears in the output:\n...%s...", what, out[max(0, i-400):min(len(out), i+100)])
		}
		if code != 2 || !strings.Contains(out, "panic: test-panicker: the server refused token ****") {
			t.Errorf("%s: exit %d, want 2 and the redacted panic in:\n%s", what, code, out)
		}
	}
	exe := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}

	for _, in := range []string{"write", "goroutine"} {
		file := writeFile(t, pipelineFor(in, "orders", "boom", "panic.orders", ""))
		code, out := exe("local", "-c", file, "--quiet")
		check("local ("+in+")", code, out)
		code, out = exe("invoke", "--function", "sink/test-panicker", "--event", samples+"events/sqs.json", "-c", file)
		check("invoke ("+in+")", code, out)

		if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err == nil {
			c.Close()
			e := newRunEnv(t)
			runFile := writeFile(t, pipelineFor(in, e.source, e.sink, e.topc, fmt.Sprintf("  state: {redis_url: \"redis://%s/0\"}", redisAddr)))
			src := start(t, bin, "run", "source", e.source, "-c", runFile)
			snk := start(t, bin, "run", "sink", e.sink, "-c", runFile)
			code := snk.wait(t)
			src.cmd.Process.Signal(syscall.SIGTERM)
			src.wait(t)
			check("run sink ("+in+")", code, snk.stderr.String())
			if strings.Contains(src.stderr.String(), canary) {
				t.Errorf("run source (%s) shows the secret value:\n%s", in, src.stderr)
			}
		} else if testenv.Required() {
			t.Fatalf("redis at %s: %v", redisAddr, err)
		}
	}
}

// positionOf finds the "position" of a webhook body (a Rivven event):
// datagen numbers its events, so it names which event arrived.
func positionOf(v any) string {
	switch x := v.(type) {
	case map[string]any:
		if p, ok := x["position"].(string); ok {
			return p
		}
		for _, c := range x {
			if p := positionOf(c); p != "" {
				return p
			}
		}
	case []any:
		for _, c := range x {
			if p := positionOf(c); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestSecretRotationThroughTheCLI runs local on a pipeline whose webhook
// token is a vault: reference and rotates the token in the middle of the
// run: Vault gets the new value, then the webhook refuses the old one with
// 401. The sink must read the reference again, go on with the new token
// and deliver every event, none lost, and the run end successfully.
func TestSecretRotationThroughTheCLI(t *testing.T) {
	bin := buildCLI(t)
	v := vaultfake.Start(t)
	const oldToken, newToken = "rotation-old-5b1e77", "rotation-new-93cd20"
	v.Put("secret/data/hook", map[string]any{"authorization": "Bearer " + oldToken})
	v.AddAppRole("connect-role", "connect-secret-id")

	const total = 120
	var (
		mu       sync.Mutex
		want     = "Bearer " + oldToken
		got      = map[string]bool{}
		refused  int
		afterNew int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != want {
			refused++
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		var ev any
		if err := json.Unmarshal(body, &ev); err != nil || positionOf(ev) == "" {
			http.Error(w, "no position", http.StatusBadRequest)
			return
		}
		got[positionOf(ev)] = true
		if want == "Bearer "+newToken {
			afterNew++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	file := writeFile(t, fmt.Sprintf(`
secrets:
  provider: vault
  config: {address: %s, role_id: connect-role, secret_id: connect-secret-id}
settings:
  retry: {max_retries: 3, initial_backoff_ms: 10, max_backoff_ms: 50}
sources:
  orders:
    connector: datagen
    topic: rotation.orders
    config: {pattern: orders, events_per_second: 40, max_events: %d, seed: 5}
sinks:
  hook:
    connector: http-webhook
    topics: [rotation.orders]
    config:
      url: %s
      headers: {Authorization: "vault:secret/data/hook#authorization"}
      retry: {max_attempts: 1}
    circuit_breaker: {enabled: false}
`, v.URL, total, srv.URL))

	p := start(t, bin, "local", "-c", file, "--quiet")
	until(t, "the first events delivered with the old token", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 10 || p.exited()
	})
	mu.Lock()
	if len(got) >= total {
		mu.Unlock()
		t.Fatal("the run delivered everything before the rotation; the test shows nothing")
	}
	// The rotation: the store first, then the target stops taking the
	// old credential.
	v.Put("secret/data/hook", map[string]any{"authorization": "Bearer " + newToken})
	want = "Bearer " + newToken
	mu.Unlock()

	if code := p.wait(t); code != 0 {
		t.Fatalf("local: exit %d\n%s", code, p.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	var missing []string
	for i := range total { // datagen numbers its events from 0
		if !got[strconv.Itoa(i)] {
			missing = append(missing, strconv.Itoa(i))
		}
	}
	if len(missing) > 0 || len(got) != total {
		t.Errorf("%d distinct events delivered, want %d; missing %v\n%s", len(got), total, missing, p.stderr)
	}
	if refused == 0 || afterNew == 0 {
		t.Errorf("refused %d requests with the old token, accepted %d with the new one: the rotation was not exercised\n%s", refused, afterNew, p.stderr)
	}
	if out := p.stderr.String(); strings.Contains(out, oldToken) || strings.Contains(out, newToken) {
		t.Errorf("the output shows a token:\n%s", out)
	}
}
