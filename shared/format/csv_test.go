package format

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
)

func csvText(t *testing.T, c CSVOptions, batch []*events.Event) string {
	t.Helper()
	_, b := encode(t, Options{Format: "csv", CSV: &c}, batch)
	return string(b)
}

// defaults as a csv block decoded from YAML has them.
func csvDefaults() CSVOptions {
	return *orDefaults[CSVOptions](nil)
}

func TestCSVQuotingRFC4180(t *testing.T) {
	batch := []*events.Event{ev(events.Insert, `{"a":"x,y","b":"say \"hi\"","c":"line1\nline2","d":"cr\rhere","e":" lead","f":"trail ","g":"plain","h":""}`)}
	got := csvText(t, csvDefaults(), batch)
	want := "a,b,c,d,e,f,g,h\n" +
		`"x,y","say ""hi""","line1` + "\n" + `line2","cr` + "\r" + `here"," lead","trail ",plain,` + "\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	recs := readCSV(t, []byte(got), ',')
	if recs[1][0] != "x,y" || recs[1][1] != `say "hi"` || recs[1][2] != "line1\nline2" || recs[1][4] != " lead" || recs[1][5] != "trail " || recs[1][7] != "" {
		t.Fatalf("encoding/csv read back %q", recs[1])
	}
}

func TestCSVDelimiters(t *testing.T) {
	batch := []*events.Event{ev(events.Insert, `{"a":"1;2","b":"x|y","c":"tab\there","d":"k,v"}`)}
	for _, d := range []struct {
		opt  string
		comm rune
	}{{",", ','}, {"\t", '\t'}, {`\t`, '\t'}, {";", ';'}, {"|", '|'}} {
		c := csvDefaults()
		c.Delimiter = d.opt
		got := csvText(t, c, batch)
		recs := readCSV(t, []byte(got), d.comm)
		want := []string{"1;2", "x|y", "tab\there", "k,v"}
		if len(recs) != 2 || strings.Join(recs[1], "\x00") != strings.Join(want, "\x00") {
			t.Errorf("delimiter %q: read %q from %q", d.opt, recs, got)
		}
		if strings.Count(got, `"`) != 2 {
			t.Errorf("delimiter %q: exactly the field holding the delimiter is quoted: %q", d.opt, got)
		}
	}
}

func TestCSVOptions(t *testing.T) {
	batch := []*events.Event{
		ev(events.Insert, `{"id":1,"name":"NULL","extra":"dropped","n":null}`),
		ev(events.Insert, `{"id":2,"name":"b"}`),
	}
	c := csvDefaults()
	c.AlwaysQuote = true
	c.LineEnding = "crlf"
	c.NullValue = `\N`
	c.Columns = []string{"name", "id", "n", "missing"}
	got := csvText(t, c, batch)
	// Nulls stay unquoted under always_quote so that null and the string
	// "NULL" (or \N) differ; unknown columns are null; extra keys dropped.
	want := "\"name\",\"id\",\"n\",\"missing\"\r\n" +
		"\"NULL\",\"1\",\\N,\\N\r\n" +
		"\"b\",\"2\",\\N,\\N\r\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	recs := readCSV(t, []byte(got), ',')
	if len(recs) != 3 || recs[1][0] != "NULL" || recs[1][2] != `\N` {
		t.Fatalf("read back %q", recs)
	}

	c = csvDefaults()
	c.IncludeHeader = false
	c.QuoteChar = "'"
	got = csvText(t, c, []*events.Event{ev(events.Insert, `{"a":"it's","b":"x,y","c":"say \"hi\""}`)})
	if want := `'it''s','x,y',say "hi"` + "\n"; got != want {
		t.Fatalf("quote_char ': got %q want %q", got, want)
	}

	// A null_value that needs quoting is quoted (it could not be read
	// back otherwise).
	c = csvDefaults()
	c.NullValue = "a,b"
	if got := csvText(t, c, []*events.Event{ev(events.Insert, `{"a":null}`)}); got != "a\n\"a,b\"\n" {
		t.Fatalf("null_value with delimiter: %q", got)
	}
}

func TestCSVNumbersAndNested(t *testing.T) {
	got := csvText(t, csvDefaults(), []*events.Event{ev(events.Insert, `{"big":123456789012345678901234567890,"f":1.50,"data":{"nested":"value"},"arr":[1,{"x":null}]}`)})
	// Numbers keep their JSON spelling; nested values are compact JSON
	// with the quote doubled, as the reference shows.
	want := "arr,big,data,f\n\"[1,{\"\"x\"\":null}]\",123456789012345678901234567890,\"{\"\"nested\"\":\"\"value\"\"}\",1.50\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCSVEmptyBatch(t *testing.T) {
	if got := csvText(t, csvDefaults(), nil); got != "" {
		t.Fatalf("empty batch without columns: %q", got)
	}
	c := csvDefaults()
	c.Columns = []string{"a", "b"}
	if got := csvText(t, c, []*events.Event{ev(events.Schema, `{}`)}); got != "a,b\n" {
		t.Fatalf("empty batch with columns: %q", got)
	}
}

func TestCSVEmptyColumnsListMeansAuto(t *testing.T) {
	c := csvDefaults()
	c.Columns = []string{}
	if got := csvText(t, c, []*events.Event{ev(events.Insert, `{"b":1,"a":2}`)}); got != "a,b\n2,1\n" {
		t.Fatalf("columns: [] → %q", got)
	}
}
