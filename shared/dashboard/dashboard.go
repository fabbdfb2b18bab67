// Package dashboard serves the live web page of a running pipeline
// (`rivven-connect local --ui`, `run … --ui`, settings.ui): the pipeline
// as a graph of sources, topics, transform steps and sinks, each node with
// its live counters, and samples of the events on each topic.
//
// Everything it shows comes from what the engine keeps anyway: the
// connectors' Status (counters, breaker, recent problems, snapshot
// progress) and a tap on the producer the connectors publish through (the
// samples). The page is embedded in the binary (no CDN, no framework) and
// is updated by Server-Sent Events once per interval.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

//go:embed web/index.html web/style.css web/app.mjs web/graph.mjs
var web embed.FS

// Options configure a Server.
type Options struct {
	// Pipeline is drawn as the graph: its enabled sources and sinks, their
	// topics and transform steps.
	Pipeline *config.Pipeline
	// Statuses (given to Start) are the connectors running in this
	// process; the graph's other connectors are drawn without live
	// numbers (a `run` service runs one connector of the pipeline).
	Statuses pipeline.Statuses
	// Redact blanks secrets (the values of the spec's secret fields) in
	// errors and event samples; nil redacts nothing.
	Redact func(string) string
	// Title is shown in the page's header (e.g. "local" or "run sink s3").
	Title string
	// Interval is how often the numbers are measured and pushed
	// (default 1s).
	Interval time.Duration
}

// Server is the dashboard of one process.
type Server struct {
	opts    Options
	graph   Graph
	samples *samples

	mu     sync.Mutex
	latest []byte        // the last state, as JSON
	tick   chan struct{} // closed when latest changes
	prev   map[string]counters
	meters map[string]*pipeline.ProgressMeter
	prevAt time.Time
	done   <-chan struct{}
}

// New returns the dashboard of the pipeline; Start serves it.
func New(opts Options) *Server {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Redact == nil {
		opts.Redact = func(s string) string { return s }
	}
	return &Server{
		opts: opts, samples: newSamples(),
		tick: make(chan struct{}), prev: map[string]counters{}, meters: map[string]*pipeline.ProgressMeter{},
	}
}

// Start measures the statuses every interval and serves the page on addr
// until ctx is done; it returns the bound address (which matters for
// ":0"). statuses are the connectors this process runs (they exist only
// once the pipeline is built, after Tap was handed to it).
func (s *Server) Start(ctx context.Context, addr string, statuses pipeline.Statuses) (string, error) {
	s.opts.Statuses = statuses
	s.graph = BuildGraph(s.opts.Pipeline, statuses)
	s.graph.Title = s.opts.Title
	s.measure(time.Now())
	s.done = ctx.Done()
	bound, err := telemetry.StartHTTP(ctx, addr, s.Handler())
	if err != nil {
		return "", err
	}
	go func() {
		t := time.NewTicker(s.opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				s.measure(now)
			}
		}
	}()
	return bound, nil
}

// Handler answers the page, its assets, /api/graph, /api/state and the
// event stream /api/events.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(web, "web")
	types := map[string]string{".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".mjs": "text/javascript; charset=utf-8"}
	mux.HandleFunc("GET /{file...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if name == "" {
			name = "index.html"
		}
		b, err := fs.ReadFile(assets, name)
		if err != nil || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", types[path.Ext(name)])
		w.Header().Set("Cache-Control", "no-store")
		// Nothing on the page comes from elsewhere.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/graph", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.graph) })
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		b := s.latest
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/events", s.events)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// events streams the state as Server-Sent Events: the current one at
// once, then each new measurement.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	for {
		s.mu.Lock()
		b, tick := s.latest, s.tick
		s.mu.Unlock()
		if _, err := w.Write([]byte("event: state\ndata: ")); err != nil {
			return
		}
		_, _ = w.Write(b)
		if _, err := w.Write([]byte("\n\n")); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-tick:
		case <-r.Context().Done():
			return
		case <-s.done: // the server is stopping: let it shut down now
			return
		}
	}
}

// State is what the page shows at one moment.
type State struct {
	Time time.Time `json:"time"`
	// Nodes is keyed by node id (see Graph).
	Nodes map[string]NodeState `json:"nodes"`
	// Samples are the last events published to each topic (dead-letter
	// topics included), newest first, secrets redacted.
	Samples map[string][]Sample `json:"samples"`
}

