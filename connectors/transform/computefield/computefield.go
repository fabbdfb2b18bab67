// Package computefield is the ComputeField transform: it sets fields
// computed from other fields (concatenation, hashes, upper/lower case,
// first non-null value) or generated (UUIDs, the current time).
package computefield

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "ComputeField",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Sets fields computed from others (concat, hash, upper, lower, coalesce) or generated (uuid, timestamp), in order.",
		Tags:        []string{"compute", "derive", "concat", "hash", "uuid", "coalesce", "smt"},
	}, New)
}

// Config is the ComputeField config block.
type Config struct {
	Computations []Computation `yaml:"computations" required:"true" doc:"Computations, applied in order to each row; each sees the fields the ones before it set."`
}

// Computation is one computed field.
type Computation struct {
	Target    string   `yaml:"target" required:"true" doc:"Field to set (a dotted path creates nested objects); an existing value is replaced."`
	Type      string   `yaml:"type" required:"true" enum:"concat,hash,upper,lower,coalesce,uuid,timestamp,uppercase,lowercase,current_timestamp" doc:"concat: the values of fields joined by separator; hash: hex digest of the fields' JSON; upper/lower: the case-mapped string of one field; coalesce: the first non-null of fields; uuid: random v4, or v5 of the fields when given; timestamp: the current time (RFC 3339, UTC). uppercase, lowercase and current_timestamp are the reference's spellings."`
	Fields    []string `yaml:"fields" doc:"Input fields (dotted paths) of concat, hash, coalesce and uuid; upper and lower take exactly one."`
	Parts     []string `yaml:"parts" doc:"concat's input fields as the reference spells them (a leading $ is dropped); use fields or parts."`
	Source    string   `yaml:"source" doc:"Input field of upper and lower as the reference spells it (same as fields: [x])."`
	Separator string   `yaml:"separator" doc:"concat: put between the values (none by default)."`
	Algorithm string   `yaml:"algorithm" enum:"sha256,sha1,sha512,md5" doc:"hash: the digest (default sha256)."`
	Namespace string   `yaml:"namespace" doc:"uuid with fields: the v5 namespace UUID (default the RFC 4122 URL namespace 6ba7b811-9dad-11d1-80b4-00c04fd430c8)."`
}

// canonical maps the reference's spellings of types to ours.
var canonical = map[string]string{
	"concat": "concat", "hash": "hash", "upper": "upper", "lower": "lower", "coalesce": "coalesce",
	"uuid": "uuid", "timestamp": "timestamp",
	"uppercase": "upper", "lowercase": "lower", "current_timestamp": "timestamp",
}

// urlNamespace is RFC 4122's name space for URLs.
var urlNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// Validate checks each computation's inputs against its type.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Computations) == 0 {
		ps = append(ps, spec.Problem{Path: "computations", Message: "needs at least one computation"})
	}
	for i := range c.Computations {
		ps = append(ps, c.Computations[i].validate(spec.Index("computations", i))...)
	}
	return ps
}

