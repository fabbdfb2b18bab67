package format

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// CSVOptions tune format: csv. The zero value of a field written in Go
// means its zero value; a csv block absent from the config means the
// defaults of the tags.
type CSVOptions struct {
	// The defaults are quoted YAML because "," and '"' are YAML indicators.
	Delimiter     string   `yaml:"delimiter" default:"\",\"" doc:"Field delimiter: \",\", \"\\t\" (tab), \";\" or \"|\"."`
	IncludeHeader bool     `yaml:"include_header" default:"true" doc:"Write a header row with the column names."`
	QuoteChar     string   `yaml:"quote_char" default:"'\"'" doc:"Quote character (one character, not the delimiter, CR or LF)."`
	AlwaysQuote   bool     `yaml:"always_quote" default:"false" doc:"Quote every field, not only those that need it (null values stay unquoted so they remain distinguishable from the string)."`
	LineEnding    string   `yaml:"line_ending" default:"lf" enum:"lf,crlf" doc:"Line ending: lf or crlf (RFC 4180)."`
	NullValue     string   `yaml:"null_value" default:"'NULL'" doc:"Text written for null and missing values."`
	Columns       []string `yaml:"columns" doc:"Explicit column order; keys not listed are dropped. Default: the union of the row keys of the batch, sorted."`
}

// delimiter returns the delimiter; "\t" written as two characters
// (single-quoted YAML) is accepted as a tab too. Empty strings (options
// built in Go) mean the defaults.
func (c *CSVOptions) delimiter() string {
	switch c.Delimiter {
	case `\t`, "tab":
		return "\t"
	case "":
		return ","
	}
	return c.Delimiter
}

func (c *CSVOptions) quoteChar() string {
	if c.QuoteChar == "" {
		return `"`
	}
	return c.QuoteChar
}

func (c *CSVOptions) validate() []spec.Problem {
	var ps []spec.Problem
	d := c.delimiter()
	switch d {
	case ",", "\t", ";", "|":
	default:
		ps = append(ps, spec.Problem{Path: "delimiter", Message: fmt.Sprintf(`unsupported delimiter %q (allowed: ",", "\t", ";", "|")`, c.Delimiter)})
	}
	switch q := c.quoteChar(); {
	case len(q) != 1 || q[0] >= 0x80:
		ps = append(ps, spec.Problem{Path: "quote_char", Message: fmt.Sprintf("quote_char must be exactly one ASCII character, got %q", c.QuoteChar)})
	case q == d || q == "\r" || q == "\n" || q == " ":
		ps = append(ps, spec.Problem{Path: "quote_char", Message: fmt.Sprintf("quote_char %q cannot be the delimiter, a space, CR or LF", c.QuoteChar)})
	}
	switch c.LineEnding {
	case "", "lf", "crlf":
	default:
		ps = append(ps, spec.Problem{Path: "line_ending", Message: fmt.Sprintf("unknown line_ending %q (allowed: lf, crlf)", c.LineEnding)})
	}
	seen := make(map[string]int, len(c.Columns))
	for i, col := range c.Columns {
		if j, dup := seen[col]; dup {
			ps = append(ps, spec.Problem{Path: spec.Index("columns", i), Message: fmt.Sprintf("column %q is listed twice (also columns[%d])", col, j)})
		}
		seen[col] = i
	}
	return ps
}

type csvEncoder struct {
	delim     byte
	quote     byte
	always    bool
	header    bool
	eol       string
	null      string
	columns   []string
	needQuote string // characters that force quoting

	table flatTable // reused between batches
}

func newCSVEncoder(o CSVOptions) *csvEncoder {
	e := &csvEncoder{
		delim:   o.delimiter()[0],
		quote:   o.quoteChar()[0],
		always:  o.AlwaysQuote,
		header:  o.IncludeHeader,
		eol:     "\n",
		null:    o.NullValue,
		columns: o.Columns,
	}
	if o.LineEnding == "crlf" {
		e.eol = "\r\n"
	}
	if len(e.columns) == 0 {
		e.columns = nil // "columns: []" means no explicit order, as absent
	}
	e.needQuote = string([]byte{e.delim, e.quote, '\r', '\n'})
	return e
}

func (c *csvEncoder) ext() string         { return ".csv" }
func (c *csvEncoder) contentType() string { return "text/csv" }

func (c *csvEncoder) encode(w *bufio.Writer, batch []*events.Event) error {
	t := &c.table
	if err := t.load(batch, c.columns); err != nil {
		return err
	}
	if len(t.names) == 0 {
		return nil // no columns: an empty file, not a file of empty lines
	}
	if c.header {
		for i, ci := range t.order {
			if i > 0 {
				w.WriteByte(c.delim)
			}
			c.writeField(w, []byte(t.names[ci]))
		}
		w.WriteString(c.eol)
	}
	for r := 0; r < t.nrows; r++ {
		for i, ci := range t.order {
			if i > 0 {
				w.WriteByte(c.delim)
			}
			x := t.cell(r, ci)
			if !x.set || x.kind == kindNull {
				// Unquoted even with always_quote, so that a null is told
				// apart from the string that happens to equal null_value.
				c.writeNull(w)
				continue
			}
			// Strings are their text; numbers, booleans and nested
			// values are written as they appear in the JSON.
			c.writeField(w, x.raw)
		}
		w.WriteString(c.eol)
	}
	return nil
}

// writeNull writes the null text; it is quoted only if it could not be
// read back otherwise.
func (c *csvEncoder) writeNull(w *bufio.Writer) {
	if strings.ContainsAny(c.null, c.needQuote) {
		c.writeQuoted(w, []byte(c.null))
		return
	}
	w.WriteString(c.null)
}

// writeField quotes per RFC 4180: when the field holds the delimiter, the
// quote character, CR or LF, or starts or ends with a space or tab
// (which many readers trim), and always with always_quote.
func (c *csvEncoder) writeField(w *bufio.Writer, s []byte) {
	if c.always || bytes.ContainsAny(s, c.needQuote) ||
		(len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t')) {
		c.writeQuoted(w, s)
		return
	}
	w.Write(s)
}

func (c *csvEncoder) writeQuoted(w *bufio.Writer, s []byte) {
	w.WriteByte(c.quote)
	for {
		i := bytes.IndexByte(s, c.quote)
		if i < 0 {
			break
		}
		w.Write(s[:i+1])
		w.WriteByte(c.quote) // a quote inside is doubled
		s = s[i+1:]
	}
	w.Write(s)
	w.WriteByte(c.quote)
}
