// Package telemetry is logging and metrics: slog set up for the terminal or
// for machines, a metrics registry exposed as Prometheus text or as
// CloudWatch Embedded Metric Format lines in Lambda.
package telemetry

// ConnectorStats is a point-in-time view of one running connector, as the
// engine tracks it. The registry exports these as metrics.
//
// The uint64 counters are cumulative for the life of the process (they only
// grow); the registry relies on that to export them as Prometheus counters
// and to compute the per-flush deltas of WriteEMF. (Name, Connector, Kind)
// identifies a connector; the registry ignores repeats of one.
type ConnectorStats struct {
	Name         string // pipeline name of the source/sink, e.g. "orders"
	Connector    string // connector type, e.g. "datagen"
	Kind         string // source | sink
	State        string // Starting | Running | Failed | Stopped
	EventsIn     uint64
	EventsOut    uint64
	Errors       uint64
	Dropped      uint64 // filtered out by transforms
	DeadLettered uint64
	Lag          int64 // sinks: messages behind the topic head; -1 unknown
	Restarts     uint64
	LastError    string
}

// StatsSource is implemented by the engine. Stats is called on every
// Prometheus scrape and every WriteEMF, possibly concurrently, so it should
// return a cheap snapshot and never block on the event path.
type StatsSource interface {
	Stats() []ConnectorStats
}
