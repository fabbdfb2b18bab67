package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
)

// NewResolver returns the resolver of a pipeline's secret references,
// configured by its secrets block (if any). It contacts no store until a
// reference needs one.
func NewResolver(p *config.Pipeline) *secrets.Resolver {
	if p.Secrets == nil {
		return secrets.NewResolver("", nil)
	}
	return secrets.NewResolver(p.Secrets.Provider, &p.Secrets.Config)
}

// SecretNodes returns the blocks of a pipeline where secret references
// may be, by YAML path: the settings and broker blocks (settings.state.
// redis_url, broker credentials) and the config of every enabled
// component.
func SecretNodes(p *config.Pipeline) map[string]*yaml.Node {
	out := PipelineSecretNodes(p)
	addTransforms := func(ts config.Transforms) {
		for _, t := range ts {
			out[t.Path+".config"] = &t.Config
		}
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		out["sources."+name+".config"] = &s.Config
		addTransforms(s.Transforms)
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		out["sinks."+name+".config"] = &s.Config
		addTransforms(s.Transforms)
	}
	return out
}

// PipelineSecretNodes returns the blocks that every part of a deployed
// pipeline reads, settings and broker, by YAML path (those present).
func PipelineSecretNodes(p *config.Pipeline) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for _, key := range []string{"settings", "broker"} {
		if n := spec.Find(p.Root, key); n != nil && n.Kind == yaml.MappingNode {
			out[key] = n
		}
	}
	return out
}

// ResolveSettings replaces the secret references in the settings and
// broker blocks of p (p.Settings, p.Broker) by their values. They are
// read once, at start: a rotated Redis or broker credential needs a
// restart, unlike a connector's (see WithSecrets). The document (p.Root)
// keeps the references, so nothing printed from it holds a value. The
// error is spec.Problems naming each unresolvable reference's YAML path
// and the provider that refused it.
func ResolveSettings(ctx context.Context, p *config.Pipeline, r *secrets.Resolver) error {
	nodes := PipelineSecretNodes(p)
	if n := nodes["settings"]; n != nil {
		resolved, refs, err := r.ResolveNode(ctx, n, "settings")
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			s, ps := spec.Decode[config.Settings](resolved, "settings")
			if len(ps) > 0 {
				return secrets.RedactError(spec.Problems(ps))
			}
			p.Settings = *s
		}
	}
	if n := nodes["broker"]; n != nil {
		resolved, refs, err := r.ResolveNode(ctx, n, "broker")
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			b, ps := spec.Decode[config.Broker](resolved, "broker")
			if len(ps) > 0 {
				return secrets.RedactError(spec.Problems(ps))
			}
			p.Broker = b
		}
	}
	return nil
}

// CheckSecrets resolves every reference of the pipeline and returns the
// problems: each unresolvable reference's YAML path and the provider that
// refused it, never a value.
func CheckSecrets(ctx context.Context, p *config.Pipeline, r *secrets.Resolver) spec.Problems {
	return r.Check(ctx, SecretNodes(p))
}

// HasSecretRefs reports whether any component config holds a reference.
func HasSecretRefs(p *config.Pipeline) bool {
	for path, n := range SecretNodes(p) {
		if len(secrets.Refs(n, path)) > 0 {
			return true
		}
	}
	return false
}

// WithSecrets returns a factory that resolves the secret references in
// each component's config before f builds it. A source or sink built from
// references is wrapped so that an authentication failure it reports
// (resilience.Auth) reads its references again and, when one changed (the
// secret was rotated), rebuilds the connector with the new values.
func WithSecrets(f Factory, r *secrets.Resolver) Factory {
	if s, ok := f.(*secretFactory); ok && s.r == r {
		return f
	}
	return &secretFactory{f: f, r: r}
}

type secretFactory struct {
	f Factory
	r *secrets.Resolver
}

// Canonical keeps the inner factory's names for metrics.
func (s *secretFactory) Canonical(kind, name string) string { return canonical(s.f, kind, name) }

func (s *secretFactory) resolve(ctx context.Context, cfg *yaml.Node, path string) (*yaml.Node, []secrets.Ref, error) {
	return s.r.ResolveNode(ctx, cfg, path)
}

func (s *secretFactory) NewSource(ctx context.Context, connector string, cfg *yaml.Node, path string) (Source, error) {
	n, refs, err := s.resolve(ctx, cfg, path)
	if err != nil {
		return nil, err
	}
	src, err := s.f.NewSource(ctx, connector, n, path)
	if err != nil || len(refs) == 0 {
		return src, secrets.RedactError(err)
	}
	build := func(ctx context.Context) (any, error) {
		n, _, err := s.resolve(ctx, cfg, path)
		if err != nil {
			return nil, err
		}
		return s.f.NewSource(ctx, connector, n, path)
	}
	return &rotatingSource{rotator: newRotator(s.r, refs, path, src, build)}, nil
}

