package catalog

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/buildtag"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/spec"
)

type nopConfig struct {
	Level string `yaml:"level" default:"info" enum:"info,debug" doc:"How loud."`
	Size  int    `yaml:"size" required:"true" min:"1" doc:"Batch size."`
}

type nop struct{ cfg *nopConfig }

func (nop) Write(context.Context, []*events.Event) error { return nil }
func (nop) Apply(_ context.Context, b []*events.Event) ([]*events.Event, error) {
	return b, nil
}

func testRegistry() *Registry {
	r := &Registry{}
	sink := func(_ context.Context, c *nopConfig) (pipeline.Sink, error) { return nop{c}, nil }
	tr := func(_ context.Context, c *nopConfig) (pipeline.Transform, error) { return nop{c}, nil }
	register(r, Sink, Meta{Name: "postgres-sink", Aliases: []string{"pg"}, Category: Database, Subcategory: "RDBC",
		Description: "Writes rows to PostgreSQL tables", Tags: []string{"sql", "jdbc"}}, sink)
	register(r, Sink, Meta{Name: "stdout", Aliases: []string{"console"}, Category: Utility, Subcategory: "Debug",
		Description: "Prints events, handy to debug postgres pipelines", Tags: []string{"debug"}}, sink)
	register(r, Sink, Meta{Name: "kafka-sink", Category: Messaging, Subcategory: "Queues",
		Description: "Produces to Kafka", Tags: []string{"postgres-compatible"}}, sink)
	register(r, Transform, Meta{Name: "ExtractNewRecordState", Aliases: []string{"unwrap-cdc"}, Category: Transforms,
		Description: "Unwraps CDC envelopes"}, tr)
	return r
}

func TestLookupNormalizesSpelling(t *testing.T) {
	r := testRegistry()
	for _, n := range []string{"ExtractNewRecordState", "extract_new_record_state", "extract-new-record-state", "UNWRAP_CDC"} {
		if e, ok := r.Lookup(Transform, n); !ok || e.Name != "ExtractNewRecordState" {
			t.Errorf("Lookup(%q) = %v %v", n, e, ok)
		}
	}
	if _, ok := r.Lookup(Source, "stdout"); ok {
		t.Error("kinds must not mix")
	}
	if e, ok := r.Lookup(Sink, "console"); !ok || e.Name != "stdout" {
		t.Error("alias lookup failed")
	}
}

func TestDuplicateRegistrationPanics(t *testing.T) {
	r := testRegistry()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "registered twice") {
			t.Fatalf("panic = %v", p)
		}
	}()
	register(r, Sink, Meta{Name: "Std_Out", Category: Utility, Description: "x"},
		func(context.Context, *nopConfig) (pipeline.Sink, error) { return nop{}, nil })
}

func TestAllIsGroupedByCategory(t *testing.T) {
	var got []string
	for _, e := range testRegistry().All() {
		got = append(got, e.Name)
	}
	if strings.Join(got, ",") != "postgres-sink,kafka-sink,stdout,ExtractNewRecordState" {
		t.Fatalf("order %v", got)
	}
}

func TestSearchRanksNameOverAliasTagAndDescription(t *testing.T) {
	var got []string
	for _, e := range testRegistry().Search("POSTGRES") {
		got = append(got, e.Name)
	}
	// name match, then tag match, then description match.
	if strings.Join(got, ",") != "postgres-sink,kafka-sink,stdout" {
		t.Fatalf("search order %v", got)
	}
	if hits := testRegistry().Search("pg"); len(hits) != 1 || hits[0].Name != "postgres-sink" {
		t.Fatalf("alias search: %v", hits)
	}
	if hits := testRegistry().Search("postgres debug"); len(hits) != 1 || hits[0].Name != "stdout" {
		t.Fatalf("every word must match: %v", hits)
	}
	if hits := testRegistry().Search("nothing-like-this"); len(hits) != 0 {
		t.Fatalf("no match expected: %v", hits)
	}
}

func TestInstantiateDecodesWithDefaultsAndPath(t *testing.T) {
	r := testRegistry()
	e, _ := r.Lookup(Sink, "pg")
	var n yaml.Node
	yaml.Unmarshal([]byte("size: 5\n"), &n)
	c, err := e.Instantiate(context.Background(), &n, "sinks.db.config")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.(nop).cfg; cfg.Size != 5 || cfg.Level != "info" {
		t.Fatalf("config %+v", cfg)
	}
	yaml.Unmarshal([]byte("size: 0\nlevl: debug\n"), &n)
	_, err = e.Instantiate(context.Background(), &n, "sinks.db.config")
	if err == nil || !strings.Contains(err.Error(), "sinks.db.config.size (line 1:7): 0 is out of range") ||
		!strings.Contains(err.Error(), `unknown key "levl" (did you mean "level"?)`) {
		t.Fatalf("err = %v", err)
	}
	if ps, ok := r.CheckConfig("sink", "nope", &n, "x"); ok || ps != nil {
		t.Fatal("unknown component reported as known")
	}
	if e.Package() != "github.com/rivven/rivven-connect/shared/catalog" {
		t.Fatalf("package %q", e.Package())
	}
}

