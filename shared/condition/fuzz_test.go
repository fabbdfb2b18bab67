package condition

import (
	"testing"

	"github.com/rivven/rivven-connect/events"
)

// FuzzCompile: any input compiles or fails with a column error, never
// panics, and a compiled condition evaluates on every kind of event.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"value.amount > 100", `before.status == 'pending' && after.status == "shipped"`,
		`!(value.x in [1, "a", true, null])`, `key.id matches "^A-"`, `value.a is not null || op == "d"`,
		`(a > 1) and not (b < -2.5e3)`, `value.x = 1`, `"unterminated`, `((((`, `a in [`, `x matches "(["`,
	} {
		f.Add(s)
	}
	evs := []*events.Event{insert, update, del, schema,
		events.New(events.Insert, "s", events.RawPayload([]byte(`[1,2]`))),
		events.New(events.Record, "s", events.RawPayload([]byte(`"scalar"`)))}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Compile(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("%q: error %T is not a column error", src, err)
			}
			return
		}
		for _, e := range evs {
			c.Match(e.Clone())
		}
	})
}
