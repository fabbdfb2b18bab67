// Package extractnewrecordstate unwraps change events to the row state
// after the change, like Debezium's ExtractNewRecordState: what a table
// sink or warehouse wants instead of {before, after} envelopes.
package extractnewrecordstate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration.
type Config struct {
	DeleteHandling string   `yaml:"delete_handling" default:"drop" enum:"drop,rewrite,none" doc:"Deletes: drop them, rewrite them to the deleted row with __deleted=true, or pass them on unchanged."`
	DropTombstones bool     `yaml:"drop_tombstones" default:"true" doc:"Drop deletes that carry no row (tombstones)."`
	AddFields      []string `yaml:"add_fields" doc:"Event attributes to add to the row as __<name>: op, table, schema, db, ts, position, txid."`
	AddOp          bool     `yaml:"add_op" default:"false" doc:"Same as listing op in add_fields."`
	AddTable       bool     `yaml:"add_table" default:"false" doc:"Same as listing table in add_fields."`
	AddSchema      bool     `yaml:"add_schema" default:"false" doc:"Same as listing schema in add_fields."`
	AddTs          bool     `yaml:"add_ts" default:"false" doc:"Same as listing ts in add_fields (source commit time in ms, else the event time)."`
	FieldPrefix    string   `yaml:"field_prefix" default:"__" doc:"Prefix of added fields."`
}

var addable = []string{"op", "table", "schema", "db", "ts", "position", "txid"}

// Validate checks add_fields names.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	for i, f := range c.AddFields {
		if !slices.Contains(addable, f) {
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("add_fields[%d]", i),
				Message: fmt.Sprintf("%q cannot be added (allowed: op, table, schema, db, ts, position, txid)", f)})
		}
	}
	return ps
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "ExtractNewRecordState", Category: catalog.Transforms, Subcategory: "SMT",
		Description: "Unwraps CDC updates and deletes to the new row state",
		Tags:        []string{"cdc", "debezium", "unwrap", "flatten envelope"},
	}, New)
}

type extract struct {
	cfg    *Config
	fields []string
	// keys are the added fields' names as JSON string tokens, and
	// deleted the __deleted one, for the byte path.
	keys    [][]byte
	deleted []byte
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	fields := slices.Clone(cfg.AddFields)
	add := func(on bool, name string) {
		if on && !slices.Contains(fields, name) {
			fields = append(fields, name)
		}
	}
	add(cfg.AddOp, "op")
	add(cfg.AddTable, "table")
	add(cfg.AddSchema, "schema")
	add(cfg.AddTs, "ts")
	x := &extract{cfg: cfg, fields: fields, deleted: events.AppendJSONString(nil, cfg.FieldPrefix+"deleted")}
	for _, f := range fields {
		x.keys = append(x.keys, events.AppendJSONString(nil, cfg.FieldPrefix+f))
	}
	return connector.KeepOrDrop(x.apply), nil
}

func (x *extract) apply(_ context.Context, e *events.Event) (keep bool, err error) {
	if x.applyRaw(e) {
		return true, nil
	}
	var row map[string]any
	switch e.Type {
	case events.Insert, events.Record, events.SnapshotRead:
		if len(x.fields) == 0 && x.cfg.DeleteHandling != "rewrite" {
			e.Type = events.Record
			return true, nil // data is the row already: left untouched
		}
		row, err = e.After()
	case events.Update:
		// Only the after image is decoded: the envelope is replaced.
		var v any
		if v, _, err = e.Data.Field("after"); err == nil {
			row, _ = v.(map[string]any)
			if row == nil {
				return false, fmt.Errorf("update event has no after row")
			}
		}
	case events.Delete:
		before, berr := e.Before()
		if berr != nil {
			return false, berr
		}
		if before == nil && x.cfg.DropTombstones {
			return false, nil
		}
		switch x.cfg.DeleteHandling {
		case "drop":
			return false, nil
		case "none":
			return true, nil
		}
		row, err = before, nil
	default:
		return true, nil // truncate, schema, state, log pass on
	}
	if err != nil {
		return false, err
	}
	// The row map is reused as the new data (the old envelope is dropped),
	// which saves copying every field.
	out := row
	if out == nil {
		// null data (a tombstone kept by drop_tombstones: false): the
		// added fields are the whole row.
		out = map[string]any{}
	}
	p := x.cfg.FieldPrefix
	for _, f := range x.fields {
		out[p+f] = attribute(e, f)
	}
	if x.cfg.DeleteHandling == "rewrite" {
		out[p+"deleted"] = e.Type == events.Delete
	}
	e.Data.Set(out)
	e.Type = events.Record
	return true, nil
}

func attribute(e *events.Event, name string) any {
	src := e.Source
	if src == nil {
		src = &events.SourceInfo{}
	}
	orNil := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch name {
	case "op":
		return e.Type.Op()
	case "table":
		if src.Table != "" {
			return src.Table
		}
		return e.Stream
	case "schema":
		if src.Schema != "" {
			return src.Schema
		}
		if e.Namespace != nil {
			return *e.Namespace
		}
		return nil
	case "db":
		return orNil(src.Database)
	case "ts":
		ts := e.Timestamp
		if src.CommitTS != nil {
			ts = *src.CommitTS
		}
		return json.Number(strconv.FormatInt(ts.UnixMilli(), 10))
	case "position":
		if src.Position != "" {
			return src.Position
		}
		return orNil(e.Metadata.Position)
	case "txid":
		return orNil(e.Metadata.TransactionID)
	}
	return nil
}

// applyRaw is apply on the event's data while it is bytes or fields: the
// row (an update's after image, or the data itself) becomes the new data
// as its fields, with the added fields appended; the bytes of its values
// are kept, and the split into fields stays with the data for the
// transforms after this one. handled is false when the data is not a row
// object of fields (already decoded and changed, null, malformed, a key
// named twice): apply's map path then gives the result or the error.
func (x *extract) applyRaw(e *events.Event) (handled bool) {
	if !e.Type.IsData() {
		return false
	}
	root := "after"
	switch e.Type {
	case events.Insert, events.Record, events.SnapshotRead:
		if len(x.fields) == 0 && x.cfg.DeleteHandling != "rewrite" {
			return false // the map path leaves the data untouched too
		}
	case events.Delete:
		if x.cfg.DeleteHandling != "rewrite" {
			return false // dropped or passed on as they are
		}
		root = "before"
	}
	row, ok := e.Data.TakeRow(e.Type, root)
	if !ok || row == nil {
		return false
	}
	// The values are encoded before anything changes, so that a value
	// that cannot be leaves the event as it was for the map path.
	var buf [8][]byte
	vals := buf[:0]
	for _, f := range x.fields {
		v, err := events.AppendJSONValue(nil, attribute(e, f))
		if err != nil {
			return false
		}
		vals = append(vals, v)
	}
	// The row object is taken over as the data: the old envelope (an
	// update's before image with it) is dropped.
	e.Data.SetFields(row)
	for i := range x.fields {
		row.SetKey(x.keys[i], vals[i])
	}
	if x.cfg.DeleteHandling == "rewrite" {
		if e.Type == events.Delete {
			row.SetKey(x.deleted, []byte("true"))
		} else {
			row.SetKey(x.deleted, []byte("false"))
		}
	}
	e.Type = events.Record
	return true
}
