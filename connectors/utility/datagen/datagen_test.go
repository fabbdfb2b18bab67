package datagen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func seeded(pattern string, seed uint64, max uint64, cdc bool) *Config {
	return &Config{Pattern: pattern, MaxEvents: max, StreamName: "datagen", Seed: &seed, CDCMode: cdc}
}

// collect runs a source to the end and returns every event it emitted.
func collect(t testing.TB, cfg *Config, resume []byte) []*events.Event {
	t.Helper()
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []*events.Event
	emit := connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		got = append(got, b...) // the batch slice is reused, the events are not
		return nil
	})
	if err := src.Read(context.Background(), resume, emit); err != nil {
		t.Fatal(err)
	}
	return got
}

// rivvenJSON is the stream as the Rivven codec writes it, one line each.
func rivvenJSON(t testing.TB, evs []*events.Event) []byte {
	t.Helper()
	var out []byte
	for _, e := range evs {
		b, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), '\n')
	}
	return out
}

func TestRegistered(t *testing.T) {
	e, ok := catalog.Lookup(catalog.Source, "datagen")
	if !ok {
		t.Fatal("datagen is not registered")
	}
	if e.Category != catalog.Utility || e.Subcategory != "Generate" {
		t.Errorf("category %s/%s", e.Category, e.Subcategory)
	}
}

func TestSeededRunsAreIdentical(t *testing.T) {
	for _, p := range patternList {
		for _, cdc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cdc=%v", p.name, cdc), func(t *testing.T) {
				a := rivvenJSON(t, collect(t, seeded(p.name, 42, 3000, cdc), nil))
				b := rivvenJSON(t, collect(t, seeded(p.name, 42, 3000, cdc), nil))
				if !bytes.Equal(a, b) {
					t.Fatal("two runs with seed 42 differ")
				}
				c := rivvenJSON(t, collect(t, seeded(p.name, 43, 3000, cdc), nil))
				if bytes.Equal(a, c) && p.name != "sequence" {
					t.Fatal("seeds 42 and 43 give the same stream")
				}
			})
		}
	}
}

func TestEventShape(t *testing.T) {
	cfg := seeded("orders", 7, 3, false)
	cfg.StreamName, cfg.Namespace, cfg.EventsPerSecond = "demo_orders", "shop", 200
	evs := collect(t, cfg, nil)
	for i, e := range evs {
		seq := uint64(i)
		if e.Type != events.Record || e.Stream != "demo_orders" || e.NamespaceOr("") != "shop" {
			t.Errorf("event %d: type %s stream %s namespace %v", i, e.Type, e.Stream, e.Namespace)
		}
		if want := epoch.Add(time.Duration(i) * 5 * time.Millisecond); !e.Timestamp.Equal(want) {
			t.Errorf("event %d: timestamp %v, want %v (logical clock)", i, e.Timestamp, want)
		}
		if e.Metadata.Position != strconv.Itoa(i) || e.Metadata.Sequence == nil || *e.Metadata.Sequence != seq {
			t.Errorf("event %d: position %q sequence %v", i, e.Metadata.Position, e.Metadata.Sequence)
		}
		if want := fmt.Sprintf(`{"order_id":%d}`, i+1); string(e.Key) != want {
			t.Errorf("event %d: key %s, want %s", i, e.Key, want)
		}
		if e.Source == nil || *e.Source != (events.SourceInfo{Connector: "datagen", Table: "demo_orders"}) {
			t.Errorf("event %d: source %+v", i, e.Source)
		}
	}
	// Events own their pointers: changing one changes no other.
	*evs[0].Namespace = "changed"
	evs[0].Source.Table = "changed"
	if *evs[1].Namespace != "shop" || evs[1].Source.Table != "demo_orders" {
		t.Error("events share namespace or source")
	}

	cfg.Namespace = ""
	if e := collect(t, cfg, nil)[0]; e.Namespace != nil {
		t.Errorf("namespace %q without one configured", *e.Namespace)
	}
}

func TestUnseededUsesWallClock(t *testing.T) {
	before := time.Now().Add(-time.Second)
	evs := collect(t, &Config{Pattern: "users", MaxEvents: 10, StreamName: "u"}, nil)
	if len(evs) != 10 {
		t.Fatalf("got %d events", len(evs))
	}
	for _, e := range evs {
		if e.Timestamp.Before(before) {
			t.Fatalf("timestamp %v is not the wall clock", e.Timestamp)
		}
	}
}

// documentedFields reads the pattern table of README.md: pattern -> fields
// and key, so the docs and the generator cannot disagree.
func documentedFields(t *testing.T) map[string][2]string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- patterns:start -->")
	table, _, ok2 := strings.Cut(rest, "<!-- patterns:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md lacks the patterns markers")
	}
	out := map[string][2]string{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		fields := strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(cells[3]), "`", ""), " ", "")
		out[name] = [2]string{fields, strings.Trim(strings.TrimSpace(cells[4]), "`")}
	}
	return out
}

