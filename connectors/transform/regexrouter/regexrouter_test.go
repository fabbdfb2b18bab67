package regexrouter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

const path = "sources.x.transforms[0].config"

func newT(t testing.TB, yaml string) connector.Transform {
	t.Helper()
	return transformtest.Build(t, yaml, New)
}

func ev(typ events.Type, stream string, src *events.SourceInfo) *events.Event {
	data := `{"id":1}`
	switch typ {
	case events.Update:
		data = `{"before":{"id":1},"after":{"id":1}}`
	case events.Truncate:
		data = `null`
	}
	e := events.New(typ, stream, events.RawPayload([]byte(data)))
	e.Source = src
	e.Route = "prior"
	return e
}

func pg(table string) *events.SourceInfo {
	return &events.SourceInfo{Connector: "postgres-cdc", Database: "shop", Schema: "public", Table: table}
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"RegexRouter", "regex_router", "regex-router"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "RegexRouter" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

const cfgYAML = `
default_topic: other
routes:
  - pattern: '^public\.(order.*)$'
    topic: cdc.$1
  - pattern: '^(?P<db>\w+)\.customers$'
    topic: ${db}-customers
  - pattern: '^click'
    topic: clickstream
  - pattern: 'orders'
    topic: never-reached-for-public-orders
`

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		e      *events.Event
		route  string
		err    string
	}{
		{"schema.table with capture", cfgYAML, ev(events.Insert, "orders", pg("orders")), "cdc.orders", ""},
		{"update", cfgYAML, ev(events.Update, "orders", pg("order_items")), "cdc.order_items", ""},
		{"delete", cfgYAML, ev(events.Delete, "orders", pg("orders")), "cdc.orders", ""},
		{"snapshot read", cfgYAML, ev(events.SnapshotRead, "orders", pg("orders")), "cdc.orders", ""},
		{"truncate follows its table", cfgYAML, ev(events.Truncate, "orders", pg("orders")), "cdc.orders", ""},
		{"schema event follows its table", cfgYAML, ev(events.Schema, "orders", pg("orders")), "cdc.orders", ""},
		{"mysql: database stands in for the schema", cfgYAML, ev(events.Insert, "x", &events.SourceInfo{Database: "crm", Table: "customers"}), "crm-customers", ""},
		{"schema wins over database", cfgYAML, ev(events.Insert, "x", &events.SourceInfo{Database: "crm", Schema: "sales", Table: "customers"}), "sales-customers", ""},
		{"stream when there is no source", cfgYAML, ev(events.Record, "clicks", nil), "clickstream", ""},
		{"stream when the table does not match", cfgYAML, ev(events.Record, "clicks", pg("pageviews")), "clickstream", ""},
		{"first matching route wins", cfgYAML, ev(events.Insert, "orders", &events.SourceInfo{Schema: "archive", Table: "orders"}), "never-reached-for-public-orders", ""},
		{"default topic", cfgYAML, ev(events.Insert, "users", pg("users")), "other", ""},
		{"no default keeps the topic", "routes: [{pattern: '^x$', topic: y}]", ev(events.Insert, "users", pg("users")), "prior", ""},
		{"default only", "default_topic: all", ev(events.Insert, "users", nil), "all", ""},
		{"table only", "routes: [{pattern: '^(\\w+)$', topic: 't.$1'}]", ev(events.Insert, "", &events.SourceInfo{Table: "orders"}), "t.orders", ""},
		{"$$ is a dollar", "routes: [{pattern: 'o', topic: 'a$$b'}]", ev(events.Insert, "o", nil), "a$b", ""},
		{"state untouched", cfgYAML, ev(events.State, "_state", nil), "prior", ""},
		{"log untouched", cfgYAML, ev(events.Log, "clicks", nil), "prior", ""},
		{"empty expansion", "routes: [{pattern: '^(x)?orders$', topic: '$1'}]", ev(events.Insert, "orders", nil), "", `expands to nothing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newT(t, tc.config)
			for range 2 { // the second time from the cache
				e := tc.e.Clone()
				out, err := tr.Apply(context.Background(), []*events.Event{e})
				if tc.err != "" {
					var te *connector.TransformError
					if !errors.As(err, &te) || !strings.Contains(te.Failed[0].Err.Error(), tc.err) || len(out) != 0 {
						t.Fatalf("err = %v, want %q", err, tc.err)
					}
					continue
				}
				if err != nil || len(out) != 1 || out[0] != e {
					t.Fatalf("out %v err %v", out, err)
				}
				if e.Route != tc.route {
					t.Errorf("route %q, want %q", e.Route, tc.route)
				}
				if e.Data.Changed() {
					t.Error("data marked changed")
				}
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	tr := newT(t, cfgYAML)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				table := fmt.Sprintf("order_%d", (g*200+i)%50)
				e := ev(events.Insert, "s", pg(table))
				if _, err := tr.Apply(context.Background(), []*events.Event{e}); err != nil || e.Route != "cdc."+table {
					t.Errorf("%s: %q %v", table, e.Route, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCacheIsBounded(t *testing.T) {
	r, err := build(&Config{DefaultTopic: "d"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxCache + 10 {
		e := ev(events.Insert, fmt.Sprint(i), nil)
		if err := r.apply(context.Background(), e); err != nil || e.Route != "d" {
			t.Fatal(e.Route, err)
		}
	}
	if len(r.cache) != maxCache {
		t.Errorf("cache has %d entries", len(r.cache))
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"{}", path, "needs routes"},
		{"routes: []", path, "needs routes"},
		{"routes: [{pattern: a, topic: b}, {pattern: 'a(b', topic: c}]", path + ".routes[1].pattern", "invalid regular expression"},
		{"routes: [{pattern: a}]", path + ".routes[0].topic", "required"},
		{"routes: [{topic: a}]", path + ".routes[0].pattern", "required"},
		{"routes: [{pattern: a, topic: ''}]", path + ".routes[0].topic", "must not be empty"},
		{"routes: [{pattern: '(a)', topic: 'x$2'}]", path + ".routes[0].topic", "group 2 but the pattern has 1"},
		{"routes: [{pattern: '(a)', topic: 'x$1_y'}]", path + ".routes[0].topic", "write ${1}x"},
		{"routes: [{pattern: '(?P<t>a)', topic: 'x${u}'}]", path + ".routes[0].topic", `"u"`},
		{"routes: [{pattern: '(a)', topic: 'x${1'}]", path + ".routes[0].topic", "unclosed"},
		{"routes: [{pattern: a, topic: b, topik: c}]", path + ".routes[0].topik", `did you mean "topic"`},
		{"default_topic: a\nroutes: {pattern: a}", path + ".routes", "expected a list"},
	} {
		_, ps := spec.DecodeString[Config](tc.yaml, path)
		found := false
		for _, p := range ps {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.msg)
		}
		if !found {
			t.Errorf("%q: problems %v, want %s: %s", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	// Valid templates.
	for _, topic := range []string{"x", "x.$1", "x.${1}y", "${t}", "$$1", "a$", "$0"} {
		if _, ps := spec.DecodeString[Config]("routes: [{pattern: '(?P<t>a)', topic: '"+topic+"'}]", path); len(ps) > 0 {
			t.Errorf("%s: %v", topic, ps)
		}
	}
}

// TestRoundTrip: the route is not part of the event's JSON (the publisher
// reads it), and the data goes out as it came in.
func TestRoundTrip(t *testing.T) {
	tr := newT(t, cfgYAML)
	e := ev(events.Update, "orders", pg("orders"))
	if _, err := tr.Apply(context.Background(), []*events.Event{e}); err != nil || e.Route != "cdc.orders" {
		t.Fatal(e.Route, err)
	}
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := back.Data.JSON(); string(d) != `{"before":{"id":1},"after":{"id":1}}` || back.Source.Table != "orders" || strings.Contains(string(b), "cdc.orders") {
		t.Errorf("round trip: %s", b)
	}
}

// BenchmarkRegexRouter: one op is one event; the events cycle through 20
// tables, so after the first batch every decision comes from the memo.
// "uncached" measures the regular expressions themselves.
func BenchmarkRegexRouter(b *testing.B) {
	const n = 8192
	batch := make([]*events.Event, n)
	for i := range batch {
		batch[i] = ev(events.Insert, "orders", pg(fmt.Sprintf("order_%d", i%20)))
	}
	b.Run("apply", func(b *testing.B) {
		tr := newT(b, cfgYAML)
		b.ReportAllocs()
		for done := 0; done < b.N; done += n {
			k := min(n, b.N-done)
			if out, err := tr.Apply(context.Background(), batch[:k]); err != nil || len(out) != k {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	})
	b.Run("uncached", func(b *testing.B) {
		r, err := build(&Config{DefaultTopic: "other", Routes: []Route{{`^public\.(order.*)$`, "cdc.$1"}}})
		if err != nil {
			b.Fatal(err)
		}
		table, stream := []byte("public.order_1"), []byte("orders")
		b.ReportAllocs()
		for b.Loop() {
			if d := r.route(table, stream); d.topic != "cdc.order_1" {
				b.Fatal(d)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	})
}
