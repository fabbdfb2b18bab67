package row

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
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
// transforms:
//
//   - strings in RFC 3339 / ISO 8601 form: 2024-01-15T10:30:00Z,
//     2024-01-15T10:30:00.123+01:00, 2024-01-15 10:30:00 (space instead of
//     T), offsets as Z, ±HH, ±HHMM or ±HH:MM, seconds and fraction optional;
//     a date alone (2024-01-15) is midnight. Strings without an offset are
//     wall-clock times in naive (an ambiguous time at the end of daylight
//     saving time is the earlier instant; a skipped one is an error);
//   - numbers (json.Number, or Go numbers a previous transform set) as a Unix
//     epoch whose unit follows from the magnitude: below 1e11 seconds (until
//     the year 5138), below 1e14 milliseconds (from March 1973), below 1e17
//     microseconds, else nanoseconds. Fractions are kept to the nanosecond.
//
// Anything else, and times outside the years 0000-9999, is an error.
func ParseTime(v any, naive *time.Location) (time.Time, error) {
	switch v := v.(type) {
	case string:
		return parseTimeString(v, naive)
	case json.Number:
		return parseEpoch(string(v))
	case float64:
		return parseEpoch(strconv.FormatFloat(v, 'f', -1, 64))
	case float32:
		return parseEpoch(strconv.FormatFloat(float64(v), 'f', -1, 32))
	case int:
		return epochInt(int64(v))
	case int32:
		return epochInt(int64(v))
	case int64:
		return epochInt(v)
	case uint64:
		return parseEpoch(strconv.FormatUint(v, 10))
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

func checkYear(t time.Time) (time.Time, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("timestamp is in the year %d, outside 0000-9999", y)
	}
	return t, nil
}

// Epoch magnitudes that switch the unit (see ParseTime).
const (
	secsBelow   = 1e11
	millisBelow = 1e14
	microsBelow = 1e17
)

func epochInt(n int64) (time.Time, error) {
	a := uint64(n)
	if n < 0 {
		a = uint64(-(n + 1)) + 1 // no overflow for MinInt64
	}
	var t time.Time
	switch {
	case a < secsBelow:
		t = time.Unix(n, 0)
	case a < millisBelow:
		t = time.UnixMilli(n)
	case a < microsBelow:
		t = time.UnixMicro(n)
	default:
		t = time.Unix(0, n)
	}
	return checkYear(t.UTC())
}

var (
	ratSecs    = new(big.Rat).SetInt64(secsBelow)
	ratMillis  = new(big.Rat).SetInt64(millisBelow)
	ratMicros  = new(big.Rat).SetInt64(microsBelow)
	bigBillion = big.NewInt(1e9)
	maxSecs    = big.NewInt(1 << 62)
)

// parseEpoch reads a decimal number exactly: integers on a fast path,
// fractions and exponents as rationals.
func parseEpoch(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return epochInt(n)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "/xXpP_") || s == "" {
		return time.Time{}, fmt.Errorf("%q is not a number", s)
	}
	a := new(big.Rat).Abs(r)
	var nsPerUnit int64
	switch {
	case a.Cmp(ratSecs) < 0:
		nsPerUnit = 1e9
	case a.Cmp(ratMillis) < 0:
		nsPerUnit = 1e6
	case a.Cmp(ratMicros) < 0:
		nsPerUnit = 1e3
	default:
		nsPerUnit = 1
	}
	ns := new(big.Rat).Mul(r, new(big.Rat).SetInt64(nsPerUnit))
	whole := new(big.Int).Div(ns.Num(), ns.Denom()) // floor: Denom > 0
	sec, nsec := new(big.Int).DivMod(whole, bigBillion, new(big.Int))
	if new(big.Int).Abs(sec).Cmp(maxSecs) > 0 {
		return time.Time{}, fmt.Errorf("epoch %s is out of range", s)
	}
	return checkYear(time.Unix(sec.Int64(), nsec.Int64()).UTC())
}

