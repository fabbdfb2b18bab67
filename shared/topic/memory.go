package topic

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is an in-process transport: topics with partitions, an append-only
// log per partition, and consumer groups with committed offsets. The local
// emulator runs pipelines on it; it behaves like a one-broker Kafka.
type Memory struct {
	mu     sync.Mutex
	topics map[string]*memTopic
	groups map[groupKey]int64 // committed next offset
	// AutoCreate creates unknown topics on first produce with Default.
	AutoCreate bool
	Default    Spec
}

type groupKey struct {
	group, topic string
	partition    int32
}

type memTopic struct {
	name       string
	partitions []*memPartition
	rr         atomic.Uint32
}

type memPartition struct {
	mu     sync.Mutex
	log    []Message
	base   int64         // offset of log[0]; earlier messages were trimmed
	notify chan struct{} // closed and replaced on every append
}

// NewMemory returns an empty transport.
func NewMemory() *Memory {
	return &Memory{topics: map[string]*memTopic{}, groups: map[groupKey]int64{}, Default: Spec{Partitions: 1, ReplicationFactor: 1}}
}

// Describe implements Admin.
func (m *Memory) Describe(_ context.Context, topic string) (Spec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[topic]
	if !ok {
		return Spec{}, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
	}
	return Spec{Partitions: len(t.partitions), ReplicationFactor: 1}, nil
}

// Create implements Admin.
func (m *Memory) Create(_ context.Context, topic string, s Spec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.createLocked(topic, s)
	return nil
}

func (m *Memory) createLocked(topic string, s Spec) *memTopic {
	if t, ok := m.topics[topic]; ok {
		return t
	}
	n := max(s.Partitions, 1)
	t := &memTopic{name: topic, partitions: make([]*memPartition, n)}
	for i := range t.partitions {
		t.partitions[i] = &memPartition{notify: make(chan struct{})}
	}
	m.topics[topic] = t
	return t
}

func (m *Memory) topic(name string) (*memTopic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	if !ok {
		if !m.AutoCreate {
			return nil, fmt.Errorf("%w %q (auto_create is off)", ErrUnknownTopic, name)
		}
		t = m.createLocked(name, m.Default)
	}
	return t, nil
}

// Topics lists topic names.
func (m *Memory) Topics() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.topics))
	for n := range m.topics {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Partitions returns a topic's partition count.
func (m *Memory) Partitions(topic string) (int, error) {
	t, err := m.topic(topic)
	if err != nil {
		return 0, err
	}
	return len(t.partitions), nil
}

// Produce implements Producer.
func (m *Memory) Produce(ctx context.Context, topic string, msgs []Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := m.topic(topic)
	if err != nil {
		return err
	}
	now := time.Now()
	if len(t.partitions) == 1 {
		t.partitions[0].append(topic, 0, msgs, now)
		return nil
	}
	// Group by partition, keeping order within each.
	byPart := make([][]Message, len(t.partitions))
	for _, msg := range msgs {
		p := Partition(msg.Key, len(t.partitions), t.rr.Add(1))
		byPart[p] = append(byPart[p], msg)
	}
	for p, ms := range byPart {
		if len(ms) > 0 {
			t.partitions[p].append(topic, int32(p), ms, now)
		}
	}
	return nil
}

func (p *memPartition) append(topic string, part int32, msgs []Message, now time.Time) {
	p.mu.Lock()
	for _, msg := range msgs {
		msg.Topic, msg.Partition, msg.Offset = topic, part, p.base+int64(len(p.log))
		if msg.Time.IsZero() {
			msg.Time = now
		}
		p.log = append(p.log, msg)
	}
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// HighWatermark is the offset the next message of a partition will get.
func (m *Memory) HighWatermark(topic string, partition int32) int64 {
	t, err := m.topic(topic)
	if err != nil || int(partition) >= len(t.partitions) {
		return 0
	}
	p := t.partitions[partition]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base + int64(len(p.log))
}

// Fetch returns up to max messages of a partition starting at offset,
// waiting until at least one is there or ctx is done.
func (m *Memory) Fetch(ctx context.Context, topic string, partition int32, offset int64, max int) ([]Message, error) {
	t, err := m.topic(topic)
	if err != nil {
		return nil, err
	}
	if int(partition) >= len(t.partitions) {
		return nil, fmt.Errorf("topic %q has no partition %d", topic, partition)
	}
	p := t.partitions[partition]
	for {
		p.mu.Lock()
		if offset < p.base {
			offset = p.base // trimmed away: like Kafka's auto.offset.reset=earliest
		}
		if rel := offset - p.base; rel < int64(len(p.log)) {
			end := min(int64(len(p.log)), rel+int64(max))
			out := p.log[rel:end:end] // log entries are never changed
			p.mu.Unlock()
			return out, nil
		}
		wait := p.notify
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Committed returns a group's next offset for a partition and whether one
// was committed.
func (m *Memory) Committed(group, topic string, partition int32) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off, ok := m.groups[groupKey{group, topic, partition}]
	return off, ok
}

// Commit records a group's next offset for a partition.
func (m *Memory) Commit(group, topic string, partition int32, next int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := groupKey{group, topic, partition}
	if next > m.groups[k] {
		m.groups[k] = next
	}
}

// OffsetForTime returns the first offset of a partition at or after t.
func (m *Memory) OffsetForTime(topic string, partition int32, t time.Time) int64 {
	tp, err := m.topic(topic)
	if err != nil || int(partition) >= len(tp.partitions) {
		return 0
	}
	p := tp.partitions[partition]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base + int64(sort.Search(len(p.log), func(i int) bool { return !p.log[i].Time.Before(t) }))
}

// Trim drops the messages of a partition before offset, so that a long
// local run holds only what some consumer still needs. Fetch from a trimmed
// offset resumes at the oldest message kept.
func (m *Memory) Trim(topic string, partition int32, before int64) {
	t, err := m.topic(topic)
	if err != nil || int(partition) >= len(t.partitions) {
		return
	}
	p := t.partitions[partition]
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(before-p.base, int64(len(p.log)))
	if n <= 0 || n*2 < int64(len(p.log)) {
		return // copy only once half can go: amortized O(1) per message
	}
	// Copy the rest so the trimmed messages' memory is released.
	p.log = append([]Message(nil), p.log[n:]...)
	p.base += n
}
