package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// emfLine is one EMF document, decoded and checked against the
// specification's structure.
type emfLine struct {
	root       map[string]any
	timestamp  int64
	namespace  string
	dimensions [][]string
	metrics    map[string]string // name -> unit
}

// parseEMF splits out into lines and validates each as an EMF document: a
// JSON object whose _aws member holds exactly Timestamp and
// CloudWatchMetrics, whose directives hold exactly Namespace, Dimensions and
// Metrics, and whose every referenced dimension (a string) and metric (a
// number) is a top-level member.
func parseEMF(t *testing.T, out string) []emfLine {
	t.Helper()
	if out != "" && !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end in a newline: %q", out)
	}
	var lines []emfLine
	for raw := range strings.Lines(out) {
		var l emfLine
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&l.root); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, raw)
		}

		aws, ok := l.root["_aws"].(map[string]any)
		if !ok {
			t.Fatalf("no _aws object: %s", raw)
		}
		if keys := sortedKeys(aws); !slices.Equal(keys, []string{"CloudWatchMetrics", "Timestamp"}) {
			t.Errorf("_aws members %v, want CloudWatchMetrics and Timestamp", keys)
		}
		ts, ok := aws["Timestamp"].(json.Number)
		if !ok {
			t.Fatalf("Timestamp is not a number: %#v", aws["Timestamp"])
		}
		if l.timestamp, ok = asInt(ts); !ok {
			t.Fatalf("Timestamp %v is not an integer", ts)
		}

		directives, ok := aws["CloudWatchMetrics"].([]any)
		if !ok || len(directives) == 0 {
			t.Fatalf("CloudWatchMetrics is not a non-empty array: %#v", aws["CloudWatchMetrics"])
		}
		l.metrics = make(map[string]string)
		for _, d := range directives {
			dir, ok := d.(map[string]any)
			if !ok {
				t.Fatalf("directive is not an object: %#v", d)
			}
			if keys := sortedKeys(dir); !slices.Equal(keys, []string{"Dimensions", "Metrics", "Namespace"}) {
				t.Errorf("directive members %v, want Dimensions, Metrics, Namespace", keys)
			}
			ns, _ := dir["Namespace"].(string)
			if ns == "" || (l.namespace != "" && ns != l.namespace) {
				t.Errorf("namespace %q (line's %q)", ns, l.namespace)
			}
			l.namespace = ns

			sets, ok := dir["Dimensions"].([]any)
			if !ok {
				t.Fatalf("Dimensions is not an array: %#v", dir["Dimensions"])
			}
			l.dimensions = nil
			for _, s := range sets {
				set, ok := s.([]any)
				if !ok {
					t.Fatalf("DimensionSet is not an array: %#v", s)
				}
				var names []string
				for _, n := range set {
					name, _ := n.(string)
					if _, ok := l.root[name].(string); !ok {
						t.Errorf("dimension %q is not a top-level string member", name)
					}
					names = append(names, name)
				}
				l.dimensions = append(l.dimensions, names)
			}

			defs, ok := dir["Metrics"].([]any)
			if !ok || len(defs) == 0 || len(defs) > 100 {
				t.Fatalf("Metrics is not an array of 1..100 definitions: %#v", dir["Metrics"])
			}
			for _, m := range defs {
				def, ok := m.(map[string]any)
				if !ok {
					t.Fatalf("MetricDefinition is not an object: %#v", m)
				}
				for k := range def {
					if k != "Name" && k != "Unit" {
						t.Errorf("MetricDefinition has extra member %q", k)
					}
				}
				name, _ := def["Name"].(string)
				if _, ok := l.root[name].(json.Number); !ok {
					t.Errorf("metric %q is not a top-level number member", name)
				}
				if _, dup := l.metrics[name]; dup {
					t.Errorf("metric %q defined twice", name)
				}
				unit, _ := def["Unit"].(string)
				l.metrics[name] = unit
			}
		}
		lines = append(lines, l)
	}
	return lines
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func asInt(n json.Number) (int64, bool) {
	v, err := n.Int64()
	return v, err == nil
}

// num returns the integer value of a top-level metric member.
func (l emfLine) num(t *testing.T, name string) int64 {
	t.Helper()
	n, ok := l.root[name].(json.Number)
	if !ok {
		t.Fatalf("no metric %q in %v", name, l.root)
	}
	v, ok := asInt(n)
	if !ok {
		t.Fatalf("metric %q = %v, not an integer", name, n)
	}
	return v
}

// findLine returns the line whose top-level member k equals v.
func findLine(t *testing.T, lines []emfLine, k, v string) emfLine {
	t.Helper()
	for _, l := range lines {
		if l.root[k] == v {
			return l
		}
	}
	t.Fatalf("no line with %s=%q", k, v)
	return emfLine{}
}

func writeEMF(t *testing.T, r *Registry, dims map[string]string, now time.Time) []emfLine {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteEMF(&buf, "Rivven/Connect", dims, now); err != nil {
		t.Fatalf("WriteEMF: %v", err)
	}
	return parseEMF(t, buf.String())
}

