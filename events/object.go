package events

import (
	"bytes"
	"errors"
	"sync"
	"unicode/utf8"
)

// Object is a JSON object held as the bytes of its fields, for transforms
// that rename, drop, add or replace a few fields of a row without decoding
// it into a map and encoding it again: the values keep the bytes they
// arrived in (as the codecs keep an untouched payload), and Append writes
// the fields back in their order. Decoded, the result is what the same
// edit of the decoded map gives.
//
// An Object can be an event's data itself (Payload.Fields, EditFields,
// SetFields): a chain of such transforms then splits and validates the
// bytes once, and the event is written out once, by the codec.
type Object struct {
	fields []ObjectField
}

// ObjectField is one member of an Object.
type ObjectField struct {
	// Key is the key as a JSON string token, quotes included; a key that
	// arrived with escapes is held in the spelling AppendJSONString gives.
	Key []byte
	// Value is the value's JSON text.
	Value []byte

	// sub is the value split into its fields (Child); when Value is nil,
	// sub was edited (EditChild) and is the value.
	sub *Object
}

// ErrDuplicateKey is what Parse says of an object that names a key twice:
// which of the two a decoded map keeps depends on order, so callers decode
// such an object instead of editing its bytes.
var ErrDuplicateKey = errors.New("object names a key twice")

// Parse splits b, one JSON object (white space around it allowed), into
// its fields, reusing o's storage. The fields are sub-slices of b: b must
// not change while o is in use. Malformed JSON, anything but an object and
// a key named twice are errors, and leave o empty.
func (o *Object) Parse(b []byte) error {
	o.fields = o.fields[:0]
	err := objectFields(b, func(k, v []byte) error {
		for _, f := range o.fields {
			if bytes.Equal(f.Key, k) {
				return ErrDuplicateKey
			}
		}
		o.fields = append(o.fields, ObjectField{Key: k, Value: v})
		return nil
	})
	if err != nil {
		o.fields = o.fields[:0]
	}
	return err
}

// Len is the number of fields.
func (o *Object) Len() int { return len(o.fields) }

// Field returns the i-th field. A value edited through EditChild is
// written out (once) to give its text.
func (o *Object) Field(i int) ObjectField {
	f := &o.fields[i]
	if f.Value == nil && f.sub != nil {
		f.Value = f.sub.Append(make([]byte, 0, f.sub.Size()))
	}
	return ObjectField{Key: f.Key, Value: f.Value}
}

// Child returns the i-th field's value split into its fields, for reading:
// the split is kept, so a later Child or EditChild of the same field does
// not scan it again. It fails when the value is not an object (or names a
// key twice).
func (o *Object) Child(i int) (*Object, error) {
	f := &o.fields[i]
	if f.sub != nil {
		return f.sub, nil
	}
	c, err := parseKept(f.Value)
	if err != nil {
		return nil, err
	}
	f.sub = c
	return c, nil
}

// splits holds the Objects parseKept splits into before it copies the
// fields to storage of their size.
var splits = sync.Pool{New: func() any { return new(Object) }}

// parseKept is Parse into a new Object that is kept with an event: its
// fields are split into pooled storage first and then copied once into a
// slice of their number (with room for two added fields), instead of
// growing a slice field by field.
func parseKept(b []byte) (*Object, error) {
	tmp := splits.Get().(*Object)
	defer splits.Put(tmp)
	if err := tmp.Parse(b); err != nil {
		return nil, err
	}
	o := &Object{fields: make([]ObjectField, len(tmp.fields), len(tmp.fields)+2)}
	copy(o.fields, tmp.fields)
	clear(tmp.fields)
	return o, nil
}

// EditChild is Child for a caller that changes the child: from then on the
// child is the field's value.
func (o *Object) EditChild(i int) (*Object, error) {
	c, err := o.Child(i)
	if err == nil {
		o.fields[i].Value = nil
	}
	return c, err
}

// CopyFrom makes o a copy of src's fields (sharing their bytes and split
// children), reusing o's storage: an edit of o's fields then leaves src
// as it was (an edit of a child through o changes src's child too). Swap
// takes the edit back into src.
func (o *Object) CopyFrom(src *Object) { o.fields = append(o.fields[:0], src.fields...) }

// Swap exchanges the fields of o and other.
func (o *Object) Swap(other *Object) { o.fields, other.fields = other.fields, o.fields }

