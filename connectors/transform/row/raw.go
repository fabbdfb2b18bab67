package row

import (
	"bytes"
	"errors"
	"sync"

	"github.com/rivven/rivven-connect/events"
)

// ErrNotRaw is what an EditRaw callback returns when the row needs
// something the byte path does not do (a nested path, a value it cannot
// read as bytes): EditRaw then reports not handled, the event unchanged,
// and the transform takes its map path.
var ErrNotRaw = errors.New("row needs the map path")

// objects keeps the field slices of Objects between events: rows have
// about the same number of fields, so after warm-up parsing allocates
// nothing.
var objects = sync.Pool{New: func() any { return new([2]events.Object) }}

// GetObject returns an empty Object from a pool, for a transform that
// edits bytes itself; PutObject gives it back once nothing refers to its
// fields.
func GetObject() *events.Object { return single.Get().(*events.Object) }

// PutObject returns an Object GetObject gave.
func PutObject(o *events.Object) { single.Put(o) }

var single = sync.Pool{New: func() any { return new(events.Object) }}

// EditRaw changes the rows Mutable would give — the data of inserts,
// records, snapshot reads and deletes; after and before of updates — as
// bytes, without decoding them: fn gets each row as an events.Object and
// reports whether it changed it. Changed rows are written back as the
// event's data; untouched fields and the rest of an update's data keep
// their bytes. Decoded, the result is what the same change of the row maps
// gives.
//
// handled is false, and the event unchanged, when the byte path does not
// apply: the data was already decoded and changed by an earlier transform,
// is not valid JSON, is not an object, names a key twice, or fn returned
// ErrNotRaw. The caller then takes its map path (row.Mutable), which also
// reports what is wrong with the data. Other errors of fn are returned with
// handled true.
func EditRaw(e *events.Event, fn func(o *events.Object) (changed bool, err error)) (handled bool, err error) {
	if !e.Type.IsData() {
		return true, nil // no rows, as Mutable gives none
	}
	raw, ok := e.Data.Raw()
	if !ok {
		return false, nil
	}
	if isNullJSON(raw) {
		return true, nil
	}
	objs := objects.Get().(*[2]events.Object)
	defer objects.Put(objs)
	outer := &objs[0]
	if err := outer.Parse(raw); err != nil {
		return false, nil
	}
	if e.Type != events.Update {
		changed, err := fn(outer)
		if err != nil || !changed {
			return !errors.Is(err, ErrNotRaw), ignoreNotRaw(err)
		}
		e.Data.SetRaw(outer.Append(make([]byte, 0, outer.Size())))
		return true, nil
	}
	inner := &objs[1]
	any := false
	for _, k := range [...]string{"after", "before"} {
		i := outer.Index(k)
		if i < 0 {
			continue
		}
		v := outer.Field(i).Value
		if len(v) == 0 || v[0] != '{' {
			continue // null or not an object: Mutable gives no row either
		}
		if err := inner.Parse(v); err != nil {
			return false, nil
		}
		changed, err := fn(inner)
		if err != nil {
			return !errors.Is(err, ErrNotRaw), ignoreNotRaw(err)
		}
		if changed {
			outer.SetValue(i, inner.Append(make([]byte, 0, inner.Size())))
			any = true
		}
	}
	if any {
		e.Data.SetRaw(outer.Append(make([]byte, 0, outer.Size())))
	}
	return true, nil
}

func ignoreNotRaw(err error) error {
	if errors.Is(err, ErrNotRaw) {
		return nil
	}
	return err
}

func isNullJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}
