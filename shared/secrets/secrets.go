// Package secrets resolves secret references in connector configs:
// a scalar value such as
//
//	vault:secret/data/postgres#password
//	aws-sm:prod/postgres#password
//	gcp-sm:projects/p/secrets/s/versions/latest
//
// is replaced by the secret it names before the connector is built, so the
// value exists only in the connector's decoded config, never in the
// pipeline document, its errors, logs or `validate` output.
//
// A vault: reference is read from the store of the pipeline's secrets:
// block: HashiCorp Vault / OpenBao (provider vault), or, for local work,
// the environment (env) or a directory of files (file), so one pipeline
// runs against Vault when deployed and against files on a laptop. aws-sm:
// and gcp-sm: references always go to AWS Secrets Manager and Google Cloud
// Secret Manager (with the block's config when it names that provider,
// else the default credentials).
//
// Providers live in their own packages (shared/secrets/vault, awssm,
// gcpsm) and register in init(), so a binary links only the stores it
// imports; shared/secrets/all imports every one. env and file are here.
//
// Values are resolved once, cached, and fetched again (Refresh) when a
// connector built from them reports an authentication failure: that is
// how a rotated password reaches a running connector.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Provider names, as the secrets.provider key spells them.
const (
	Vault    = "vault"
	AWS      = "aws-secrets-manager"
	GCP      = "gcp-secret-manager"
	Env      = "env"
	File     = "file"
	schemeV  = "vault:"
	schemeAW = "aws-sm:"
	schemeGC = "gcp-sm:"
)

// Ref is a parsed secret reference.
type Ref struct {
	Raw    string // as written in the pipeline
	Scheme string // "vault", "aws-sm" or "gcp-sm"
	Path   string // the secret's path, name, ARN or resource name
	Key    string // the field of a secret holding several (after #); may be empty
}

func (r Ref) String() string { return r.Raw }

// ParseRef reports whether s is a secret reference and parses it. A vault:
// reference needs a mount and a path (vault:secret/data/app#key), so a
// value such as "vault:8200" stays a plain string.
func ParseRef(s string) (Ref, bool) {
	var scheme, rest string
	switch {
	case strings.HasPrefix(s, schemeV):
		scheme, rest = "vault", s[len(schemeV):]
	case strings.HasPrefix(s, schemeAW):
		scheme, rest = "aws-sm", s[len(schemeAW):]
	case strings.HasPrefix(s, schemeGC):
		scheme, rest = "gcp-sm", s[len(schemeGC):]
	default:
		return Ref{}, false
	}
	path, key, _ := strings.Cut(rest, "#")
	path = strings.TrimSpace(path)
	if path == "" || strings.ContainsAny(path, " \t\n") {
		return Ref{}, false
	}
	if scheme == "vault" && !strings.Contains(strings.Trim(path, "/"), "/") {
		return Ref{}, false
	}
	return Ref{Raw: s, Scheme: scheme, Path: path, Key: key}, true
}

// Provider reads secrets from one store. Get returns the value of ref;
// its errors must never contain a secret value (they are shown to the
// operator with the reference's YAML path).
type Provider interface {
	Get(ctx context.Context, ref Ref) (string, error)
}

// Closer is implemented by providers holding resources (a token renewer).
type Closer interface {
	Close() error
}

// Opener opens a provider from its config block (cfg is nil when the
// secrets block does not configure this provider); path is the block's
// YAML path, for config problems.
type Opener func(ctx context.Context, cfg *yaml.Node, path string) (Provider, error)

var (
	regMu   sync.RWMutex
	openers = map[string]Opener{}
	// tags are the build tags that link each provider's package.
	tags = map[string]string{Vault: "secrets.vault", AWS: "secrets.awssm", GCP: "secrets.gcpsm"}
)

// Register makes a provider available under name; provider packages call
// it from init().
func Register(name string, open Opener) {
	regMu.Lock()
	defer regMu.Unlock()
	openers[name] = open
}

func init() {
	Register(Env, openEnv)
	Register(File, openFile)
}

// Tag is the build tag that links a provider's package ("" for env and
// file, which are always linked).
func Tag(provider string) string { return tags[provider] }

// Linked reports whether a provider is linked into this binary.
func Linked(name string) bool {
	regMu.RLock()
	defer regMu.RUnlock()
	_, ok := openers[name]
	return ok
}

// RefError is a reference that could not be resolved: which provider
// refused which reference, and why. It never holds the value.
type RefError struct {
	Provider string
	Ref      Ref
	Err      error
}

func (e *RefError) Error() string {
	return fmt.Sprintf("secret reference %s: the %s provider refused it: %v", e.Ref.Raw, e.Provider, e.Err)
}
func (e *RefError) Unwrap() error { return e.Err }

// ErrNotFound is wrapped by provider errors for a secret or key that does
// not exist.
var ErrNotFound = errors.New("not found")

// Resolver resolves references with the providers of one pipeline,
// caching every value it read. It is safe for concurrent use.
type Resolver struct {
	provider string     // the secrets block's provider ("" without a block)
	cfg      *yaml.Node // its config

	mu        sync.Mutex
	providers map[string]Provider
	cache     map[string]string
}

// NewResolver returns a resolver for a pipeline whose secrets block names
// provider (empty when there is none) with config cfg. Nothing is
// contacted until a reference needs it.
func NewResolver(provider string, cfg *yaml.Node) *Resolver {
	return &Resolver{provider: provider, cfg: cfg, providers: map[string]Provider{}, cache: map[string]string{}}
}

// ProviderFor returns the provider that resolves ref: the secrets block's
// one for vault: references, else the store the scheme names.
func (r *Resolver) ProviderFor(ref Ref) string {
	switch ref.Scheme {
	case "aws-sm":
		return AWS
	case "gcp-sm":
		return GCP
	}
	if r == nil {
		return ""
	}
	return r.provider
}

