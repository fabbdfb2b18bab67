package redshift

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// copyStmt is a COPY statement parsed by the grammar of Redshift's COPY
// reference (https://docs.aws.amazon.com/redshift/latest/dg/r_COPY.html
// and its parameter pages): COPY table [(columns)] FROM 'source'
// authorization [[FORMAT] [AS] data_format] [parameter [argument] ...],
// the parameters in any order, each at most once.
type copyStmt struct {
	table  string
	cols   []string
	from   string
	params map[string][]string // upper-case name → its arguments
	format string
}

type tok struct {
	s      string
	quoted bool
}

func lexCopy(s string) ([]tok, error) {
	var out []tok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case unicode.IsSpace(rune(c)):
			i++
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated string")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '\'') {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, tok{s: b.String(), quoted: true})
		case c == '"':
			j := i + 1
			var b strings.Builder
			for ; j < len(s); j++ {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated identifier")
			}
			out = append(out, tok{s: "\"" + b.String()})
			i = j + 1
		case strings.ContainsRune("(),;.", rune(c)):
			out = append(out, tok{s: string(c)})
			i++
		default:
			j := i
			for j < len(s) && !unicode.IsSpace(rune(s[j])) && !strings.ContainsRune("(),;.'\"", rune(s[j])) {
				j++
			}
			out = append(out, tok{s: s[i:j]})
			i = j
		}
	}
	return out, nil
}

// argument kinds of the documented parameters.
const (
	aNone     = iota
	aStr      // 'string', optional AS before it
	aNum      // number, optional AS
	aOptStr   // optional 'string'
	aOnOff    // optional ON | OFF | TRUE | FALSE (| PRESET)
	aRoleName // default | 'arn'
)

var copyParams = map[string]int{
	// authorization
	"IAM_ROLE": aRoleName, "CREDENTIALS": aStr, "ACCESS_KEY_ID": aStr, "SECRET_ACCESS_KEY": aStr, "SESSION_TOKEN": aStr,
	// compression
	"BZIP2": aNone, "GZIP": aNone, "LZOP": aNone, "ZSTD": aNone,
	// data conversion
	"ACCEPTANYDATE": aNone, "ACCEPTINVCHARS": aOptStr, "BLANKSASNULL": aNone, "DATEFORMAT": aStr, "EMPTYASNULL": aNone,
	"ENCODING": aNone, "ESCAPE": aNone, "EXPLICIT_IDS": aNone, "FILLRECORD": aNone, "IGNOREBLANKLINES": aNone,
	"IGNOREHEADER": aNum, "NULL": aStr, "REMOVEQUOTES": aNone, "ROUNDEC": aNone, "TIMEFORMAT": aStr, "TRIMBLANKS": aNone,
	"TRUNCATECOLUMNS": aNone,
	// load operations
	"COMPROWS": aNum, "COMPUPDATE": aOnOff, "IGNOREALLERRORS": aNone, "MAXERROR": aNum, "NOLOAD": aNone, "STATUPDATE": aOnOff,
	// other
	"MANIFEST": aNone, "ENCRYPTED": aNone, "REGION": aStr, "READRATIO": aNum, "SSH": aNone,
	// data formats
	"CSV": aNone, "DELIMITER": aStr, "FIXEDWIDTH": aStr, "AVRO": aOptStr, "JSON": aOptStr, "PARQUET": aNone, "ORC": aNone, "SHAPEFILE": aNone,
}

var formats = map[string]bool{"CSV": true, "DELIMITER": true, "FIXEDWIDTH": true, "AVRO": true, "JSON": true, "PARQUET": true, "ORC": true, "SHAPEFILE": true}

