package postgrescdc

import (
	"os"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
)

// TestREADMEConfigTable keeps this README's config table equal to the one
// generated from the spec (connectors/all checks every README the same
// way); UPDATE_DOCS=1 rewrites only this README.
func TestREADMEConfigTable(t *testing.T) {
	e, ok := catalog.Default.Lookup(catalog.Source, "postgres-cdc")
	if !ok {
		t.Fatal("postgres-cdc not registered")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- config:start -->\n", "<!-- config:end -->"
	head, rest, ok := strings.Cut(string(readme), start)
	got, tail, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatal("README.md lacks the config table markers")
	}
	if want := e.Docs(); got != want {
		if os.Getenv("UPDATE_DOCS") == "1" {
			if err := os.WriteFile("README.md", []byte(head+start+want+end+tail), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md config table is stale; run UPDATE_DOCS=1 go test -run README .\nwant:\n%s", want)
	}
}
