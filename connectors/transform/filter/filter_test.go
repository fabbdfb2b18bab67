package filter

import (
	"context"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
)

func batch() []*events.Event {
	return []*events.Event{
		transformtest.Event(events.Insert, `{"id":1,"amount":150}`),
		transformtest.Event(events.Insert, `{"id":2,"amount":50}`),
		transformtest.Event(events.Update, `{"before":{"id":3,"amount":10},"after":{"id":3,"amount":101}}`),
		transformtest.Event(events.Delete, `{"id":4,"amount":500}`),
		transformtest.Event(events.Schema, `{"columns":["id"]}`),
		transformtest.Event(events.SnapshotRead, `{"id":5}`),
	}
}

func ids(t *testing.T, out []*events.Event) string {
	var s []string
	for _, e := range out {
		if e.Type == events.Schema {
			s = append(s, "schema")
			continue
		}
		r, _ := e.Row()
		s = append(s, string(r["id"].(interface{ String() string }).String()))
	}
	return strings.Join(s, ",")
}

func TestFilter(t *testing.T) {
	cases := []struct{ cfg, want string }{
		// The reference's example: keep what matches.
		{`{condition: "value.amount > 100", action: keep}`, "1,3,4,schema"},
		{`{condition: "value.amount > 100", action: drop}`, "2,schema,5"},
		{`{condition: "value.amount > 100", drop: true}`, "2,schema,5"},
		{`{condition: "value.amount > 100", control_events: filter}`, "1,3,4"},
		{`{condition: "op == 'd' || value.id == 5"}`, "4,schema,5"},
		{`{condition: "value.amount is null"}`, "schema,5"},
	}
	for _, c := range cases {
		tr := transformtest.Build(t, c.cfg, New)
		out, err := tr.Apply(context.Background(), batch())
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(t, out); got != c.want {
			t.Errorf("%s: kept %s, want %s", c.cfg, got, c.want)
		}
	}
}

func TestBadConditionFailsWithItsColumn(t *testing.T) {
	got := transformtest.Problems[Config]("condition: \"value.amount >> 100\"\n")
	if !strings.Contains(got, "transforms[0].config.condition (line 1:12): column 15:") {
		t.Errorf("problem %s", got)
	}
	if got := transformtest.Problems[Config]("action: keep\n"); !strings.Contains(got, `required key "condition" is missing`) {
		t.Errorf("problem %s", got)
	}
	if got := transformtest.Problems[Config]("condition: value.x > 1\naction: maybe\n"); !strings.Contains(got, `"maybe" is not allowed (allowed: keep, drop)`) {
		t.Errorf("problem %s", got)
	}
}

// TestBytesAsMaps: a condition read from the data's bytes decides as the
// same condition on the decoded rows.
func TestBytesAsMaps(t *testing.T) {
	for _, cfg := range []string{
		`{condition: "value.total > 100"}`, `{condition: "after.total == 'Zoë' || before.total is null"}`,
		`{condition: "value.nested.a is not null && row.id == 7"}`, `{condition: "value.total"}`,
		`{condition: "value.id == 2 || value.id == 5 || after.id == 3", control_events: filter}`,
		`{condition: "value.nested.x == 1 || value.total.x == 1"}`, `{condition: "before.id != 7", action: drop}`,
	} {
		transformtest.SameOnBytesAndMaps(t, transformtest.Build(t, cfg, New), transformtest.RawCases("total"))
	}
}
