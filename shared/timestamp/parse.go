// Package timestamp reads the dates and timestamps events carry, in one
// lenient form for every connector that turns a string or an epoch number
// into a time: the time transforms, the SQL and warehouse sinks. The event
// codec keeps its own strict RFC 3339 reader (events.parseTimestamp), which
// accepts only what RFC 3339 allows.
package timestamp

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

func checkYear(t time.Time) (time.Time, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("timestamp is in the year %d, outside 0000-9999", y)
	}
	return t, nil
}

// Epoch magnitudes that switch the unit (see ParseEpoch).
const (
	secsBelow   = 1e11
	millisBelow = 1e14
	microsBelow = 1e17
)

// FromEpoch is ParseEpoch for an integer.
func FromEpoch(n int64) (time.Time, error) {
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

// ParseEpoch reads a decimal number of seconds, milliseconds, microseconds
// or nanoseconds since the Unix epoch, the unit following from the
// magnitude: below 1e11 seconds (until the year 5138), below 1e14
// milliseconds (from March 1973), below 1e17 microseconds, else
// nanoseconds. It reads the number exactly: integers on a fast path,
// fractions and exponents as rationals.
func ParseEpoch(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return FromEpoch(n)
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

// Parse reads a date or timestamp in RFC 3339 / ISO 8601 form:
// 2024-01-15T10:30:00Z, 2024-01-15T10:30:00.123+01:00, 2024-01-15 10:30:00
// (space instead of T), offsets as Z, ±HH, ±HHMM or ±HH:MM, seconds and
// fraction optional; a date alone is midnight. A time without an offset is a
// wall-clock time in naive (see Local). Times outside the years 0000-9999
// are an error, as RFC 3339 cannot spell them. Errors quote the input and
// say what was expected, for the people who wrote it.
func Parse(s string, naive *time.Location) (time.Time, error) {
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
