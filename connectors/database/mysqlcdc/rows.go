package mysqlcdc

import (
	"errors"
	"fmt"
)

// rowChange is one decoded row of a rows event: JSON objects of the before
// and after images (nil when the event kind has none) and the key.
type rowChange struct {
	Before, After []byte
	Key           []byte
}

// decodeRowImage decodes one row image at r, returning the JSON object and
// the key object (nil when the table has no primary key).
func (d *decoder) decodeRowImage(r *reader, ti *tableInfo, present []byte, ncols int) (obj, key []byte, err error) {
	tm := ti.tm
	if ncols > len(tm.Types) {
		return nil, nil, fmt.Errorf("rows event has %d columns, table map %d", ncols, len(tm.Types))
	}
	npresent := 0
	for i := range ncols {
		if bit(present, i) {
			npresent++
		}
	}
	nulls := r.bytes((npresent + 7) / 8)
	if r.err != nil {
		return nil, nil, r.err
	}
	// start/end of each value's JSON in obj; -1 absent
	if cap(d.vals) < ncols {
		d.vals = make([][2]int, ncols)
	}
	vals := d.vals[:ncols]
	// Rows are appended to a shared arena (one allocation for many rows);
	// each row's slice is capped so later appends never touch it.
	if cap(d.arena)-len(d.arena) < 256+ncols*16 || cap(d.arena) > 1<<20 {
		// (an arena that grew past 1 MiB through a large row is dropped,
		// so it cannot keep growing by doubling). 24 KiB is a size class
		// below the runtime's 32 KiB large-object limit: large chunks
		// take fresh heap pages each time (page allocation, zeroing,
		// scavenging), which a CPU profile showed.
		d.arena = make([]byte, 0, max(24<<10, 512+ncols*32))
	}
	base := len(d.arena)
	obj = d.arena
	obj = append(obj, '{')
	k := 0
	first := true
	for i := range ncols {
		vals[i] = [2]int{-1, -1}
		if !bit(present, i) {
			continue
		}
		isNull := nulls[k/8]&(1<<(k%8)) != 0
		k++
		if !first {
			obj = append(obj, ',')
		}
		first = false
		obj = append(obj, ti.colKeys[i]...)
		start := len(obj)
		if isNull {
			obj = append(obj, "null"...)
		} else {
			obj, err = appendBinlogValue(obj, r, tm.Types[i], tm.Meta[i], ti.unsigned[i], &ti.cols[i], d.mysqlJSON)
			if err != nil {
				return nil, nil, fmt.Errorf("column %s: %w", ti.cols[i].Name, err)
			}
			if r.err != nil {
				return nil, nil, fmt.Errorf("column %s: %w", ti.cols[i].Name, r.err)
			}
		}
		vals[i] = [2]int{start - base, len(obj) - base}
	}
	obj = append(obj, '}')
	d.arena = obj
	obj = obj[base:len(obj):len(obj)]
	if len(ti.pk) > 0 {
		start := len(d.arena)
		key = d.arena
		key = append(key, '{')
		for j, p := range ti.pk {
			if p >= ncols || vals[p][0] < 0 {
				key = nil
				break
			}
			if j > 0 {
				key = append(key, ',')
			}
			key = append(key, ti.colKeys[p]...)
			key = append(key, obj[vals[p][0]:vals[p][1]]...)
		}
		if key != nil {
			key = append(key, '}')
			d.arena = key
			key = key[start:len(key):len(key)]
		}
	}
	return obj, key, nil
}

// decodeRows decodes every row of a rows event. The returned slice is the
// decoder's scratch space, valid until the next call (the row JSON it
// points to is not: that stays valid for good).
func (d *decoder) decodeRows(rh rowsHeader, ti *tableInfo) ([]rowChange, error) {
	if ti == nil || ti.tm == nil {
		return nil, errors.New("rows event without table map")
	}
	if len(rh.Present) < (rh.NCols+7)/8 || (rh.Kind == rowsUpdate && len(rh.Present2) < (rh.NCols+7)/8) {
		return nil, errShort
	}
	r := reader{b: rh.Data}
	out := d.changes[:0]
	for r.i < len(r.b) {
		before := r.i
		var rc rowChange
		var err error
		switch rh.Kind {
		case rowsInsert:
			rc.After, rc.Key, err = d.decodeRowImage(&r, ti, rh.Present, rh.NCols)
		case rowsDelete:
			rc.Before, rc.Key, err = d.decodeRowImage(&r, ti, rh.Present, rh.NCols)
		case rowsUpdate:
			var k0 []byte
			rc.Before, k0, err = d.decodeRowImage(&r, ti, rh.Present, rh.NCols)
			if err == nil {
				rc.After, rc.Key, err = d.decodeRowImage(&r, ti, rh.Present2, rh.NCols)
				if rc.Key == nil {
					rc.Key = k0
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if r.i == before {
			// A row image without columns consumes nothing: without this
			// check corrupt data would loop forever.
			return nil, errors.New("rows event with an empty row image")
		}
		out = append(out, rc)
	}
	d.changes = out
	return out, nil
}
