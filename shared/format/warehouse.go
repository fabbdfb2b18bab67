package format

import (
	"encoding/json"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// WarehouseColumns are the columns of the reference's warehouse table,
// which its warehouse sinks other than Snowflake write.
var WarehouseColumns = []string{"event_type", "stream", "namespace", "timestamp", "data", "metadata", "_ingested_at"}

// WarehouseRow is one event as the reference's warehouse row: the type,
// stream and namespace, the timestamp and now (ingestion) as RFC 3339 in
// UTC, the data and the metadata as JSON text.
func WarehouseRow(e *events.Event, now time.Time) (map[string]string, error) {
	raw, err := events.Marshal(e)
	if err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, err
	}
	data, err := e.Data.JSON()
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		data = []byte("null")
	}
	meta := string(env["metadata"])
	if meta == "" {
		meta = "{}"
	}
	return map[string]string{
		"event_type":   string(e.Type.Wire()),
		"stream":       e.Stream,
		"namespace":    e.NamespaceOr(""),
		"timestamp":    e.Timestamp.UTC().Format(time.RFC3339Nano),
		"data":         string(data),
		"metadata":     meta,
		"_ingested_at": now.UTC().Format(time.RFC3339Nano),
	}, nil
}
