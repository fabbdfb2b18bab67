package replacefield

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
)

func TestReplace(t *testing.T) {
	cases := []struct {
		cfg, data, want string
		typ             events.Type
	}{
		// The reference's example.
		{"{rename: {old_name: new_name}, exclude: [internal_field]}", `{"old_name":1,"internal_field":2,"x":3}`, `{"new_name":1,"x":3}`, events.Insert},
		{"{renames: {a: b}}", `{"a":1}`, `{"b":1}`, events.Record},
		{"{include: [id, name]}", `{"id":1,"name":"n","secret":"s"}`, `{"id":1,"name":"n"}`, events.SnapshotRead},
		{"{include: [id, name], rename: {name: full_name}}", `{"id":1,"name":"n","x":2}`, `{"id":1,"full_name":"n"}`, events.Insert},
		{"{exclude: [customer.ssn, nope, a.b.c]}", `{"customer":{"ssn":"1","name":"x"},"a":5}`, `{"customer":{"name":"x"},"a":5}`, events.Delete},
		{"{rename: {customer.name: name, missing: other}}", `{"customer":{"name":"x"}}`, `{"customer":{},"name":"x"}`, events.Insert},
		{"{rename: {a: b}}", `{"before":{"a":1},"after":{"a":2}}`, `{"before":{"b":1},"after":{"b":2}}`, events.Update},
		{"{rename: {a: b}}", `{"before":null,"after":{"a":2}}`, `{"before":null,"after":{"b":2}}`, events.Update},
	}
	for _, c := range cases {
		out, err := transformtest.Apply(t, transformtest.Build(t, c.cfg, New), transformtest.Event(c.typ, c.data))
		if err != nil || len(out) != 1 {
			t.Fatalf("%s: %v", c.cfg, err)
		}
		if got := transformtest.Data(t, out[0]); got != transformtest.JSON(t, c.want) {
			t.Errorf("%s on %s: %s, want %s", c.cfg, c.data, got, c.want)
		}
	}
}

func TestRenameIntoAScalarFails(t *testing.T) {
	tr := transformtest.Build(t, "{rename: {a: b.c}}", New)
	if _, err := transformtest.Apply(t, tr, transformtest.Event(events.Insert, `{"a":1,"b":2}`)); err == nil {
		t.Fatal("moving a field below a scalar should fail (and dead-letter the event)")
	}
}

func TestConfigProblems(t *testing.T) {
	if got := transformtest.Problems[Config]("{}"); !strings.Contains(got, "give at least one of rename, include or exclude") {
		t.Error(got)
	}
	if got := transformtest.Problems[Config]("rename: {a.: b}\nexclud: [x]\n"); !strings.Contains(got, `unknown key "exclud" (did you mean "exclude"?)`) {
		t.Error(got)
	}
	if got := transformtest.Problems[Config]("rename: {a.: b}\n"); !strings.Contains(got, "transforms[0].config.rename.a.") || !strings.Contains(got, "empty segment") {
		t.Error(got)
	}
}

// TestBytesAsMaps: renaming, including and excluding on a row's bytes
// gives what the same on its decoded map gives.
func TestBytesAsMaps(t *testing.T) {
	for _, cfg := range []string{
		`{rename: {total: amount_total}, exclude: [status]}`, `{rename: {total: id}}`, `{rename: {id: total, total: id}}`,
		`{include: [id, total, "i\u0064"]}`, `{include: [nested], exclude: [nested.a]}`, `{rename: {nested.a: flat}}`,
		`{exclude: [id, note, missing]}`, `{rename: {total: total}}`, `{renames: {total: "a\"b"}}`,
	} {
		transformtest.SameOnBytesAndMaps(t, transformtest.Build(t, cfg, New), transformtest.RawCases("total", "status"))
	}
}