func (s *secretFactory) NewSink(ctx context.Context, connector string, cfg *yaml.Node, path string) (Sink, error) {
	n, refs, err := s.resolve(ctx, cfg, path)
	if err != nil {
		return nil, err
	}
	snk, err := s.f.NewSink(ctx, connector, n, path)
	if err != nil || len(refs) == 0 {
		return snk, secrets.RedactError(err)
	}
	build := func(ctx context.Context) (any, error) {
		n, _, err := s.resolve(ctx, cfg, path)
		if err != nil {
			return nil, err
		}
		return s.f.NewSink(ctx, connector, n, path)
	}
	return &rotatingSink{rotator: newRotator(s.r, refs, path, snk, build)}, nil
}

func (s *secretFactory) NewTransform(ctx context.Context, typ string, cfg *yaml.Node, path string) (Transform, error) {
	n, refs, err := s.resolve(ctx, cfg, path)
	if err != nil {
		return nil, err
	}
	tr, err := s.f.NewTransform(ctx, typ, n, path)
	if err != nil || len(refs) == 0 {
		return tr, secrets.RedactError(err)
	}
	build := func(ctx context.Context) (any, error) {
		n, _, err := s.resolve(ctx, cfg, path)
		if err != nil {
			return nil, err
		}
		return s.f.NewTransform(ctx, typ, n, path)
	}
	rt := &rotatingTransform{rotator: newRotator(s.r, refs, path, tr, build)}
	if _, ok := tr.(InPlace); ok {
		// A rebuilt transform is of the same kind, so the in-place
		// promise (whole batches from the sink handler) still holds.
		return rotatingInPlace{rt}, nil
	}
	return rt, nil
}

// rotator holds a connector built from secret references and rebuilds it
// when the references' values changed.
type rotator struct {
	r     *secrets.Resolver
	refs  []secrets.Ref
	path  string
	build func(context.Context) (any, error)

	mu  sync.Mutex
	cur *held
	gen int // bumped on every rebuild

	rotating sync.Mutex
}

// held is a connector the rotator built and the calls still running on
// it. A rotation closes the connector it replaces only once the last of
// them returned: a sink that declares concurrent writes (or a transform,
// whose Apply may always run concurrently) can be in the middle of other
// batches when one batch's auth failure rotates it, and closing its
// client under them would fail them for nothing.
type held struct {
	c       any
	users   int
	retired bool
}

func newRotator(r *secrets.Resolver, refs []secrets.Ref, path string, c any, build func(context.Context) (any, error)) *rotator {
	return &rotator{r: r, refs: refs, path: path, cur: &held{c: c}, build: build}
}

func (r *rotator) current() (any, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.c, r.gen
}

// acquire returns the current connector for one call, which must release
// it when done.
func (r *rotator) acquire() (*held, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.users++
	return r.cur, r.gen
}

// release ends a call on h; the last call on a replaced connector closes it.
func (r *rotator) release(ctx context.Context, h *held) {
	r.mu.Lock()
	h.users--
	last := h.retired && h.users == 0
	r.mu.Unlock()
	if last {
		closeRetired(ctx, h.c)
	}
}

// closeRetired closes a replaced connector, even when the call that
// happened to be its last was cancelled.
func closeRetired(ctx context.Context, c any) {
	if cl, ok := c.(Closer); ok {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_ = cl.Close(cctx)
		cancel()
	}
}

// rotate reads the references again after an authentication failure of
// the connector of generation gen. It reports whether a new connector
// (with changed values) replaced it; the old one is closed once no call
// uses it.
func (r *rotator) rotate(ctx context.Context, gen int) (bool, error) {
	r.rotating.Lock()
	defer r.rotating.Unlock()
	if _, g := r.current(); g != gen {
		return true, nil // another caller rotated already
	}
	changed, err := r.r.Refresh(ctx, r.refs)
	if err != nil || !changed {
		return false, err
	}
	c, err := r.build(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: rebuilding with rotated secrets: %w", r.path, secrets.RedactError(err))
	}
	r.mu.Lock()
	old := r.cur
	old.retired = true
	idle := old.users == 0
	r.cur, r.gen = &held{c: c}, r.gen+1
	r.mu.Unlock()
	if idle {
		closeRetired(ctx, old.c)
	}
	return true, nil
}

// isAuth reports an authentication or authorization failure.
func isAuth(err error) bool {
	return err != nil && resilience.ClassOf(err) == resilience.Auth
}

// Rotations is how many times connectors were rebuilt with rotated
// secrets (for tests and the status).
func (r *rotator) Rotations() int {
	_, g := r.current()
	return g
}

func (r *rotator) Check(ctx context.Context) error {
	c, _ := r.current()
	if ch, ok := c.(Checker); ok {
		return ch.Check(ctx)
	}
	return nil
}

