// Package sdk is the public, versioned API for writing rivven-connect
// connectors outside this repository. It re-exports the connector contract
// (shared/connector), catalog registration (shared/catalog) and config
// problems (shared/spec) under one import, so that an external module
// depends on one package whose surface follows Version:
//
//	package foo
//
//	import (
//		"context"
//
//		"github.com/rivven/rivven-connect/shared/sdk"
//	)
//
//	type Config struct {
//		Count int    `yaml:"count" default:"10" min:"1" doc:"Records to emit."`
//		Token string `yaml:"token" secret:"true" doc:"API token."`
//	}
//
//	func init() {
//		sdk.RegisterSource(sdk.Meta{Name: "foo", Category: sdk.Utility, Description: "…"},
//			func(ctx context.Context, c *Config) (sdk.Source, error) { return &source{cfg: *c}, nil })
//	}
//
// # Config by struct tags
//
// A connector's config is a struct; its tags are the spec the engine
// validates, defaults, documents and renders as JSON Schema, with YAML
// paths and line numbers in every problem:
//
//	yaml:"name"          key in the YAML block
//	doc:"..."            one-line description (connectors --docs)
//	default:"..."        default, as written in YAML
//	required:"true"      must be present
//	enum:"a,b,c"         allowed values
//	min:"1" max:"100"    numeric range (inclusive)
//	secret:"true"        redacted in output, never echoed in errors; takes
//	                     ${VAR} and secret references (vault:path#key)
//
// A config type may have a Validate() []sdk.Problem method for checks
// that span fields; each Problem's Path is relative to the config block.
//
// # Building a CLI with the connector
//
// `rivven-connect build --with github.com/acme/rivven-foo@v1.2.0` builds
// the CLI (and, with --functions DIR, one function main per connector the
// module registers) with the module linked in; `--with
// github.com/acme/rivven-foo=../rivven-foo` uses a local checkout.
//
// # Conformance
//
// Package sdktest runs a connector through the checks the built-in
// connectors pass: lifecycle, at-least-once on restart, and bad input.
//
// # Versioning
//
// Version is the SDK's semantic version. Within a major version names are
// only added; a connector built against 1.x keeps compiling with every
// later 1.y. The module's own tags (v0.x of rivven-connect) do not carry
// this promise for packages other than sdk and sdk/sdktest.
package sdk

import (
	"context"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Version is the SDK's semantic version (see Versioning above).
const Version = "1.0.0"

// The connector contract; see shared/connector for each type's rules.
type (
	// Source reads from an external system: Read emits batches until ctx
	// is done, continuing after resume (the position last committed).
	Source = connector.Source
	// Sink writes batches; a *WriteError names the events that failed.
	Sink = connector.Sink
	// Transform changes, drops, multiplies or routes events.
	Transform = connector.Transform
	// Emitter takes a source's batches; Emit returns once they are durable.
	Emitter = connector.Emitter
	// EmitterFunc adapts a function to Emitter.
	EmitterFunc = connector.EmitterFunc
	// Checker tests connectivity before the connector runs.
	Checker = connector.Checker
	// Closer releases resources (and flushes) when the connector stops.
	Closer = connector.Closer
	// ConcurrentWriter says a sink's Write may run for several batches at once.
	ConcurrentWriter = connector.ConcurrentWriter
	// WriteError maps the index of each failed event of a batch to its error.
	WriteError = connector.WriteError
	// TransformError lists the input events a transform could not handle.
	TransformError = connector.TransformError
	// EventError pairs an event with why it failed.
	EventError = connector.EventError
	// PerEvent adapts a per-event function to Transform.
	PerEvent = connector.PerEvent
	// Runtime is the component's name, logger and metrics.
	Runtime = connector.Runtime

	// Event is one change or record; Payload its data.
	Event = events.Event
	// Payload is an event's data, decoded lazily.
	Payload = events.Payload
	// EventType is insert, update, delete, record, …
	EventType = events.Type

	// Meta is what a connector says about itself in the catalog.
	Meta = catalog.Meta
	// Problem is one config problem; Path is relative to the config block.
	Problem = spec.Problem
)

// Event types.
const (
	Record       = events.Record
	Insert       = events.Insert
	Update       = events.Update
	Delete       = events.Delete
	SnapshotRead = events.SnapshotRead
)

// Categories of Meta.Category.
const (
	Database  = catalog.Database
	Messaging = catalog.Messaging
	Storage   = catalog.Storage
	Warehouse = catalog.Warehouse
	Lakehouse = catalog.Lakehouse
	AIML      = catalog.AIML
	Utility   = catalog.Utility
	// Transforms is the category of transforms.
	Transforms = catalog.Transforms
)

// ErrFatal marks errors after which a restart cannot help.
var ErrFatal = connector.ErrFatal

// Fatal wraps err so that the engine stops instead of retrying.
func Fatal(err error) error { return connector.Fatal(err) }

// RuntimeFrom returns the runtime the engine put in ctx (never nil).
func RuntimeFrom(ctx context.Context) *Runtime { return connector.RuntimeFrom(ctx) }

// NewEvent makes an event of type t on stream with data (a JSON-shaped
// value: map[string]any, []any, string, float64, json.Number, bool, nil),
// timestamped now.
func NewEvent(t EventType, stream string, data any) *Event {
	return events.New(t, stream, events.ValuePayload(data))
}

// RegisterSource adds a source to the catalog; call it from init(). C is
// its config struct, decoded, defaulted and validated before fn runs.
func RegisterSource[C any](m Meta, fn func(context.Context, *C) (Source, error)) {
	catalog.RegisterSource(m, fn)
}

// RegisterSink adds a sink to the catalog; call it from init().
func RegisterSink[C any](m Meta, fn func(context.Context, *C) (Sink, error)) {
	catalog.RegisterSink(m, fn)
}

// RegisterTransform adds a transform to the catalog; call it from init().
func RegisterTransform[C any](m Meta, fn func(context.Context, *C) (Transform, error)) {
	catalog.RegisterTransform(m, fn)
}
