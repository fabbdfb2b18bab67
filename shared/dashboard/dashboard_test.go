package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/testenv"
	"github.com/rivven/rivven-connect/shared/topic"
)

// The page's logic (layout, formatting, health) is tested by node's own
// test runner.
func TestPageLogic(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not installed: %v", err)
	}
	out, err := exec.Command(node, "--test", "web/graph.test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^# pass [1-9]`).Match(out) || !regexp.MustCompile(`(?m)^# fail 0$`).Match(out) {
		t.Fatalf("node --test ran no passing test:\n%s", out)
	}
}

// The page is whole in the binary: no asset names another origin, so it
// works offline and pulls nothing at run time.
func TestPageLoadsNothingFromElsewhere(t *testing.T) {
	allowed := "http://www.w3.org/2000/svg" // the SVG namespace name, not a fetch
	err := fs.WalkDir(web, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(web, path)
		text := strings.ReplaceAll(string(b), allowed, "")
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(text); m != "" {
			t.Errorf("%s refers to %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testPipeline() *config.Pipeline {
	return &config.Pipeline{File: config.File{
		Sources: map[string]*config.Source{
			"orders": {Connector: "datagen", Topic: "orders", Enabled: true, Transforms: config.Transforms{{Type: "MaskField"}, {Name: "big", Type: "Filter"}}},
			"off":    {Connector: "datagen", Topic: "unused", Enabled: false},
		},
		Sinks: map[string]*config.Sink{
			"hook": {Connector: "http_webhook", Topics: []string{"orders", "users"}, Enabled: true, Transforms: config.Transforms{{Type: "Cast"}}},
			"lake": {Connector: "s3", Topics: []string{"orders"}, Enabled: true},
		},
	}}
}

// The graph is the enabled connectors: sources through their steps to
// their topic, topics through the sinks' steps to the sinks; nodes not
// run by this process are marked so.
func TestBuildGraph(t *testing.T) {
	g := BuildGraph(testPipeline(), pipeline.Statuses{pipeline.NewStatus("orders", "datagen", "source"), pipeline.NewStatus("hook", "http_webhook", "sink")})
	var nodes []string
	for _, n := range g.Nodes {
		nodes = append(nodes, n.ID+"|"+n.Name+"|"+n.Connector+"|"+map[bool]string{true: "live", false: "-"}[n.Live])
	}
	want := []string{
		"source:orders|orders|datagen|live", "source:orders/0|MaskField|MaskField|live", "source:orders/1|big|Filter|live", "topic:orders|orders||live",
		"sink:hook/0|Cast|Cast|live", "sink:hook|hook|http_webhook|live", "topic:users|users||live", "sink:lake|lake|s3|-",
	}
	if !reflect.DeepEqual(nodes, want) {
		t.Errorf("nodes\n got %q\nwant %q", nodes, want)
	}
	var edges []string
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To)
	}
	wantEdges := []string{
		"source:orders>source:orders/0", "source:orders/0>source:orders/1", "source:orders/1>topic:orders",
		"topic:orders>sink:hook/0", "topic:users>sink:hook/0", "sink:hook/0>sink:hook", "topic:orders>sink:lake",
	}
	if !reflect.DeepEqual(edges, wantEdges) {
		t.Errorf("edges\n got %q\nwant %q", edges, wantEdges)
	}
}

type nopProducer struct{}

func (nopProducer) Produce(context.Context, string, []topic.Message) error { return nil }

type failingProducer struct{}

func (failingProducer) Produce(context.Context, string, []topic.Message) error {
	return errors.New("down")
}

// What the page gets: rates over the interval, lag, mean batch latency,
// the breaker with the time to its probe, recent problems and snapshot
// progress with rate and ETA, samples of each topic with secrets blanked
// and dead letters decoded; published only once a produce succeeded.
func TestStateMeasuresWhatTheEngineKeeps(t *testing.T) {
	const secret = "hunter2-very-secret"
	src := pipeline.NewStatus("orders", "datagen", "source")
	sink := pipeline.NewStatus("hook", "http_webhook", "sink")
	s := New(Options{Pipeline: testPipeline(), Redact: resilience.NewRedactor(secret).Redact, Interval: time.Hour})
	s.opts.Statuses = pipeline.Statuses{src, sink}
	t0 := time.Now()
	src.SetProgress("public.orders", 100, 1100)
	s.measure(t0)

	src.SetState(pipeline.Running)
	src.EventsOut.Add(300)
	src.SetProgress("public.orders", 300, 1100)
	sink.SetState(pipeline.Running)
	sink.EventsIn.Add(200)
	sink.Lag.Store(100)
	sink.ObserveBatch(10 * time.Millisecond)
	sink.ObserveBatch(30 * time.Millisecond)
	sink.Breaker.Store(int32(resilience.Open))
	sink.ProbeAt.Store(t0.Add(2*time.Second + 25*time.Second).UnixNano())
	sink.Fail(errors.New("POST https://user:" + secret + "@hooks.example/x: 503 Service Unavailable"))
	sink.NoteDeadLetters(1, "write: 400 Bad Request: field amount")
	p := s.Tap(nopProducer{})
	ev, _ := json.Marshal(map[string]any{"data": map[string]any{"token": secret, "id": 1}})
	if err := p.Produce(context.Background(), "orders", []topic.Message{{Key: []byte("k1"), Value: ev}, {Key: []byte("k2"), Value: ev}}); err != nil {
		t.Fatal(err)
	}
	dl, _ := (&events.DeadLetter{OriginalTopic: "orders", ConnectorName: "hook", PayloadB64: ev, Error: "write: 400 Bad Request", Stage: "write"}).Marshal()
	_ = p.Produce(context.Background(), "orders.dlq", []topic.Message{{Value: dl}})
	if err := s.Tap(failingProducer{}).Produce(context.Background(), "ghost", []topic.Message{{Value: ev}}); err == nil {
		t.Fatal("the tap hid the producer's error")
	}
	s.measure(t0.Add(2 * time.Second))

	var st State
	if err := json.Unmarshal(s.latest, &st); err != nil {
		t.Fatal(err)
	}
	so, si := st.Nodes["source:orders"], st.Nodes["sink:hook"]
	if so.RateOut != 150 || si.RateIn != 100 || so.State != "Running" {
		t.Errorf("rates: source out %v, sink in %v, state %s", so.RateOut, si.RateIn, so.State)
	}
	if si.Lag == nil || *si.Lag != 100 || si.BatchMs == nil || *si.BatchMs != 20 {
		t.Errorf("lag %v, batch ms %v", si.Lag, si.BatchMs)
	}
	if si.Breaker != "open" || si.ProbeInMs != 25000 {
		t.Errorf("breaker %q, probe in %d ms", si.Breaker, si.ProbeInMs)
	}
	if len(si.Problems) != 2 || si.Problems[0].Kind != "dead_letter" || si.Problems[1].Kind != "error" ||
		!strings.Contains(si.Problems[1].Reason, "503 Service Unavailable") || si.Errors != 1 || si.DeadLettered != 1 {
		t.Errorf("problems %+v, errors %d, dead-lettered %d", si.Problems, si.Errors, si.DeadLettered)
	}
	if pr := so.Progress; len(pr) != 1 || pr[0].Percent != 27 || pr[0].Rate != 100 || pr[0].ETASecs != 8 {
		t.Errorf("progress %+v", pr)
	}
	if o := st.Samples["orders"]; len(o) != 2 || o[0].Key != "k2" || st.Nodes["topic:orders"].EventsIn != 2 {
		t.Errorf("orders samples %+v", o)
	}
	if d := st.Samples["orders.dlq"]; len(d) != 1 || d[0].DeadLetter != "write: 400 Bad Request" || !strings.Contains(d[0].Value, `"payload":{"data"`) {
		t.Errorf("dead-letter sample %+v", d)
	}
	if _, ok := st.Samples["ghost"]; ok {
		t.Error("a failed produce shows as published")
	}
	if strings.Contains(string(s.latest), secret) || !strings.Contains(string(s.latest), "****") {
		t.Errorf("the secret is not blanked: %s", s.latest)
	}
}

// A sample is cut at maxSampleBytes on a rune boundary, and only the
// last few messages of a topic are kept, newest first.
func TestSamplesAreBounded(t *testing.T) {
	s := newSamples()
	var msgs []topic.Message
	for i := range 12 {
		msgs = append(msgs, topic.Message{Key: []byte{byte('a' + i)}, Value: []byte(strings.Repeat("é", maxSampleBytes))})
	}
	s.add("t", msgs)
	got := s.snapshot()["t"]
	if got.count != 12 || len(got.recent) != samplesPerTopic || got.recent[0].Key != "l" {
		t.Fatalf("count %d, kept %d, newest %q", got.count, len(got.recent), got.recent[0].Key)
	}
	v := got.recent[0].Value
	if len(v) > maxSampleBytes+len("…") || !strings.HasSuffix(v, "…") || strings.ContainsRune(v, '\uFFFD') {
		t.Fatalf("sample of %d bytes, ends %q", len(v), v[len(v)-8:])
	}
}

// The page, its assets and the API are served; the event stream sends
// the state at once and again on each measurement.
func TestServesPageAndStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := pipeline.NewStatus("orders", "datagen", "source")
	s := New(Options{Pipeline: testPipeline(), Title: "local", Interval: 20 * time.Millisecond})
	addr, err := s.Start(ctx, "127.0.0.1:0", pipeline.Statuses{st})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	for path, ctype := range map[string]string{"/": "text/html", "/app.mjs": "text/javascript", "/graph.mjs": "text/javascript", "/style.css": "text/css", "/api/graph": "application/json", "/api/state": "application/json"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Errorf("%s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	if resp, err := http.Get(base + "/graph.test.mjs"); err != nil || resp.StatusCode != 404 {
		t.Errorf("the page's tests are served: %v", err)
	}
	var g Graph
	resp, _ := http.Get(base + "/api/graph")
	_ = json.NewDecoder(resp.Body).Decode(&g)
	resp.Body.Close()
	if g.Title != "local" || len(g.Nodes) != 8 {
		t.Errorf("graph %+v", g)
	}

	resp, err = http.Get(base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var seen []uint64
	for sc.Scan() && len(seen) < 3 {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var state State
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &state); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		seen = append(seen, state.Nodes["source:orders"].EventsOut)
		st.EventsOut.Add(5)
	}
	if len(seen) != 3 || seen[2] <= seen[0] {
		t.Fatalf("events carried %v", seen)
	}
}
