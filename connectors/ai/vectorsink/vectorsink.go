// Package vectorsink is what the vector database sinks (qdrant, pinecone,
// s3-vectors) share: the reference's common keys (ID strategies, retries,
// circuit breaker), turning events into IDs and float32 vectors, ordering
// upserts and deletes, batching, retries and the metrics. It is a helper
// of those sinks, not a connector.
package vectorsink

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// BreakerConfig is the circuit_breaker block of a vector sink's config
// (resilience.CircuitConfig, which other sinks share).
type BreakerConfig = resilience.CircuitConfig

// ErrOpen is the error of a batch refused by the open circuit.
var ErrOpen = resilience.ErrOpen

// Circuit is the in-process circuit breaker (resilience.Circuit).
type Circuit = resilience.Circuit

// NewCircuit returns nil (always closed) when the breaker is disabled.
func NewCircuit(cfg BreakerConfig) *Circuit { return resilience.NewCircuit(cfg) }

// ID is a point or vector ID: a number (Qdrant's u64 IDs) or a string.
type ID struct {
	Num   uint64
	Str   string
	IsNum bool
}

func (id ID) String() string {
	if id.IsNum {
		return strconv.FormatUint(id.Num, 10)
	}
	return id.Str
}

// IDs extracts IDs by the strategy of the reference: field, uuid or hash.
type IDs struct {
	Strategy string // field | uuid | hash
	Field    string
	// Numeric makes the field strategy produce unsigned integers (Qdrant
	// point IDs); otherwise strings and numbers become string IDs.
	Numeric bool
	// Exclude are fields left out of the data hashed when an event has no
	// key (the vector itself, so a new embedding model keeps the ID).
	Exclude []string
}

// Of returns the ID of an event whose row is r.
func (s IDs) Of(e *events.Event, r map[string]any) (ID, error) {
	switch s.Strategy {
	case "hash":
		return ID{Str: HashUUID(hashInput(e, r, s.Exclude))}, nil
	case "uuid":
		v, ok := Get(r, s.Field)
		str, isStr := v.(string)
		if !ok || !isStr {
			return ID{}, fmt.Errorf("id field %q is missing or not a string (id_strategy uuid)", s.Field)
		}
		u, err := CanonicalUUID(str)
		if err != nil {
			return ID{}, fmt.Errorf("id field %q: %w", s.Field, err)
		}
		return ID{Str: u}, nil
	}
	v, ok := Get(r, s.Field)
	if !ok || v == nil {
		return ID{}, fmt.Errorf("id field %q is missing or null (id_strategy field)", s.Field)
	}
	text := ""
	switch x := v.(type) {
	case string:
		text = x
	case json.Number:
		text = string(x)
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		text = strconv.Itoa(x)
	case int64:
		text = strconv.FormatInt(x, 10)
	default:
		return ID{}, fmt.Errorf("id field %q is %T, not a string or number", s.Field, v)
	}
	if s.Numeric {
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return ID{}, fmt.Errorf("id field %q: %q is not an unsigned 64-bit integer (id_strategy field; use uuid or hash for other keys)", s.Field, text)
		}
		return ID{Num: n, IsNum: true}, nil
	}
	if text == "" {
		return ID{}, fmt.Errorf("id field %q is empty", s.Field)
	}
	return ID{Str: text}, nil
}

// hashInput is what the hash strategy hashes: the event's key (the
// primary key of a CDC row), so that an update or a redelivery of the
// same row overwrites its point and a delete finds it; for keyless
// events the row's data without the excluded fields. Both in canonical
// JSON (sorted keys), so that encodings of one value hash alike.
func hashInput(e *events.Event, r map[string]any, exclude []string) []byte {
	if len(bytes.TrimSpace(e.Key)) > 0 && !bytes.Equal(bytes.TrimSpace(e.Key), []byte("null")) {
		var k any
		d := json.NewDecoder(bytes.NewReader(e.Key))
		d.UseNumber()
		if d.Decode(&k) == nil {
			b, _ := json.Marshal(k)
			return append([]byte("key:"), b...)
		}
		return append([]byte("key:"), e.Key...)
	}
	m := make(map[string]any, len(r))
	for k, v := range r {
		m[k] = v
	}
	for _, x := range exclude {
		if x != "" && !strings.Contains(x, ".") {
			delete(m, x)
		}
	}
	b, _ := json.Marshal(m)
	return append([]byte("data:"), b...)
}