func num(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

func parseTimeString(s string, naive *time.Location) (time.Time, error) {
	orig := s
	s = strings.TrimSpace(s)
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q is not a timestamp: %s (want e.g. 2024-01-15T10:30:00Z, 2024-01-15 10:30:00 or 2024-01-15)", orig, why)
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return bad("no YYYY-MM-DD date")
	}
	y, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 {
		return bad("no YYYY-MM-DD date")
	}
	// time.Date normalises Feb 30 to Mar 2: a day it moves does not exist.
	if mo < 1 || mo > 12 || d < 1 || time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC).Day() != d {
		return bad("no such date")
	}
	var h, mi, sec, nsec int
	loc := naive
	if len(s) > 10 {
		if c := s[10]; c != 'T' && c != 't' && c != ' ' {
			return bad("date and time must be separated by T or a space")
		}
		i := 11
		if len(s) < i+5 || s[i+2] != ':' {
			return bad("no HH:MM time")
		}
		var ok1, ok2 bool
		h, ok1 = num(s[i : i+2])
		mi, ok2 = num(s[i+3 : i+5])
		if !ok1 || !ok2 {
			return bad("no HH:MM time")
		}
		i += 5
		if i < len(s) && s[i] == ':' {
			if sec, ok1 = num(s[i+1 : min(i+3, len(s))]); !ok1 || i+3 > len(s) {
				return bad("bad seconds")
			}
			i += 3
			if i < len(s) && (s[i] == '.' || s[i] == ',') {
				j := i + 1
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					if j-i <= 9 {
						nsec = nsec*10 + int(s[j]-'0')
					}
					j++
				}
				if j == i+1 {
					return bad("empty fraction")
				}
				for k := j - i; k <= 9; k++ {
					nsec *= 10
				}
				i = j
			}
		}
		if h > 23 || mi > 59 || sec > 59 {
			return bad("time out of range")
		}
		if i < len(s) {
			switch z := s[i:]; {
			case z == "Z" || z == "z":
				loc = time.UTC
			case z[0] == '+' || z[0] == '-':
				oh, om, ok := 0, 0, false
				switch len(z) {
				case 3: // +HH
					oh, ok = num(z[1:3])
				case 5: // +HHMM
					oh, ok = num(z[1:3])
					if ok {
						om, ok = num(z[3:5])
					}
				case 6: // +HH:MM
					oh, ok = num(z[1:3])
					if ok && z[3] == ':' {
						om, ok = num(z[4:6])
					} else {
						ok = false
					}
				}
				if !ok || oh > 23 || om > 59 {
					return bad("bad UTC offset " + strconv.Quote(z))
				}
				off := (oh*60 + om) * 60
				if z[0] == '-' {
					off = -off
				}
				if off == 0 {
					loc = time.UTC
				} else {
					loc = time.FixedZone("", off)
				}
			default:
				return bad("unexpected " + strconv.Quote(z))
			}
		}
	}
	if loc == time.UTC {
		return checkYear(time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC))
	}
	t, err := Local(y, time.Month(mo), d, h, mi, sec, nsec, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %w", orig, err)
	}
	return checkYear(t.UTC())
}

// Local returns the instant a wall-clock time has in loc. When the clock
// was set back (end of daylight saving time) and the time happened twice,
// it is the earlier instant; a time skipped when the clock was set forward
// is an error.
func Local(y int, mo time.Month, d, h, mi, s, ns int, loc *time.Location) (time.Time, error) {
	t := time.Date(y, mo, d, h, mi, s, ns, loc)
	// Fast path: no clock change within three hours, so the time exists
	// once (changes are at most two hours and months apart).
	_, off := t.Zone()
	_, before := t.Add(-3 * time.Hour).Zone()
	_, after := t.Add(3 * time.Hour).Zone()
	if before == off && after == off {
		return t, nil
	}
	var best time.Time
	found := false
	for _, shift := range [...]time.Duration{-2 * time.Hour, -90 * time.Minute, -time.Hour, -30 * time.Minute, 0, 30 * time.Minute, time.Hour, 90 * time.Minute, 2 * time.Hour} {
		c := t.Add(shift)
		cy, cmo, cd := c.Date()
		ch, cmi, cs := c.Clock()
		if cy == y && cmo == mo && cd == d && ch == h && cmi == mi && cs == s && (!found || c.Before(best)) {
			best, found = c, true
		}
	}
	if !found {
		return time.Time{}, fmt.Errorf("%04d-%02d-%02d %02d:%02d:%02d does not exist in %s (skipped by a clock change)", y, mo, d, h, mi, s, loc)
	}
	return best, nil
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
