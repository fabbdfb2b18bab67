package deploy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FindRepo returns the rivven-connect repository around dir: the first of
// dir and its parents that holds infra/terraform/modules; "" when none.
func FindRepo(dir string) string {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "infra", "terraform", "modules")); err == nil && st.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// IsRemoteSource tells a remote module address (git::…, https://…, a
// registry name such as org/rivven/aws) from a local path.
func IsRemoteSource(s string) bool {
	if strings.Contains(s, "::") || strings.Contains(s, "://") {
		return true
	}
	if strings.HasPrefix(s, ".") || filepath.IsAbs(s) {
		return false
	}
	_, err := os.Stat(s)
	return errors.Is(err, fs.ErrNotExist)
}

// LocalSource writes target as Terraform wants a local module source seen
// from dir: relative, with forward slashes, starting with ./ or ../.
func LocalSource(dir, target string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if target, err = filepath.Abs(target); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		return "", err
	}
	rel = filepath.ToSlash(rel)
	if rel != ".." && !strings.HasPrefix(rel, "../") {
		rel = "./" + rel
	}
	return rel, nil
}