// keysOf returns the top-level keys of a JSON object, in order.
func keysOf(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestPatternsHaveDocumentedFields(t *testing.T) {
	docs := documentedFields(t)
	if len(docs) != len(patternList) {
		t.Errorf("README documents %d patterns, the generator has %d", len(docs), len(patternList))
	}
	for _, p := range patternList {
		doc, ok := docs[p.name]
		if !ok {
			t.Errorf("pattern %s is not in README.md", p.name)
			continue
		}
		if got := strings.Join(p.fields, ","); got != doc[0] {
			t.Errorf("%s: fields %s, README says %s", p.name, got, doc[0])
		}
		for _, e := range collect(t, seeded(p.name, 1, 500, false), nil) {
			raw, _ := e.Data.JSON()
			if !json.Valid(raw) {
				t.Fatalf("%s: invalid JSON %s", p.name, raw)
			}
			if got := keysOf(t, raw); !slices.Equal(got, p.fields) {
				t.Fatalf("%s: fields %v, want %v in %s", p.name, got, p.fields, raw)
			}
			if got := keysOf(t, e.Key); len(got) != 1 || got[0] != p.pk || p.pk != doc[1] {
				t.Fatalf("%s: key %s, README says %s", p.name, e.Key, doc[1])
			}
		}
	}
}

func TestCDCModeIsConsistent(t *testing.T) {
	for _, p := range patternList {
		t.Run(p.name, func(t *testing.T) {
			// 30k events fill the 10k pool (it grows by 0.5 per event) and
			// then exercise the replacement of forgotten rows.
			evs := collect(t, seeded(p.name, 99, 30_000, true), nil)
			if len(evs) == 0 || evs[0].Type != events.Insert {
				t.Fatal("the first event is not an insert")
			}
			state := map[string][]byte{} // key -> the row as last emitted
			count := map[events.Type]int{}
			for i, e := range evs {
				key := string(e.Key)
				count[e.Type]++
				raw, _ := e.Data.JSON()
				cur, live := state[key]
				switch e.Type {
				case events.Insert:
					if live {
						t.Fatalf("event %d: insert of live key %s", i, key)
					}
					state[key] = raw
				case events.Update:
					var u struct{ Before, After json.RawMessage }
					if err := json.Unmarshal(raw, &u); err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					if !live {
						t.Fatalf("event %d: update of unknown key %s", i, key)
					}
					if !bytes.Equal(u.Before, cur) {
						t.Fatalf("event %d: before\n%s\nlast emitted\n%s", i, u.Before, cur)
					}
					if !bytes.Contains(u.After, idOf(p, e.Key)) {
						t.Fatalf("event %d: after %s lost the key %s", i, u.After, e.Key)
					}
					state[key] = u.After
				case events.Delete:
					if !live {
						t.Fatalf("event %d: delete of unknown key %s", i, key)
					}
					if !bytes.Equal(raw, cur) {
						t.Fatalf("event %d: deleted row\n%s\nlast emitted\n%s", i, raw, cur)
					}
					delete(state, key)
				default:
					t.Fatalf("event %d: type %s in cdc_mode", i, e.Type)
				}
			}
			// 60/30/10 after the first insert, within a generous margin.
			n := float64(len(evs))
			for typ, want := range map[events.Type]float64{events.Insert: .6, events.Update: .3, events.Delete: .1} {
				if got := float64(count[typ]) / n; got < want-.02 || got > want+.02 {
					t.Errorf("%s share %.3f, want about %.2f", typ, got, want)
				}
			}
		})
	}
}

// idOf is the primary key's "field":value as it appears in a row (the
// pageviews key is not a column, so any row matches).
func idOf(p *pattern, key []byte) []byte {
	if p.name == "pageviews" {
		return nil
	}
	return bytes.TrimSuffix(bytes.TrimPrefix(key, []byte("{")), []byte("}"))
}

func TestMaxEvents(t *testing.T) {
	for _, n := range []uint64{1, 1023, 1024, 1025, 2500} {
		evs := collect(t, seeded("orders", 1, n, false), nil)
		if uint64(len(evs)) != n {
			t.Errorf("max_events %d: got %d events", n, len(evs))
		}
		if last := evs[len(evs)-1].Metadata.Position; last != strconv.FormatUint(n-1, 10) {
			t.Errorf("max_events %d: last position %s", n, last)
		}
	}
	// Paced runs stop at the limit too (1000/s keeps the test short).
	cfg := seeded("orders", 1, 30, false)
	cfg.EventsPerSecond = 1000
	evs := collect(t, cfg, nil)
	if len(evs) != 30 {
		t.Errorf("paced: got %d events, want 30", len(evs))
	}
	for i, e := range evs {
		if want := epoch.Add(time.Duration(i) * time.Millisecond); !e.Timestamp.Equal(want) {
			t.Fatalf("paced event %d: timestamp %v, want %v", i, e.Timestamp, want)
		}
	}
}

func TestResumeContinuesTheStream(t *testing.T) {
	for _, cdc := range []bool{false, true} {
		for _, p := range []string{"orders", "users"} {
			full := collect(t, seeded(p, 5, 6000, cdc), nil)
			for _, last := range []int{0, 1023, 4321} {
				got := collect(t, seeded(p, 5, 6000, cdc), []byte(strconv.Itoa(last)))
				if !bytes.Equal(rivvenJSON(t, got), rivvenJSON(t, full[last+1:])) {
					t.Errorf("%s cdc=%v: resume after %d differs from the uninterrupted run", p, cdc, last)
				}
			}
		}
	}
	if evs := collect(t, seeded("orders", 5, 10, false), []byte("9")); len(evs) != 0 {
		t.Errorf("resume at max_events emitted %d events", len(evs))
	}
	// Unseeded resumes continue the sequence numbers.
	evs := collect(t, &Config{Pattern: "orders", MaxEvents: 12, StreamName: "o"}, []byte("9"))
	if len(evs) != 2 || evs[0].Metadata.Position != "10" || string(evs[0].Key) != `{"order_id":11}` {
		t.Errorf("unseeded resume: %d events, first at %v", len(evs), evs)
	}
}

func TestBadResumePosition(t *testing.T) {
	src, _ := New(context.Background(), seeded("orders", 1, 0, false))
	err := src.Read(context.Background(), []byte("lsn:0/16B3748"), connector.EmitterFunc(func(context.Context, []*events.Event) error { return nil }))
	if !errors.Is(err, connector.ErrFatal) {
		t.Fatalf("got %v, want a fatal error", err)
	}
}

// runUntilCancelled reads until the emitter has seen enough events, then
// cancels; Read must return nil. The deadline only guards against a hang.
func runUntilCancelled(t *testing.T, cfg *Config, enough int) {
	t.Helper()
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := 0
	done := make(chan error, 1)
	go func() {
		done <- src.Read(ctx, nil, connector.EmitterFunc(func(ctx context.Context, b []*events.Event) error {
			if seen += len(b); seen >= enough {
				cancel()
				return ctx.Err() // what a real emitter says when cancelled
			}
			return nil
		}))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read returned %v after cancel, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Read did not stop after its context was cancelled")
	}
}

func TestCancelStops(t *testing.T) {
	runUntilCancelled(t, &Config{Pattern: "orders", EventsPerSecond: 1, StreamName: "o"}, 1)
	runUntilCancelled(t, &Config{Pattern: "orders", EventsPerSecond: 0, StreamName: "o"}, 5000)
	runUntilCancelled(t, &Config{Pattern: "orders", EventsPerSecond: 10_000_000, StreamName: "o"}, 5000)
}

func TestEmitErrorIsReturned(t *testing.T) {
	src, _ := New(context.Background(), seeded("orders", 1, 0, false))
	boom := errors.New("broker down")
	err := src.Read(context.Background(), nil, connector.EmitterFunc(func(context.Context, []*events.Event) error { return boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

func decode(_ *testing.T, src string) (*Config, []spec.Problem) {
	return spec.DecodeString[Config](src, "sources.demo.config")
}

func TestConfig(t *testing.T) {
	// The reference's example.
	cfg, ps := decode(t, "pattern: orders\nevents_per_second: 10\nmax_events: 0\nstream_name: demo_orders\nseed: 42\ncdc_mode: true\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.EventsPerSecond != 10 || cfg.StreamName != "demo_orders" || cfg.Seed == nil || *cfg.Seed != 42 || !cfg.CDCMode {
		t.Errorf("decoded %+v", cfg)
	}
	cfg, ps = decode(t, "pattern: users\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.EventsPerSecond != 1 || cfg.MaxEvents != 0 || cfg.StreamName != "datagen" || cfg.Seed != nil || cfg.CDCMode || cfg.Namespace != "" {
		t.Errorf("defaults %+v", cfg)
	}

	for _, tc := range []struct{ yaml, path, msg string }{
		{"events_per_second: 5\n", "sources.demo.config.pattern", "required"},
		{"pattern: oders\n", "sources.demo.config.pattern", `did you mean "orders"`},
		{"pattern: clicks\n", "sources.demo.config.pattern", "key_value"},
		{"pattern: orders\nevents_per_second: -1\n", "sources.demo.config.events_per_second", "out of range"},
		{"pattern: orders\nstream_name: ''\n", "sources.demo.config.stream_name", "empty"},
		{"pattern: orders\nrate: 5\n", "sources.demo.config.rate", "unknown key"},
	} {
		_, ps := decode(t, tc.yaml)
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
}

func TestValueTablesNeedNoEscaping(t *testing.T) {
	for _, list := range [][]string{products, orderStatuses, firstNames, lastNames, mailDomains, pagePaths,
		referrers, eventTypes, eventSources, metricNames, metricUnits, hosts, categories} {
		for _, s := range list {
			if got := string(events.AppendJSONString(nil, s)); got != `"`+s+`"` {
				t.Errorf("%q needs escaping: %s", s, got)
			}
		}
	}
}