func parseCopy(s string) (*copyStmt, error) {
	ts, err := lexCopy(s)
	if err != nil {
		return nil, err
	}
	for len(ts) > 0 && ts[len(ts)-1].s == ";" {
		ts = ts[:len(ts)-1]
	}
	p := 0
	peek := func() string {
		if p < len(ts) && !ts[p].quoted {
			return strings.ToUpper(ts[p].s)
		}
		return ""
	}
	next := func() (tok, bool) {
		if p >= len(ts) {
			return tok{}, false
		}
		p++
		return ts[p-1], true
	}
	ident := func() (string, error) {
		t, ok := next()
		if !ok || t.quoted || t.s == "" || strings.ContainsAny(t.s[:1], "(),;.") {
			return "", fmt.Errorf("expected an identifier at %d", p)
		}
		return strings.TrimPrefix(t.s, "\""), nil
	}
	if peek() != "COPY" {
		return nil, fmt.Errorf("does not start with COPY")
	}
	p++
	c := &copyStmt{params: map[string][]string{}}
	name, err := ident()
	if err != nil {
		return nil, err
	}
	if peek() == "." {
		p++
		n2, err := ident()
		if err != nil {
			return nil, err
		}
		name += "." + n2
	}
	c.table = name
	if peek() == "(" {
		p++
		for {
			col, err := ident()
			if err != nil {
				return nil, fmt.Errorf("column list: %w", err)
			}
			c.cols = append(c.cols, col)
			t, ok := next()
			if !ok {
				return nil, fmt.Errorf("unterminated column list")
			}
			if t.s == ")" {
				break
			}
			if t.s != "," {
				return nil, fmt.Errorf("column list: unexpected %q", t.s)
			}
		}
	}
	if peek() != "FROM" {
		return nil, fmt.Errorf("expected FROM, got %q", peek())
	}
	p++
	t, ok := next()
	if !ok || !t.quoted {
		return nil, fmt.Errorf("FROM needs a quoted data source")
	}
	c.from = t.s
	auth := 0
	for p < len(ts) {
		kw := peek()
		if kw == "FORMAT" {
			p++
			if peek() == "AS" {
				p++
			}
			kw = peek()
			if !formats[kw] {
				return nil, fmt.Errorf("FORMAT followed by %q, not a data format", kw)
			}
		}
		kind, known := copyParams[kw]
		if !known {
			return nil, fmt.Errorf("unknown parameter %q", ts[p].s)
		}
		if _, dup := c.params[kw]; dup {
			return nil, fmt.Errorf("parameter %s given twice", kw)
		}
		p++
		var args []string
		asOK := kind == aStr || kind == aNum
		if asOK && peek() == "AS" {
			p++
		}
		switch kind {
		case aStr:
			t, ok := next()
			if !ok || !t.quoted {
				return nil, fmt.Errorf("%s needs a quoted argument", kw)
			}
			args = append(args, t.s)
		case aNum:
			t, ok := next()
			if _, err := strconv.Atoi(t.s); !ok || t.quoted || err != nil {
				return nil, fmt.Errorf("%s needs a number", kw)
			}
			args = append(args, t.s)
		case aOptStr:
			if kw == "ACCEPTINVCHARS" && peek() == "AS" {
				p++
			}
			if p < len(ts) && ts[p].quoted {
				args = append(args, ts[p].s)
				p++
			}
		case aOnOff:
			switch peek() {
			case "ON", "OFF", "TRUE", "FALSE", "PRESET":
				args = append(args, peek())
				p++
			}
		case aRoleName:
			if peek() == "DEFAULT" {
				args = append(args, "default")
				p++
			} else if t, ok := next(); ok && t.quoted {
				args = append(args, t.s)
			} else {
				return nil, fmt.Errorf("IAM_ROLE needs default or a quoted ARN")
			}
		}
		if kw == "CSV" && peek() == "QUOTE" {
			p++
			if peek() == "AS" {
				p++
			}
			t, ok := next()
			if !ok || !t.quoted {
				return nil, fmt.Errorf("QUOTE needs a quoted character")
			}
			args = append(args, t.s)
		}
		if kw == "ENCODING" {
			if peek() == "AS" {
				p++
			}
			if _, ok := next(); !ok {
				return nil, fmt.Errorf("ENCODING needs an encoding")
			}
		}
		switch kw {
		case "IAM_ROLE", "CREDENTIALS", "ACCESS_KEY_ID":
			auth++
		}
		if formats[kw] && kw != "DELIMITER" {
			if c.format != "" {
				return nil, fmt.Errorf("two data formats: %s and %s", c.format, kw)
			}
			c.format = kw
		}
		c.params[kw] = args
	}
	if auth != 1 {
		return nil, fmt.Errorf("needs exactly one authorization (IAM_ROLE, CREDENTIALS or ACCESS_KEY_ID), has %d", auth)
	}
	return c, nil
}