// Index returns the position of the field named name, or -1.
func (o *Object) Index(name string) int {
	if plainKey(name) {
		for i, f := range o.fields {
			if keyIs(f.Key, name) {
				return i
			}
		}
		return -1
	}
	tok := appendString(nil, name) // keys are held in this spelling
	for i, f := range o.fields {
		if bytes.Equal(f.Key, tok) {
			return i
		}
	}
	return -1
}

// plainKey reports whether name is spelled the same inside a JSON string.
func plainKey(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Set gives the field named name the JSON text val, in its place when it
// is there, else as a new last field. val must be one valid JSON value.
func (o *Object) Set(name string, val []byte) {
	if i := o.Index(name); i >= 0 {
		o.SetValue(i, val)
		return
	}
	o.fields = append(o.fields, ObjectField{Key: appendString(nil, name), Value: val})
}

// SetKey is Set with the key given as a JSON string token (what
// AppendJSONString gives), made once by a caller that sets the same key
// on every row.
func (o *Object) SetKey(tok, val []byte) {
	for i, f := range o.fields {
		if bytes.Equal(f.Key, tok) {
			o.SetValue(i, val)
			return
		}
	}
	o.fields = append(o.fields, ObjectField{Key: tok, Value: val})
}

// SetValue replaces the value of the i-th field.
func (o *Object) SetValue(i int, val []byte) { o.fields[i].Value, o.fields[i].sub = val, nil }

// Delete removes the field named name and reports whether it was there.
func (o *Object) Delete(name string) bool {
	i := o.Index(name)
	if i < 0 {
		return false
	}
	o.DeleteAt(i)
	return true
}

// DeleteAt removes the i-th field, keeping the order of the others.
func (o *Object) DeleteAt(i int) { o.fields = append(o.fields[:i], o.fields[i+1:]...) }

// RenameKey moves the value of from to the key whose JSON string token
// (what AppendJSONString gives) is toTok, as deleting from and setting to
// does on a map: a field already named so takes the value (in its place)
// and from goes; otherwise from is renamed where it stands. The token is
// made once by a caller that renames the same field on every row. It
// reports whether from was there.
func (o *Object) RenameKey(from string, toTok []byte) bool {
	i := o.Index(from)
	if i < 0 {
		return false
	}
	if bytes.Equal(o.fields[i].Key, toTok) {
		return true
	}
	for j, f := range o.fields {
		if bytes.Equal(f.Key, toTok) {
			o.fields[j].Value, o.fields[j].sub = o.fields[i].Value, o.fields[i].sub
			o.DeleteAt(i)
			return true
		}
	}
	o.fields[i].Key = toTok
	return true
}

// Append appends the object as compact JSON: its fields in order, each
// value as its bytes.
func (o *Object) Append(dst []byte) []byte {
	dst = append(dst, '{')
	for i, f := range o.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.Key...)
		dst = append(dst, ':')
		if f.Value == nil && f.sub != nil {
			dst = f.sub.Append(dst)
		} else {
			dst = append(dst, f.Value...)
		}
	}
	return append(dst, '}')
}

// Size is the length Append adds.
func (o *Object) Size() int {
	n := 2
	for _, f := range o.fields {
		if f.Value == nil && f.sub != nil {
			n += len(f.Key) + f.sub.Size() + 2
		} else {
			n += len(f.Key) + len(f.Value) + 2
		}
	}
	return n
}

// Raw returns the data's JSON bytes while they are the data — nothing
// changed it as a decoded value since it arrived or was last set as bytes
// or fields — for a transform that reads or edits them as bytes. The
// caller must not change them. ok is false once a transform changed the
// decoded value: the bytes are stale then, and the value is the data.
func (p *Payload) Raw() (b []byte, ok bool) {
	if p.dirty {
		return nil, false
	}
	if p.objOnly {
		p.raw = p.obj.Append(make([]byte, 0, p.obj.Size()))
		p.objOnly = false
	}
	return p.raw, true
}

// SetRaw replaces the data with JSON bytes, as RawPayload does; the caller
// must not change b afterwards.
func (p *Payload) SetRaw(b []byte) { *p = Payload{raw: b} }

// Fields returns the data split into its fields while it is a JSON object
// held as bytes or fields, for reading: the split is kept with the data, so
// the transforms after the first neither scan nor validate it again. The
// caller must not change the result (EditFields is for that). ok is false
// when the data was changed as a decoded value, or is not an object
// (null, malformed, another type, a key named twice).
func (p *Payload) Fields() (o *Object, ok bool) {
	if p.dirty {
		return nil, false
	}
	if p.obj != nil {
		return p.obj, true
	}
	if len(p.raw) == 0 {
		return nil, false
	}
	o, err := parseKept(p.raw)
	if err != nil {
		return nil, false
	}
	p.obj = o
	return o, true
}

