package catalog

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/rivven/rivven-connect"

// deps lists the packages matching patterns and, for each, every package
// it links (not its tests), as go list reports them.
func deps(t *testing.T, patterns ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-deps=false", "-f", `{{.ImportPath}} {{join .Deps " "}}`}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[f[0]] = f[1:]
	}
	return m
}

// Imports point one way: cmd and functions → connectors → shared → events.
// The framework (shared/, events/) links no connector, so a host or a
// transport never drags one in and a connector is one folder that touches
// nothing else.
func TestFrameworkLinksNoConnector(t *testing.T) {
	for pkg, ds := range deps(t, module+"/shared/...", module+"/events/...") {
		for _, d := range ds {
			if strings.HasPrefix(d, module+"/connectors/") || strings.HasPrefix(d, module+"/cmd/") || strings.HasPrefix(d, module+"/functions/") {
				t.Errorf("%s links %s", strings.TrimPrefix(pkg, module+"/"), strings.TrimPrefix(d, module+"/"))
			}
		}
	}
}
