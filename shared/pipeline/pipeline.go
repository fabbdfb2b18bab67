// Package pipeline is the engine: the source runner, and the sink handler
// that every host (Lambda, Cloud Run, the service runner, the local
// emulator) calls with a batch. The contract connectors implement is
// shared/connector; the engine names its types here so that hosts speak of
// one package.
package pipeline

import "github.com/rivven/rivven-connect/shared/connector"

// The connector contract, as the engine and its hosts use it.
type (
	Source            = connector.Source
	Emitter           = connector.Emitter
	EmitterFunc       = connector.EmitterFunc
	Sink              = connector.Sink
	ConcurrentWriter  = connector.ConcurrentWriter
	Transform         = connector.Transform
	InPlace           = connector.InPlace
	Checker           = connector.Checker
	Closer            = connector.Closer
	WriteError        = connector.WriteError
	TransformError    = connector.TransformError
	EventError        = connector.EventError
	PerEvent          = connector.PerEvent
	Chain             = connector.Chain
	Discoverer        = connector.Discoverer
	SnapshotRequester = connector.SnapshotRequester
	Stream            = connector.Stream
	Column            = connector.Column
	Runtime           = connector.Runtime
)

// ErrFatal marks errors after which restarting cannot help; see
// connector.ErrFatal.
var ErrFatal = connector.ErrFatal

// Fatal wraps err so that errors.Is(err, ErrFatal) holds.
func Fatal(err error) error { return connector.Fatal(err) }

// WithRuntime returns ctx carrying rt.
var WithRuntime = connector.WithRuntime

// RuntimeFrom returns the runtime in ctx (never nil).
var RuntimeFrom = connector.RuntimeFrom
