package objstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// Local keeps objects as files under a directory. Every object is written
// to a temporary file, synced, then renamed (Put) or hard-linked
// (PutIfAbsent) to its name, so a reader never sees half an object, and
// link(2) fails with EEXIST when the name exists: the exclusive create of
// a whole file in one step, which O_EXCL alone gives only for an empty one.
type Local struct{ dir string }

// NewLocal opens a directory (created at the first write).
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Local{dir: abs}, nil
}

func (s *Local) URL() string { return "file://" + filepath.ToSlash(s.dir) }

func (s *Local) path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

func (s *Local) Get(_ context.Context, key string) ([]byte, error) {
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return b, classifyLocal(err)
}

func (s *Local) Put(_ context.Context, key string, body []byte) error {
	return s.write(key, body, os.Rename)
}

func (s *Local) PutIfAbsent(_ context.Context, key string, body []byte) error {
	err := s.write(key, body, os.Link)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	return err
}

// write writes body to a temporary file beside key's and moves it in place.
func (s *Local) write(key string, body []byte, place func(tmp, name string) error) error {
	p := s.path(key)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return classifyLocal(err)
	}
	tmp, err := os.CreateTemp(dir, ".rivven-tmp-*")
	if err != nil {
		return classifyLocal(err)
	}
	name := tmp.Name()
	defer os.Remove(name) // after a link the name stays; after a rename it is gone
	if _, err := tmp.Write(body); err != nil {
		_ = tmp.Close()
		return classifyLocal(err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return classifyLocal(err)
	}
	if err := tmp.Close(); err != nil {
		return classifyLocal(err)
	}
	if err := os.Chmod(name, 0o644); err != nil {
		return classifyLocal(err)
	}
	if err := place(name, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return classifyLocal(err)
	}
	// Sync the directory so the new name survives a crash.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (s *Local) List(_ context.Context, prefix, startAfter string) ([]string, error) {
	// Keys are listed from the directory holding the prefix: the log
	// folders this serves are flat.
	dirKey, base := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey, base = prefix[:i], prefix[i+1:]
	}
	entries, err := os.ReadDir(s.path(dirKey))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classifyLocal(err)
	}
	var keys []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), base) || strings.HasPrefix(e.Name(), ".rivven-tmp-") {
			continue
		}
		k := e.Name()
		if dirKey != "" {
			k = dirKey + "/" + k
		}
		if k > startAfter {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *Local) Delete(_ context.Context, key string) error {
	err := os.Remove(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return classifyLocal(err)
}

func (s *Local) Close() error { return nil }

// classifyLocal: a permission problem is Auth (permanent); anything else
// (a full disk, say) may pass.
func classifyLocal(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrPermission):
		return resilience.New(resilience.Auth, err)
	}
	return err
}
