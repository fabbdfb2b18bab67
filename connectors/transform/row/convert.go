package row

import (
	"github.com/rivven/rivven-connect/events"
)

// Convert replaces the value at each path, in every row image of the
// event, with what conv returns for it; absent and null values are left
// alone. It is all or nothing: if conv fails for any field the event is
// left exactly as it came (so its dead letter carries the original), and
// an event with nothing to convert keeps its original bytes.
func Convert(e *events.Event, paths []Path, conv func(i int, v any) (any, error)) error {
	var arr [2]map[string]any
	rows, err := View(e, arr[:0])
	if err != nil {
		return err
	}
	type change struct {
		r map[string]any
		p Path
		v any
	}
	var buf [8]change
	pending := buf[:0]
	for _, r := range rows {
		for i, p := range paths {
			v, ok := p.Get(r)
			if !ok || v == nil {
				continue
			}
			nv, err := conv(i, v)
			if err != nil {
				return err
			}
			pending = append(pending, change{r, p, nv})
		}
	}
	if len(pending) > 0 {
		Changed(e)
	}
	for _, c := range pending {
		_ = c.p.Set(c.r, c.v) // cannot fail: Get just walked the path
	}
	return nil
}

// IsDecimal reports whether s is a JSON number; a leading '+' is accepted
// when plus is set (strings holding numbers sometimes have one).
func IsDecimal(s string, plus bool) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || plus && s[i] == '+') {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
