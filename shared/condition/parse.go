// Package condition is the condition language of Filter and predicates:
//
//	value.amount > 100 && !(after.status in ["cancelled", "refunded"])
//	before.email is not null || key.id matches "^A-"
//	op == "u" && table == "orders"
//
// Paths: value.x (the current row: after, or before for deletes), after.x,
// before.x, key.x (the message key) and metadata.x reach into the event;
// the bare names op (c/u/d/r/t/s), event_type, stream, namespace, database,
// schema and table are event attributes; any other bare name is a field of
// the current row. Operators: == != < <= > >= && || ! in [..] matches "re"
// is null, is not null, parentheses; and/or/not work as words too. Literals:
// numbers, "strings" or 'strings', true, false, null.
//
// A condition is compiled once at startup into closures; a syntax or type
// error names the column of the mistake. Evaluation allocates nothing for
// the common comparisons.
package condition

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Error is a compile error at a 1-based column of the source.
type Error struct {
	Column int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("column %d: %s", e.Column, e.Msg) }

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tOp // operators and punctuation
)

type token struct {
	kind tokKind
	text string // ident/op text; string literal value
	col  int    // 1-based
}

func lex(src string) ([]token, error) {
	var out []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, &Error{start + 1, "unterminated string"}
				}
				if src[i] == c {
					i++
					break
				}
				if src[i] == '\\' && i+1 < len(src) {
					switch src[i+1] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(src[i+1])
					}
					i += 2
					continue
				}
				b.WriteByte(src[i])
				i++
			}
			out = append(out, token{tString, b.String(), start + 1})
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9' && prevAllowsSign(out):
			start := i
			i++
			for i < len(src) && (src[i] >= '0' && src[i] <= '9' || src[i] == '.' || src[i] == 'e' || src[i] == 'E' ||
				(src[i] == '+' || src[i] == '-') && (src[i-1] == 'e' || src[i-1] == 'E')) {
				i++
			}
			if _, err := strconv.ParseFloat(src[start:i], 64); err != nil {
				return nil, &Error{start + 1, fmt.Sprintf("bad number %q", src[start:i])}
			}
			out = append(out, token{tNumber, src[start:i], start + 1})
		case c == '_' || c == '$' || unicode.IsLetter(rune(c)):
			start := i
			for i < len(src) && (src[i] == '_' || src[i] == '$' || src[i] == '.' || unicode.IsLetter(rune(src[i])) || unicode.IsDigit(rune(src[i]))) {
				i++
			}
			out = append(out, token{tIdent, src[start:i], start + 1})
		default:
			start := i
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "==", "!=", "<=", ">=", "&&", "||":
				out = append(out, token{tOp, two, start + 1})
				i += 2
				continue
			}
			switch c {
			case '<', '>', '!', '(', ')', '[', ']', ',':
				out = append(out, token{tOp, string(c), start + 1})
				i++
			case '=':
				return nil, &Error{start + 1, `"=" is not an operator; use "==" to compare`}
			default:
				return nil, &Error{start + 1, fmt.Sprintf("unexpected character %q", c)}
			}
		}
	}
	return append(out, token{tEOF, "", len(src) + 1}), nil
}

// prevAllowsSign: a '-' starts a negative number only where an operand is
// expected.
func prevAllowsSign(toks []token) bool {
	if len(toks) == 0 {
		return true
	}
	p := toks[len(toks)-1]
	return p.kind == tOp && p.text != ")" && p.text != "]"
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if p.pos < len(p.toks)-1 {
		p.pos++
	}
	return t
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == s
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tIdent && strings.EqualFold(t.text, s)
}

func (p *parser) fail(t token, format string, args ...any) error {
	return &Error{t.col, fmt.Sprintf(format, args...)}
}