// EditFields is Fields for a caller that changes the fields (and their
// children): from then on they are the data, written out when something
// asks for bytes or a value. The caller may change them until it next
// calls a method of the Payload.
func (p *Payload) EditFields() (o *Object, ok bool) {
	if o, ok = p.Fields(); ok {
		p.raw, p.objOnly = nil, true
		p.val, p.decoded = nil, false
	}
	return o, ok
}

// SetFields replaces the data with o, which the Payload owns from then on.
func (p *Payload) SetFields(o *Object) { *p = Payload{obj: o, objOnly: true} }

// ValueOfRaw decodes one JSON value as Payload.Value would (numbers as
// json.Number), for a transform that read a field's bytes from an Object.
func ValueOfRaw(b []byte) (any, error) { return decodeValue(b) }

// UnquoteRaw decodes a JSON string token (quotes included) as the codecs
// do: invalid UTF-8 and lone surrogates become U+FFFD.
func UnquoteRaw(tok []byte) (string, error) { return unquote(tok) }

// RawField returns the JSON text of the value at path (keys of nested
// objects) in the JSON object b, as a decoded map would hold it: of a key
// named twice, the last. ok is false when a key is absent, a value on the
// way is not an object, or b is not valid JSON.
func RawField(b []byte, path ...string) (val []byte, ok bool) {
	for _, seg := range path {
		var found []byte
		err := objectFields(b, func(k, v []byte) error {
			if keyIs(k, seg) || !plainKey(seg) && string(k) == string(appendString(nil, seg)) {
				found = v
			}
			return nil
		})
		if err != nil || found == nil {
			return nil, false
		}
		b = found
	}
	return b, true
}

// Lookup returns the JSON text of the value at path (keys of nested
// objects), splitting the objects on the way once (Child). ok is false
// when a key is absent or a value on the way is not an object.
func (o *Object) Lookup(path ...string) (val []byte, ok bool) {
	for n, seg := range path {
		i := o.Index(seg)
		if i < 0 {
			return nil, false
		}
		if n == len(path)-1 {
			return o.Field(i).Value, true
		}
		c, err := o.Child(i)
		if errors.Is(err, ErrDuplicateKey) {
			// Of a key named twice, the last counts, as in a decoded map.
			return RawField(o.Field(i).Value, path[n+1:]...)
		}
		if err != nil {
			return nil, false
		}
		o = c
	}
	return nil, false
}

// TakeRow is Row for a caller that makes the row the event's data
// (SetFields), dropping the rest: while an update's data is still unsplit
// bytes, only the row is split (the rest is validated, not kept). Of a
// key named twice in the envelope the last counts, as in a decoded map.
// The Payload must not be used for the old data afterwards.
func (p *Payload) TakeRow(t Type, root string) (row *Object, ok bool) {
	if p.dirty || p.obj != nil || t != Update || root != "after" && root != "before" {
		return p.Row(t, root)
	}
	b, err := lastField(p.raw, root)
	if err != nil {
		return nil, false // not an object, or malformed: as Row says
	}
	if b == nil {
		return nil, true
	}
	c, err := parseKept(b)
	switch {
	case errors.Is(err, ErrDuplicateKey):
		return nil, false
	case err != nil:
		return nil, true // null or not an object: no such row
	}
	return c, true
}

// Row returns the fields of the named row of an event's data: the data of
// inserts, records and snapshot reads ("after") and of deletes ("before");
// data.after and data.before of updates. ok is false when the data is not
// an object of fields (Fields) or the row names a key twice; row is nil
// when the event has no such row (another root, an update without it, or
// a null or non-object image).
func (p *Payload) Row(t Type, root string) (row *Object, ok bool) {
	o, ok := p.Fields()
	if !ok {
		return nil, false
	}
	switch {
	case root == "after" && (t == Record || t == Insert || t == SnapshotRead),
		root == "before" && t == Delete:
		return o, true
	case t == Update && (root == "after" || root == "before"):
		i := o.Index(root)
		if i < 0 {
			return nil, true
		}
		c, err := o.Child(i)
		if errors.Is(err, ErrDuplicateKey) {
			return nil, false
		}
		if err != nil {
			return nil, true
		}
		return c, true
	}
	return nil, true
}