// Resolve returns the value of ref, from the cache when it was read
// before.
func (r *Resolver) Resolve(ctx context.Context, ref Ref) (string, error) {
	r.mu.Lock()
	v, ok := r.cache[ref.Raw]
	r.mu.Unlock()
	if ok {
		return v, nil
	}
	return r.fetch(ctx, ref)
}

func (r *Resolver) fetch(ctx context.Context, ref Ref) (string, error) {
	name := r.ProviderFor(ref)
	if name == "" {
		return "", &RefError{Provider: "(none)", Ref: ref, Err: errors.New("a vault: reference needs a secrets: block naming its store (secrets.provider: vault, env or file)")}
	}
	p, err := r.open(ctx, name)
	if err != nil {
		return "", &RefError{Provider: name, Ref: ref, Err: err}
	}
	v, err := p.Get(ctx, ref)
	if err != nil {
		return "", &RefError{Provider: name, Ref: ref, Err: err}
	}
	Remember(v)
	r.mu.Lock()
	r.cache[ref.Raw] = v
	r.mu.Unlock()
	return v, nil
}

// open returns the named provider, opening it on first use.
func (r *Resolver) open(ctx context.Context, name string) (Provider, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.providers[name]; ok {
		return p, nil
	}
	regMu.RLock()
	open, ok := openers[name]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("the %s provider is not linked into this binary (import github.com/rivven/rivven-connect/shared/secrets/all, or build with -tags %s)", name, tags[name])
	}
	var cfg *yaml.Node
	if name == r.provider {
		cfg = r.cfg
	}
	p, err := open(ctx, cfg, "secrets.config")
	if err != nil {
		return nil, err
	}
	r.providers[name] = p
	return p, nil
}

// Refresh reads refs again, bypassing the cache, and reports whether any
// value changed (a rotation).
func (r *Resolver) Refresh(ctx context.Context, refs []Ref) (changed bool, err error) {
	for _, ref := range refs {
		r.mu.Lock()
		old, had := r.cache[ref.Raw]
		r.mu.Unlock()
		v, err := r.fetch(ctx, ref)
		if err != nil {
			return changed, err
		}
		if !had || v != old {
			changed = true
		}
	}
	return changed, nil
}

// Close closes the providers that hold resources.
func (r *Resolver) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, p := range r.providers {
		if c, ok := p.(Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Refs lists the references in a config node with their YAML paths
// (path is the node's own path), in document order.
func Refs(node *yaml.Node, path string) []Located {
	var out []Located
	walk(node, path, func(n *yaml.Node, p string, ref Ref) {
		out = append(out, Located{Ref: ref, Path: p, Line: n.Line, Column: n.Column})
	})
	return out
}

// Located is a reference and where it is.
type Located struct {
	Ref
	Path         string
	Line, Column int
}

func walk(n *yaml.Node, path string, f func(*yaml.Node, string, Ref)) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walk(c, path, f)
		}
	case yaml.AliasNode:
		walk(n.Alias, path, f)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], spec.Join(path, n.Content[i].Value), f)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walk(c, spec.Index(path, i), f)
		}
	case yaml.ScalarNode:
		if ref, ok := ParseRef(n.Value); ok {
			f(n, path, ref)
		}
	}
}

// ResolveNode returns node with every reference replaced by its value
// (a copy: node itself is not changed) and the references it used. A
// node without references is returned as it is. When references cannot
// be resolved the error is spec.Problems naming each one's YAML path and
// the provider that refused it.
func (r *Resolver) ResolveNode(ctx context.Context, node *yaml.Node, path string) (*yaml.Node, []Ref, error) {
	locs := Refs(node, path)
	if len(locs) == 0 {
		return node, nil, nil
	}
	vals := map[string]string{}
	var ps spec.Problems
	var refs []Ref
	for _, l := range locs {
		if _, done := vals[l.Raw]; done {
			continue
		}
		v, err := r.Resolve(ctx, l.Ref)
		if err != nil {
			ps = append(ps, spec.Problem{Path: l.Path, Line: l.Line, Column: l.Column, Message: err.Error()})
			continue
		}
		vals[l.Raw] = v
		refs = append(refs, l.Ref)
	}
	if len(ps) > 0 {
		return nil, nil, ps
	}
	return substituteCopy(node, vals), refs, nil
}

// substituteCopy deep-copies n, replacing reference scalars by their
// values (as strings, whatever YAML would make of them).
func substituteCopy(n *yaml.Node, vals map[string]string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return substituteCopy(n.Alias, vals)
	}
	c := *n
	if n.Kind == yaml.ScalarNode {
		if v, ok := vals[n.Value]; ok {
			c.Value, c.Tag, c.Style = v, "!!str", yaml.DoubleQuotedStyle
		}
		return &c
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = substituteCopy(k, vals)
	}
	return &c
}

// Check resolves every reference under the given nodes (by YAML path) and
// returns the problems: the path of each reference that cannot be
// resolved and the provider that refused it, never a value.
func (r *Resolver) Check(ctx context.Context, nodes map[string]*yaml.Node) spec.Problems {
	paths := make([]string, 0, len(nodes))
	for p := range nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var ps spec.Problems
	for _, p := range paths {
		if _, _, err := r.ResolveNode(ctx, nodes[p], p); err != nil {
			var pp spec.Problems
			if errors.As(err, &pp) {
				ps = append(ps, pp...)
			} else {
				ps = append(ps, spec.Problem{Path: p, Message: err.Error()})
			}
		}
	}
	ps.Sort()
	return ps
}
