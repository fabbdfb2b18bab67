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

// A connector links only what it needs: the contract (shared/connector) is
// a leaf, and a pure-Go transform built on it links no engine, state store
// or metrics exporter.
func TestTransformsLinkNoEngine(t *testing.T) {
	banned := []string{module + "/shared/pipeline", module + "/shared/state", module + "/shared/telemetry",
		"github.com/redis/", "github.com/alicebob/miniredis", "github.com/prometheus/"}
	pkgs := deps(t, module+"/shared/connector", module+"/connectors/transform/...")
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for pkg, ds := range pkgs {
		for _, d := range ds {
			for _, b := range banned {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s links %s", strings.TrimPrefix(pkg, module+"/"), d)
				}
			}
		}
	}
}

// Connectors speak to the engine only through the contract: no connector
// package links the engine (shared/pipeline), so any host can run any
// connector and a connector's dependencies stay its own.
func TestConnectorsLinkNoEngine(t *testing.T) {
	pkgs := deps(t, module+"/connectors/...")
	for pkg, ds := range pkgs {
		if strings.Contains(pkg, "/cmd/") {
			continue // benchmark tools run the engine on purpose
		}
		for _, d := range ds {
			if d == module+"/shared/pipeline" {
				t.Errorf("%s links the engine (shared/pipeline); use shared/connector", strings.TrimPrefix(pkg, module+"/"))
			}
		}
	}
}
