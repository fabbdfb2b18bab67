// Package maskfield hides sensitive fields (card numbers, emails, ...) in
// every row of an event, before and after images alike, so they never
// reach a topic or a sink.
package maskfield

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration.
type Config struct {
	Fields   []string `yaml:"fields" required:"true" doc:"Fields to mask; dot paths reach nested fields (customer.email)."`
	MaskChar string   `yaml:"mask_char" default:"\"*\"" doc:"Character that replaces each character of the value (strategy mask)."`
	Strategy string   `yaml:"strategy" default:"mask" enum:"mask,hash,keep_last,null" doc:"mask: same length of mask_char; hash: SHA-256 hex of the value; keep_last: mask all but the last keep_last characters; null: set to null."`
	KeepLast int      `yaml:"keep_last" default:"4" min:"0" max:"1000" doc:"Characters left visible by strategy keep_last."`
	Salt     string   `yaml:"salt" secret:"true" doc:"Prepended to the value before hashing (strategy hash), so hashes cannot be looked up in tables."`
}

// Validate checks the field paths and mask character.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Fields) == 0 {
		ps = append(ps, spec.Problem{Path: "fields", Message: "list at least one field to mask"})
	}
	for i, f := range c.Fields {
		if _, err := row.ParsePath(f); err != nil {
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("fields[%d]", i), Message: err.Error()})
		}
	}
	if utf8.RuneCountInString(c.MaskChar) != 1 {
		ps = append(ps, spec.Problem{Path: "mask_char", Message: fmt.Sprintf("mask_char must be one character, got %q", c.MaskChar)})
	}
	return ps
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "MaskField", Category: catalog.Transforms, Subcategory: "SMT",
		Description: "Masks, hashes or nulls sensitive fields in every row image",
		Tags:        []string{"pii", "gdpr", "privacy", "redact", "hash"},
	}, New)
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	paths, err := row.ParsePaths(cfg.Fields)
	if err != nil {
		return nil, err
	}
	mask, _ := utf8.DecodeRuneInString(cfg.MaskChar)
	m := &masker{paths: paths, mask: mask, strategy: cfg.Strategy, keep: cfg.KeepLast, salt: cfg.Salt}
	return row.Each(m.apply), nil
}

type masker struct {
	paths    []row.Path
	mask     rune
	strategy string
	keep     int
	salt     string
}

func (m *masker) apply(_ context.Context, e *events.Event) error {
	if handled, err := row.EditRaw(e, m.applyRaw); handled {
		return err
	}
	rows, err := row.Mutable(e)
	if err != nil {
		return err
	}
	for _, r := range rows {
		for _, p := range m.paths {
			v, ok := p.Get(r)
			if !ok || v == nil {
				continue // absent or null: nothing to hide
			}
			if err := p.Set(r, m.value(v)); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyRaw masks the top-level fields of one row as bytes: strings and
// numbers, the values rows carry, the way value masks them; a nested path
// or another kind of value takes the map path.
func (m *masker) applyRaw(o *events.Object) (bool, error) {
	changed := false
	for _, p := range m.paths {
		if len(p) != 1 {
			return false, row.ErrNotRaw
		}
		i := o.Index(p[0])
		if i < 0 {
			continue
		}
		var v any
		b := o.Field(i).Value
		if enc, ok := m.maskText(b); ok {
			o.SetValue(i, enc)
			changed = true
			continue
		}
		switch b[0] {
		case 'n':
			continue // null: nothing to hide
		case '"':
			s, err := events.UnquoteRaw(b)
			if err != nil {
				return false, row.ErrNotRaw
			}
			v = s
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			v = json.Number(b)
		default:
			return false, row.ErrNotRaw
		}
		switch mv := m.value(v).(type) {
		case nil:
			o.SetValue(i, []byte("null"))
		case string:
			o.SetValue(i, events.AppendJSONString(nil, mv))
		}
		changed = true
	}
	return changed, nil
}

// maskText is strategies mask and keep_last on a value's JSON text, for
// the values rows mostly carry — a string without escapes, or a number —
// writing the masked string once instead of decoding, masking and encoding
// it: the result is what value gives for the decoded value. ok is false
// for anything else (and the other strategies).
func (m *masker) maskText(b []byte) (enc []byte, ok bool) {
	if m.strategy != "mask" && m.strategy != "keep_last" ||
		m.mask == utf8.RuneError || m.mask < 0x20 || m.mask == '"' || m.mask == '\\' {
		return nil, false
	}
	var body []byte
	switch c := b[0]; {
	case c == '"':
		body = b[1 : len(b)-1]
		if bytes.IndexByte(body, '\\') >= 0 || !utf8.Valid(body) {
			return nil, false
		}
	case c == '-' || c >= '0' && c <= '9':
		body = b // a number's text is ASCII, and masked as a string
	default:
		return nil, false
	}
	n, keep := utf8.RuneCount(body), 0
	if m.strategy == "keep_last" && n > m.keep {
		keep = m.keep // a value no longer than keep_last is all masked
	}
	// The kept tail: the last keep runes, as they are (plain text).
	tail := len(body)
	for range keep {
		_, w := utf8.DecodeLastRune(body[:tail])
		tail -= w
	}
	enc = make([]byte, 0, (n-keep)*utf8.RuneLen(m.mask)+len(body)-tail+2)
	enc = append(enc, '"')
	for range n - keep {
		enc = utf8.AppendRune(enc, m.mask)
	}
	enc = append(enc, body[tail:]...)
	return append(enc, '"'), true
}

// value masks one value. Non-string values are masked through their JSON
// text, so a numeric card number is hidden too (and becomes a string).
func (m *masker) value(v any) any {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = string(x)
	default:
		b, _ := json.Marshal(v)
		s = string(b)
	}
	switch m.strategy {
	case "null":
		return nil
	case "hash":
		sum := sha256.Sum256([]byte(m.salt + s))
		return hex.EncodeToString(sum[:])
	case "keep_last":
		n := utf8.RuneCountInString(s)
		if n <= m.keep {
			return strings.Repeat(string(m.mask), n)
		}
		rs := []rune(s)
		return strings.Repeat(string(m.mask), n-m.keep) + string(rs[n-m.keep:])
	}
	return strings.Repeat(string(m.mask), utf8.RuneCountInString(s))
}