// TestCopyGrammarAcceptsTheDocumentedExamples: the checker reads every
// COPY of Redshift's documentation (testdata/copy-examples.sql), and
// refuses malformed ones, so that it can judge the sink's statements.
func TestCopyGrammarAcceptsTheDocumentedExamples(t *testing.T) {
	b, err := os.ReadFile("testdata/copy-examples.sql")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, st := range strings.Split(string(b), ";") {
		var lines []string
		for _, l := range strings.Split(st, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		st = strings.TrimSpace(strings.Join(lines, "\n"))
		if st == "" {
			continue
		}
		n++
		if _, err := parseCopy(st); err != nil {
			t.Errorf("documented example refused: %v\n%s", err, st)
		}
	}
	if n < 15 {
		t.Fatalf("read %d examples", n)
	}
	for _, bad := range []string{
		"copy t from 's3://b/k'",                                                   // no authorization
		"copy t from 's3://b/k' iam_role 'arn:x' json 'auto' csv",                  // two formats
		"copy t from 's3://b/k' iam_role 'arn:x' format as jsonn 'auto'",           // no such format
		"copy t from 's3://b/k' iam_role 'arn:x' gzip gzip",                        // twice
		"copy t from s3://b/k iam_role 'arn:x'",                                    // unquoted source
		"copy t (a, b from 's3://b/k' iam_role 'arn:x'",                            // column list
		"copy t from 's3://b/k' iam_role 'arn:x' timeformat auto",                  // unquoted argument
		"copy t from 's3://b/k' iam_role 'arn:x' credentials 'aws_iam_role=arn:y'", // two authorizations
		"copy t from 's3://b/k' iam_role 'arn:x' json 'auto' upsert",               // no such parameter
	} {
		if _, err := parseCopy(bad); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestCopyStatement: the sink's COPY parses by the documented grammar
// with what it means: the staged object, the role, JSON 'auto', GZIP,
// the column list, quoting of odd names and of quotes in literals.
func TestCopyStatement(t *testing.T) {
	st := copyStatement("analytics.Orders", []string{"id", "note\"s", deletedCol}, "s3://stage/rivven/redshift/analytics/Orders/ab.jsonl.gz",
		"arn:aws:iam::123456789012:role/RedshiftCopy", "eu-west-1")
	c, err := parseCopy(st)
	if err != nil {
		t.Fatalf("%v\n%s", err, st)
	}
	if c.table != "analytics.Orders" || strings.Join(c.cols, "|") != `id|note"s|_rivven_deleted` {
		t.Errorf("table %q columns %q", c.table, c.cols)
	}
	if c.from != "s3://stage/rivven/redshift/analytics/Orders/ab.jsonl.gz" || c.format != "JSON" || c.params["JSON"][0] != "auto" {
		t.Errorf("from %q format %s %v", c.from, c.format, c.params["JSON"])
	}
	for k, v := range map[string]string{"IAM_ROLE": "arn:aws:iam::123456789012:role/RedshiftCopy", "REGION": "eu-west-1", "TIMEFORMAT": "auto", "DATEFORMAT": "auto"} {
		if got := c.params[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want %s", k, got, v)
		}
	}
	if _, ok := c.params["GZIP"]; !ok {
		t.Error("no GZIP")
	}
	st = copyStatement("t", []string{"a"}, "s3://b/it's\\x", "default", "")
	if c, err := parseCopy(st); err != nil || c.from != `s3://b/it's\x` || c.params["IAM_ROLE"][0] != "default" {
		t.Errorf("%s: %v %+v", st, err, c)
	}
}
