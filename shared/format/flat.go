package format

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/rivven/rivven-connect/events"
)

// The tabular formats read rows straight from the event's JSON bytes:
// one pass over each object's top-level fields, values kept as slices of
// the original bytes (strings without escapes, numbers, nested objects
// and arrays as their JSON text). Decoding each row into a map costs
// about twenty allocations per event; this costs none for the common
// row.

// cell is one field of one row.
type cell struct {
	raw  []byte // string contents, number or literal text, or nested JSON text
	kind kind   // kindNull for JSON null
	set  bool   // the row has the key
}

// entry is a cell found in pass one, before the columns are known.
type entry struct {
	row, col int32
	cell     cell
}

// flatTable is the rows of one batch as a matrix of cells: row r, column
// c (in discovery order) is cells[r*len(names)+c]. All slices are reused
// between batches.
type flatTable struct {
	names   []string
	index   map[string]int
	nrows   int
	cells   []cell
	entries []entry
	arena   []byte // unescaped strings
	order   []int  // column indexes sorted by name
	cols    []column
}

// load reads the rows of a batch. With fixed columns only those are kept
// (in that order); otherwise every key becomes a column.
func (t *flatTable) load(batch []*events.Event, fixed []string) error {
	if t.index == nil {
		t.index = make(map[string]int)
	}
	clear(t.index)
	t.names = t.names[:0]
	for i, name := range fixed {
		t.index[name] = i
		t.names = append(t.names, name)
	}
	t.entries = t.entries[:0]
	t.arena = t.arena[:0]
	t.nrows = 0
	for i, e := range batch {
		if !e.Type.IsData() {
			continue
		}
		obj, err := rowBytes(e)
		if err != nil {
			return fmt.Errorf("event %d (%s %s): %w", i, e.Type, e.Stream, err)
		}
		if obj == nil {
			continue
		}
		row := int32(t.nrows)
		err = scanObject(obj, func(key, val []byte, escaped bool) error {
			col, ok := t.index[string(key)] // no allocation for the lookup
			k := ""
			if !ok && escaped {
				var err error
				if k, err = unescapeString(key); err != nil {
					return err
				}
				col, ok = t.index[k]
			}
			if !ok {
				if fixed != nil {
					return nil // not one of the configured columns
				}
				if !escaped {
					k = string(key)
				}
				col = len(t.names)
				t.index[k] = col
				t.names = append(t.names, k)
			}
			c, err := t.cellOf(val)
			if err != nil {
				return fmt.Errorf("field %s: %w", key, err)
			}
			t.entries = append(t.entries, entry{row: row, col: int32(col), cell: c})
			return nil
		})
		if err != nil {
			return fmt.Errorf("event %d (%s %s): %w", i, e.Type, e.Stream, err)
		}
		t.nrows++
	}
	n := len(t.names)
	if cap(t.cells) < t.nrows*n {
		t.cells = make([]cell, t.nrows*n)
	} else {
		t.cells = t.cells[:t.nrows*n]
		clear(t.cells)
	}
	for _, en := range t.entries {
		t.cells[int(en.row)*n+int(en.col)] = en.cell // a repeated key: the last wins
	}
	t.order = t.order[:0]
	for i := range t.names {
		t.order = append(t.order, i)
	}
	if fixed == nil {
		sort.Slice(t.order, func(a, b int) bool { return t.names[t.order[a]] < t.names[t.order[b]] })
	}
	return nil
}

func (t *flatTable) cell(row, col int) *cell { return &t.cells[row*len(t.names)+col] }

// infer sets t.cols, sorted by name, with the same rules as inferColumns.
func (t *flatTable) infer() []column {
	t.cols = t.cols[:0]
	for _, ci := range t.order {
		c := column{name: t.names[ci], kind: kindNull}
		for r := 0; r < t.nrows; r++ {
			x := t.cell(r, ci)
			if !x.set || x.kind == kindNull {
				c.nullable = true
				continue
			}
			c.kind = promote(c.kind, x.kind)
		}
		if c.kind == kindNull {
			c.kind, c.nullable = kindString, true
		}
		t.cols = append(t.cols, c)
	}
	return t.cols
}

func (t *flatTable) cellOf(val []byte) (cell, error) {
	switch val[0] {
	case '"':
		body := val[1 : len(val)-1]
		for _, b := range body {
			if b == '\\' {
				s, err := unescapeString(val)
				if err != nil {
					return cell{}, err
				}
				start := len(t.arena)
				t.arena = append(t.arena, s...)
				// Slices of the arena stay valid when it grows: they keep
				// the old array alive and it is never written again.
				return cell{raw: t.arena[start:len(t.arena):len(t.arena)], kind: kindString, set: true}, nil
			}
		}
		return cell{raw: body, kind: kindString, set: true}, nil
	case 't', 'f':
		return cell{raw: val, kind: kindBool, set: true}, nil
	case 'n':
		return cell{kind: kindNull, set: true}, nil
	case '{', '[':
		return cell{raw: val, kind: kindJSON, set: true}, nil
	}
	if isIntegerBytes(val) {
		if _, ok := parseInt(val); ok {
			return cell{raw: val, kind: kindLong, set: true}, nil
		}
	}
	return cell{raw: val, kind: kindDouble, set: true}, nil
}

