package dashboard

import (
	"context"
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Sample is one event seen on a topic.
type Sample struct {
	At  time.Time `json:"at"`
	Key string    `json:"key,omitempty"`
	// Value is the message as published (the event's JSON), or for a
	// dead letter the letter with its payload decoded, cut at
	// maxSampleBytes.
	Value string `json:"value"`
	// DeadLetter is the reason when the message is a dead letter.
	DeadLetter string `json:"dead_letter,omitempty"`
}

const (
	samplesPerTopic = 5
	maxSampleBytes  = 4096
)

// samples keeps the last messages of each topic and how many there were.
type samples struct {
	mu     sync.Mutex
	topics map[string]*topicSamples
}

type topicSamples struct {
	count  uint64
	recent []Sample // newest first
}

func newSamples() *samples { return &samples{topics: map[string]*topicSamples{}} }

// add records msgs published to t: all are counted, the last few kept.
func (s *samples) add(t string, msgs []topic.Message) {
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	tail := msgs[max(len(msgs)-samplesPerTopic, 0):]
	fresh := make([]Sample, 0, len(tail))
	for i := len(tail) - 1; i >= 0; i-- {
		fresh = append(fresh, sampleOf(now, tail[i]))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.topics[t]
	if ts == nil {
		ts = &topicSamples{}
		s.topics[t] = ts
	}
	ts.count += uint64(len(msgs))
	ts.recent = append(fresh, ts.recent...)
	if len(ts.recent) > samplesPerTopic {
		ts.recent = ts.recent[:samplesPerTopic]
	}
}

func (s *samples) snapshot() map[string]topicSamples {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]topicSamples, len(s.topics))
	for name, ts := range s.topics {
		out[name] = topicSamples{count: ts.count, recent: append([]Sample(nil), ts.recent...)}
	}
	return out
}

func sampleOf(at time.Time, m topic.Message) Sample {
	s := Sample{At: at.UTC(), Key: clip(m.Key), Value: clip(m.Value)}
	// A dead letter carries the event base64-encoded: decode it so that
	// it reads (and so that redaction sees its secrets).
	var dl events.DeadLetter
	if json.Unmarshal(m.Value, &dl) == nil && dl.Error != "" && dl.ConnectorName != "" {
		s.DeadLetter = dl.Error
		view := map[string]any{"error": dl.Error, "stage": dl.Stage, "connector": dl.ConnectorName, "original_topic": dl.OriginalTopic, "retry_count": dl.RetryCount}
		if json.Valid(dl.PayloadB64) {
			view["payload"] = json.RawMessage(dl.PayloadB64)
		} else {
			view["payload"] = string(dl.PayloadB64)
		}
		if b, err := json.Marshal(view); err == nil {
			s.Value = clip(b)
		}
	}
	return s
}

// clip returns b as text, cut at maxSampleBytes on a rune boundary.
func clip(b []byte) string {
	if len(b) <= maxSampleBytes {
		return string(b)
	}
	cut := maxSampleBytes
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}

// Tap returns a producer that publishes through p and shows what it
// published on the page: the connectors publish through it (events and
// dead letters). It keeps p's fenced publishing, if p has it.
func (s *Server) Tap(p topic.Producer) topic.Producer {
	t := tap{p, s.samples}
	if fp, ok := p.(pipeline.FencedProducer); ok {
		return fencedTap{t, fp}
	}
	return t
}

type tap struct {
	topic.Producer
	s *samples
}

func (t tap) Produce(ctx context.Context, name string, msgs []topic.Message) error {
	err := t.Producer.Produce(ctx, name, msgs)
	if err == nil {
		t.s.add(name, msgs)
	}
	return err
}

type fencedTap struct {
	tap
	fp pipeline.FencedProducer
}

func (t fencedTap) Claim(ctx context.Context, name, producer string, epoch int64) error {
	return t.fp.Claim(ctx, name, producer, epoch)
}

func (t fencedTap) LastPosition(ctx context.Context, name, producer string) ([]byte, error) {
	return t.fp.LastPosition(ctx, name, producer)
}

func (t fencedTap) ProduceFenced(ctx context.Context, name string, msgs []topic.Message, f topic.Fence) error {
	err := t.fp.ProduceFenced(ctx, name, msgs, f)
	if err == nil {
		t.s.add(name, msgs)
	}
	return err
}
