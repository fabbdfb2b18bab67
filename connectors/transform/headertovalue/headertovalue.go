// Package headertovalue is the HeaderToValue transform: it copies (or
// moves) what the event says about itself — connector, database, schema,
// table, operation, timestamp, transaction — into fields of its rows.
package headertovalue

import (
	"context"
	"encoding/json"
	"fmt"
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
		Name:        "HeaderToValue",
		Category:    catalog.Transforms,
		Subcategory: "SMT",
		Description: "Copies or moves event metadata (source connector, database, schema, table, op code, timestamp, transaction id) into row fields.",
		Tags:        []string{"header", "metadata", "envelope", "op", "table", "smt", "debezium"},
	}, New)
}

// Config is the HeaderToValue config block.
type Config struct {
	Fields map[string]string `yaml:"fields" required:"true" doc:"Map of header to target field (dotted paths create nested objects). Headers: source, db, schema, table, op, ts, txid (also source_type, database, operation, timestamp, transaction_id, xid)."`
	Move   bool              `yaml:"move" default:"false" doc:"Also clear the copied headers from the event where they can be cleared: source, db, schema, table and txid (op and ts are part of every event and stay)."`
}

// header is one piece of event metadata.
type header int

const (
	hSource header = iota
	hDB
	hSchema
	hTable
	hOp
	hTS
	hTxID
)

var headerNames = [...]string{"source", "db", "schema", "table", "op", "ts", "txid"}

// headers maps every accepted spelling (ours, then the reference's) to a
// header.
var headers = map[string]header{
	"source": hSource, "source_type": hSource,
	"db": hDB, "database": hDB,
	"schema": hSchema,
	"table":  hTable,
	"op":     hOp, "operation": hOp,
	"ts": hTS, "timestamp": hTS,
	"txid": hTxID, "transaction_id": hTxID, "xid": hTxID,
}

func spellings() []string {
	out := make([]string, 0, len(headers))
	for k := range headers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Validate checks header names and target paths.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Fields) == 0 {
		ps = append(ps, spec.Problem{Path: "fields", Message: "needs at least one header: target"})
	}
	byHeader := map[header]string{}
	byTarget := map[string]string{}
	for _, name := range sortedKeys(c.Fields) {
		at := spec.Join("fields", name)
		h, ok := headers[name]
		if !ok {
			hint := ""
			if best := spec.Closest(name, spellings()); best != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", best)
			}
			ps = append(ps, spec.Problem{Path: at, Message: fmt.Sprintf("unknown header %q%s (allowed: %s)", name, hint, strings.Join(headerNames[:], ", "))})
		} else if prev, dup := byHeader[h]; dup {
			ps = append(ps, spec.Problem{Path: at, Message: fmt.Sprintf("%q and %q are the same header", prev, name)})
		} else {
			byHeader[h] = name
		}
		target := c.Fields[name]
		if _, err := row.ParsePath(target); err != nil {
			ps = append(ps, spec.Problem{Path: at, Message: "target: " + err.Error()})
		} else if prev, dup := byTarget[target]; dup {
			ps = append(ps, spec.Problem{Path: at, Message: fmt.Sprintf("target %q is also the target of %q", target, prev)})
		}
		byTarget[target] = name
	}
	return ps
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Transform copies headers; see Config.
type Transform struct {
	fields []field
	move   bool
}

type field struct {
	h      header
	target row.Path
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	t := &Transform{move: cfg.Move}
	for _, name := range sortedKeys(cfg.Fields) {
		p, _ := row.ParsePath(cfg.Fields[name])
		t.fields = append(t.fields, field{headers[name], p})
	}
	return row.Each(t.apply), nil
}

// value returns a header of e as a row value; unknown ones are null.
func value(e *events.Event, h header) any {
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch h {
	case hOp:
		return str(e.Type.Op())
	case hTS:
		return json.Number(strconv.FormatInt(e.Timestamp.UnixMilli(), 10))
	case hTxID:
		return str(e.Metadata.TransactionID)
	}
	if e.Source == nil {
		return nil
	}
	switch h {
	case hSource:
		return str(e.Source.Connector)
	case hDB:
		return str(e.Source.Database)
	case hSchema:
		return str(e.Source.Schema)
	}
	return str(e.Source.Table)
}

func (t *Transform) apply(_ context.Context, e *events.Event) error {
	var arr [2]map[string]any
	rows, err := row.View(e, arr[:0])
	if err != nil || len(rows) == 0 {
		return err
	}
	// Check every target first, so that a failure leaves the event as it was.
	for _, r := range rows {
		for _, f := range t.fields {
			if err := settable(r, f.target); err != nil {
				return fmt.Errorf("HeaderToValue: %w", err)
			}
		}
	}
	row.Changed(e)
	for _, r := range rows {
		for _, f := range t.fields {
			_ = f.target.Set(r, value(e, f.h)) // checked above
		}
	}
	if t.move {
		t.clear(e)
	}
	return nil
}

// settable reports why Set of p in m would fail: a parent that is neither
// missing, null nor an object.
func settable(m map[string]any, p row.Path) error {
	obj := m
	for i, seg := range p[:len(p)-1] {
		next, ok := obj[seg]
		if !ok || next == nil {
			return nil // Set creates the rest
		}
		if obj, ok = next.(map[string]any); !ok {
			return fmt.Errorf("cannot set %s: %s is not an object", p, row.Path(p[:i+1]))
		}
	}
	return nil
}

// clear removes the moved headers from the event. The source block is
// copied first: sources may share one between events.
func (t *Transform) clear(e *events.Event) {
	var src *events.SourceInfo
	for _, f := range t.fields {
		switch f.h {
		case hTxID:
			e.Metadata.TransactionID = ""
			continue
		case hOp, hTS:
			continue
		}
		if e.Source == nil {
			continue
		}
		if src == nil {
			c := *e.Source
			src = &c
		}
		switch f.h {
		case hSource:
			src.Connector = ""
		case hDB:
			src.Database = ""
		case hSchema:
			src.Schema = ""
		case hTable:
			src.Table = ""
		}
	}
	if src != nil {
		e.Source = src
	}
}
