package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindRepo(t *testing.T) {
	want, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if got := FindRepo("."); got != want {
		t.Errorf("FindRepo(.) = %q, want %q", got, want)
	}
	if got := FindRepo(examplesDir + "/quickstart/aws"); got != want {
		t.Errorf("from an example: %q, want %q", got, want)
	}
	if got := FindRepo(t.TempDir()); got != "" {
		t.Errorf("outside the repository: %q", got)
	}
}

func TestLocalSource(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct{ from, to, want string }{
		{"deploy/aws", "infra/terraform/modules", "../../infra/terraform/modules"},
		{"infra/terraform/examples/quickstart/aws", "infra/terraform/modules", "../../../modules"},
		{".", "infra/terraform/modules", "./infra/terraform/modules"},
		{"a", "a/modules", "./modules"},
	} {
		got, err := LocalSource(filepath.Join(root, c.from), filepath.Join(root, c.to))
		if err != nil || got != c.want {
			t.Errorf("LocalSource(%s, %s) = %q, %v; want %q", c.from, c.to, got, err, c.want)
		}
	}
}

func TestIsRemoteSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "mods"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for s, want := range map[string]bool{
		"git::https://github.com/rivven/rivven-connect//infra/terraform/modules?ref=v1": true,
		"https://example.com/modules.zip":                                               true,
		"rivven/connect/aws":                                                            true,
		"./mods":                                                                        false,
		"../elsewhere":                                                                  false,
		"mods":                                                                          false,
		dir:                                                                             false,
	} {
		if got := IsRemoteSource(s); got != want {
			t.Errorf("IsRemoteSource(%q) = %v", s, got)
		}
	}
}