func isIntegerBytes(b []byte) bool {
	for _, c := range b {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// parseInt parses a JSON integer without allocating; false on overflow.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

func (c *cell) long() (int64, error) {
	n, ok := parseInt(c.raw)
	if !ok {
		return 0, fmt.Errorf("%s is not a 64-bit integer", c.raw)
	}
	return n, nil
}

func (c *cell) double() (float64, error) {
	return strconv.ParseFloat(string(c.raw), 64)
}

// rowBytes returns the JSON object that is the event's row (see rowSet),
// nil when it is null.
func rowBytes(e *events.Event) ([]byte, error) {
	b, err := e.Data.JSON()
	if err != nil {
		return nil, err
	}
	if e.Type == events.Update {
		var after []byte
		err := scanObject(b, func(key, val []byte, _ bool) error {
			if string(key) == "after" {
				after = val
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		b = after
	}
	i := skipWS(b, 0)
	if i == len(b) {
		return nil, nil // no data at all: no row
	}
	if b[i] == 'n' {
		end, err := literal(b, i, "null")
		if err != nil {
			return nil, err
		}
		return nil, trailing(b, end)
	}
	if b[i] != '{' {
		return nil, fmt.Errorf("row is not a JSON object")
	}
	return b[i:], nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanObject calls fn for each member of the JSON object b with the raw
// key (without quotes; escaped reports backslashes in it) and the raw
// value. Anything after the object other than white space is an error.
func scanObject(b []byte, fn func(key, val []byte, escaped bool) error) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("row is not a JSON object")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return syntaxErr(b, i, "expected an object key")
		}
		end, escaped, err := skipStr(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		if escaped {
			key = b[i:end] // unescapeString wants the quotes
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return syntaxErr(b, i, "expected ':'")
		}
		i = skipWS(b, i+1)
		vend, err := skipVal(b, i, 0)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:vend], escaped); err != nil {
			return err
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			return syntaxErr(b, i, "unterminated object")
		}
		if b[i] == '}' {
			return trailing(b, i+1)
		}
		if b[i] != ',' {
			return syntaxErr(b, i, "expected ',' or '}'")
		}
		i++
	}
}

func trailing(b []byte, i int) error {
	if skipWS(b, i) != len(b) {
		return syntaxErr(b, i, "data after the object")
	}
	return nil
}

func syntaxErr(b []byte, i int, msg string) error {
	return fmt.Errorf("invalid JSON at offset %d of %d: %s", i, len(b), msg)
}

// skipStr returns the offset past the string starting at b[i] (a quote)
// and whether it holds escapes (checked against the JSON grammar).
func skipStr(b []byte, i int) (int, bool, error) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(b) {
				break
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j <= 4 || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return j, false, syntaxErr(b, j, "invalid \\u escape")
				}
				j += 4
			default:
				return j, false, syntaxErr(b, j, "invalid escape")
			}
		case c < 0x20:
			return j, false, syntaxErr(b, j, "control character in string")
		}
	}
	return len(b), false, syntaxErr(b, len(b), "unterminated string")
}

const maxNesting = 1000

// skipVal returns the offset past the JSON value at b[i].
func skipVal(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxErr(b, i, "expected a value")
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := skipStr(b, i)
		return end, err
	case '{', '[':
		if depth >= maxNesting {
			return i, syntaxErr(b, i, "nesting too deep")
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			i = skipWS(b, i)
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, syntaxErr(b, i, "expected an object key")
				}
				end, _, err := skipStr(b, i)
				if err != nil {
					return end, err
				}
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return i, syntaxErr(b, i, "expected ':'")
				}
				i = skipWS(b, i+1)
			}
			end, err := skipVal(b, i, depth+1)
			if err != nil {
				return end, err
			}
			i = skipWS(b, end)
			if i >= len(b) {
				return i, syntaxErr(b, i, "unterminated value")
			}
			if b[i] == closer {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, syntaxErr(b, i, "expected ',' or a closing bracket")
			}
			i++
		}
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	// A number: validated strictly by the JSON grammar.
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := func() bool {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > k
	}
	start := j
	if !digits() || (b[start] == '0' && j-start > 1) {
		return j, syntaxErr(b, i, "invalid number")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return j, syntaxErr(b, i, "invalid number")
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return j, syntaxErr(b, i, "invalid number")
		}
	}
	return j, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxErr(b, i, "invalid literal")
	}
	return i + len(lit), nil
}

// unescapeString decodes a quoted JSON string with escapes (rare enough
// that encoding/json may do it).
func unescapeString(quoted []byte) (string, error) {
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", fmt.Errorf("invalid JSON string: %w", err)
	}
	return s, nil
}