func TestReservedNames(t *testing.T) {
	reserved[Transform] = map[string]string{normalize("future-thing"): "the future thing"}
	defer delete(reserved, Transform)
	r := testRegistry()
	if what, ok := r.Reserved("transform", "Future_Thing"); !ok || !strings.Contains(what, "future thing") {
		t.Fatalf("future-thing not reserved: %q", what)
	}
	if _, ok := r.Reserved("transform", "Filter"); ok {
		t.Fatal("Filter reported reserved")
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "reserved") {
			t.Fatalf("registering a reserved name: panic %v", p)
		}
	}()
	register(r, Transform, Meta{Name: "future-thing", Category: Transforms, Description: "x"},
		func(context.Context, *nopConfig) (pipeline.Transform, error) { return nop{}, nil })
}

// TestUnlinked checks that a component the build-tag vocabulary knows but
// this registry does not (a -tags custom build left it out) is reported
// with the tag that links it, by validation and by the builder alike.
func TestUnlinked(t *testing.T) {
	buildtag.Know(buildtag.Component{Kind: "sink", Name: "elsewhere-sink", Aliases: []string{"elsewhere"}})
	r := &Registry{}
	if tag, ok := r.Unlinked("sink", "elsewhere"); !ok || tag != "sinks.elsewhere" {
		t.Fatalf("Unlinked = %q, %v", tag, ok)
	}
	if _, ok := r.Unlinked("sink", "never-heard-of"); ok {
		t.Error("an unknown name was reported as unlinked")
	}
	_, err := Builder{R: r}.NewSink(context.Background(), "elsewhere", &yaml.Node{}, "sinks.out.connector")
	if err == nil || !strings.Contains(err.Error(), `sinks.out.connector: sink "elsewhere" is not linked into this binary (it was built with -tags custom without sinks.elsewhere); build one that has it with `+"`rivven-connect build -c PIPELINE`") {
		t.Errorf("NewSink error = %v", err)
	}
}

// crossConfig has a rule spanning fields, which only its Validate knows.
type crossConfig struct {
	Min int `yaml:"min" default:"1" doc:"Lower bound."`
	Max int `yaml:"max" default:"10" doc:"Upper bound."`
}

func (c *crossConfig) Validate() []spec.Problem {
	if c.Min > c.Max {
		return []spec.Problem{{Path: "min", Message: "exceeds max"}}
	}
	return nil
}

type runtimeKey struct{}

// The catalog is the one place a config is checked: a constructor sees only
// configs that passed the spec and the type's own Validate, and gets the
// context the engine passes (which carries the component's runtime).
func TestConstructorGetsOnlyValidatedConfigsAndTheContext(t *testing.T) {
	r := &Registry{}
	var built []*crossConfig
	var got any
	register(r, Sink, Meta{Name: "cross", Category: Utility, Description: "x"},
		func(ctx context.Context, c *crossConfig) (pipeline.Sink, error) {
			built, got = append(built, c), ctx.Value(runtimeKey{})
			return nop{}, nil
		})
	e, _ := r.Lookup(Sink, "cross")
	ctx := context.WithValue(context.Background(), runtimeKey{}, "rt")
	for _, bad := range []string{"min: 11\n", "max: x\n", "mni: 1\n"} {
		var n yaml.Node
		_ = yaml.Unmarshal([]byte(bad), &n)
		if _, err := e.Instantiate(ctx, &n, "sinks.out.config"); err == nil || !strings.Contains(err.Error(), "sinks.out.config.") {
			t.Errorf("%q: err = %v, want a problem naming the YAML path", bad, err)
		}
	}
	if len(built) != 0 {
		t.Fatalf("the constructor ran on %d invalid config(s)", len(built))
	}
	var n yaml.Node
	_ = yaml.Unmarshal([]byte("min: 2\n"), &n)
	if _, err := e.Instantiate(ctx, &n, "sinks.out.config"); err != nil {
		t.Fatal(err)
	}
	if len(built) != 1 || built[0].Min != 2 || built[0].Max != 10 || got != "rt" {
		t.Fatalf("built %+v with context value %v", built, got)
	}
}

type writesConcurrently struct{}

func (writesConcurrently) Write(context.Context, []*events.Event) error { return nil }
func (writesConcurrently) ConcurrentWrites() bool                       { return true }

type writesOneAtATime struct{}

func (writesOneAtATime) Write(context.Context, []*events.Event) error { return nil }

// A sink entry's ConcurrentWrites must say what its sink says: deployments
// size concurrency by the entry, the handler by the sink.
func TestSinkConcurrencyMatchesItsEntry(t *testing.T) {
	type cfg struct{}
	for i, tc := range []struct {
		entry bool
		sink  connector.Sink
		ok    bool
	}{
		{true, writesConcurrently{}, true},
		{false, writesOneAtATime{}, true},
		{false, writesConcurrently{}, false},
		{true, writesOneAtATime{}, false},
	} {
		r := &Registry{}
		name := fmt.Sprintf("conc-%d", i)
		registerSink(r, Meta{Name: name, Category: Utility, Description: "test", ConcurrentWrites: tc.entry},
			func(context.Context, *cfg) (connector.Sink, error) { return tc.sink, nil })
		_, err := Builder{R: r}.NewSink(context.Background(), name, nil, "sinks.x.config")
		if (err == nil) != tc.ok {
			t.Errorf("entry %v, sink %T: err %v", tc.entry, tc.sink, err)
		}
	}
}