// HashUUID is a deterministic UUID (version 8, RFC 9562 custom) from the
// 128-bit FNV-1a hash of b.
func HashUUID(b []byte) string {
	h := fnv.New128a()
	h.Write(b)
	var u [16]byte
	h.Sum(u[:0])
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return formatUUID(u[:])
}

func formatUUID(u []byte) string {
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// CanonicalUUID accepts a UUID as 32 hex digits or 36 characters with
// hyphens at 8-4-4-4-12, and returns it lower-case with hyphens.
func CanonicalUUID(s string) (string, error) {
	var digits []byte
	switch len(s) {
	case 32:
		digits = []byte(s)
	case 36:
		for i := 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return "", fmt.Errorf("%q is not a UUID (hyphen expected at %d)", s, i)
				}
				continue
			}
			digits = append(digits, s[i])
		}
	default:
		return "", fmt.Errorf("%q is not a UUID (32 or 36 characters expected, got %d)", s, len(s))
	}
	u := make([]byte, 16)
	if _, err := hex.Decode(u, bytes.ToLower(digits)); err != nil {
		return "", fmt.Errorf("%q is not a UUID (hex digits expected)", s)
	}
	return formatUUID(u), nil
}

// Get reads a dotted path of a row.
func Get(r map[string]any, path string) (any, bool) {
	var cur any = r
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Float32s converts a vector value (a JSON array of numbers, or the
// []float64 / []float32 of a transform) to float32s, rejecting what
// float32 cannot hold (NaN, infinities, |x| > 3.4e38) with the field and
// position named.
func Float32s(v any, field string) ([]float32, error) {
	conv := func(i int, f float64) (float32, error) {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("vector field %q[%d] is %v, not a finite number", field, i, f)
		}
		if math.Abs(f) > math.MaxFloat32 {
			return 0, fmt.Errorf("vector field %q[%d] = %g overflows float32 (±3.4e38)", field, i, f)
		}
		return float32(f), nil
	}
	var out []float32
	switch x := v.(type) {
	case []float32:
		out = make([]float32, len(x))
		for i, f := range x {
			if _, err := conv(i, float64(f)); err != nil {
				return nil, err
			}
			out[i] = f
		}
	case []float64:
		out = make([]float32, len(x))
		for i, f := range x {
			c, err := conv(i, f)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
	case []any:
		out = make([]float32, len(x))
		for i, e := range x {
			var f float64
			switch n := e.(type) {
			case json.Number:
				var err error
				if f, err = strconv.ParseFloat(string(n), 64); err != nil {
					// ParseFloat fails with ErrRange beyond float64.
					return nil, fmt.Errorf("vector field %q[%d] = %s overflows float32 (±3.4e38)", field, i, n)
				}
			case float64:
				f = n
			case float32:
				f = float64(n)
			case int:
				f = float64(n)
			case int64:
				f = float64(n)
			default:
				return nil, fmt.Errorf("vector field %q[%d] is %s, not a number", field, i, kind(e))
			}
			c, err := conv(i, f)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
	case nil:
		return nil, fmt.Errorf("vector field %q is null", field)
	default:
		return nil, fmt.Errorf("vector field %q is %s, not an array of numbers", field, kind(v))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("vector field %q is empty", field)
	}
	return out, nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// Uint32s converts sparse vector indices.
func Uint32s(v any, field string) ([]uint32, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("sparse indices field %q is %s, not an array", field, kind(v))
	}
	out := make([]uint32, len(arr))
	for i, e := range arr {
		var s string
		switch n := e.(type) {
		case json.Number:
			s = string(n)
		case float64:
			s = strconv.FormatFloat(n, 'f', -1, 64)
		case int:
			s = strconv.Itoa(n)
		default:
			return nil, fmt.Errorf("sparse indices field %q[%d] is %s, not an integer", field, i, kind(e))
		}
		x, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("sparse indices field %q[%d] = %s is not a u32", field, i, s)
		}
		out[i] = uint32(x)
	}
	return out, nil
}

// Plain turns decoded JSON (json.Number) into plain Go values for the
// clients' value converters: integers as int64, other numbers as float64.
func Plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = Plain(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = Plain(e)
		}
		return l
	case []float64:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		return l
	}
	return v
}

