package extractnewrecordstate

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
)

const (
	row    = `{"id":1,"status":"new"}`
	update = `{"before":{"id":1,"status":"new"},"after":{"id":1,"status":"paid"}}`
)

func TestExtract(t *testing.T) {
	cases := []struct {
		cfg      string
		typ      events.Type
		data     string
		wantType events.Type // "" = dropped
		want     string
	}{
		{"{}", events.Insert, row, events.Record, row},
		{"{}", events.SnapshotRead, row, events.Record, row},
		{"{}", events.Update, update, events.Record, `{"id":1,"status":"paid"}`},
		{"{}", events.Delete, row, "", ""},
		{"delete_handling: none", events.Delete, row, events.Delete, row},
		{"delete_handling: rewrite", events.Delete, row, events.Record, `{"id":1,"status":"new","__deleted":true}`},
		{"delete_handling: rewrite", events.Update, update, events.Record, `{"id":1,"status":"paid","__deleted":false}`},
		{"delete_handling: rewrite", events.Insert, row, events.Record, `{"id":1,"status":"new","__deleted":false}`},
		{"{delete_handling: rewrite, drop_tombstones: true}", events.Delete, "null", "", ""},
		{"{delete_handling: none, drop_tombstones: false}", events.Delete, "null", events.Delete, "null"},
		{"add_fields: [op, table, schema, db, ts, position, txid]", events.Update, update, events.Record,
			`{"id":1,"status":"paid","__op":"u","__table":"orders","__schema":"public","__db":"shop","__ts":1735787040000,"__position":"0/16B3748","__txid":"771"}`},
		{"{add_op: true, add_table: true, field_prefix: _}", events.Insert, row, events.Record, `{"id":1,"status":"new","_op":"c","_table":"orders"}`},
		{"{}", events.Truncate, "null", events.Truncate, "null"},
		{"{}", events.Schema, `{"columns":["id"]}`, events.Schema, `{"columns":["id"]}`},
	}
	for _, c := range cases {
		tr := transformtest.Build(t, c.cfg, New)
		out, err := transformtest.Apply(t, tr, transformtest.Event(c.typ, c.data))
		if err != nil {
			t.Fatalf("%s on %s: %v", c.cfg, c.typ, err)
		}
		if c.wantType == "" {
			if len(out) != 0 {
				t.Errorf("%s on %s: not dropped", c.cfg, c.typ)
			}
			continue
		}
		if len(out) != 1 || out[0].Type != c.wantType || transformtest.Data(t, out[0]) != transformtest.JSON(t, c.want) {
			t.Errorf("%s on %s: got %d events, %v %s; want %s %s", c.cfg, c.typ, len(out), typeOf(out), dataOf(t, out), c.wantType, c.want)
		}
	}
}

func typeOf(out []*events.Event) events.Type {
	if len(out) == 0 {
		return ""
	}
	return out[0].Type
}

func dataOf(t *testing.T, out []*events.Event) string {
	if len(out) == 0 {
		return ""
	}
	return transformtest.Data(t, out[0])
}

func TestPlainInsertKeepsItsBytes(t *testing.T) {
	raw := `{"id" : 1,  "status":"new"}`
	out, _ := transformtest.Apply(t, transformtest.Build(t, "{}", New), transformtest.Event(events.Insert, raw))
	if b, _ := out[0].Data.JSON(); string(b) != raw {
		t.Fatalf("data re-encoded: %s", b)
	}
}

func TestUpdateWithoutAfterIsAnError(t *testing.T) {
	_, err := transformtest.Apply(t, transformtest.Build(t, "{}", New), transformtest.Event(events.Update, `{"before":{"id":1},"after":null}`))
	if err == nil {
		t.Fatal("update without after passed")
	}
}

func TestConfigProblems(t *testing.T) {
	got := transformtest.Problems[Config]("delete_handling: erase\n") + transformtest.Problems[Config]("add_fields: [op, lsn]\n")
	for _, want := range []string{
		`transforms[0].config.delete_handling (line 1:18): "erase" is not allowed (allowed: drop, rewrite, none)`,
		`transforms[0].config.add_fields[1] (line 1:18): "lsn" cannot be added`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}

// TestBytesAsMaps: unwrapping the data's bytes gives what unwrapping its
// decoded maps gives.
func TestBytesAsMaps(t *testing.T) {
	for _, cfg := range []string{
		"{}", "delete_handling: rewrite", "{delete_handling: rewrite, add_fields: [op, table, schema, db, ts, position, txid]}",
		"{add_op: true, field_prefix: _}", "{delete_handling: none, add_fields: [op], drop_tombstones: false}",
		"{add_fields: [op], field_prefix: \"\"}",
	} {
		transformtest.SameOnBytesAndMaps(t, transformtest.Build(t, cfg, New), transformtest.RawCases("__op", "status"))
	}
}
