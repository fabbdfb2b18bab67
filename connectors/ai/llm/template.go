// Package llm is what the llm-chat and llm-embedding transforms share:
// prompt templates, the OpenAI-compatible and Bedrock clients, retries,
// bounded concurrency, the result cache and the metrics. It is a helper of
// those transforms, not a connector.
package llm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
)

// Template is a parsed prompt template: literal text and {{placeholders}}.
//
// Rendering is one pass over the parsed pieces: a value substituted for a
// placeholder is appended as it is and never scanned again, so a field
// holding "{{_data}}" or "{{password}}" cannot pull other data into the
// prompt (the injection the reference promises to prevent).
type Template struct {
	parts []part
}

type part struct {
	lit  string
	kind int // partLit, partField, partData, partStream, partTimestamp
	path row.Path
}

const (
	partLit = iota
	partField
	partData
	partStream
	partTimestamp
)

// ParseTemplate reads a template. A "{{" without its "}}" or an empty or
// malformed placeholder is an error, so a typo fails validation rather than
// reaching the model.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{}
	for len(s) > 0 {
		i := strings.Index(s, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: s[:i]})
		}
		rest := s[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return nil, fmt.Errorf("placeholder at offset %d has no closing }}", i)
		}
		name := strings.TrimSpace(rest[:j])
		switch name {
		case "_data":
			t.parts = append(t.parts, part{kind: partData})
		case "_stream":
			t.parts = append(t.parts, part{kind: partStream})
		case "_timestamp":
			t.parts = append(t.parts, part{kind: partTimestamp})
		default:
			if strings.ContainsAny(name, "{} \t\n") {
				return nil, fmt.Errorf("placeholder {{%s}} is not a field path", name)
			}
			p, err := row.ParsePath(name)
			if err != nil {
				return nil, fmt.Errorf("placeholder {{%s}}: %v", name, err)
			}
			t.parts = append(t.parts, part{kind: partField, path: p})
		}
		s = rest[j+2:]
	}
	return t, nil
}

// MissingFieldError says which field a template or input needed.
type MissingFieldError struct{ Field string }

func (e *MissingFieldError) Error() string {
	return fmt.Sprintf("field %q is missing or null", e.Field)
}

// Render fills the template from an event and its row (data, or the after
// image of an update).
func (t *Template) Render(e *events.Event, r map[string]any) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partLit:
			b.WriteString(p.lit)
		case partData:
			j, err := json.Marshal(r)
			if err != nil {
				return "", fmt.Errorf("{{_data}}: %w", err)
			}
			b.Write(j)
		case partStream:
			b.WriteString(e.Stream)
		case partTimestamp:
			b.WriteString(e.Timestamp.UTC().Format(time.RFC3339Nano))
		case partField:
			v, ok := p.path.Get(r)
			if !ok || v == nil {
				return "", &MissingFieldError{Field: p.path.String()}
			}
			b.WriteString(Text(v))
		}
	}
	return b.String(), nil
}

// Text is a row value as prompt text: strings as they are, numbers in
// their exact decimal form, everything else as JSON.
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(j)
}

// Row returns the row a transform reads and writes: the data of inserts,
// records and snapshot reads, the after image of updates. Deletes (also
// as rewritten rows with __deleted) and events without rows give nil:
// there is nothing to enrich.
func Row(e *events.Event) (map[string]any, error) {
	if !e.Type.IsData() || e.Type == events.Delete {
		return nil, nil
	}
	var a [2]map[string]any
	rows, err := row.View(e, a[:0])
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	if e.Type == events.Update {
		v, _ := e.Data.Value()
		if _, ok := v.(map[string]any)["after"].(map[string]any); !ok {
			return nil, nil // an update without its after image
		}
	}
	if d, ok := rows[0]["__deleted"]; ok && (d == true || d == "true") {
		return nil, nil // a delete ExtractNewRecordState rewrote: nothing to enrich
	}
	return rows[0], nil
}
