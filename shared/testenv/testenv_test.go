package testenv

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
)

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"", false},
		{"0", false},
		{"false", false},
		{"yes", false},
		{"1", true},
		{"true", true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv(EnvRequire, tc.value)
			if got := Required(); got != tc.want {
				t.Errorf("%s=%q: Required() = %v, want %v", EnvRequire, tc.value, got, tc.want)
			}
		})
	}
}

// recorder stands in for a testing.TB to observe which outcome
// RequireService picks without ending the real test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

func TestRequireServiceUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		env       string
		wantFatal bool
	}{{"", false}, {"1", true}} {
		t.Run("env="+tc.env, func(t *testing.T) {
			t.Setenv(EnvRequire, tc.env)
			r := &recorder{TB: t}
			RequireService(r, "redis", addr)
			if gotFatal := r.fatal != ""; gotFatal != tc.wantFatal || (r.skip != "") == tc.wantFatal {
				t.Fatalf("fatal=%q skip=%q, want fatal=%v", r.fatal, r.skip, tc.wantFatal)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "redis at "+addr) {
				t.Errorf("message %q does not name the service", msg)
			}
		})
	}
}

func TestRequireCommandMissing(t *testing.T) {
	for _, tc := range []struct {
		env       string
		wantFatal bool
	}{{"", false}, {"1", true}} {
		t.Run("env="+tc.env, func(t *testing.T) {
			t.Setenv(EnvRequire, tc.env)
			r := &recorder{TB: t}
			RequireCommand(r, "go", "rivven-no-such-tool")
			if gotFatal := r.fatal != ""; gotFatal != tc.wantFatal || (r.skip != "") == tc.wantFatal {
				t.Fatalf("fatal=%q skip=%q, want fatal=%v", r.fatal, r.skip, tc.wantFatal)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "rivven-no-such-tool") {
				t.Errorf("message %q does not name the program", msg)
			}
		})
	}
	r := &recorder{TB: t}
	RequireCommand(r, "go")
	if r.fatal != "" || r.skip != "" {
		t.Fatalf("go is on PATH: fatal=%q skip=%q", r.fatal, r.skip)
	}
}

func TestNodeModuleMissing(t *testing.T) {
	for _, tc := range []struct {
		env       string
		wantFatal bool
	}{{"", false}, {"1", true}} {
		t.Run("env="+tc.env, func(t *testing.T) {
			t.Setenv(EnvRequire, tc.env)
			r := &recorder{TB: t}
			NodeModule(r, "rivven-no-such-package")
			if _, err := exec.LookPath("node"); err != nil {
				t.Skip("node is not installed: RequireCommand decides")
			}
			if gotFatal := r.fatal != ""; gotFatal != tc.wantFatal || (r.skip != "") == tc.wantFatal {
				t.Fatalf("fatal=%q skip=%q, want fatal=%v", r.fatal, r.skip, tc.wantFatal)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "rivven-no-such-package") || !strings.Contains(msg, "npm ci --prefix .ci/node") {
				t.Errorf("message %q does not name the package and how to install it", msg)
			}
		})
	}
}

// A service that answers but fails its usability check fails the package
// once under CI, with the check's reason; locally each test that needs it
// skips with that reason.
func TestUsability(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	check := []Usability{{Name: "mariadb", Addr: addr, Check: func() error { return fmt.Errorf("binary logging is off") }}}

	t.Setenv(EnvRequire, "1")
	if reason := checkUsability(check); !strings.Contains(reason, "mariadb at "+addr) || !strings.Contains(reason, "binary logging is off") {
		t.Errorf("under CI: reason %q does not name the service and the check's error", reason)
	}

	t.Setenv(EnvRequire, "")
	if reason := checkUsability(check); reason != "" {
		t.Errorf("locally the package must run: %q", reason)
	}
	defer unusable.Delete(addr)
	r := &recorder{TB: t}
	RequireService(r, "mariadb", addr)
	if r.fatal != "" || !strings.Contains(r.skip, "binary logging is off") {
		t.Errorf("fatal=%q skip=%q, want a skip with the reason", r.fatal, r.skip)
	}
}

// Something a test needs that is missing skips it locally and fails it
// under CI.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		env       string
		wantFatal bool
	}{{"", false}, {"1", true}} {
		t.Setenv(EnvRequire, tc.env)
		r := &recorder{TB: t}
		Unavailable(r, "no pseudo-terminals here")
		if (r.fatal != "") != tc.wantFatal || (r.skip != "") == tc.wantFatal || !strings.Contains(r.fatal+r.skip, "no pseudo-terminals here") {
			t.Errorf("env=%q: fatal=%q skip=%q", tc.env, r.fatal, r.skip)
		}
	}
}