// SortedKeys returns a map's keys in order (deterministic payloads).
func SortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Op is one event's operation: an upsert of a point or a delete of an ID.
type Op struct {
	Index  int // in the Write batch
	Event  *events.Event
	Row    map[string]any
	Delete bool
	ID     ID
	Vector []float32
	Item   any // what the backend made of it (Prepare)
}

// Backend is what differs between vector databases.
type Backend interface {
	// Prepare checks an upsert and builds its item (payload, metadata,
	// named or sparse vectors). An error marks the event invalid.
	Prepare(op *Op) error
	Upsert(ctx context.Context, ops []*Op) error
	Delete(ctx context.Context, ops []*Op) error
}

// Options are a sink's common keys.
type Options struct {
	Prefix         string // metric prefix: qdrant, pinecone, s3vectors
	VectorField    string
	IDs            IDs
	Dimension      int // 0 = unknown; else vectors of other sizes are invalid
	BatchSize      int
	Timeout        time.Duration
	SkipInvalid    bool
	MaxRetries     int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Breaker        BreakerConfig
}

// Sink writes batches through a Backend.
type Sink struct {
	B       Backend
	O       Options
	circuit *Circuit
	m       metrics
}

type metrics struct {
	ok, failed, retried, written, recFailed, rejected *metric.Counter
	size                                              *metric.Gauge
	duration                                          *metric.Histogram
}

// MetricNames are the metrics a vector sink with this prefix reports (the
// reference's names), for its catalog entry.
func MetricNames(prefix string) []string {
	names := make([]string, 0, 8)
	for _, n := range []string{".batches.success", ".batches.failed", ".batches.retried", ".records.written",
		".records.failed", ".circuit_breaker.rejected", ".batch.size", ".batch.duration_ms"} {
		names = append(names, prefix+n)
	}
	return names
}

// New makes the sink's common part; ctx carries the runtime.
func New(ctx context.Context, b Backend, o Options) *Sink {
	rt := connector.RuntimeFrom(ctx)
	p := o.Prefix
	return &Sink{B: b, O: o, circuit: NewCircuit(o.Breaker), m: metrics{
		ok:        rt.Counter(p+".batches.success", "Batches upserted."),
		failed:    rt.Counter(p+".batches.failed", "Batches that failed after all retries."),
		retried:   rt.Counter(p+".batches.retried", "Batch retry attempts."),
		written:   rt.Counter(p+".records.written", "Points written (upserted or deleted)."),
		recFailed: rt.Counter(p+".records.failed", "Records failed or skipped (invalid, or refused by the open circuit)."),
		rejected:  rt.Counter(p+".circuit_breaker.rejected", "Batches rejected by the open circuit breaker."),
		size:      rt.Gauge(p+".batch.size", "Size of the last batch sent."),
		duration:  rt.Histogram(p+".batch.duration_ms", "Latency of a batch sent, in milliseconds, retries included.", metric.LatencyMillis),
	}}
}

// Circuit is the sink's breaker (nil when disabled).
func (s *Sink) Circuit() *Circuit { return s.circuit }

// Row is the row of an event a vector sink reads: data for inserts,
// records, snapshot reads and deletes (the before image, for the ID); the
// after image of updates. ok is false for events without rows.
func Row(e *events.Event) (map[string]any, bool, error) {
	if !e.Type.IsData() {
		return nil, false, nil
	}
	v, err := e.Data.Value()
	if err != nil {
		return nil, false, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("%s event data is %s, not an object", e.Type, kind(v))
	}
	if e.Type == events.Update {
		after, ok := m["after"].(map[string]any)
		if !ok {
			return nil, false, errors.New("update event has no after image")
		}
		return after, true, nil
	}
	return m, true, nil
}

// isDelete says whether an event deletes its point: a CDC delete, or a
// row ExtractNewRecordState rewrote with __deleted = "true".
func isDelete(e *events.Event, r map[string]any) bool {
	if e.Type == events.Delete {
		return true
	}
	d, ok := r["__deleted"]
	return ok && (d == "true" || d == true)
}

