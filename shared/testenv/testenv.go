// Package testenv decides what an integration test does when a backing
// service (Redis, Kafka, Postgres, ...) is not running.
//
// Locally a missing service should not turn the suite red: the test skips.
// Under CI, where the services are provisioned, a skip would silently hide a
// broken setup and let untested code merge, so CI sets
// RIVVEN_REQUIRE_SERVICES=1 and the same test fails instead.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// EnvRequire is the environment variable that turns skips into failures.
const EnvRequire = "RIVVEN_REQUIRE_SERVICES"

// dialTimeout bounds how long a test waits to learn a service is absent.
const dialTimeout = 2 * time.Second

// Required reports whether integration services must be present, i.e.
// RIVVEN_REQUIRE_SERVICES is "1" or "true".
func Required() bool {
	switch os.Getenv(EnvRequire) {
	case "1", "true":
		return true
	}
	return false
}

// RequireService dials addr over TCP and, when nothing answers, skips the
// test — or fails it when Required() is true. name is only used in the
// message (e.g. "redis").
func RequireService(t testing.TB, name, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err == nil {
		_ = conn.Close()
		if reason, bad := unusable.Load(addr); bad {
			// Main has already failed the package under CI; locally the
			// tests skip with the reason instead of each timing out.
			t.Skipf("%s", reason)
		}
		return
	}
	if Required() {
		t.Fatalf("%s at %s is required (%s=1) but unreachable: %v", name, addr, EnvRequire, err)
		return // Fatalf does not return on a real T, but may on a TB wrapper
	}
	t.Skipf("%s at %s is unreachable, skipping (set %s=1 to fail instead): %v", name, addr, EnvRequire, err)
}

// Unavailable skips the test because something it needs is missing (a
// pseudo-terminal, a server feature) — or fails it when Required() is
// true, so that CI never passes a test that did not run.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (required: %s=1)", msg, EnvRequire)
		return
	}
	t.Skipf("%s, skipping (set %s=1 to fail instead)", msg, EnvRequire)
}

// RequireCommand checks that every named program is on PATH and, when one
// is not, skips the test — or fails it when Required() is true, as
// RequireService does for a service.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if Required() {
				t.Fatalf("%s is required (%s=1) but not installed: %v", name, EnvRequire, err)
				return
			}
			t.Skipf("%s is not installed, skipping (set %s=1 to fail instead): %v", name, EnvRequire, err)
			return
		}
	}
}

// NodeModule returns the directory of an npm package installed under the
// repository's .ci/node (pinned by its package-lock.json; .ci/services.sh
// installs it), after checking that node is on PATH. When either is
// missing the test skips — or fails when Required() is true.
func NodeModule(t testing.TB, name string) string {
	t.Helper()
	RequireCommand(t, "node")
	dir, err := nodeModuleDir(name)
	if err == nil {
		return dir
	}
	if Required() {
		t.Fatalf("npm package %s is required (%s=1): %v", name, EnvRequire, err)
		return ""
	}
	t.Skipf("npm package %s is missing, skipping (set %s=1 to fail instead): %v", name, EnvRequire, err)
	return ""
}

// nodeModuleDir finds .ci/node/node_modules/NAME under the module root
// (the nearest directory above the working directory with a go.mod).
func nodeModuleDir(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ".ci", "node", "node_modules", name)
			if _, err := os.Stat(filepath.Join(p, "package.json")); err != nil {
				return "", fmt.Errorf("%s not installed (npm ci --prefix .ci/node at the repository root): %w", p, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Usability is a check, run once per test binary, that a service which
// answers can also serve the package's tests (a MariaDB without a binlog
// answers on its port but cannot feed a CDC test).
type Usability struct {
	Name, Addr string
	// Check returns why the service cannot serve the tests, best in the
	// words of the code under test (a source's own Check).
	Check func() error
}

var unusable sync.Map // addr -> reason

// Main runs a package's tests after the usability checks, for TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Usability{...})) }
//
// A service that does not answer is left to RequireService. One that
// answers but fails its check is one clear failure under CI, before any
// test runs, instead of every test timing out; locally its tests skip
// with the same reason.
func Main(m *testing.M, checks ...Usability) int {
	if reason := checkUsability(checks); reason != "" {
		fmt.Fprintf(os.Stderr, "FAIL: %s\n", reason)
		return 1
	}
	return m.Run()
}

// checkUsability runs the checks of services that answer and returns the
// reason to fail the package, if it must fail; otherwise it remembers
// each unusable service for RequireService to skip on.
func checkUsability(checks []Usability) string {
	for _, c := range checks {
		conn, err := net.DialTimeout("tcp", c.Addr, dialTimeout)
		if err != nil {
			continue
		}
		_ = conn.Close()
		if err := c.Check(); err != nil {
			reason := fmt.Sprintf("%s at %s answers but cannot serve these tests: %v (.ci/services.sh sets the services up; go tool task test runs it first)", c.Name, c.Addr, err)
			if Required() {
				return reason
			}
			unusable.Store(c.Addr, reason)
		}
	}
	return ""
}
