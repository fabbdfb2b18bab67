package regexrouter

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/spec"
)

// TestREADMERouteTable keeps the README's table of the keys of one
// route equal to the one generated from the Route struct (the catalog's
// table stops at the list). UPDATE_DOCS=1 rewrites it.
func TestREADMERouteTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- route:start -->\n", "<!-- route:end -->"
	head, rest, ok := strings.Cut(string(readme), start)
	got, tail, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the %q and %q markers", start, end)
	}
	want := spec.MarkdownTable(spec.FieldsOf(reflect.TypeFor[Route]()))
	if got == want {
		return
	}
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile("README.md", []byte(head+start+want+end+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the route table in README.md is stale; run with UPDATE_DOCS=1\nwant:\n%s", want)
}
