package timezoneconverter

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// layout is a compiled strftime pattern: literal text and directives,
// rendered piece by piece (a Go layout cannot escape literal text that
// happens to look like "Jan" or "2006").
type layout []piece

type piece struct {
	lit string
	fn  func(dst []byte, t time.Time) []byte
}

func (l layout) append(dst []byte, t time.Time) []byte {
	for _, p := range l {
		if p.fn == nil {
			dst = append(dst, p.lit...)
		} else {
			dst = p.fn(dst, t)
		}
	}
	return dst
}

func goLayout(s string) func([]byte, time.Time) []byte {
	return func(dst []byte, t time.Time) []byte { return t.AppendFormat(dst, s) }
}

func pad(dst []byte, n, width int, fill byte) []byte {
	s := strconv.Itoa(n)
	for i := len(s); i < width; i++ {
		dst = append(dst, fill)
	}
	return append(dst, s...)
}

func fraction(digits int, dot bool) func([]byte, time.Time) []byte {
	return func(dst []byte, t time.Time) []byte {
		if dot {
			dst = append(dst, '.')
		}
		ns := t.Nanosecond()
		for range 9 - digits {
			ns /= 10
		}
		return pad(dst, ns, digits, '0')
	}
}

// autoFraction is chrono's %.f: nothing for whole seconds, else a dot and
// 3, 6 or 9 digits.
func autoFraction(dst []byte, t time.Time) []byte {
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return dst
	case ns%1_000_000 == 0:
		return fraction(3, true)(dst, t)
	case ns%1000 == 0:
		return fraction(6, true)(dst, t)
	}
	return fraction(9, true)(dst, t)
}

var directives = map[string]func([]byte, time.Time) []byte{
	"Y":   func(dst []byte, t time.Time) []byte { return pad(dst, t.Year(), 4, '0') },
	"C":   func(dst []byte, t time.Time) []byte { return pad(dst, t.Year()/100, 2, '0') },
	"y":   goLayout("06"),
	"m":   goLayout("01"),
	"b":   goLayout("Jan"),
	"h":   goLayout("Jan"),
	"B":   goLayout("January"),
	"d":   goLayout("02"),
	"e":   goLayout("_2"),
	"j":   goLayout("002"),
	"a":   goLayout("Mon"),
	"A":   goLayout("Monday"),
	"u":   func(dst []byte, t time.Time) []byte { return pad(dst, (int(t.Weekday())+6)%7+1, 1, '0') },
	"w":   func(dst []byte, t time.Time) []byte { return pad(dst, int(t.Weekday()), 1, '0') },
	"H":   goLayout("15"),
	"k":   func(dst []byte, t time.Time) []byte { return pad(dst, t.Hour(), 2, ' ') },
	"I":   goLayout("03"),
	"l":   func(dst []byte, t time.Time) []byte { return pad(dst, (t.Hour()+11)%12+1, 2, ' ') },
	"M":   goLayout("04"),
	"S":   goLayout("05"),
	"f":   fraction(9, false),
	"3f":  fraction(3, false),
	"6f":  fraction(6, false),
	"9f":  fraction(9, false),
	".f":  autoFraction,
	".3f": fraction(3, true),
	".6f": fraction(6, true),
	".9f": fraction(9, true),
	"p":   goLayout("PM"),
	"P":   goLayout("pm"),
	"z":   goLayout("-0700"),
	":z":  goLayout("-07:00"),
	"Z":   goLayout("MST"),
	"s":   func(dst []byte, t time.Time) []byte { return strconv.AppendInt(dst, t.Unix(), 10) },
	"F":   goLayout("2006-01-02"),
	"T":   goLayout("15:04:05"),
	"R":   goLayout("15:04"),
	"D":   goLayout("01/02/06"),
	"+": func(dst []byte, t time.Time) []byte {
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05")
		dst = autoFraction(dst, t)
		return t.AppendFormat(dst, "-07:00")
	},
	"%": func(dst []byte, _ time.Time) []byte { return append(dst, '%') },
	"n": func(dst []byte, _ time.Time) []byte { return append(dst, '\n') },
	"t": func(dst []byte, _ time.Time) []byte { return append(dst, '\t') },
}

// directiveNames lists what %-directives are understood, for errors.
const directiveNames = "%Y %C %y %m %b %h %B %d %e %j %a %A %u %w %H %k %I %l %M %S %f %3f %6f %9f %.f %.3f %.6f %.9f %p %P %z %:z %Z %s %F %T %R %D %+ %% %n %t"

// compile parses a strftime pattern (chrono's spelling, which the
// reference implementation uses).
func compile(f string) (layout, error) {
	if f == "" {
		return nil, fmt.Errorf("format is empty")
	}
	if !strings.Contains(f, "%") {
		return nil, fmt.Errorf("format %q has no %%-directive; write a strftime pattern such as %%Y-%%m-%%d %%H:%%M:%%S", f)
	}
	var l layout
	lit := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		if i > lit {
			l = append(l, piece{lit: f[lit:i]})
		}
		found := ""
		for _, n := range [...]int{3, 2, 1} { // longest first: %.3f before %.f
			if i+1+n <= len(f) {
				if _, ok := directives[f[i+1:i+1+n]]; ok {
					found = f[i+1 : i+1+n]
					break
				}
			}
		}
		if found == "" {
			end := min(i+2, len(f))
			return nil, fmt.Errorf("unknown directive %q in format %q (supported: %s)", f[i:end], f, directiveNames)
		}
		l = append(l, piece{fn: directives[found]})
		i += len(found)
		lit = i + 1
	}
	if lit < len(f) {
		l = append(l, piece{lit: f[lit:]})
	}
	return l, nil
}
