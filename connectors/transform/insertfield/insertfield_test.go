package insertfield

import (
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
)

// setClock fixes the processing time of a built transform.
func setClock(tr any, at time.Time) {
	tr.(*inserter).now = func() time.Time { return at }
}

func TestInsert(t *testing.T) {
	cases := []struct {
		cfg, data, want string
		typ             events.Type
	}{
		// The reference's example.
		{"{static: {source: rivven}, timestamp: {field: processed_at}}", `{"id":1}`,
			`{"id":1,"source":"rivven","processed_at":"2025-06-01T12:00:00.5Z"}`, events.Insert},
		{"{static_fields: {n: 5, ok: true, tags: [a, b], obj: {k: v}, none: null}}", `{"id":1}`,
			`{"id":1,"n":5,"ok":true,"tags":["a","b"],"obj":{"k":"v"},"none":null}`, events.Record},
		{"{timestamp_field: meta.at, date_field: day}", `{"id":1}`, `{"id":1,"meta":{"at":"2025-06-01T12:00:00.5Z"},"day":"2025-06-01"}`, events.SnapshotRead},
		{"{static: {id: 9}, overwrite: false}", `{"id":1}`, `{"id":1}`, events.Insert},
		{"{static: {id: 9}}", `{"id":1}`, `{"id":9}`, events.Delete},
		{"{static: {v: 1}}", `{"before":{"id":1},"after":{"id":1}}`, `{"before":{"id":1,"v":1},"after":{"id":1,"v":1}}`, events.Update},
		{"{static: {v: 1}}", `{"table":"t"}`, `{"table":"t"}`, events.Truncate},
	}
	for _, c := range cases {
		tr := transformtest.Build(t, c.cfg, New)
		setClock(tr, time.Date(2025, 6, 1, 12, 0, 0, 5e8, time.UTC))
		out, err := transformtest.Apply(t, tr, transformtest.Event(c.typ, c.data))
		if err != nil || len(out) != 1 {
			t.Fatalf("%s: %v", c.cfg, err)
		}
		if got := transformtest.Data(t, out[0]); got != transformtest.JSON(t, c.want) {
			t.Errorf("%s on %s: %s, want %s", c.cfg, c.data, got, c.want)
		}
	}
}

func TestConfigProblems(t *testing.T) {
	if got := transformtest.Problems[Config]("{}"); !strings.Contains(got, "give static fields, timestamp.field or date_field") {
		t.Error(got)
	}
	if got := transformtest.Problems[Config]("timestamp: {feld: at}\n"); !strings.Contains(got, `transforms[0].config.timestamp.feld (line 1:13): unknown key "feld" (did you mean "field"?)`) {
		t.Error(got)
	}
}

// TestBytesAsMaps: inserting into a row's bytes gives what inserting into
// its decoded map gives.
func TestBytesAsMaps(t *testing.T) {
	for _, cfg := range []string{
		`{static: {source: rivven, n: 3, f: 1.5, ok: true, none: null, obj: {b: 2, a: [1, x]}}}`,
		`{static: {id: 9, source: x}, overwrite: false}`, `{static: {id: 9, source: x}}`,
		`{static: {nested.x: 1}}`, `{static: {"é": 1, "a\"b": 2}}`,
	} {
		transformtest.SameOnBytesAndMaps(t, transformtest.Build(t, cfg, New), transformtest.RawCases("source"))
	}
}
