package topic

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is an in-process transport: topics with partitions, an append-only
// log per partition, and consumer groups with committed offsets. The local
// emulator runs pipelines on it; it behaves like a one-broker Kafka.
//
// A topic that consumer groups subscribed to (Subscribe) holds only what
// some of them has not committed yet: a commit releases every entry all of
// them committed, and Produce waits while a partition holds MaxMessages
// entries or MaxBytes of keys and values, so that a slow consumer slows
// the producer down instead of the log growing with the event count.
// Topics nobody subscribed to keep everything, as a broker would.
type Memory struct {
	mu     sync.Mutex
	topics map[string]*memTopic
	groups map[groupKey]int64 // committed next offset
	// readers are the groups subscribed to each topic.
	readers map[string][]string
	// AutoCreate creates unknown topics on first produce with Default.
	AutoCreate bool
	Default    Spec
	// MaxMessages and MaxBytes bound each partition of a subscribed
	// topic (defaults DefaultMaxMessages, DefaultMaxBytes). A produce that
	// finds room appends its whole batch, so a partition may pass the
	// bound by one batch.
	MaxMessages int
	MaxBytes    int64
}

// The bound of a subscribed topic's partition: a few sink batches, so
// that producer and consumer overlap, and a few MiB, so that memory stays
// flat with large events too.
const (
	DefaultMaxMessages = 8192
	DefaultMaxBytes    = 8 << 20
)

type groupKey struct {
	group, topic string
	partition    int32
}

type memTopic struct {
	name       string
	partitions []*memPartition
	rr         atomic.Uint32
	// bounded says consumer groups subscribed: their commits release
	// entries, so producers may wait for room.
	bounded atomic.Bool
}

type memPartition struct {
	mu sync.Mutex
	// log[head:] are the messages kept; log[:head] were released (zeroed,
	// so that their payloads can be collected). Entries are never changed
	// otherwise: Fetch hands out slices of log without copying, and the
	// log is compacted into a new array, never in place.
	log    []Message
	head   int
	base   int64         // offset of log[head]; earlier messages were trimmed
	bytes  int64         // keys and values of log[head:]
	notify chan struct{} // closed and replaced on every append
	room   chan struct{} // closed and replaced whenever entries are released
}

func (p *memPartition) kept() []Message { return p.log[p.head:] }

