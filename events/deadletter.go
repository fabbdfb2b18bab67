package events

import (
	"encoding/json"
	"time"
)

// DeadLetter is the record written to a dead-letter topic for an event that
// could not be decoded, transformed or written. The field names are those
// of Rivven's dead-letter envelope; Reason classes and the event's position
// are additions that make triage possible without decoding the payload.
type DeadLetter struct {
	OriginalTopic string    `json:"original_topic"`
	ConnectorName string    `json:"connector_name"`
	PayloadB64    []byte    `json:"payload_b64"` // encoding/json writes []byte as base64
	Error         string    `json:"error"`
	RetryCount    int       `json:"retry_count"`
	Timestamp     time.Time `json:"timestamp"`
	Stage         string    `json:"stage,omitempty"` // decode | transform | write
	Partition     *int32    `json:"partition,omitempty"`
	Offset        *int64    `json:"offset,omitempty"`
}

// Marshal encodes the dead letter as JSON.
func (d *DeadLetter) Marshal() ([]byte, error) { return json.Marshal(d) }