func (r *rotator) Close(ctx context.Context) error {
	c, _ := r.current()
	if cl, ok := c.(Closer); ok {
		return cl.Close(ctx)
	}
	return nil
}

func (r *rotator) Metrics() map[string]float64 {
	c, _ := r.current()
	if m, ok := c.(MetricsReporter); ok {
		return m.Metrics()
	}
	return nil
}

// Unwrap returns the connector currently in use.
func (r *rotator) Unwrap() any {
	c, _ := r.current()
	return c
}

// Unwrap returns the connector a WithSecrets factory built, for callers
// asking for an interface the wrapper does not forward (Discoverer,
// SnapshotRequester); other values are returned as they are.
func Unwrap(c any) any {
	if u, ok := c.(interface{ Unwrap() any }); ok {
		return u.Unwrap()
	}
	return c
}

type rotatingSink struct{ *rotator }

// Write writes with the current sink; after an authentication failure
// whose secrets had rotated it writes the batch once more with the sink
// rebuilt from the new values. A sink reporting failures per event (a
// *WriteError, as a webhook refusing a request with 401 does) counts as
// failing authentication when one of them did; then only its failed
// events are written again.
func (s *rotatingSink) Write(ctx context.Context, batch []*events.Event) error {
	h, gen := s.acquire()
	err := h.c.(Sink).Write(ctx, batch)
	s.release(ctx, h)
	var we *WriteError
	perEvent := errors.As(err, &we) && !isAuth(err)
	if !isAuth(err) && !(perEvent && anyAuth(we)) {
		return err
	}
	rotated, rerr := s.rotate(ctx, gen)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if !rotated {
		return err
	}
	h, _ = s.acquire()
	defer s.release(ctx, h)
	if !perEvent {
		return h.c.(Sink).Write(ctx, batch)
	}
	idx := make([]int, 0, len(we.Failed))
	for i := range we.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	sub := make([]*events.Event, len(idx))
	for k, i := range idx {
		sub[k] = batch[i]
	}
	err = h.c.(Sink).Write(ctx, sub)
	if err == nil {
		return nil
	}
	// The failures of the rewrite, by the batch's indices.
	failed := map[int]error{}
	var we2 *WriteError
	if errors.As(err, &we2) {
		for k, e := range we2.Failed {
			if k >= 0 && k < len(idx) {
				failed[idx[k]] = e
			}
		}
	} else {
		for _, i := range idx {
			failed[i] = err
		}
	}
	return &WriteError{Failed: failed}
}

// anyAuth reports whether an event of a *WriteError failed authentication.
func anyAuth(we *WriteError) bool {
	for _, e := range we.Failed {
		if isAuth(e) {
			return true
		}
	}
	return false
}

func (s *rotatingSink) ConcurrentWrites() bool {
	c, _ := s.current()
	cw, ok := c.(ConcurrentWriter)
	return ok && cw.ConcurrentWrites()
}

func (s *rotatingSink) BatchPolicy() (int, time.Duration) {
	c, _ := s.current()
	if b, ok := c.(Batcher); ok {
		return b.BatchPolicy()
	}
	return 0, 0
}

type rotatingSource struct{ *rotator }

// Read reads with the current source. An authentication failure reads
// the references again; when they changed the source is rebuilt, and the
// error (made retryable) lets the runner restart Read on the new one from
// the last committed position.
func (s *rotatingSource) Read(ctx context.Context, resume []byte, emit Emitter) error {
	h, gen := s.acquire()
	err := h.c.(Source).Read(ctx, resume, emit)
	s.release(ctx, h)
	if !isAuth(err) {
		return err
	}
	rotated, rerr := s.rotate(ctx, gen)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if rotated {
		return resilience.New(resilience.Connection, fmt.Errorf("%s: credentials rotated; reconnecting: %w", s.path, err))
	}
	return err
}

type rotatingTransform struct{ *rotator }

// rotatingInPlace is a rotatingTransform over an InPlace transform.
type rotatingInPlace struct{ *rotatingTransform }

func (rotatingInPlace) InPlace() {}

// Apply applies the current transform; after an authentication failure
// whose secrets had rotated it applies the rebuilt one to the batch.
func (t *rotatingTransform) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	h, gen := t.acquire()
	out, err := h.c.(Transform).Apply(ctx, batch)
	t.release(ctx, h)
	if !isAuth(err) {
		return out, err
	}
	rotated, rerr := t.rotate(ctx, gen)
	if rerr != nil {
		return out, errors.Join(err, rerr)
	}
	if !rotated {
		return out, err
	}
	h, _ = t.acquire()
	defer t.release(ctx, h)
	return h.c.(Transform).Apply(ctx, batch)
}

// ValidateTopic forwards the topic check of transforms that route.
func (t *rotatingTransform) ValidateTopic(topic string) error {
	c, _ := t.current()
	if v, ok := c.(interface{ ValidateTopic(string) error }); ok {
		return v.ValidateTopic(topic)
	}
	return nil
}