// NewMemory returns an empty transport.
func NewMemory() *Memory {
	return &Memory{topics: map[string]*memTopic{}, groups: map[groupKey]int64{}, readers: map[string][]string{},
		Default: Spec{Partitions: 1, ReplicationFactor: 1}}
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
		t.partitions[i] = &memPartition{notify: make(chan struct{}), room: make(chan struct{})}
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
		return m.append(ctx, t, 0, msgs, now)
	}
	// Group by partition, keeping order within each.
	byPart := make([][]Message, len(t.partitions))
	for _, msg := range msgs {
		p := Partition(msg.Key, len(t.partitions), t.rr.Add(1))
		byPart[p] = append(byPart[p], msg)
	}
	for p, ms := range byPart {
		if len(ms) > 0 {
			if err := m.append(ctx, t, int32(p), ms, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// append adds msgs to a partition once it has room (see Memory).
func (m *Memory) append(ctx context.Context, t *memTopic, part int32, msgs []Message, now time.Time) error {
	maxMsgs, maxBytes := cmp.Or(m.MaxMessages, DefaultMaxMessages), cmp.Or(m.MaxBytes, DefaultMaxBytes)
	p := t.partitions[part]
	p.mu.Lock()
	for t.bounded.Load() && (len(p.log)-p.head >= maxMsgs || p.bytes >= maxBytes) {
		wait := p.room
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	if len(p.log)+len(msgs) > cap(p.log) && p.head > 0 && p.head*2 >= len(p.log) {
		// Compact into a new array (see memPartition.log) rather than
		// grow: what was released makes up half of it.
		p.log = append(make([]Message, 0, max(2*(len(p.log)-p.head), len(msgs), 64)), p.log[p.head:]...)
		p.head = 0
	}
	next := p.base + int64(len(p.log)-p.head)
	for _, msg := range msgs {
		msg.Topic, msg.Partition, msg.Offset = t.name, part, next
		next++
		if msg.Time.IsZero() {
			msg.Time = now
		}
		p.bytes += msgBytes(&msg)
		p.log = append(p.log, msg)
	}
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
	return nil
}

func msgBytes(m *Message) int64 {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
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
	return p.base + int64(len(p.log)-p.head)
}

// Held is how many messages, and bytes of keys and values, a partition
// keeps (those not released yet).
func (m *Memory) Held(topic string, partition int32) (int, int64) {
	t, err := m.topic(topic)
	if err != nil || int(partition) >= len(t.partitions) {
		return 0, 0
	}
	p := t.partitions[partition]
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.log) - p.head, p.bytes
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
		if kept := p.kept(); offset-p.base < int64(len(kept)) {
			rel := offset - p.base
			end := min(int64(len(kept)), rel+int64(max))
			out := kept[rel:end:end] // see memPartition.log
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

// Commit records a group's next offset for a partition and, when every
// group subscribed to the topic committed past them, releases entries.
func (m *Memory) Commit(group, topic string, partition int32, next int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := groupKey{group, topic, partition}
	if next > m.groups[k] {
		m.groups[k] = next
	}
	m.releaseLocked(topic, partition)
}

// Subscribe makes group a reader of topic: from now on the topic keeps
// only what the group (and every other reader) has not committed, and
// producers wait for room (see Memory). A group that will not consume
// any more (its consumer failed) must Unsubscribe, or producers wait for
// it forever.
func (m *Memory) Subscribe(group, topic string) {
	t, err := m.topic(topic)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.readers[topic], group) {
		m.readers[topic] = append(m.readers[topic], group)
	}
	t.bounded.Store(true)
}

// Unsubscribe stops group from holding entries of topic back; once no
// group reads it the topic keeps everything again, without bound.
func (m *Memory) Unsubscribe(group, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[topic]
	if !ok {
		return
	}
	m.readers[topic] = slices.DeleteFunc(m.readers[topic], func(g string) bool { return g == group })
	if len(m.readers[topic]) == 0 {
		t.bounded.Store(false)
	}
	for i, p := range t.partitions {
		m.releaseLocked(topic, int32(i))
		p.mu.Lock()
		close(p.room) // waiting producers look again
		p.room = make(chan struct{})
		p.mu.Unlock()
	}
}

// releaseLocked trims a partition to the lowest offset its readers
// committed; a reader that committed nothing yet holds everything.
func (m *Memory) releaseLocked(topic string, partition int32) {
	rs := m.readers[topic]
	if len(rs) == 0 {
		return
	}
	low := int64(-1)
	for _, g := range rs {
		c, ok := m.groups[groupKey{g, topic, partition}]
		if !ok {
			return
		}
		if low < 0 || c < low {
			low = c
		}
	}
	if t, ok := m.topics[topic]; ok && int(partition) < len(t.partitions) {
		t.partitions[partition].trim(low)
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
	kept := p.kept()
	return p.base + int64(sort.Search(len(kept), func(i int) bool { return !kept[i].Time.Before(t) }))
}

// Trim drops the messages of a partition before offset, so that a long
// local run holds only what some consumer still needs. Fetch from a trimmed
// offset resumes at the oldest message kept. Commit trims subscribed
// topics by itself.
func (m *Memory) Trim(topic string, partition int32, before int64) {
	t, err := m.topic(topic)
	if err != nil || int(partition) >= len(t.partitions) {
		return
	}
	t.partitions[partition].trim(before)
}

// trim releases the entries before offset at once (their payloads become
// garbage; the array is compacted by append) and wakes waiting producers.
func (p *memPartition) trim(before int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int(min(before-p.base, int64(len(p.log)-p.head)))
	if n <= 0 {
		return
	}
	for i := p.head; i < p.head+n; i++ {
		p.bytes -= msgBytes(&p.log[i])
		p.log[i] = Message{}
	}
	p.head += n
	p.base += int64(n)
	if p.head == len(p.log) {
		// Everything went: start the array over (nothing refers to its
		// entries any more) instead of compacting later.
		p.log, p.head = p.log[:0], 0
	}
	close(p.room)
	p.room = make(chan struct{})
}