func describeTok(t token) string {
	switch t.kind {
	case tEOF:
		return "end of condition"
	case tString:
		return strconv.Quote(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// node kinds of the syntax tree.
type node interface{ col() int }

type (
	orNode  struct{ l, r node }
	andNode struct{ l, r node }
	notNode struct {
		x node
		c int
	}
	cmpNode struct {
		op   string
		l, r node
		c    int
	}
	inNode struct {
		x    node
		list []literal
		c    int
	}
	matchNode struct {
		x  node
		re *regexp.Regexp
		c  int
	}
	nullNode struct {
		x   node
		not bool
		c   int
	}
	pathNode struct {
		root string // value, after, before, key, metadata, attr, row
		path []string
		c    int
	}
	litNode struct {
		v literal
		c int
	}
)

func (n orNode) col() int    { return n.l.col() }
func (n andNode) col() int   { return n.l.col() }
func (n notNode) col() int   { return n.c }
func (n cmpNode) col() int   { return n.c }
func (n inNode) col() int    { return n.c }
func (n matchNode) col() int { return n.c }
func (n nullNode) col() int  { return n.c }
func (n pathNode) col() int  { return n.c }
func (n litNode) col() int   { return n.c }

// literal is a constant: nil, bool, json.Number or string.
type literal struct{ v any }

func parse(src string) (node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	if toks[0].kind == tEOF {
		return nil, &Error{1, "the condition is empty"}
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.fail(t, "unexpected %s; expected && or || or the end", describeTok(t))
	}
	return n, nil
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isOp("||") || p.isWord("or") {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.isOp("&&") || p.isWord("and") {
		p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *parser) not() (node, error) {
	if p.isOp("!") || p.isWord("not") {
		t := p.next()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return notNode{x, t.col}, nil
	}
	return p.cmp()
}

func (p *parser) cmp() (node, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tOp && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		p.next()
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		if err := checkComparable(t, l, r); err != nil {
			return nil, err
		}
		return cmpNode{t.text, l, r, t.col}, nil
	case p.isWord("in"):
		p.next()
		list, err := p.list()
		if err != nil {
			return nil, err
		}
		return inNode{l, list, t.col}, nil
	case p.isWord("matches"):
		p.next()
		rt := p.next()
		if rt.kind != tString {
			return nil, p.fail(rt, "matches needs a quoted regular expression, got %s", describeTok(rt))
		}
		re, err := regexp.Compile(rt.text)
		if err != nil {
			return nil, p.fail(rt, "bad regular expression: %v", err)
		}
		return matchNode{l, re, t.col}, nil
	case p.isWord("is"):
		p.next()
		neg := false
		if p.isWord("not") {
			p.next()
			neg = true
		}
		if !p.isWord("null") {
			return nil, p.fail(p.peek(), "expected null after is%s, got %s", map[bool]string{true: " not"}[neg], describeTok(p.peek()))
		}
		p.next()
		return nullNode{l, neg, t.col}, nil
	}
	if lit, ok := l.(litNode); ok {
		if _, isBool := lit.v.v.(bool); !isBool {
			return nil, p.fail(t, "a %s alone is not a condition; compare it with something", typeName(lit.v.v))
		}
	}
	return l, nil
}

func (p *parser) list() ([]literal, error) {
	if !p.isOp("[") {
		return nil, p.fail(p.peek(), "in needs a list such as [\"a\", \"b\"], got %s", describeTok(p.peek()))
	}
	p.next()
	var out []literal
	for {
		t := p.next()
		lit, ok, err := literalOf(t)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, p.fail(t, "list items must be literals, got %s", describeTok(t))
		}
		out = append(out, lit)
		if p.isOp(",") {
			p.next()
			continue
		}
		if p.isOp("]") {
			p.next()
			return out, nil
		}
		return nil, p.fail(p.peek(), "expected , or ] in list, got %s", describeTok(p.peek()))
	}
}

func literalOf(t token) (literal, bool, error) {
	switch t.kind {
	case tNumber:
		// Kept as written so that integers compare exactly.
		return literal{json.Number(t.text)}, true, nil
	case tString:
		return literal{t.text}, true, nil
	case tIdent:
		switch strings.ToLower(t.text) {
		case "true":
			return literal{true}, true, nil
		case "false":
			return literal{false}, true, nil
		case "null", "nil":
			return literal{nil}, true, nil
		}
	}
	return literal{}, false, nil
}

var attributes = map[string]bool{"op": true, "event_type": true, "stream": true, "namespace": true, "database": true, "schema": true, "table": true}

var roots = map[string]bool{"value": true, "after": true, "before": true, "key": true, "metadata": true}

func (p *parser) operand() (node, error) {
	t := p.next()
	if t.kind == tOp && t.text == "(" {
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.isOp(")") {
			return nil, p.fail(p.peek(), "expected ) to close the ( at column %d, got %s", t.col, describeTok(p.peek()))
		}
		p.next()
		return n, nil
	}
	if lit, ok, err := literalOf(t); err != nil {
		return nil, err
	} else if ok {
		return litNode{lit, t.col}, nil
	}
	if t.kind != tIdent {
		return nil, p.fail(t, "expected a field, a value or (, got %s", describeTok(t))
	}
	switch strings.ToLower(t.text) {
	case "and", "or", "not", "in", "matches", "is":
		return nil, p.fail(t, "expected a field or a value before %q", t.text)
	}
	parts := strings.Split(t.text, ".")
	for _, s := range parts {
		if s == "" {
			return nil, p.fail(t, "field path %q has an empty segment", t.text)
		}
	}
	switch {
	case roots[parts[0]] && len(parts) > 1:
		return pathNode{parts[0], parts[1:], t.col}, nil
	case roots[parts[0]]:
		return pathNode{parts[0], nil, t.col}, nil
	case len(parts) == 1 && attributes[parts[0]]:
		return pathNode{"attr", parts, t.col}, nil
	}
	return pathNode{"row", parts, t.col}, nil
}

// checkComparable rejects comparisons that can never be true because of
// the literal types, e.g. "abc" > 5 or true < 1.
func checkComparable(op token, l, r node) error {
	ll, lok := l.(litNode)
	rl, rok := r.(litNode)
	if lok && rok && typeName(ll.v.v) != typeName(rl.v.v) && ll.v.v != nil && rl.v.v != nil {
		return &Error{op.col, fmt.Sprintf("cannot compare %s with %s", typeName(ll.v.v), typeName(rl.v.v))}
	}
	if op.text != "==" && op.text != "!=" {
		for _, n := range []node{l, r} {
			if lit, ok := n.(litNode); ok {
				switch lit.v.v.(type) {
				case bool, nil:
					return &Error{op.col, fmt.Sprintf("%s cannot order %s values; use == or !=", op.text, typeName(lit.v.v))}
				}
			}
		}
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	case string:
		return "string"
	}
	return fmt.Sprintf("%T", v)
}
