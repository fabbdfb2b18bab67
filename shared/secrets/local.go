package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

// EnvConfig is the config of the env provider.
type EnvConfig struct {
	Prefix string `yaml:"prefix" doc:"Prepended to every variable name, e.g. APP_."`
}

// envProvider reads vault:<path>#<key> from the variable named by the
// path and key in upper case with every other character an underscore:
// vault:secret/data/postgres#password is SECRET_DATA_POSTGRES_PASSWORD.
type envProvider struct {
	prefix string
	lookup func(string) (string, bool)
}

func openEnv(_ context.Context, cfg *yaml.Node, path string) (Provider, error) {
	c := &EnvConfig{}
	if cfg != nil && cfg.Kind != 0 {
		var ps []spec.Problem
		if c, ps = spec.Decode[EnvConfig](cfg, path); len(ps) > 0 {
			return nil, spec.Problems(ps)
		}
	}
	return &envProvider{prefix: c.Prefix, lookup: os.LookupEnv}, nil
}

// EnvName is the variable the env provider reads for ref.
func EnvName(prefix string, ref Ref) string {
	s := ref.Path
	if ref.Key != "" {
		s += "_" + ref.Key
	}
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range strings.Trim(s, "/") {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (p *envProvider) Get(_ context.Context, ref Ref) (string, error) {
	name := EnvName(p.prefix, ref)
	v, ok := p.lookup(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set: %w", name, ErrNotFound)
	}
	return v, nil
}

// FileConfig is the config of the file provider.
type FileConfig struct {
	Dir string `yaml:"dir" default:".secrets" doc:"Directory holding the secrets: vault:<path>#<key> reads key from the JSON object in <dir>/<path>.json; vault:<path> without a key reads the file <dir>/<path> whole (one trailing newline dropped)."`
}

type fileProvider struct{ dir string }

func openFile(_ context.Context, cfg *yaml.Node, path string) (Provider, error) {
	node := cfg
	if node == nil || node.Kind == 0 {
		node = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	c, ps := spec.Decode[FileConfig](node, path)
	if len(ps) > 0 {
		return nil, spec.Problems(ps)
	}
	return &fileProvider{dir: c.Dir}, nil
}

func (p *fileProvider) Get(_ context.Context, ref Ref) (string, error) {
	rel := filepath.FromSlash(strings.Trim(ref.Path, "/"))
	if !filepath.IsLocal(rel) {
		return "", errors.New("the path leaves the secrets directory")
	}
	if ref.Key == "" {
		b, err := os.ReadFile(filepath.Join(p.dir, rel))
		if err != nil {
			return "", fileErr(err)
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	}
	b, err := os.ReadFile(filepath.Join(p.dir, rel+".json"))
	if err != nil {
		return "", fileErr(err)
	}
	return Field(b, ref.Key)
}

// fileErr keeps the file's name and the reason, nothing read from it.
func fileErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", pe.Path, ErrNotFound)
		}
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

// Field returns key of a JSON object secret (what Secrets Manager, Secret
// Manager and the file provider hold when a secret has several fields).
// Strings are returned as they are, other values as their JSON. Its
// errors never quote the document.
func Field(doc []byte, key string) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return "", fmt.Errorf("the secret is not a JSON object, so it has no key %q", key)
	}
	raw, ok := m[key]
	if !ok {
		return "", fmt.Errorf("the secret has no key %q: %w", key, ErrNotFound)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	return string(raw), nil
}