func TestWriteEMFStructureAndDeltas(t *testing.T) {
	r := NewRegistry()
	src := &fakeStats{}
	src.set(sourceStats, sinkStats)
	r.Watch(src)
	consumed := r.Counter("kafka.source.messages_consumed_total", "")
	consumed.Add(100)
	r.Gauge("kafka.source.partitions_assigned", "").Set(6)
	topical := r.Counter("kafka.source.bytes_total", "", "topic", "orders")
	topical.Add(4096)

	dims := map[string]string{"FunctionName": "rivven-orders"}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	lines := writeEMF(t, r, dims, now)
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 2 connector lines + 2 custom label sets", len(lines))
	}

	src1 := findLine(t, lines, "name", "orders")
	if src1.timestamp != now.UnixMilli() {
		t.Errorf("Timestamp %d, want %d", src1.timestamp, now.UnixMilli())
	}
	if src1.namespace != "Rivven/Connect" {
		t.Errorf("Namespace %q", src1.namespace)
	}
	if want := [][]string{{"name", "connector", "kind", "FunctionName"}}; !slices.EqualFunc(src1.dimensions, want, slices.Equal) {
		t.Errorf("Dimensions %v, want %v", src1.dimensions, want)
	}
	for k, want := range map[string]string{"connector": "datagen", "kind": "source", "FunctionName": "rivven-orders", "state": "Running"} {
		if src1.root[k] != want {
			t.Errorf("%s = %v, want %q", k, src1.root[k], want)
		}
	}
	if _, ok := src1.root["lag"]; ok {
		t.Error("unknown lag (-1) was emitted")
	}
	wantFirst := map[string]int64{"events_in": 10, "events_out": 9, "errors": 1, "dropped": 2, "dead_lettered": 3, "restarts": 4}
	for name, want := range wantFirst {
		if got := src1.num(t, name); got != want {
			t.Errorf("first flush %s = %d, want %d", name, got, want)
		}
		if src1.metrics[name] != "Count" {
			t.Errorf("%s unit %q, want Count", name, src1.metrics[name])
		}
	}
	if len(src1.metrics) != len(wantFirst) {
		t.Errorf("source line metrics %v, want %d", src1.metrics, len(wantFirst))
	}
	if got := findLine(t, lines, "name", "orders-out").num(t, "lag"); got != 42 {
		t.Errorf("sink lag %d, want 42", got)
	}

	first := customLine(t, lines, "kafka.source.messages_consumed_total")
	if got := first.num(t, "kafka.source.messages_consumed_total"); got != 100 {
		t.Errorf("first flush custom counter %d, want 100", got)
	}
	if want := [][]string{{"FunctionName"}}; !slices.EqualFunc(first.dimensions, want, slices.Equal) {
		t.Errorf("custom Dimensions %v, want %v", first.dimensions, want)
	}
	if labelled := customLine(t, lines, "kafka.source.bytes_total"); labelled.root["topic"] != "orders" {
		t.Errorf("labelled custom line topic = %v", labelled.root["topic"])
	}

	// Second flush: only the increase since the first is reported, gauges
	// keep their value.
	s := sourceStats
	s.EventsIn, s.EventsOut, s.Errors = 15, 9, 3
	src.set(s, sinkStats)
	consumed.Add(20)
	lines = writeEMF(t, r, dims, now.Add(time.Minute))

	src2 := findLine(t, lines, "name", "orders")
	for name, want := range map[string]int64{"events_in": 5, "events_out": 0, "errors": 2, "dropped": 0, "dead_lettered": 0, "restarts": 0} {
		if got := src2.num(t, name); got != want {
			t.Errorf("second flush %s = %d, want delta %d", name, got, want)
		}
	}
	if got := findLine(t, lines, "name", "orders-out").num(t, "lag"); got != 42 {
		t.Errorf("second flush lag %d, want gauge value 42", got)
	}
	custom := customLine(t, lines, "kafka.source.messages_consumed_total")
	if got := custom.num(t, "kafka.source.messages_consumed_total"); got != 20 {
		t.Errorf("second flush custom counter %d, want delta 20", got)
	}
	if got := custom.num(t, "kafka.source.partitions_assigned"); got != 6 {
		t.Errorf("second flush gauge %d, want 6", got)
	}
	if got := customLine(t, lines, "kafka.source.bytes_total").num(t, "kafka.source.bytes_total"); got != 0 {
		t.Errorf("second flush unchanged counter %d, want 0", got)
	}
	// Prometheus keeps the cumulative value regardless of EMF flushes.
	if consumed.Value() != 120 {
		t.Errorf("counter Value %d after flushes, want 120", consumed.Value())
	}
}

// customLine returns the line that defines metric.
func customLine(t *testing.T, lines []emfLine, metric string) emfLine {
	t.Helper()
	for _, l := range lines {
		if _, ok := l.metrics[metric]; ok {
			return l
		}
	}
	t.Fatalf("no line defines %q", metric)
	return emfLine{}
}