func (c *Computation) validate(at string) []spec.Problem {
	var ps []spec.Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, spec.Problem{Path: spec.Join(at, key), Message: fmt.Sprintf(format, args...)})
	}
	if _, err := row.ParsePath(c.Target); err != nil {
		bad("target", "%v", err)
	}
	typ, ok := canonical[c.Type]
	if !ok {
		bad("type", "unknown type %q (allowed: concat, hash, upper, lower, coalesce, uuid, timestamp)", c.Type)
		return ps
	}
	for i, f := range c.Fields {
		if _, err := row.ParsePath(f); err != nil {
			bad(spec.Index("fields", i), "%v", err)
		}
	}
	for i, f := range c.Parts {
		if _, err := row.ParsePath(strings.TrimPrefix(f, "$")); err != nil {
			bad(spec.Index("parts", i), "%v", err)
		}
	}
	if c.Source != "" {
		if _, err := row.ParsePath(c.Source); err != nil {
			bad("source", "%v", err)
		}
	}
	notFor := func(key string, set bool) {
		if set {
			bad(key, "%s does not apply to type %s", key, c.Type)
		}
	}
	notFor("parts", typ != "concat" && len(c.Parts) > 0)
	notFor("source", typ != "upper" && typ != "lower" && c.Source != "")
	notFor("separator", typ != "concat" && c.Separator != "")
	notFor("algorithm", typ != "hash" && c.Algorithm != "")
	notFor("namespace", typ != "uuid" && c.Namespace != "")
	notFor("fields", typ == "timestamp" && len(c.Fields) > 0)
	switch typ {
	case "concat":
		switch {
		case len(c.Fields) > 0 && len(c.Parts) > 0:
			bad("parts", "give fields or parts, not both")
		case len(c.Fields) == 0 && len(c.Parts) == 0:
			bad("fields", "concat needs at least one field (fields or parts)")
		}
	case "hash", "coalesce":
		if len(c.Fields) == 0 {
			bad("fields", "%s needs at least one field", typ)
		}
	case "upper", "lower":
		switch {
		case c.Source != "" && len(c.Fields) > 0:
			bad("source", "give source or fields, not both")
		case c.Source == "" && len(c.Fields) != 1:
			bad("fields", "%s takes exactly one field (fields: [name] or source: name)", typ)
		}
	case "uuid":
		if c.Namespace != "" {
			if _, err := parseUUID(c.Namespace); err != nil {
				bad("namespace", "%v", err)
			} else if len(c.Fields) == 0 {
				bad("namespace", "namespace needs fields (a v5 UUID is made of the fields' values)")
			}
		}
	}
	return ps
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(s) != 36 || len(h) != 32 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("%q is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("%q is not a UUID: %v", s, err)
	}
	return u, nil
}

// comp is a compiled computation.
type comp struct {
	typ       string
	target    row.Path
	inputs    []row.Path
	sep       string
	algorithm string
	ns        [16]byte
}

// Transform computes fields; see Config.
type Transform struct {
	comps       []comp
	now         func() time.Time
	randomUUIDs bool // some computation is a uuid without fields
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	t, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return row.Each(t.apply), nil
}

func build(cfg *Config) (*Transform, error) {
	t := &Transform{now: time.Now}
	for _, c := range cfg.Computations {
		k := comp{typ: canonical[c.Type], sep: c.Separator, algorithm: c.Algorithm, ns: urlNamespace}
		k.target, _ = row.ParsePath(c.Target)
		names := c.Fields
		if len(c.Parts) > 0 {
			names = nil
			for _, p := range c.Parts {
				names = append(names, strings.TrimPrefix(p, "$"))
			}
		}
		if c.Source != "" {
			names = []string{c.Source}
		}
		for _, n := range names {
			p, _ := row.ParsePath(n)
			k.inputs = append(k.inputs, p)
		}
		if k.algorithm == "" {
			k.algorithm = "sha256"
		}
		if c.Namespace != "" {
			k.ns, _ = parseUUID(c.Namespace)
		}
		t.comps = append(t.comps, k)
		t.randomUUIDs = t.randomUUIDs || k.typ == "uuid" && len(k.inputs) == 0
	}
	return t, nil
}

// perEvent holds the values that are the same in every row of an event:
// the time, and the random UUIDs by computation index.
type perEvent struct {
	now   any
	uuids []any
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	var arr [2]map[string]any
	rows, err := row.View(e, arr[:0])
	if err != nil || len(rows) == 0 {
		return err
	}
	var pe perEvent
	if t.randomUUIDs {
		pe.uuids = make([]any, len(t.comps))
	}
	var undo row.Undo
	for _, r := range rows {
		for i := range t.comps {
			c := &t.comps[i]
			v, err := t.compute(c, i, r, &pe)
			if err == nil {
				err = undo.Set(r, c.target, v)
			}
			if err != nil {
				undo.Rollback()
				return fmt.Errorf("ComputeField: %s into %q: %w", c.typ, c.target.String(), err)
			}
		}
	}
	row.Changed(e)
	return nil
}

