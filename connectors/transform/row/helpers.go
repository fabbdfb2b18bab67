package row

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/timestamp"
)

// Each adapts a function that changes one event in place to a
// connector.Transform: every event is passed on, except those fn fails on,
// which are reported in a *connector.TransformError (dead-lettered with the
// error). Unlike connector.PerEvent it allocates nothing per event: when
// nothing fails the input slice itself is returned.
type Each func(ctx context.Context, e *events.Event) error

// Apply implements connector.Transform.
func (f Each) Apply(ctx context.Context, batch []*events.Event) ([]*events.Event, error) {
	var failed []connector.EventError
	var bad []int
	for i, e := range batch {
		if err := f(ctx, e); err != nil {
			failed = append(failed, connector.EventError{Event: e, Err: err})
			bad = append(bad, i)
		}
	}
	if failed == nil {
		return batch, nil
	}
	out := make([]*events.Event, 0, len(batch)-len(failed))
	for i, e := range batch {
		if len(bad) > 0 && bad[0] == i {
			bad = bad[1:]
			continue
		}
		out = append(out, e)
	}
	return out, &connector.TransformError{Failed: failed}
}

// View appends to buf the rows Mutable would return, without marking the
// data changed: a transform that finds nothing to change then leaves the
// event's original bytes untouched. Call Changed before changing a row.
// Passing a small array (var a [2]map[string]any; View(e, a[:0])) keeps
// the result off the heap.
func View(e *events.Event, buf []map[string]any) ([]map[string]any, error) {
	if !e.Type.IsData() {
		return buf, nil
	}
	v, err := e.Data.Value()
	if err != nil || v == nil {
		return buf, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return buf, fmt.Errorf("%s event data is %T, not an object", e.Type, v)
	}
	if e.Type != events.Update {
		return append(buf, m), nil
	}
	for _, k := range [...]string{"after", "before"} {
		switch r := m[k].(type) {
		case map[string]any:
			buf = append(buf, r)
		case nil:
		default:
			return buf[:0], fmt.Errorf("update event data.%s is %T, not an object", k, r)
		}
	}
	return buf, nil
}

// Changed marks the event's data changed so that it is re-encoded; the
// rows View returned stay the ones to change.
func Changed(e *events.Event) { _, _ = e.Data.Mutable() }

// ParseTime reads a point in time from a row value, for the timestamp
// transforms: a string as timestamp.Parse reads it (wall-clock times in
// naive), a number (json.Number, or a Go number a previous transform set) as
// the Unix epoch timestamp.ParseEpoch reads.
func ParseTime(v any, naive *time.Location) (time.Time, error) {
	switch v := v.(type) {
	case string:
		return timestamp.Parse(v, naive)
	case json.Number:
		return timestamp.ParseEpoch(string(v))
	case float64:
		return timestamp.ParseEpoch(strconv.FormatFloat(v, 'f', -1, 64))
	case float32:
		return timestamp.ParseEpoch(strconv.FormatFloat(float64(v), 'f', -1, 32))
	case int:
		return timestamp.FromEpoch(int64(v))
	case int32:
		return timestamp.FromEpoch(int64(v))
	case int64:
		return timestamp.FromEpoch(v)
	case uint64:
		return timestamp.ParseEpoch(strconv.FormatUint(v, 10))
	case nil:
		return time.Time{}, fmt.Errorf("value is null")
	}
	return time.Time{}, fmt.Errorf("%s is not a timestamp (want a date/time string or an epoch number)", article(kind(v)))
}

// kind names a row value's JSON type for error messages.
func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case bool:
		return "boolean"
	case string:
		return "string"
	case nil:
		return "null"
	}
	return "number"
}

func article(k string) string {
	if k == "object" || k == "array" {
		return "an " + k
	}
	return "a " + k
}

// Undo remembers what Set changed in rows, so that a transform that fails
// half-way through an event can leave it exactly as it found it (the dead
// letter then carries the event the transform was given). The zero value
// is ready to use; a local Undo stays on the stack for up to four changed
// fields.
type Undo struct {
	n    int
	buf  [4]undoEntry
	more []undoEntry
}

type undoEntry struct {
	m   map[string]any
	key string
	old any
	had bool
}

func (u *Undo) at(i int) *undoEntry {
	if i < len(u.buf) {
		return &u.buf[i]
	}
	return &u.more[i-len(u.buf)]
}

// Set stores v at p in m (see Path.Set) and remembers the top-level value
// it replaces; for a nested path that value is copied first, since the
// change happens inside it.
func (u *Undo) Set(m map[string]any, p Path, v any) error {
	key := p[0]
	seen := false
	for i := 0; i < u.n && !seen; i++ {
		e := u.at(i)
		seen = e.key == key && sameMap(e.m, m)
	}
	if !seen {
		old, had := m[key]
		if len(p) > 1 {
			old = DeepCopy(old)
		}
		e := undoEntry{m, key, old, had}
		if u.n < len(u.buf) {
			u.buf[u.n] = e
		} else {
			u.more = append(u.more, e)
		}
		u.n++
	}
	return p.Set(m, v)
}

// sameMap reports whether a and b are the same map (not equal contents).
func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Rollback takes back every change since the Undo was made, newest first.
func (u *Undo) Rollback() {
	for i := u.n - 1; i >= 0; i-- {
		e := u.at(i)
		if e.had {
			e.m[e.key] = e.old
		} else {
			delete(e.m, e.key)
		}
	}
	u.n, u.more = 0, u.more[:0]
}

// DeepCopy copies a decoded JSON value: objects and arrays are copied,
// everything else is immutable and shared.
func DeepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, x := range v {
			c[k] = DeepCopy(x)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, x := range v {
			c[i] = DeepCopy(x)
		}
		return c
	}
	return v
}

// AppendTime appends t as RFC 3339 in its own zone: "Z" for a zero offset,
// else ±hh:mm, and 0, 3, 6 or 9 fraction digits as needed (for a UTC time
// the same text as events.AppendTimestamp), without parsing a layout.
func AppendTime(dst []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	dst = append4(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, int(mo))
	dst = append(dst, '-')
	dst = append2(dst, d)
	dst = append(dst, 'T')
	dst = append2(dst, h)
	dst = append(dst, ':')
	dst = append2(dst, mi)
	dst = append(dst, ':')
	dst = append2(dst, s)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		switch {
		case ns%1_000_000 == 0:
			ns, digits = ns/1_000_000, 3
		case ns%1000 == 0:
			ns, digits = ns/1000, 6
		}
		dst = append(dst, '.')
		var buf [9]byte
		for i := digits - 1; i >= 0; i-- {
			buf[i] = byte('0' + ns%10)
			ns /= 10
		}
		dst = append(dst, buf[:digits]...)
	}
	_, off := t.Zone()
	if off == 0 {
		return append(dst, 'Z')
	}
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	off /= 60
	dst = append(dst, sign)
	dst = append2(dst, off/60)
	dst = append(dst, ':')
	return append2(dst, off%60)
}

func append2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

func append4(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}
