package stdout

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/spec"
)

// TestREADMEConfigTable keeps the README's config table equal to the one
// generated from Config's tags. UPDATE_DOCS=1 rewrites it instead.
func TestREADMEConfigTable(t *testing.T) {
	const start, end = "<!-- config:start -->\n", "<!-- config:end -->"
	want := spec.MarkdownTable(spec.FieldsOf(reflect.TypeFor[Config]()))
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok := strings.Cut(string(readme), start)
	got, tail, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the %q and %q markers", start, end)
	}
	if got == want {
		return
	}
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile("README.md", []byte(head+start+want+end+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md config table is stale; run UPDATE_DOCS=1 go test -run README ./connectors/utility/stdout/\nwant:\n%s", want)
}
