package events

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// Object is a JSON object held as the bytes of its fields, for transforms
// that rename, drop, add or replace a few fields of a row without decoding
// it into a map and encoding it again: the values keep the bytes they
// arrived in (as the codecs keep an untouched payload), and Append writes
// the fields back in their order. Decoded, the result is what the same
// edit of the decoded map gives.
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
		o.fields = append(o.fields, ObjectField{k, v})
		return nil
	})
	if err != nil {
		o.fields = o.fields[:0]
	}
	return err
}

// Len is the number of fields.
func (o *Object) Len() int { return len(o.fields) }

// Field returns the i-th field.
func (o *Object) Field(i int) ObjectField { return o.fields[i] }

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
		o.fields[i].Value = val
		return
	}
	o.fields = append(o.fields, ObjectField{appendString(nil, name), val})
}

// SetKey is Set with the key given as a JSON string token (what
// AppendJSONString gives), made once by a caller that sets the same key
// on every row.
func (o *Object) SetKey(tok, val []byte) {
	for i, f := range o.fields {
		if bytes.Equal(f.Key, tok) {
			o.fields[i].Value = val
			return
		}
	}
	o.fields = append(o.fields, ObjectField{tok, val})
}

// SetValue replaces the value of the i-th field.
func (o *Object) SetValue(i int, val []byte) { o.fields[i].Value = val }

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

// Rename moves the value of from to the key to, as deleting from and
// setting to does on a map: a field already named to takes the value (in
// its place) and from goes; otherwise from is renamed where it stands.
// It reports whether from was there.
func (o *Object) Rename(from, to string) bool {
	i := o.Index(from)
	if i < 0 {
		return false
	}
	if from == to {
		return true
	}
	if j := o.Index(to); j >= 0 {
		o.fields[j].Value = o.fields[i].Value
		o.DeleteAt(i)
		return true
	}
	o.fields[i].Key = appendString(nil, to)
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
		dst = append(dst, f.Value...)
	}
	return append(dst, '}')
}

// Size is the length Append adds.
func (o *Object) Size() int {
	n := 2
	for _, f := range o.fields {
		n += len(f.Key) + len(f.Value) + 2
	}
	return n
}

// Raw returns the data's JSON bytes while they are the data — nothing
// changed it since it arrived or was last set as bytes — for a transform
// that edits them as bytes (Object) and sets the result with SetRaw. The
// caller must not change them. ok is false once a transform changed the
// decoded value: the bytes are stale then, and the value is the data.
func (p *Payload) Raw() (b []byte, ok bool) {
	if p.dirty {
		return nil, false
	}
	return p.raw, true
}

// SetRaw replaces the data with JSON bytes, as RawPayload does; the caller
// must not change b afterwards.
func (p *Payload) SetRaw(b []byte) { *p = Payload{raw: b} }

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
