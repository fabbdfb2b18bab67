package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// passwordSink accepts writes only while its configured password is the
// current one, as a database does after its password was rotated.
type passwordSink struct {
	password string
	current  *string
	mu       *sync.Mutex
	closed   bool
	writes   *int
}

func (s *passwordSink) Write(_ context.Context, b []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.password != *s.current {
		return resilience.Errorf(resilience.Auth, "password authentication failed")
	}
	*s.writes += len(b)
	return nil
}

func (s *passwordSink) Close(context.Context) error { s.closed = true; return nil }

type secretSinkFactory struct {
	fakeFactory
	built []*passwordSink
	cfgs  []string
	cur   *string
	mu    *sync.Mutex
	n     *int
}

func (f *secretSinkFactory) NewSink(_ context.Context, _ string, cfg *yaml.Node, _ string) (Sink, error) {
	pw := spec.Find(cfg, "password").Value
	f.cfgs = append(f.cfgs, pw)
	s := &passwordSink{password: pw, current: f.cur, mu: f.mu, writes: f.n}
	f.built = append(f.built, s)
	return s, nil
}

const secretPipeline = `
secrets:
  provider: env
  config: {prefix: T_}
sources:
  keyed: {connector: keyed, topic: t}
sinks:
  out:
    connector: rec
    topics: [t]
    config:
      user: app
      password: vault:secret/data/db#password
`

// A sink built from a reference gets the value; when the database starts
// refusing it (the password was rotated) the reference is read again, the
// sink rebuilt with the new value and the batch written.
func TestSecretReferenceRotation(t *testing.T) {
	t.Setenv("T_SECRET_DATA_DB_PASSWORD", "old-password-1")
	p := load(t, secretPipeline)
	cur, mu, n := "old-password-1", &sync.Mutex{}, 0
	ff := &secretSinkFactory{cur: &cur, mu: mu, n: &n}
	f := WithSecrets(ff, NewResolver(p))
	ctx := context.Background()
	snk, err := f.NewSink(ctx, "rec", &p.Sinks["out"].Config, "sinks.out.config")
	if err != nil {
		t.Fatal(err)
	}
	batch := []*events.Event{events.New(events.Insert, "t", events.RawPayload([]byte(`{}`)))}
	if err := snk.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// The pipeline document keeps the reference, not the value.
	if got := spec.Find(&p.Sinks["out"].Config, "password").Value; got != "vault:secret/data/db#password" {
		t.Errorf("document holds %q", got)
	}
	// Rotation: the store and the database change together.
	t.Setenv("T_SECRET_DATA_DB_PASSWORD", "new-password-2")
	cur = "new-password-2"
	if err := snk.Write(ctx, batch); err != nil {
		t.Fatalf("write after rotation: %v", err)
	}
	if len(ff.built) != 2 || ff.cfgs[1] != "new-password-2" || !ff.built[0].closed || n != 2 {
		t.Errorf("built %d sinks with %v, first closed %v, writes %d", len(ff.built), ff.cfgs, ff.built[0].closed, n)
	}
	// An auth failure without a rotation is the sink's error as it was;
	// nothing is rebuilt.
	cur = "something-else"
	err = snk.Write(ctx, batch)
	if resilience.ClassOf(err) != resilience.Auth || len(ff.built) != 2 {
		t.Errorf("err = %v, built %d", err, len(ff.built))
	}
	if u, ok := Unwrap(snk).(*passwordSink); !ok || u != ff.built[1] {
		t.Errorf("Unwrap = %T", Unwrap(snk))
	}
}

func TestUnresolvableReferenceFailsTheBuildWithItsPath(t *testing.T) {
	p := load(t, secretPipeline)
	ff := &secretSinkFactory{cur: new(string), mu: &sync.Mutex{}, n: new(int)}
	_, err := NewLocal(context.Background(), p, ff, LocalOptions{Store: embedded(t), Log: quiet})
	var ps spec.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "sinks.out.config.password" || ps[0].Line != 13 ||
		!strings.Contains(ps[0].Message, "the env provider refused it: environment variable T_SECRET_DATA_DB_PASSWORD is not set") {
		t.Fatalf("err = %v", err)
	}
	if len(ff.built) != 0 {
		t.Error("the sink was built without its secret")
	}
	if ps := CheckSecrets(context.Background(), p, NewResolver(p)); len(ps) != 1 || ps[0].Path != "sinks.out.config.password" {
		t.Errorf("CheckSecrets = %v", ps)
	}
}

