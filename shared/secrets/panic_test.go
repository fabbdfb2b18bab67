package secrets

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A panic whose value holds a secret, in a goroutine started with Go, is
// reported with the value blanked out, its stack, and exit status 2; the
// value never reaches stderr. (The helper process is this test binary.)
func TestCrashRedactsThePanic(t *testing.T) {
	const canary = "crash-canary-4e9d1b"
	if os.Getenv("SECRETS_CRASH_HELPER") == "1" {
		Remember(canary)
		Go(func() {
			panic(errors.New("connecting with password " + canary + " failed"))
		})
		select {} // Crash ends the process
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRedactsThePanic$")
	cmd.Env = append(os.Environ(), "SECRETS_CRASH_HELPER=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, out)
	}
	if bytes.Contains(out, []byte(canary)) {
		t.Fatalf("the value is in the output:\n%s", out)
	}
	if !bytes.Contains(out, []byte("panic: connecting with password **** failed\n")) || !bytes.Contains(out, []byte("panic_test.go")) {
		t.Fatalf("no redacted panic with its stack:\n%s", out)
	}
}

func TestPanicValue(t *testing.T) {
	Remember("panic-value-secret")
	if v := PanicValue(errors.New("x panic-value-secret y")); v.(error).Error() != "x **** y" {
		t.Errorf("error: %v", v)
	}
	if v := PanicValue("x panic-value-secret"); v != "x ****" {
		t.Errorf("string: %v", v)
	}
	e := errors.New("nothing secret")
	if v := PanicValue(e); v != e {
		t.Errorf("a value without secrets changed: %v", v)
	}
}

// A value split across writes at any point is still redacted, and text
// that only looks like a value's beginning comes out unchanged.
func TestStreamRedactor(t *testing.T) {
	const v = "stream-secret-7a3c"
	Remember(v)
	text := "line one\npassword=" + v + " and again " + v + "\nstream-sec is not it\nends with st"
	want := strings.ReplaceAll(text, v, "****")
	for cut := 0; cut <= len(text); cut++ {
		for cut2 := cut; cut2 <= len(text); cut2 += 3 {
			var b bytes.Buffer
			w := StreamRedactor(&b)
			w.Write([]byte(text[:cut]))
			w.Write([]byte(text[cut:cut2]))
			w.Write([]byte(text[cut2:]))
			w.Close()
			if b.String() != want {
				t.Fatalf("cut at %d and %d: %q", cut, cut2, b.String())
			}
		}
	}
	// A stream that ends inside a value shows no long part of it.
	var b bytes.Buffer
	w := StreamRedactor(&b)
	w.Write([]byte("x " + v[:10]))
	w.Close()
	if b.String() != "x ****" {
		t.Errorf("cut-off value: %q", b.String())
	}
}