func (t *Transform) compute(c *comp, i int, r map[string]any, pe *perEvent) (any, error) {
	switch c.typ {
	case "concat":
		return concat(c, r)
	case "hash":
		return hashOf(c, r)
	case "upper", "lower":
		v, ok := c.inputs[0].Get(r)
		if !ok || v == nil {
			return nil, nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("field %q is %s, not a string", c.inputs[0].String(), kind(v))
		}
		if c.typ == "upper" {
			return strings.ToUpper(s), nil
		}
		return strings.ToLower(s), nil
	case "coalesce":
		for _, p := range c.inputs {
			if v, ok := p.Get(r); ok && v != nil {
				return v, nil
			}
		}
		return nil, nil
	case "uuid":
		if len(c.inputs) > 0 {
			return uuidV5(c, r)
		}
		if pe.uuids[i] == nil {
			var b [16]byte
			_, _ = rand.Read(b[:]) // never fails (crypto/rand)
			b[6] = b[6]&0x0f | 0x40
			b[8] = b[8]&0x3f | 0x80
			pe.uuids[i] = formatUUID(b)
		}
		return pe.uuids[i], nil
	case "timestamp":
		if pe.now == nil {
			var b [40]byte
			pe.now = string(events.AppendTimestamp(b[:0], t.now()))
		}
		return pe.now, nil
	}
	return nil, fmt.Errorf("unknown computation %q", c.typ)
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	}
	return "a number"
}

// concat joins the text of the inputs: strings as they are, numbers as
// written, booleans as true/false, objects and arrays as JSON. Missing and
// null inputs are skipped, separator and all.
func concat(c *comp, r map[string]any) (any, error) {
	var arr [128]byte
	buf := arr[:0]
	n := 0
	for _, p := range c.inputs {
		v, ok := p.Get(r)
		if !ok || v == nil {
			continue
		}
		if n > 0 {
			buf = append(buf, c.sep...)
		}
		n++
		switch v := v.(type) {
		case string:
			buf = append(buf, v...)
		default:
			val := events.ValuePayload(v)
			var err error
			if buf, err = val.AppendJSON(buf); err != nil {
				return nil, fmt.Errorf("field %q: %w", p.String(), err)
			}
		}
	}
	return string(buf), nil
}

// hashInput is what hash and uuid v5 digest: the JSON of each input (null
// when missing), separated by commas.
func hashInput(c *comp, r map[string]any, dst []byte) ([]byte, error) {
	for i, p := range c.inputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		v, ok := p.Get(r)
		if !ok {
			dst = append(dst, "null"...)
			continue
		}
		val := events.ValuePayload(v)
		var err error
		if dst, err = val.AppendJSON(dst); err != nil {
			return nil, fmt.Errorf("field %q: %w", p.String(), err)
		}
	}
	return dst, nil
}

func hashOf(c *comp, r map[string]any) (any, error) {
	var arr [256]byte
	in, err := hashInput(c, r, arr[:0])
	if err != nil {
		return nil, err
	}
	switch c.algorithm {
	case "md5":
		s := md5.Sum(in)
		return hex.EncodeToString(s[:]), nil
	case "sha1":
		s := sha1.Sum(in)
		return hex.EncodeToString(s[:]), nil
	case "sha512":
		s := sha512.Sum512(in)
		return hex.EncodeToString(s[:]), nil
	}
	s := sha256.Sum256(in)
	return hex.EncodeToString(s[:]), nil
}

// uuidV5 is RFC 4122's name-based UUID (SHA-1) of the hash input in the
// computation's namespace: the same fields give the same UUID everywhere.
func uuidV5(c *comp, r map[string]any) (any, error) {
	var arr [256]byte
	in, err := hashInput(c, r, append(arr[:0], c.ns[:]...))
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(in)
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b), nil
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
