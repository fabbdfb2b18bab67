package format

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/events"
)

func TestFlatTableJSONEdges(t *testing.T) {
	batch := []*events.Event{
		// White space, escapes in keys and values, unicode, a repeated
		// key (the last wins, as in encoding/json).
		ev(events.Insert, " {\n \"a\\u0062\" : \"x\\ty\\u00e9\\\"\" , \"n\":  -0.5e+3 ,\"dup\":1,\"dup\":2, \"o\": { \"k\" : [ 1 , null ] } }\n"),
		// The update's after image only; keys order differs.
		ev(events.Update, `{"after":{"o":{},"dup":3,"ab":"plain","n":1},"before":{"ignored":true}}`),
		// Null rows are skipped.
		ev(events.Update, `{"before":{"ab":"gone"},"after":null}`),
		ev(events.Insert, `null`),
	}
	var tbl flatTable
	if err := tbl.load(batch, nil); err != nil {
		t.Fatal(err)
	}
	cols := tbl.infer()
	var names []string
	for _, c := range cols {
		names = append(names, c.name)
	}
	if !reflect.DeepEqual(names, []string{"ab", "dup", "n", "o"}) || tbl.nrows != 2 {
		t.Fatalf("columns %v, %d rows", names, tbl.nrows)
	}
	got := func(r int, name string) string {
		for j, c := range cols {
			if c.name == name {
				return string(tbl.cell(r, tbl.order[j]).raw)
			}
		}
		return "?"
	}
	for _, c := range []struct {
		r         int
		col, want string
	}{
		{0, "ab", "x\tyé\""}, {0, "n", "-0.5e+3"}, {0, "dup", "2"}, {0, "o", `{ "k" : [ 1 , null ] }`},
		{1, "ab", "plain"}, {1, "dup", "3"}, {1, "o", "{}"},
	} {
		if g := got(c.r, c.col); g != c.want {
			t.Errorf("row %d %s = %q, want %q", c.r, c.col, g, c.want)
		}
	}
	if cols[2].kind != kindDouble {
		t.Errorf("n: kind %v, want double (long + double)", cols[2].kind)
	}
}

func TestFlatTableRejectsInvalidJSON(t *testing.T) {
	for _, bad := range []string{
		`{"a":1`, `{"a":01}`, `{"a":1.}`, `{"a":tru}`, `{"a":"x}`, `{"a" 1}`, `{a:1}`, `{"a":1,}`,
		`{"a":[1,]}`, `{"a":{"b":1,}}`, `{"a":"\q"}`, `{"a":1} x`, `[1,2]`, `"str"`, `{"a":"tab	in"}`, `{"a":-}`,
	} {
		var tbl flatTable
		err := tbl.load([]*events.Event{ev(events.Insert, bad)}, nil)
		if err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzFlatTable checks the scanner against encoding/json: it accepts
// exactly the valid objects and finds their values.
func FuzzFlatTable(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":"x","c":[1,{"d":null}],"e":true}`, `{"a\n":"\u00e9"}`, `{}`, `{"a":1e5}`, `{"a":-0}`, ` {"a" : [ ] } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkFlatAgainstJSON)
}

// TestFlatTableMutations runs the fuzz check on seeded random mutations
// of valid rows, so that the plain test run covers it too.
func TestFlatTableMutations(t *testing.T) {
	seeds := []string{
		`{"a":1,"b":"x\"y","c":[1,{"d":null}],"e":true,"f":-1.5e-3}`,
		`{"k\u00e9":"\u00e9","n":null,"o":{"p":[[],{}]}}`,
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]":,\ -+.eE0123456789tfnulrsax` + "\n\t\x00\xff")
	for i := 0; i < 20000; i++ {
		b := []byte(seeds[i%len(seeds)])
		for n := 1 + r.IntN(3); n > 0; n-- {
			j := r.IntN(len(b))
			switch r.IntN(3) {
			case 0: // replace
				b[j] = alphabet[r.IntN(len(alphabet))]
			case 1: // delete
				b = append(b[:j], b[j+1:]...)
			default: // insert
				b = append(b[:j], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[j:]...)...)
			}
		}
		checkFlatAgainstJSON(t, b)
	}
}

func checkFlatAgainstJSON(t *testing.T, b []byte) {
	{
		var tbl flatTable
		err := tbl.load([]*events.Event{events.New(events.Insert, "s", events.RawPayload(b))}, nil)
		var m map[string]json.RawMessage
		valid := json.Unmarshal(b, &m) == nil && m != nil
		if valid != (err == nil) {
			// encoding/json accepts invalid UTF-8 and so do we; the
			// only difference allowed is a top-level null.
			if !(err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("null"))) {
				t.Fatalf("%q: scanner error %v, encoding/json valid %v", b, err, valid)
			}
			return
		}
		if err != nil || !utf8.Valid(b) {
			// encoding/json replaces invalid UTF-8 with U+FFFD; the
			// scanner keeps the bytes. Only validity is compared then.
			return
		}
		cols := tbl.infer()
		for j, c := range cols {
			x := tbl.cell(0, tbl.order[j])
			raw := m[c.name]
			if x.kind == kindString {
				var s string
				if json.Unmarshal(raw, &s) != nil || s != string(x.raw) {
					t.Fatalf("%q: %s = %q, encoding/json %s", b, c.name, x.raw, raw)
				}
			} else if x.kind != kindNull && strings.TrimSpace(string(raw)) != string(x.raw) {
				t.Fatalf("%q: %s = %q, encoding/json %s", b, c.name, x.raw, raw)
			}
		}
		if len(cols) != len(m) {
			t.Fatalf("%q: %d columns, encoding/json %d keys", b, len(cols), len(m))
		}
	}
}
