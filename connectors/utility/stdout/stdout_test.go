package stdout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// countingWriter records what was written and in how many calls.
type countingWriter struct {
	bytes.Buffer
	calls int
	err   error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	return w.Buffer.Write(p)
}

func testSink(t *testing.T, cfg Config) (*Sink, *countingWriter) {
	t.Helper()
	if cfg.Format == "" {
		cfg.Format = "json"
	}
	if cfg.Codec == "" {
		cfg.Codec = events.CodecRivven
	}
	w := &countingWriter{}
	s, err := newSink(&cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	return s, w
}

var ts = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func insert() *events.Event {
	ns := "shop"
	seq := uint64(7)
	return &events.Event{
		Type:      events.Insert,
		Stream:    "orders",
		Namespace: &ns,
		Timestamp: ts,
		Data:      events.RawPayload([]byte(`{"order_id":1,"note":"a\tb"}`)),
		Metadata:  events.Metadata{Position: "7", Sequence: &seq},
		Key:       []byte(`{"order_id":1}`),
		Source:    &events.SourceInfo{Connector: "datagen", Table: "orders"},
	}
}

func update() *events.Event {
	return &events.Event{
		Type:      events.Update,
		Stream:    "orders",
		Timestamp: ts.Add(time.Millisecond),
		// Raw data keeps the layout it arrived in; one-line formats compact it.
		Data: events.RawPayload([]byte("{\"before\": {\"order_id\": 1},\n \"after\": {\"order_id\": 1, \"status\": \"paid\"}}")),
	}
}

func write(t *testing.T, s *Sink, batch ...*events.Event) error {
	t.Helper()
	return s.Write(context.Background(), batch)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"stdout", "console"} {
		e, ok := catalog.Lookup(catalog.Sink, name)
		if !ok || e.Name != "stdout" || e.Category != catalog.Utility || e.Subcategory != "Debug" {
			t.Errorf("%s: %+v, %v", name, e, ok)
		}
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"jsonl", Config{Format: "jsonl"},
			`{"event_type":"insert","stream":"orders","namespace":"shop","timestamp":"2025-01-02T03:04:05Z","data":{"order_id":1,"note":"a\tb"},"metadata":{"position":"7","sequence":7},"key":{"order_id":1},"source":{"connector":"datagen","table":"orders"}}` + "\n" +
				`{"event_type":"update","stream":"orders","namespace":null,"timestamp":"2025-01-02T03:04:05.001Z","data":{"before":{"order_id":1},"after":{"order_id":1,"status":"paid"}},"metadata":{}}` + "\n"},
		{"text", Config{Format: "text"},
			`2025-01-02T03:04:05Z insert orders {"order_id":1,"note":"a\tb"}` + "\n" +
				`2025-01-02T03:04:05.001Z update orders {"before":{"order_id":1},"after":{"order_id":1,"status":"paid"}}` + "\n"},
		{"tsv", Config{Format: "tsv"},
			"insert\torders\tshop\t2025-01-02T03:04:05Z\t" + `{"order_id":1,"note":"a\tb"}` + "\n" +
				"update\torders\t\t2025-01-02T03:04:05.001Z\t" + `{"before":{"order_id":1},"after":{"order_id":1,"status":"paid"}}` + "\n"},
		{"pretty", Config{Format: "pretty"},
			`[2025-01-02T03:04:05Z] INSERT orders (shop) key={"order_id":1} position=7
  {
    "order_id": 1,
    "note": "a\tb"
  }
[2025-01-02T03:04:05.001Z] UPDATE orders
  {
    "before": {
      "order_id": 1
    },
    "after": {
      "order_id": 1,
      "status": "paid"
    }
  }
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, w := testSink(t, tc.cfg)
			if err := write(t, s, insert(), update()); err != nil {
				t.Fatal(err)
			}
			if got := w.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestCodecsRoundTrip decodes what json and jsonl print, for every codec.
func TestCodecsRoundTrip(t *testing.T) {
	for _, codec := range events.CodecNames {
		for _, cfg := range []Config{{Format: "jsonl", Codec: codec}, {Format: "json", Codec: codec}, {Format: "json", Pretty: true, Codec: codec}} {
			s, w := testSink(t, cfg)
			if err := write(t, s, insert(), update()); err != nil {
				t.Fatal(err)
			}
			out := w.String()
			dec := json.NewDecoder(strings.NewReader(out))
			for i, want := range []*events.Event{insert(), update()} {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					t.Fatalf("%+v: document %d: %v", cfg, i, err)
				}
				got, err := events.DecodeAny(raw)
				if err != nil {
					t.Fatalf("%+v: document %d: %v", cfg, i, err)
				}
				if got.Type != want.Type || !got.Timestamp.Equal(want.Timestamp) {
					t.Errorf("%+v: document %d decodes to %s at %v", cfg, i, got.Type, got.Timestamp)
				}
			}
			lines := strings.Count(out, "\n")
			if indented := cfg.Pretty; indented != (lines > 2) {
				t.Errorf("%+v: %d lines for 2 events", cfg, lines)
			}
		}
	}
}

func TestUnencodableEventsAreReported(t *testing.T) {
	s, w := testSink(t, Config{Format: "jsonl", Codec: events.CodecDebezium})
	state := &events.Event{Type: events.State, Stream: "_state", Timestamp: ts, Data: events.RawPayload([]byte(`{"cursor":1}`))}
	err := write(t, s, insert(), state, update())
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil {
		t.Fatalf("got %v, want a WriteError for event 1", err)
	}
	sc := bufio.NewScanner(&w.Buffer)
	var ops []string
	for sc.Scan() {
		var env struct{ Op string }
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ops = append(ops, env.Op)
	}
	if strings.Join(ops, ",") != "c,u" {
		t.Errorf("printed ops %v, want the insert and the update", ops)
	}

	// Data that is not JSON cannot be indented.
	s, w = testSink(t, Config{Format: "pretty"})
	bad := insert()
	bad.Data = events.RawPayload([]byte(`{"order_id":`))
	err = write(t, s, bad, update())
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[0] == nil {
		t.Fatalf("got %v, want a WriteError for event 0", err)
	}
	if !strings.HasPrefix(w.String(), "[2025-01-02T03:04:05.001Z] UPDATE") {
		t.Errorf("output %q should hold only the update", w.String())
	}
}

func TestOneWritePerBatch(t *testing.T) {
	s, w := testSink(t, Config{Format: "jsonl"})
	batch := make([]*events.Event, 500)
	for i := range batch {
		batch[i] = insert()
	}
	if err := write(t, s, batch...); err != nil {
		t.Fatal(err)
	}
	if err := write(t, s); err != nil {
		t.Fatal(err)
	}
	if w.calls != 1 || strings.Count(w.String(), "\n") != 500 {
		t.Errorf("%d write calls, %d lines; want 1 call, 500 lines", w.calls, strings.Count(w.String(), "\n"))
	}
}

func TestWriterErrorFailsTheBatch(t *testing.T) {
	s, w := testSink(t, Config{Format: "jsonl"})
	w.err = errors.New("broken pipe")
	err := write(t, s, insert())
	var we *connector.WriteError
	if err == nil || errors.As(err, &we) || !errors.Is(err, w.err) {
		t.Errorf("got %v, want the writer's error for the whole batch", err)
	}
}

func TestTSVEscapes(t *testing.T) {
	s, w := testSink(t, Config{Format: "tsv"})
	e := insert()
	ns := "a\tb\nc\\d"
	e.Namespace, e.Stream = &ns, "x\ry"
	if err := write(t, s, e); err != nil {
		t.Fatal(err)
	}
	cols := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\t")
	if len(cols) != 5 || cols[1] != `x\ry` || cols[2] != `a\tb\nc\\d` {
		t.Errorf("columns %q", cols)
	}
}

func decode(_ *testing.T, src string) (*Config, []spec.Problem) {
	return spec.DecodeString[Config](src, "sinks.console.config")
}

func TestConfig(t *testing.T) {
	// The reference's example, and the defaults.
	cfg, ps := decode(t, "format: json\npretty: true\n")
	if len(ps) > 0 || cfg.Format != "json" || !cfg.Pretty || cfg.Codec != "rivven" {
		t.Errorf("decoded %+v, %v", cfg, ps)
	}
	cfg, ps = decode(t, "{}")
	if len(ps) > 0 || *cfg != (Config{Format: "json", Codec: "rivven", Debezium: events.DefaultDebeziumOptions(), CloudEvents: events.DefaultCloudEventsOptions()}) {
		t.Errorf("defaults %+v, %v", cfg, ps)
	}
	for _, tc := range []struct{ yaml, path, msg string }{
		{"format: yaml\n", "sinks.console.config.format", "allowed"},
		{"codec: avro\n", "sinks.console.config.codec", "allowed"},
		{"format: text\ncodec: debezium\n", "sinks.console.config.codec", "json and jsonl"},
		{"format: jsonl\npretty: true\n", "sinks.console.config.pretty", "one line per event"},
	} {
		_, ps := decode(t, tc.yaml)
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	if _, err := New(context.Background(), &Config{Format: "xml", Codec: "rivven"}); !errors.Is(err, connector.ErrFatal) {
		t.Errorf("New with format xml: %v", err)
	}
}
