package all

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
)

const module = "github.com/rivven/rivven-connect/"

// TestREADMEConfigTables keeps every registered component's README config
// table equal to the one generated from its spec, so docs cannot drift and
// no connector ships without them. A README holding several components'
// tables marks each with its name: <!-- config:start NAME -->. Run with
// UPDATE_DOCS=1 (go tool task docs) to rewrite the tables instead.
func TestREADMEConfigTables(t *testing.T) {
	for _, e := range catalog.All() {
		dir := filepath.Join("..", "..", strings.TrimPrefix(e.Package(), module))
		path := filepath.Join(dir, "README.md")
		readme, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s %s: %v (every connector folder needs a README with its config table)", e.Kind, e.Name, err)
			continue
		}
		start := "<!-- config:start " + e.Name + " -->\n"
		if !strings.Contains(string(readme), start) {
			start = "<!-- config:start -->\n"
		}
		const end = "<!-- config:end -->"
		head, rest, ok := strings.Cut(string(readme), start)
		got, tail, ok2 := strings.Cut(rest, end)
		if !ok || !ok2 {
			t.Errorf("%s lacks the %q and %q markers around %s's config table", path, start, end, e.Name)
			continue
		}
		want := e.Docs()
		if got == want {
			continue
		}
		if os.Getenv("UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, []byte(head+start+want+end+tail), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: the config table of %s is stale; run go tool task docs\nwant:\n%s", path, e.Name, want)
	}
}
