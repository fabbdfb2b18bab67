package supervise

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/secrets"
)

// The test binary is its own child: with roleEnv set it plays a program
// that learns a secret and then panics with it in a goroutine of its own,
// which only the parent's redaction of descriptor 2 can hide.
const (
	roleEnv  = "SUPERVISE_TEST_SECRET"
	valueFmt = "sv-test-secret-%d-3c1f"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(roleEnv); v != "" && IsChild() {
		stderr := Child()
		secrets.Remember(v)
		fmt.Fprintln(stderr, "child: own line on the real stderr")
		go func() { panic("the library quotes " + v) }()
		select {}
	}
	os.Exit(m.Run())
}

func TestRunRedactsTheChildsStderr(t *testing.T) {
	value := fmt.Sprintf(valueFmt, os.Getpid())
	t.Setenv(roleEnv, value)
	out, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = out
	code, ok := Run([]string{"-test.run=^$"})
	os.Stderr = saved
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !ok || code != 2 {
		t.Errorf("Run: code %d ok %v, want the child's panic status 2", code, ok)
	}
	if strings.Contains(got, value) {
		t.Errorf("the secret value reached stderr:\n%s", got)
	}
	if !strings.Contains(got, "panic: the library quotes ****") || !strings.Contains(got, "child: own line on the real stderr") {
		t.Errorf("stderr lacks the redacted panic or the child's own line:\n%s", got)
	}
}

func TestRunInTheChildIsANoOp(t *testing.T) {
	t.Setenv(Env, "3,4,5")
	if _, ok := Run([]string{"-test.run=^$"}); ok {
		t.Error("a supervised child started another child")
	}
}
