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

// scratch keeps the field slices of the Objects an edit is made on
// between events: rows have about the same number of fields, so after
// warm-up an edit allocates nothing.
var scratch = sync.Pool{New: func() any { return new([2]events.Object) }}

// EditRaw changes the rows Mutable would give — the data of inserts,
// records, snapshot reads and deletes; after and before of updates — as
// JSON fields, without decoding them: fn gets each row as an events.Object
// and reports whether it changed it. The data keeps its split into fields
// (events.Payload.EditFields), so the next transform of the chain does not
// scan it again; untouched fields keep their bytes. Decoded, the result is
// what the same change of the row maps gives.
//
// fn edits a copy of the row: when it fails, the event is as it was.
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
	outer, ok := e.Data.Fields()
	if !ok {
		if raw, ok := e.Data.Raw(); ok && isNullJSON(raw) {
			return true, nil
		}
		return false, nil
	}
	objs := scratch.Get().(*[2]events.Object)
	defer scratch.Put(objs)
	if e.Type != events.Update {
		edit := &objs[0]
		edit.CopyFrom(outer)
		changed, err := fn(edit)
		if err != nil || !changed {
			return !errors.Is(err, ErrNotRaw), ignoreNotRaw(err)
		}
		outer, _ = e.Data.EditFields()
		outer.Swap(edit)
		return true, nil
	}
	// Both rows are edited before either is kept, so that a failure in
	// the second leaves the first as it was too.
	var rows [2]*events.Object
	var at [2]int
	for n, k := range [...]string{"after", "before"} {
		i := outer.Index(k)
		if i < 0 {
			continue
		}
		v := outer.Field(i).Value
		if len(v) == 0 || v[0] != '{' {
			continue // null or not an object: Mutable gives no row either
		}
		row, err := outer.Child(i)
		if err != nil {
			return false, nil
		}
		edit := &objs[n]
		edit.CopyFrom(row)
		changed, err := fn(edit)
		if err != nil {
			return !errors.Is(err, ErrNotRaw), ignoreNotRaw(err)
		}
		if changed {
			rows[n], at[n] = edit, i
		}
	}
	if rows[0] == nil && rows[1] == nil {
		return true, nil
	}
	outer, _ = e.Data.EditFields()
	for n, edit := range rows {
		if edit != nil {
			row, _ := outer.EditChild(at[n])
			row.Swap(edit)
		}
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
