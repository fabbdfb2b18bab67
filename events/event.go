// Package events holds the event model every connector speaks, its codecs
// (Rivven JSON, Debezium envelope, CloudEvents) and the trigger envelopes the
// serverless hosts receive.
package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Type is the kind of an event, as Rivven's SourceEvent spells it.
type Type string

const (
	Record       Type = "record"
	Insert       Type = "insert"
	Update       Type = "update"
	Delete       Type = "delete"
	SnapshotRead Type = "snapshot-read"
	Truncate     Type = "truncate"
	Schema       Type = "schema"
	State        Type = "state"
	Log          Type = "log"
)

// Types lists every event type in a stable order.
var Types = []Type{Record, Insert, Update, Delete, SnapshotRead, Truncate, Schema, State, Log}

// ParseType accepts an event type name: the reference's set, and the two
// names (snapshot-read, truncate) that earlier versions wrote on the wire.
func ParseType(s string) (Type, error) {
	for _, t := range Types {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown event_type %q (allowed: record, insert, update, delete, state, log, schema)", s)
}

// Wire is the event_type Rivven JSON writes for t: always one of the
// reference's set (record, insert, update, delete, state, log, schema),
// since the reference's consumers reject anything else. A snapshot row is
// an insert (with metadata.snapshot), a truncate a state event (with
// metadata.control = "truncate").
func (t Type) Wire() Type {
	switch t {
	case SnapshotRead:
		return Insert
	case Truncate:
		return State
	}
	return t
}

// Op returns the short operation code used by Debezium and by transforms:
// c, u, d, r, t, s; "" for types that are not changes.
func (t Type) Op() string {
	switch t {
	case Insert, Record:
		return "c"
	case Update:
		return "u"
	case Delete:
		return "d"
	case SnapshotRead:
		return "r"
	case Truncate:
		return "t"
	case Schema:
		return "s"
	}
	return ""
}

// IsData reports whether the event carries a row.
func (t Type) IsData() bool {
	switch t {
	case Record, Insert, Update, Delete, SnapshotRead:
		return true
	}
	return false
}

// Metadata mirrors Rivven's EventMetadata: the known fields plus any extra
// keys, kept in the order they arrived.
type Metadata struct {
	Position      string
	TransactionID string
	Sequence      *uint64
	SchemaID      *uint32
	SchemaSubject string
	Extra         []Field
}

// Field is one extra metadata entry; Value is raw JSON.
type Field struct {
	Key   string
	Value json.RawMessage
}

// Get returns an extra metadata value.
func (m *Metadata) Get(key string) (json.RawMessage, bool) {
	for _, f := range m.Extra {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// Set adds or replaces an extra metadata value.
func (m *Metadata) Set(key string, raw json.RawMessage) {
	for i := range m.Extra {
		if m.Extra[i].Key == key {
			m.Extra[i].Value = raw
			return
		}
	}
	m.Extra = append(m.Extra, Field{Key: key, Value: raw})
}

// SourceInfo is what Rivven's wire format loses: where a change came from.
type SourceInfo struct {
	Connector string `json:"connector,omitempty"`
	// Name is the logical server name: the source's name in the pipeline
	// (Debezium's topic.prefix). It keeps two databases apart.
	Name     string     `json:"name,omitempty"`
	Database string     `json:"database,omitempty"`
	Schema   string     `json:"schema,omitempty"`
	Table    string     `json:"table,omitempty"`
	Position string     `json:"position,omitempty"`
	CommitTS *time.Time `json:"commit_ts,omitempty"`
	Snapshot bool       `json:"snapshot,omitempty"`
	// Commit is the position of the change's transaction, the same for
	// every change of it: PostgreSQL's commit LSN, MySQL's GTID or the
	// binlog file:pos where the transaction starts.
	Commit string `json:"commit,omitempty"`
	// LastCommit is PostgreSQL's last committed LSN before this change
	// (the first element of Debezium's source.sequence).
	LastCommit string `json:"last_commit,omitempty"`
	// Columns describes the table's columns (AppendColumns' form: name to
	// database type, " not null" for NOT NULL columns), so that an
	// encoding can write values and schemas by column type (Debezium's
	// Decimal, MicroTimestamp, Json) without asking the database. It is
	// the JSON text of the object (a string keeps SourceInfo comparable
	// and the text immutable; CDC sources share one among a table's
	// events, decoders intern it).
	Columns string `json:"columns,omitempty"`
}

// Event is one change or record moving through a pipeline.
type Event struct {
	Type      Type
	Stream    string
	Namespace *string // Rivven writes null when absent; keep the difference
	Timestamp time.Time
	Data      Payload
	Metadata  Metadata

	// Key is the message key as raw JSON (usually an object of the primary
	// key columns). It drives partitioning and per-key ordering.
	Key json.RawMessage
	// Source says where the change came from.
	Source *SourceInfo

	// Route, when set by a routing transform, names the topic the event goes
	// to instead of the pipeline's configured one. It is not serialized.
	Route string
	// Delivered, set by the engine for the length of a sink's Write, is
	// where the trigger delivered the record the event came from; nil
	// outside a Write and for events no trigger delivered. A sink that
	// keeps it past Write must copy it. It is not serialized.
	Delivered *Position
}

// Position is where a trigger delivered a record: the topic (queue,
// stream, subscription) and, on logs with offsets (Kafka, MSK, Redis
// Streams), the partition and offset; ID is the trigger's message id
// (the SQS MessageId, the Kinesis sequence number, the Pub/Sub
// messageId, topic-partition-offset for Kafka). A redelivery has the same
// position, so a sink can name what it writes after it.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
	HasOffset bool // Partition and Offset are the log's
	ID        string
	// TopicID names the life of the topic the offset belongs to when the
	// transport tells one from the next (a Redis stream created again, the
	// in-memory topic of one local run): offsets start over with a new one.
	TopicID string
}

// New makes an event with the timestamp set to now.
func New(t Type, stream string, data Payload) *Event {
	return &Event{Type: t, Stream: stream, Timestamp: time.Now().UTC(), Data: data}
}

// NamespaceOr returns the namespace or def when there is none.
func (e *Event) NamespaceOr(def string) string {
	if e.Namespace == nil {
		return def
	}
	return *e.Namespace
}

// Clone returns a deep copy safe to change independently.
func (e *Event) Clone() *Event {
	c := *e
	c.Data = e.Data.clone()
	if e.Namespace != nil {
		ns := *e.Namespace
		c.Namespace = &ns
	}
	c.Metadata.Extra = append([]Field(nil), e.Metadata.Extra...)
	if e.Metadata.Sequence != nil {
		n := *e.Metadata.Sequence
		c.Metadata.Sequence = &n
	}
	if e.Metadata.SchemaID != nil {
		n := *e.Metadata.SchemaID
		c.Metadata.SchemaID = &n
	}
	if e.Source != nil {
		s := *e.Source
		if s.CommitTS != nil {
			t := *s.CommitTS
			s.CommitTS = &t
		}
		c.Source = &s
	}
	return &c
}

// After returns the row state after the change: the data of inserts,
// records and snapshot reads, data.after of updates, nil for deletes.
func (e *Event) After() (map[string]any, error) {
	switch e.Type {
	case Record, Insert, SnapshotRead:
		return e.Data.Object()
	case Update:
		return e.Data.child("after")
	}
	return nil, nil
}

// Before returns the row state before the change: data.before of updates,
// the data of deletes, nil otherwise.
func (e *Event) Before() (map[string]any, error) {
	switch e.Type {
	case Update:
		return e.Data.child("before")
	case Delete:
		return e.Data.Object()
	}
	return nil, nil
}

// Row returns the row that best represents the event: After, or Before for
// deletes.
func (e *Event) Row() (map[string]any, error) {
	if e.Type == Delete {
		return e.Before()
	}
	return e.After()
}

// Payload is an event's data: JSON kept as the bytes it arrived in until
// something reads it, and re-encoded only if something changed it.
type Payload struct {
	raw     []byte
	val     any
	decoded bool
	dirty   bool
	// obj is the data split into fields (Fields): a view of raw, or, with
	// objOnly, the data itself (raw stale until Raw writes it out).
	obj     *Object
	objOnly bool
}

// RawPayload wraps JSON bytes. The caller must not change b afterwards.
func RawPayload(b []byte) Payload { return Payload{raw: b} }

// ValuePayload wraps a Go value (maps, slices, strings, json.Number, ...).
func ValuePayload(v any) Payload { return Payload{val: v, decoded: true, dirty: true} }

// Value returns the decoded data, as encoding/json with UseNumber would
// give it: numbers decode as json.Number so that exact decimals and 64-bit
// integers survive. Invalid JSON (including anything after the value) is an
// error. Treat the result as read-only;
// use Mutable to change it.
func (p *Payload) Value() (any, error) {
	if p.decoded {
		return p.val, nil
	}
	raw, _ := p.Raw()
	if len(raw) == 0 {
		p.decoded = true
		return nil, nil
	}
	v, err := decodeValue(raw)
	if err != nil {
		return nil, fmt.Errorf("decode data: %w", err)
	}
	p.val, p.decoded = v, true
	return v, nil
}

// Mutable returns the decoded data and marks it changed, so that it is
// re-encoded on the way out.
func (p *Payload) Mutable() (any, error) {
	v, err := p.Value()
	if err == nil {
		p.dirty, p.obj = true, nil
	}
	return v, err
}

// Set replaces the data.
func (p *Payload) Set(v any) { *p = Payload{val: v, decoded: true, dirty: true} }

// Object returns the data as an object (nil for JSON null).
func (p *Payload) Object() (map[string]any, error) {
	v, err := p.Value()
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data is %T, not an object", v)
	}
	return m, nil
}

func (p *Payload) child(key string) (map[string]any, error) {
	m, err := p.Object()
	if err != nil || m == nil {
		return nil, err
	}
	switch c := m[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return c, nil
	default:
		return nil, fmt.Errorf("data.%s is %T, not an object", key, c)
	}
}

// Field returns one top-level field of object data. While the data is
// still bytes or fields only that field is decoded (an update's "after"
// without its "before"); the field's value is not cached, so callers that
// keep the data should use Object.
func (p *Payload) Field(key string) (any, bool, error) {
	if p.decoded {
		m, err := p.Object()
		if err != nil || m == nil {
			return nil, false, err
		}
		v, ok := m[key]
		return v, ok, nil
	}
	if o, ok := p.Fields(); ok {
		i := o.Index(key)
		if i < 0 {
			return nil, false, nil
		}
		v, err := decodeValue(o.Field(i).Value)
		if err != nil {
			return nil, false, fmt.Errorf("decode data.%s: %w", key, err)
		}
		return v, true, nil
	}
	if len(p.raw) == 0 {
		m, err := p.Object()
		if err != nil || m == nil {
			return nil, false, err
		}
		v, ok := m[key]
		return v, ok, nil
	}
	raw, err := lastField(p.raw, key)
	if err != nil {
		return nil, false, fmt.Errorf("decode data: %w", err)
	}
	if raw == nil {
		return nil, false, nil
	}
	v, err := decodeValue(raw)
	if err != nil {
		return nil, false, fmt.Errorf("decode data.%s: %w", key, err)
	}
	return v, true, nil
}

// Changed reports whether the data was changed since it was decoded.
func (p *Payload) Changed() bool { return p.dirty }

// AppendJSON appends the data as JSON: the original bytes when untouched,
// else the value as serde_json writes one (object keys sorted, no HTML
// escaping, json.Number verbatim). On error dst is returned unchanged.
func (p *Payload) AppendJSON(dst []byte) ([]byte, error) {
	if p.objOnly {
		return p.obj.Append(dst), nil
	}
	if !p.dirty {
		if len(p.raw) == 0 {
			return append(dst, "null"...), nil
		}
		return append(dst, p.raw...), nil
	}
	n := len(dst)
	dst, err := appendValue(dst, p.val, 0)
	if err != nil {
		return dst[:n], fmt.Errorf("encode data: %w", err)
	}
	return dst, nil
}

// JSON returns the data as JSON bytes.
func (p *Payload) JSON() ([]byte, error) {
	if raw, ok := p.Raw(); ok && len(raw) > 0 {
		return raw, nil
	}
	return p.AppendJSON(nil)
}

func (p Payload) clone() Payload {
	if p.objOnly {
		return Payload{raw: p.obj.Append(make([]byte, 0, p.obj.Size()))}
	}
	if p.dirty {
		b, err := appendValue(nil, p.val, 0)
		if err == nil {
			return Payload{raw: b}
		}
		return Payload{val: p.val, decoded: true, dirty: true}
	}
	return Payload{raw: p.raw} // raw bytes are never written to
}