// keyedTagger is an InPlace transform whose config holds a secret.
type keyedTagger struct{ tagger }

type secretTransformFactory struct{ fakeFactory }

func (secretTransformFactory) NewTransform(context.Context, string, *yaml.Node, string) (Transform, error) {
	return &keyedTagger{}, nil
}

// A transform built from a reference keeps its in-place promise, so the
// sink handler still gives it whole batches.
func TestSecretReferenceKeepsInPlace(t *testing.T) {
	t.Setenv("T_SECRET_DATA_LLM_KEY", "sk-1")
	p := load(t, secretPipeline)
	var cfg yaml.Node
	if err := yaml.Unmarshal([]byte("api_key: vault:secret/data/llm#key\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	tr, err := WithSecrets(secretTransformFactory{}, NewResolver(p)).NewTransform(context.Background(), "tag", cfg.Content[0], "transforms[0].config")
	if err != nil {
		t.Fatal(err)
	}
	if _, wrapped := tr.(*keyedTagger); wrapped {
		t.Fatal("the transform was not wrapped for rotation; the test proves nothing")
	}
	if _, ok := tr.(InPlace); !ok {
		t.Errorf("%T hides the InPlace of the transform it wraps", tr)
	}
}

// slowPasswordSink is a passwordSink that declares concurrent writes and
// whose writes of the stream "slow" wait for release: a write in flight
// while another one's auth failure rotates the sink. A write that finds
// its client closed fails, as a real client's would.
type slowPasswordSink struct {
	password string
	current  *atomic.Pointer[string]
	entered  chan struct{}
	release  chan struct{}
	closed   atomic.Bool
}

func (s *slowPasswordSink) ConcurrentWrites() bool { return true }

func (s *slowPasswordSink) Write(_ context.Context, b []*events.Event) error {
	if b[0].Stream == "slow" {
		close(s.entered)
		<-s.release
	} else if s.password != *s.current.Load() {
		return resilience.Errorf(resilience.Auth, "password authentication failed")
	}
	if s.closed.Load() {
		return errors.New("write on a closed client")
	}
	return nil
}

func (s *slowPasswordSink) Close(context.Context) error { s.closed.Store(true); return nil }

type slowSecretFactory struct {
	fakeFactory
	current          *atomic.Pointer[string]
	entered, release chan struct{}
	built            []*slowPasswordSink
}

func (f *slowSecretFactory) NewSink(_ context.Context, _ string, cfg *yaml.Node, _ string) (Sink, error) {
	s := &slowPasswordSink{password: spec.Find(cfg, "password").Value, current: f.current, entered: f.entered, release: f.release}
	f.built = append(f.built, s)
	return s, nil
}

// A sink rebuilt with rotated secrets while another batch is still being
// written by the old one (a sink that writes concurrently) keeps the old
// one open until that write returns, then closes it: the write in flight
// succeeds. Before, the rotation closed the old sink under it.
func TestSecretRotationWaitsForWritesInFlight(t *testing.T) {
	t.Setenv("T_SECRET_DATA_DB_PASSWORD", "old-password-1")
	p := load(t, secretPipeline)
	var cur atomic.Pointer[string]
	old := "old-password-1"
	cur.Store(&old)
	ff := &slowSecretFactory{current: &cur, entered: make(chan struct{}), release: make(chan struct{})}
	f := WithSecrets(ff, NewResolver(p))
	ctx := context.Background()
	snk, err := f.NewSink(ctx, "rec", &p.Sinks["out"].Config, "sinks.out.config")
	if err != nil {
		t.Fatal(err)
	}
	if cw, ok := snk.(ConcurrentWriter); !ok || !cw.ConcurrentWrites() {
		t.Fatal("the rotating wrapper hides the sink's concurrent writes")
	}
	slow := make(chan error, 1)
	go func() {
		slow <- snk.Write(ctx, []*events.Event{events.New(events.Insert, "slow", events.RawPayload([]byte(`{}`)))})
	}()
	<-ff.entered
	t.Setenv("T_SECRET_DATA_DB_PASSWORD", "new-password-2")
	rotated := "new-password-2"
	cur.Store(&rotated)
	if err := snk.Write(ctx, []*events.Event{events.New(events.Insert, "t", events.RawPayload([]byte(`{}`)))}); err != nil {
		t.Fatalf("write after rotation: %v", err)
	}
	if len(ff.built) != 2 {
		t.Fatalf("built %d sinks, want the rotated one", len(ff.built))
	}
	if ff.built[0].closed.Load() {
		t.Error("the old sink was closed while a write was in flight on it")
	}
	close(ff.release)
	if err := <-slow; err != nil {
		t.Errorf("the write in flight during the rotation: %v", err)
	}
	if !ff.built[0].closed.Load() {
		t.Error("the old sink was not closed after its last write")
	}
	if ff.built[1].closed.Load() {
		t.Error("the current sink was closed")
	}
}

// perEventSink reports its failures per event, as a webhook refusing
// each request with 401 does: a *WriteError, not one error for the batch.
type perEventSink struct{ *passwordSink }

func (s perEventSink) Write(ctx context.Context, b []*events.Event) error {
	if err := s.passwordSink.Write(ctx, b); err != nil {
		failed := map[int]error{}
		for i := range b {
			failed[i] = err
		}
		return &WriteError{Failed: failed}
	}
	return nil
}

type perEventFactory struct{ *secretSinkFactory }

func (f perEventFactory) NewSink(ctx context.Context, c string, cfg *yaml.Node, path string) (Sink, error) {
	s, err := f.secretSinkFactory.NewSink(ctx, c, cfg, path)
	return perEventSink{s.(*passwordSink)}, err
}

// Per-event authentication failures rotate too, and the failed events
// are written again with the rebuilt sink.
func TestSecretRotationOnPerEventFailures(t *testing.T) {
	t.Setenv("T_SECRET_DATA_DB_PASSWORD", "old-password-1")
	p := load(t, secretPipeline)
	cur, mu, n := "old-password-1", &sync.Mutex{}, 0
	ff := perEventFactory{&secretSinkFactory{cur: &cur, mu: mu, n: &n}}
	snk, err := WithSecrets(ff, NewResolver(p)).NewSink(context.Background(), "rec", &p.Sinks["out"].Config, "sinks.out.config")
	if err != nil {
		t.Fatal(err)
	}
	batch := []*events.Event{
		events.New(events.Insert, "t", events.RawPayload([]byte(`{}`))),
		events.New(events.Insert, "t", events.RawPayload([]byte(`{}`))),
	}
	t.Setenv("T_SECRET_DATA_DB_PASSWORD", "new-password-2")
	cur = "new-password-2"
	if err := snk.Write(context.Background(), batch); err != nil {
		t.Fatalf("write after rotation: %v", err)
	}
	if len(ff.built) != 2 || ff.cfgs[1] != "new-password-2" || n != 2 {
		t.Errorf("built %d sinks with %v, %d events written", len(ff.built), ff.cfgs, n)
	}
}

const settingsSecretPipeline = `
secrets:
  provider: env
  config: {prefix: T_}
settings:
  state: {redis_url: "vault:secret/data/redis#url"}
sources:
  keyed: {connector: keyed, topic: t}
`

// A reference in the settings block is resolved into p.Settings, the
// document keeps the reference, and one that cannot be read names its
// path and the provider.
func TestResolveSettings(t *testing.T) {
	p := load(t, settingsSecretPipeline)
	if err := ResolveSettings(context.Background(), p, NewResolver(p)); err == nil {
		t.Fatal("an unset reference resolved")
	} else {
		var ps spec.Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "settings.state.redis_url" ||
			!strings.Contains(ps[0].Message, "the env provider refused it: environment variable T_SECRET_DATA_REDIS_URL is not set") {
			t.Fatalf("err = %v", err)
		}
	}
	if ps := CheckSecrets(context.Background(), p, NewResolver(p)); len(ps) != 1 || ps[0].Path != "settings.state.redis_url" {
		t.Errorf("CheckSecrets = %v", ps)
	}
	t.Setenv("T_SECRET_DATA_REDIS_URL", "redis://:pw-9f2@127.0.0.1:6379/0")
	if err := ResolveSettings(context.Background(), p, NewResolver(p)); err != nil {
		t.Fatal(err)
	}
	if p.Settings.State.RedisURL != "redis://:pw-9f2@127.0.0.1:6379/0" {
		t.Errorf("redis_url = %q", p.Settings.State.RedisURL)
	}
	if got := spec.Find(p.Root, "settings.state.redis_url").Value; got != "vault:secret/data/redis#url" {
		t.Errorf("document holds %q", got)
	}
	// The rest of the settings keep their defaults.
	if p.Settings.MaxConsecutiveErrors != 10 || p.Settings.LogLevel != "info" {
		t.Errorf("settings lost their defaults: %+v", p.Settings)
	}
}
