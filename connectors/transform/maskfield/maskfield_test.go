package maskfield

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
)

func TestMask(t *testing.T) {
	const card = `"4111-1111-1111-1234"`
	cases := []struct {
		cfg, data, want string
		typ             events.Type
	}{
		{`{fields: [cc]}`, `{"cc":` + card + `,"n":1}`, `{"cc":"*******************","n":1}`, events.Insert},
		{`{fields: [cc], mask_char: "X"}`, `{"cc":"abc"}`, `{"cc":"XXX"}`, events.SnapshotRead},
		{`{fields: [cc], strategy: keep_last}`, `{"cc":` + card + `}`, `{"cc":"***************1234"}`, events.Record},
		{`{fields: [cc], strategy: keep_last, keep_last: 10}`, `{"cc":"abc"}`, `{"cc":"***"}`, events.Insert},
		{`{fields: [cc], strategy: "null"}`, `{"cc":"abc"}`, `{"cc":null}`, events.Delete},
		{`{fields: [cc], strategy: hash}`, `{"cc":"abc"}`, `{"cc":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}`, events.Insert},
		{`{fields: [cc], strategy: hash, salt: s}`, `{"cc":"abc"}`, `{"cc":"cf0bbce2b0833f47b48155c56a549459af12f1724088f0246d837ec199eb787a"}`, events.Insert},
		{`{fields: [customer.email, missing, customer.none]}`, `{"customer":{"email":"ab@c.de","none":null}}`, `{"customer":{"email":"*******","none":null}}`, events.Insert},
		{`{fields: [pin]}`, `{"pin":12345}`, `{"pin":"*****"}`, events.Insert},
		{`{fields: [name]}`, `{"name":"Zoë"}`, `{"name":"***"}`, events.Insert},
		{`{fields: [cc]}`, `{"before":{"cc":"ab"},"after":{"cc":"abc"}}`, `{"before":{"cc":"**"},"after":{"cc":"***"}}`, events.Update},
		{`{fields: [cc]}`, `{"cc":"x"}`, `{"cc":"x"}`, events.Schema},
	}
	for _, c := range cases {
		out, err := transformtest.Apply(t, transformtest.Build(t, c.cfg, New), transformtest.Event(c.typ, c.data))
		if err != nil || len(out) != 1 {
			t.Fatalf("%s: %v %d", c.cfg, err, len(out))
		}
		if got := transformtest.Data(t, out[0]); got != transformtest.JSON(t, c.want) {
			t.Errorf("%s on %s: %s, want %s", c.cfg, c.data, got, c.want)
		}
	}
}

func TestConfigProblems(t *testing.T) {
	got := transformtest.Problems[Config]("fields: [a..b]\nmask_char: XY\nstrategy: shuffle\n")
	for _, want := range []string{`strategy (line 3:11): "shuffle" is not allowed (allowed: mask, hash, keep_last, null)`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	got = transformtest.Problems[Config]("fields: [a..b]\nmask_char: XY\n")
	for _, want := range []string{"transforms[0].config.fields[0]", "empty segment", "mask_char must be one character"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if got := transformtest.Problems[Config]("mask_char: X\n"); !strings.Contains(got, `required key "fields" is missing`) {
		t.Errorf("missing fields: %s", got)
	}
	if got := transformtest.Problems[Config]("fields: [a]\nsalt: [hunter2]\n"); strings.Contains(got, "hunter2") {
		t.Errorf("secret echoed: %s", got)
	}
}

// TestBytesAsMaps: masking a row's bytes gives what masking its decoded
// map gives, for every strategy, and nested paths take the map path.
func TestBytesAsMaps(t *testing.T) {
	for _, cfg := range []string{
		`{fields: [cc]}`, `{fields: [cc, id], strategy: keep_last, keep_last: 2}`, `{fields: [cc], strategy: hash, salt: s}`,
		`{fields: [cc, note], strategy: "null"}`, `{fields: [cc, nested.a]}`, `{fields: [nested]}`, `{fields: [id, i]}`, `{fields: [cc, id, i], mask_char: "é"}`, `{fields: [cc, id, note], strategy: keep_last, keep_last: 3, mask_char: "é"}`, `{fields: [cc, id], strategy: keep_last, keep_last: 30}`, `{fields: [cc], strategy: keep_last, keep_last: 0}`,
	} {
		transformtest.SameOnBytesAndMaps(t, transformtest.Build(t, cfg, New), transformtest.RawCases("cc"))
	}
}