// NodeState is one node's numbers. Rates are per second over the last
// interval.
type NodeState struct {
	State        string  `json:"state,omitempty"`
	EventsIn     uint64  `json:"events_in"`
	EventsOut    uint64  `json:"events_out"`
	RateIn       float64 `json:"rate_in"`
	RateOut      float64 `json:"rate_out"`
	Errors       uint64  `json:"errors"`
	Dropped      uint64  `json:"dropped"`
	DeadLettered uint64  `json:"dead_lettered"`
	Restarts     uint64  `json:"restarts"`
	Lag          *int64  `json:"lag,omitempty"`
	// BatchMs is the mean batch latency (a sink's write, a source's
	// publish) over the last interval that had batches.
	BatchMs *float64 `json:"batch_ms,omitempty"`
	// Breaker is closed, open or half-open; empty without one.
	Breaker string `json:"breaker,omitempty"`
	// ProbeInMs is the time until the open breaker lets a probe through.
	ProbeInMs int64                   `json:"probe_in_ms,omitempty"`
	LastError string                  `json:"last_error,omitempty"`
	Problems  []pipeline.Problem      `json:"problems,omitempty"`
	Progress  []pipeline.ProgressView `json:"progress,omitempty"`
}

type counters struct {
	in, out, batches, batchNanos uint64
	batchMs                      *float64
}

// measure takes the numbers now and publishes them to the page.
func (s *Server) measure(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	secs := now.Sub(s.prevAt).Seconds()
	first := s.prevAt.IsZero()
	s.prevAt = now
	rate := func(cur, prev uint64) float64 {
		if first || secs <= 0 || cur < prev {
			return 0
		}
		return float64(cur-prev) / secs
	}
	st := State{Time: now.UTC(), Nodes: map[string]NodeState{}, Samples: map[string][]Sample{}}
	for _, c := range s.opts.Statuses {
		id := nodeID(c.Kind, c.Name)
		p := s.prev[id]
		cur := counters{in: c.EventsIn.Load(), out: c.EventsOut.Load(), batches: c.Batches.Load(), batchNanos: c.BatchNanos.Load(), batchMs: p.batchMs}
		if cur.batches > p.batches {
			ms := float64(cur.batchNanos-p.batchNanos) / float64(cur.batches-p.batches) / 1e6
			cur.batchMs = &ms
		}
		s.prev[id] = cur
		n := NodeState{
			State: c.State().String(), EventsIn: cur.in, EventsOut: cur.out, RateIn: rate(cur.in, p.in), RateOut: rate(cur.out, p.out),
			Errors: c.Errors.Load(), Dropped: c.Dropped.Load(), DeadLettered: c.DeadLettered.Load(), Restarts: c.Restarts.Load(),
			BatchMs: cur.batchMs, LastError: s.opts.Redact(c.LastError()),
		}
		if lag := c.Lag.Load(); lag >= 0 {
			n.Lag = &lag
		}
		if b := c.Breaker.Load(); b >= 0 {
			n.Breaker = resilience.BreakerState(b).String()
			if at := c.ProbeAt.Load(); at > 0 && n.Breaker != "closed" {
				n.ProbeInMs = max(at-now.UnixNano(), 0) / int64(time.Millisecond)
			}
		}
		for _, pr := range c.RecentProblems() {
			pr.Reason = s.opts.Redact(pr.Reason)
			n.Problems = append(n.Problems, pr)
		}
		m := s.meters[id]
		if m == nil {
			m = &pipeline.ProgressMeter{}
			s.meters[id] = m
		}
		n.Progress = m.Measure(now, c.Progress())
		st.Nodes[id] = n
	}
	for name, t := range s.samples.snapshot() {
		id := nodeID("topic", name)
		p := s.prev[id]
		s.prev[id] = counters{in: t.count}
		st.Nodes[id] = NodeState{EventsIn: t.count, RateIn: rate(t.count, p.in)}
		for _, m := range t.recent {
			m.Value = s.opts.Redact(m.Value)
			m.Key = s.opts.Redact(m.Key)
			st.Samples[name] = append(st.Samples[name], m)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	s.latest = b
	close(s.tick)
	s.tick = make(chan struct{})
}