// Write turns the batch into upserts and deletes in event order and sends
// them batch_size at a time. Invalid events fail alone (dead-letter) or
// are skipped with skip_invalid_events; a failed request fails the whole
// batch for the host to retry (upserts and deletes by ID are idempotent).
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	failed := map[int]error{}
	var ops []*Op
	for i, e := range batch {
		r, ok, err := Row(e)
		if err == nil && !ok {
			continue // schema, state and control events have nothing to write
		}
		if err == nil {
			var op *Op
			op, err = s.op(i, e, r)
			if err == nil {
				ops = append(ops, op)
				continue
			}
		}
		s.m.recFailed.Inc()
		if !s.O.SkipInvalid {
			failed[i] = err
		}
	}
	// Runs of one kind keep the batch's order: an insert then a delete of
	// the same row in one batch leaves no point.
	for start := 0; start < len(ops); {
		end := start
		for end < len(ops) && ops[end].Delete == ops[start].Delete {
			end++
		}
		for c := start; c < end; c += s.O.BatchSize {
			chunk := ops[c:min(c+s.O.BatchSize, end)]
			if err := s.send(ctx, chunk); err != nil {
				return err
			}
		}
		start = end
	}
	if len(failed) > 0 {
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

func (s *Sink) op(i int, e *events.Event, r map[string]any) (*Op, error) {
	id, err := s.O.IDs.Of(e, r)
	if err != nil {
		return nil, err
	}
	op := &Op{Index: i, Event: e, Row: r, ID: id, Delete: isDelete(e, r)}
	if op.Delete {
		return op, nil
	}
	v, ok := Get(r, s.O.VectorField)
	if !ok {
		return nil, fmt.Errorf("vector field %q is missing", s.O.VectorField)
	}
	if op.Vector, err = Float32s(v, s.O.VectorField); err != nil {
		return nil, err
	}
	if d := s.O.Dimension; d > 0 && len(op.Vector) != d {
		return nil, fmt.Errorf("vector field %q has %d dimensions, the index has %d", s.O.VectorField, len(op.Vector), d)
	}
	if err := s.B.Prepare(op); err != nil {
		return nil, err
	}
	return op, nil
}

func (s *Sink) send(ctx context.Context, ops []*Op) error {
	if !s.circuit.Allow() {
		s.m.rejected.Inc()
		s.m.recFailed.Add(uint64(len(ops)))
		return resilience.New(resilience.Connection, fmt.Errorf("%s: %w", s.O.Prefix, ErrOpen))
	}
	s.m.size.Set(float64(len(ops)))
	start := time.Now()
	p := resilience.Policy{MaxRetries: s.O.MaxRetries, Initial: s.O.InitialBackoff, Max: s.O.MaxBackoff, Multiplier: 2, Jitter: 0.2}
	err := resilience.Do(ctx, p, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, s.O.Timeout)
		defer cancel()
		if ops[0].Delete {
			return s.B.Delete(rctx, ops)
		}
		return s.B.Upsert(rctx, ops)
	}, resilience.OnRetry(func(int, error, time.Duration) { s.m.retried.Inc() }))
	s.m.duration.Observe(float64(time.Since(start).Microseconds()) / 1000)
	s.circuit.Done(err == nil)
	if err != nil {
		s.m.failed.Inc()
		return err
	}
	s.m.ok.Inc()
	s.m.written.Add(uint64(len(ops)))
	return nil
}

// FromGRPC classifies a gRPC failure: Unavailable, Aborted, Internal and
// Unknown may pass (Connection), DeadlineExceeded is a Timeout,
// ResourceExhausted is RateLimited, Unauthenticated and PermissionDenied
// are Auth, NotFound is NotFound, InvalidArgument, FailedPrecondition and
// OutOfRange are Schema (the request is wrong).
func FromGRPC(service string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		var se interface{ GRPCStatus() *status.Status }
		if errors.As(err, &se) {
			st, ok = se.GRPCStatus(), true
		}
	}
	if !ok {
		return fmt.Errorf("%s: %w", service, err)
	}
	e := fmt.Errorf("%s: %s: %s", service, st.Code(), st.Message())
	switch st.Code() {
	case codes.DeadlineExceeded:
		return resilience.New(resilience.Timeout, e)
	case codes.ResourceExhausted:
		return resilience.RateLimitedAfter(e, 0)
	case codes.Unauthenticated, codes.PermissionDenied:
		return resilience.New(resilience.Auth, e)
	case codes.NotFound:
		return resilience.New(resilience.NotFound, e)
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return resilience.New(resilience.Schema, e)
	case codes.Canceled:
		return resilience.New(resilience.Timeout, e)
	}
	return resilience.New(resilience.Connection, e)
}
