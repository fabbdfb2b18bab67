package pipeline

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// progressSource reports progress and a metric through the runtime the
// runner gives it.
type progressSource struct{ sawName string }

func (p *progressSource) Read(ctx context.Context, _ []byte, emit Emitter) error {
	rt := RuntimeFrom(ctx)
	p.sawName = rt.Name
	rt.Progress("public.orders", 40, 100)
	rt.Counter("test.rows", "rows").Add(3)
	return nil
}

func TestRuntimeReachesSourceAndStatus(t *testing.T) {
	reg := telemetry.NewRegistry()
	src := &progressSource{}
	store, err := state.NewEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := &SourceRunner{Store: store, Name: "db", Source: src, Topic: "t", Status: NewStatus("db", "x", "source"), Metrics: reg}
	r.defaults()
	if _, err := r.runOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src.sawName != "db" {
		t.Fatalf("runtime name %q", src.sawName)
	}
	var m ProgressMeter
	if got := ProgressLine(m.Measure(time.Now(), r.Status.Progress()), func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }); got != "public.orders 40/100 (40%)" {
		t.Fatalf("progress line %q", got)
	}
	if d := r.Status.Detail(nil); len(d.Progress) != 1 || d.Progress[0].Done != 40 {
		t.Fatalf("detail progress %+v", d.Progress)
	}
	var b strings.Builder
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`test_rows{name="db"} 3`, `progress_done{name="db",task="public.orders"} 40`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, b.String())
		}
	}
	RuntimeFrom(context.Background()).Progress("x", 1, 2) // no runtime: harmless
}

// reportingSink keeps its metrics itself, as kafka-sink does.
type reportingSink struct{ written float64 }

func (s *reportingSink) Write(_ context.Context, b []*events.Event) error {
	s.written += float64(len(b))
	return nil
}

func (s *reportingSink) Metrics() map[string]float64 {
	return map[string]float64{"test.sink.messages_total": s.written, "test.sink.success_rate": 1}
}

func TestConnectorMetricsAreExported(t *testing.T) {
	p := load(t, "sinks:\n  out: {connector: x, topics: [t]}\n")
	reg := telemetry.NewRegistry()
	sink := &reportingSink{}
	h, err := NewSinkHandler(context.Background(), p, "out", fakeFactory{sink: sink}, Deps{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Sink.Write(context.Background(), []*events.Event{{}, {}}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE test_sink_messages_total counter", `test_sink_messages_total{name="out"} 2`,
		"# TYPE test_sink_success_rate gauge", `test_sink_success_rate{name="out"} 1`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, b.String())
		}
	}
}

// The meter's rate is rows per second between readings at least a second
// apart, and the time left is what remains at that rate; a reading
// sooner keeps the last rate.
func TestProgressMeterRateAndETA(t *testing.T) {
	var m ProgressMeter
	t0 := time.Unix(1000, 0)
	first := m.Measure(t0, []TaskProgress{{Task: "public.orders", Done: 100, Total: 1100}, {Task: "public.items", Done: 5}})
	if first[0].Rate != 0 || first[0].ETA != 0 || first[0].Percent != 9 || first[1].Percent != -1 {
		t.Fatalf("first reading %+v", first)
	}
	got := m.Measure(t0.Add(2*time.Second), []TaskProgress{{Task: "public.orders", Done: 300, Total: 1100}, {Task: "public.items", Done: 5}})
	if got[0].Rate != 100 || got[0].ETA != 8*time.Second || got[0].ETASecs != 8 || got[0].Percent != 27 {
		t.Fatalf("orders %+v", got[0])
	}
	if got[1].Rate != 0 || got[1].ETA != 0 {
		t.Fatalf("items %+v", got[1])
	}
	soon := m.Measure(t0.Add(2500*time.Millisecond), []TaskProgress{{Task: "public.orders", Done: 400, Total: 1100}})
	if soon[0].Rate != 100 || soon[0].ETA != 7*time.Second {
		t.Fatalf("a reading within a second keeps the rate: %+v", soon[0])
	}
	if line := ProgressLine(soon, func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }); line != "public.orders 400/1100 (36%) 100/s ETA 7s" {
		t.Fatalf("line %q", line)
	}
}
