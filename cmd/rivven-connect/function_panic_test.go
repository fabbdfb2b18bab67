package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/secrets/vault/vaultfake"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// TestFunctionSecretsNeverLeakInPanics builds, as a user would (build
// --with --functions), the function binary of a sink that panics in a
// goroutine of its own with its vault: token in the panic value
// (testdata/panicplugin), runs it as Cloud Run runs it (PORT set, a
// Pub/Sub push POSTed) and checks that the process exits 2 reporting the
// panic with the token blanked out, and the token shows nowhere: the
// function ran as the supervised child of itself. The same binary with
// the token written in the pipeline (no reference) runs as one process.
func TestFunctionSecretsNeverLeakInPanics(t *testing.T) {
	if testing.Short() {
		testenv.Unavailable(t, "-short: this test builds a function")
	}
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/children"); err != nil {
		testenv.Unavailable(t, "counting a process's children needs /proc/<pid>/task/<tid>/children: %v", err)
	}
	v := vaultfake.Start(t)
	v.Put("secret/data/panicker", map[string]any{"token": canary})
	v.AddAppRole("connect-role", "connect-secret-id")
	pipelineFor := func(token string) string {
		return fmt.Sprintf(`
secrets:
  provider: vault
  config: {address: %s, role_id: connect-role, secret_id: connect-secret-id}
sources:
  orders:
    connector: datagen
    topic: fnpanic.orders
    config: {pattern: orders, events_per_second: 0, max_events: 5, seed: 3}
sinks:
  boom:
    connector: test-panicker
    topics: [fnpanic.orders]
    config: {token: %q, in: goroutine}
`, v.URL, token)
	}

	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	dir := t.TempDir()
	if code, out, errOut := cli(t, "build", "-c", writeFile(t, pipelineFor("vault:secret/data/panicker#token")),
		"--with", "example.com/rivven-panicker=testdata/panicplugin", "--functions", "--out", dir); code != 0 {
		t.Fatalf("build: exit %d: %s%s", code, out, errOut)
	}
	fn := filepath.Join(dir, "functions", "sink-test-panicker")

	push, err := json.Marshal(events.NewPubSubPush("projects/p/subscriptions/fnpanic-sub", events.Delivery{
		ID: "m-1", Attempt: 1,
		Value: []byte(`{"event_type":"insert","stream":"orders","timestamp":"2025-01-01T00:00:00Z","data":{"id":1},"metadata":{}}`),
	}))
	if err != nil {
		t.Fatal(err)
	}
	// serve starts the function on a port of its own, waits until it
	// listens, counts the children of the process started, POSTs the push
	// and waits for the process to end.
	serve := func(pipeline string) (code int, children []string, stdout, stderr string) {
		t.Helper()
		port := freePort(t)
		cmd := exec.Command(fn)
		cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "RIVVEN_PIPELINE="+writeFile(t, pipeline))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		addr := "127.0.0.1:" + strconv.Itoa(port)
		for {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("the function ended before listening: %v\n%s", err, errOut.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
		children = childrenOf(t, cmd.Process.Pid)
		resp, err := http.Post("http://"+addr+"/", "application/json", bytes.NewReader(push))
		if err == nil {
			resp.Body.Close()
		}
		var werr error
		select {
		case werr = <-exited:
		case <-time.After(time.Minute):
			t.Fatalf("the function did not end after its sink panicked:\n%s", errOut.String())
		}
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			code = ee.ExitCode()
		} else if werr != nil {
			t.Fatal(werr)
		}
		return code, children, out.String(), errOut.String()
	}

	code, children, stdout, stderr := serve(pipelineFor("vault:secret/data/panicker#token"))
	if strings.Contains(stdout+stderr, canary) {
		i := strings.Index(stdout+stderr, canary)
		t.Errorf("the secret value appears in the function's output:\n...%s...", (stdout + stderr)[max(0, i-400):min(len(stdout+stderr), i+100)])
	}
	if code != 2 || !strings.Contains(stderr, "panic: test-panicker: the server refused token ****") {
		t.Errorf("with a reference: exit %d, want 2 and the redacted panic in:\n%s", code, stderr)
	}
	if len(children) != 1 {
		t.Errorf("with a reference: the function has %d child processes %v, want its supervised self", len(children), children)
	}

	// Without a reference: one process, and the panic the runtime prints
	// is the plain one (the literal is no secret).
	code, children, _, stderr = serve(pipelineFor("plain-literal-token"))
	if len(children) != 0 {
		t.Errorf("without references: the function has child processes %v, want none", children)
	}
	if code != 2 || !strings.Contains(stderr, "panic: test-panicker: the server refused token plain-literal-token") {
		t.Errorf("without references: exit %d, want 2 and the panic in:\n%s", code, stderr)
	}
}

// childrenOf lists the process ids of pid's children.
func childrenOf(t *testing.T, pid int) []string {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}
