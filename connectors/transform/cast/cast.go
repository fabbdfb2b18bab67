// Package cast is the Cast transform: it converts fields to string,
// integer, floating-point, boolean or JSON values, failing the event
// (dead letter) instead of guessing when a value does not fit.
package cast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name:        "Cast",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Casts fields to string, int32, int64, float32, float64, boolean or json; values that do not fit (overflow, not a number) dead-letter the event.",
		Tags:        []string{"cast", "convert", "type", "coerce", "smt", "debezium"},
	}, New)
}

// Config is the Cast config block.
type Config struct {
	Specs map[string]Type `yaml:"specs" required:"true" doc:"Map of field (dotted paths reach into nested objects) to target type; missing or null fields are left alone."`
}

// Type is a target type of Cast.
type Type string

// typeNames are the accepted spellings: ours, then the reference's aliases.
var typeNames = []string{"string", "int32", "int64", "float32", "float64", "boolean", "json", "integer", "long", "float", "double", "bool"}

// SpecField makes the config checker validate each type name.
func (Type) SpecField() spec.Field {
	return spec.Field{Type: spec.TString, Enum: typeNames}
}

// Validate checks the field paths and types.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Specs) == 0 {
		ps = append(ps, spec.Problem{Path: "specs", Message: "needs at least one field: type"})
	}
	for _, f := range sortedKeys(c.Specs) {
		at := spec.Join("specs", f)
		if _, err := row.ParsePath(f); err != nil {
			ps = append(ps, spec.Problem{Path: at, Message: err.Error()})
		}
		if casters[c.Specs[f]] == nil {
			ps = append(ps, spec.Problem{Path: at, Message: fmt.Sprintf("unknown type %q (allowed: %s)", c.Specs[f], strings.Join(typeNames, ", "))})
		}
	}
	return ps
}

func sortedKeys(m map[string]Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// caster converts one non-null value.
type caster func(v any) (any, error)

var casters = map[Type]caster{
	"string":  toString,
	"int32":   func(v any) (any, error) { return toInt(v, 32) },
	"int64":   func(v any) (any, error) { return toInt(v, 64) },
	"integer": func(v any) (any, error) { return toInt(v, 64) },
	"long":    func(v any) (any, error) { return toInt(v, 64) },
	"float32": func(v any) (any, error) { return toFloat(v, 32) },
	"float64": func(v any) (any, error) { return toFloat(v, 64) },
	"float":   func(v any) (any, error) { return toFloat(v, 64) },
	"double":  func(v any) (any, error) { return toFloat(v, 64) },
	"boolean": toBool,
	"bool":    toBool,
	"json":    toJSON,
}

// Transform casts fields; see Config.
type Transform struct {
	specs []fieldSpec
	paths []row.Path // specs[i].path, for row.Convert
}

type fieldSpec struct {
	path row.Path
	typ  Type
	cast caster
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
	t := &Transform{}
	for _, f := range sortedKeys(cfg.Specs) {
		p, _ := row.ParsePath(f)
		typ := cfg.Specs[f]
		t.specs = append(t.specs, fieldSpec{p, typ, casters[typ]})
		t.paths = append(t.paths, p)
	}
	return t, nil
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	return row.Convert(e, t.paths, func(i int, v any) (any, error) {
		s := t.specs[i]
		nv, err := s.cast(v)
		if err != nil {
			//lint:ignore ST1005 errors lead with the transform's registered name
			return nil, fmt.Errorf("Cast: field %q to %s: %w", s.path.String(), s.typ, err)
		}
		return nv, nil
	})
}

// kind names a value's JSON type for errors.
func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// numberText returns the text of a numeric value (json.Number, or a Go
// number a previous transform stored).
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(n), 'g', -1, 32), true
	case int:
		return strconv.Itoa(n), true
	case int32:
		return strconv.FormatInt(int64(n), 10), true
	case int64:
		return strconv.FormatInt(n, 10), true
	case uint64:
		return strconv.FormatUint(n, 10), true
	}
	return "", false
}

// numeric returns the decimal text of a number or of a string holding
// one.
func numeric(v any) (string, error) {
	if s, ok := numberText(v); ok {
		return s, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("cannot cast %s", kind(v))
	}
	t := strings.TrimSpace(s)
	if !row.IsDecimal(t, true) {
		return "", fmt.Errorf("%q is not a number", s)
	}
	return t, nil
}

func toString(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case map[string]any, []any:
		p := events.ValuePayload(v)
		b, err := p.JSON()
		return string(b), err
	}
	if s, ok := numberText(v); ok {
		return s, nil
	}
	return nil, fmt.Errorf("cannot cast a %T", v)
}

func toInt(v any, bits int) (any, error) {
	if b, ok := v.(bool); ok {
		if b {
			return json.Number("1"), nil
		}
		return json.Number("0"), nil
	}
	s, err := numeric(v)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(s, 10, bits)
	if err == nil {
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("%s is out of range for int%d", s, bits)
	}
	// A fraction or an exponent: exact, truncated toward zero.
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a number", s)
	}
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() || bits == 32 && (q.Int64() < math.MinInt32 || q.Int64() > math.MaxInt32) {
		return nil, fmt.Errorf("%s is out of range for int%d", s, bits)
	}
	return json.Number(q.String()), nil
}

func toFloat(v any, bits int) (any, error) {
	if b, ok := v.(bool); ok {
		if b {
			return json.Number("1.0"), nil
		}
		return json.Number("0.0"), nil
	}
	s, err := numeric(v)
	if err != nil {
		return nil, err
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%s is out of range for float%d", s, bits)
	}
	return json.Number(formatFloat(f, bits)), nil
}

// formatFloat writes the shortest decimal that reads back as the same
// float of that size, always with a fraction or exponent so that readers
// (and schema inference) see a floating-point number: 1 → 1.0, 1e21 → 1e+21.
func formatFloat(f float64, bits int) string {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, bits)
	}
	s := strconv.FormatFloat(f, 'f', -1, bits)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

func toBool(v any) (any, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "t", "yes", "y", "on", "1":
			return true, nil
		case "false", "f", "no", "n", "off", "0":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean (true/false, yes/no, on/off, 1/0, t/f, y/n)", v)
	}
	s, ok := numberText(v)
	if !ok {
		return nil, fmt.Errorf("cannot cast %s", kind(v))
	}
	// Non-zero when any digit of the mantissa is.
	for i := 0; i < len(s) && s[i] != 'e' && s[i] != 'E'; i++ {
		if s[i] >= '1' && s[i] <= '9' {
			return true, nil
		}
	}
	return false, nil
}

// toJSON parses a string holding JSON into the value it spells; values
// that are not strings are JSON already and stay as they are. (Casting to
// string does the reverse: objects and arrays become their JSON text.)
func toJSON(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return v, nil
	}
	p := events.RawPayload([]byte(s))
	val, err := p.Value()
	if err != nil || strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%s is not valid JSON", quoteShort(s))
	}
	return val, nil
}

func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:61]) + "..."
	}
	return strconv.Quote(s)
}
