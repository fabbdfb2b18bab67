package objectstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// localStore writes objects as files under root/bucket. Each object is
// written to a temporary file that is synced and renamed over the final
// name, so readers never see half an object and a rewrite replaces it
// atomically, like a PUT.
type localStore struct {
	root string
	dir  string // root/bucket
}

func newLocalStore(bucket string, o *LocalOptions) (*localStore, error) {
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("object-storage: local.root: %w", err)
	}
	return &localStore{root: root, dir: filepath.Join(root, bucket)}, nil
}

func (s *localStore) URL() string { return "file://" + filepath.ToSlash(s.dir) }

func (s *localStore) path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

func (s *localStore) Put(_ context.Context, key string, body []byte, _, _ string, lastOffset int64) error {
	// The provider exists for testing: root, the bucket directory and the
	// key's folders are created as needed, as the reference says.
	p := s.path(key)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return classifyLocal(err)
	}
	tmp, err := os.CreateTemp(dir, ".rivven-tmp-*")
	if err != nil {
		return classifyLocal(err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(body); err != nil {
		return classifyLocal(err)
	}
	if err := tmp.Sync(); err != nil {
		return classifyLocal(err)
	}
	if err := tmp.Close(); err != nil {
		return classifyLocal(err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return classifyLocal(err)
	}
	if lastOffset >= 0 {
		// An extended attribute of the file, set before the rename: the
		// object and its last offset appear together. A file system
		// without user attributes leaves the object unmarked (the sink
		// then never replaces it).
		if err := setFileMark(tmp.Name(), xattrLastOffset, strconv.FormatInt(lastOffset, 10)); err != nil {
			return classifyLocal(err)
		}
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return classifyLocal(err)
	}
	done = true
	// Sync the directory so the rename itself survives a crash.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// xattrLastOffset is metaLastOffset as a user extended attribute.
const xattrLastOffset = "user." + metaLastOffset

func (s *localStore) LastOffset(_ context.Context, key string) (int64, objectState, error) {
	p := s.path(key)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, objectAbsent, nil
		}
		return 0, objectAbsent, classifyLocal(err)
	}
	v, ok := fileMark(p, xattrLastOffset)
	if !ok {
		// No attribute, none supported, or unreadable: what the file
		// holds is unknown, which is safe.
		return 0, objectUnmarked, nil
	}
	last, st := lastOffsetOf(map[string]string{metaLastOffset: v})
	return last, st, nil
}

func (s *localStore) Delete(_ context.Context, key string) error {
	err := os.Remove(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return classifyLocal(err)
}

func (s *localStore) Close() error { return nil }

// classifyLocal: a missing directory is NotFound and a permission problem Auth,
// both permanent; anything else (a full disk, say) may pass.
func classifyLocal(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return resilience.New(resilience.NotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return resilience.New(resilience.Auth, err)
	}
	return err
}