func TestWriteEMFCustomLines(t *testing.T) {
	r := NewRegistry()
	r.Counter("snowflake.requests.success", "").Add(3)
	r.Gauge("snowflake.queue.depth", "").Set(2.5)
	r.Counter("kafka.source.bytes_total", "", "topic", "orders").Add(7)
	r.Counter("kafka.source.bytes_total", "", "topic", "users").Add(9)

	lines := writeEMF(t, r, nil, time.UnixMilli(1700000000123))
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want one per label set (3)", len(lines))
	}

	plain := customLine(t, lines, "snowflake.requests.success")
	if want := [][]string{{}}; !slices.EqualFunc(plain.dimensions, want, slices.Equal) {
		t.Errorf("unlabelled metrics Dimensions %v, want [[]]", plain.dimensions)
	}
	if plain.metrics["snowflake.requests.success"] != "Count" || plain.metrics["snowflake.queue.depth"] != "None" {
		t.Errorf("units %v", plain.metrics)
	}
	if v, _ := plain.root["snowflake.queue.depth"].(json.Number).Float64(); v != 2.5 {
		t.Errorf("gauge %v, want 2.5", v)
	}
	if plain.timestamp != 1700000000123 {
		t.Errorf("Timestamp %d", plain.timestamp)
	}

	orders := findLine(t, lines, "topic", "orders")
	users := findLine(t, lines, "topic", "users")
	if orders.num(t, "kafka.source.bytes_total") != 7 || users.num(t, "kafka.source.bytes_total") != 9 {
		t.Errorf("labelled counters: orders %v, users %v", orders.root, users.root)
	}
	if want := [][]string{{"topic"}}; !slices.EqualFunc(orders.dimensions, want, slices.Equal) {
		t.Errorf("labelled Dimensions %v, want %v", orders.dimensions, want)
	}
}

func TestWriteEMFSplitsLargeDirectives(t *testing.T) {
	r := NewRegistry()
	for i := range 250 {
		r.Counter(fmt.Sprintf("bulk.metric_%03d", i), "").Inc()
	}
	var buf bytes.Buffer
	if err := r.WriteEMF(&buf, "Rivven/Connect", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := parseEMF(t, buf.String()) // checks ≤100 per directive
	if len(lines) != 1 || len(lines[0].metrics) != 250 {
		t.Fatalf("want 1 line with 250 metrics, got %d lines", len(lines))
	}
	if n := len(lines[0].root["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)); n != 3 {
		t.Errorf("%d directives, want 3", n)
	}
}

func TestWriteEMFCounterReset(t *testing.T) {
	r := NewRegistry()
	src := &fakeStats{}
	src.set(sourceStats)
	r.Watch(src)
	writeEMF(t, r, nil, time.Now())

	s := sourceStats
	s.EventsIn = 3 // below the 10 reported before: the connector's stats restarted
	src.set(s)
	if got := findLine(t, writeEMF(t, r, nil, time.Now()), "name", "orders").num(t, "events_in"); got != 3 {
		t.Errorf("after reset events_in = %d, want 3", got)
	}
}

func TestWriteEMFErrors(t *testing.T) {
	r := NewRegistry()
	src := &fakeStats{}
	src.set(sourceStats)
	r.Watch(src)
	c := r.Counter("x.count", "")
	c.Add(5)

	var buf bytes.Buffer
	if err := r.WriteEMF(&buf, "", nil, time.Now()); err == nil {
		t.Error("empty namespace: want error")
	}
	if err := r.WriteEMF(&buf, "Ns", map[string]string{"kind": "lambda"}, time.Now()); err == nil {
		t.Error("dimension clashing with the kind dimension: want error")
	}
	if err := r.WriteEMF(&buf, "Ns", map[string]string{"_aws": "x"}, time.Now()); err == nil {
		t.Error("_aws dimension: want error")
	}
	tooMany := make(map[string]string)
	for i := range 30 {
		tooMany[fmt.Sprintf("d%02d", i)] = "v"
	}
	if err := r.WriteEMF(&buf, "Ns", tooMany, time.Now()); err == nil {
		t.Error("33 dimensions: want error")
	}
	if buf.Len() != 0 {
		t.Errorf("failed calls wrote %q", buf.String())
	}

	// A failed write consumes no delta: the next flush reports it all.
	if err := r.WriteEMF(failingWriter{}, "Ns", nil, time.Now()); err == nil {
		t.Error("failing writer: want error")
	}
	lines := writeEMF(t, r, nil, time.Now())
	if got := customLine(t, lines, "x.count").num(t, "x.count"); got != 5 {
		t.Errorf("after failed flushes x.count = %d, want 5", got)
	}
	if got := findLine(t, lines, "name", "orders").num(t, "events_in"); got != 10 {
		t.Errorf("after failed flushes events_in = %d, want 10", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("stdout closed") }

func TestWriteEMFEmptyRegistry(t *testing.T) {
	var buf bytes.Buffer
	if err := NewRegistry().WriteEMF(&buf, "Ns", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("empty registry wrote %q", buf.String())
	}
}
