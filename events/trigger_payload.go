package events

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Payload formats: how a message body becomes an event.
const (
	// PayloadAuto detects the format from the body's top-level keys:
	// event_type (Rivven), specversion (CloudEvents), op with before, after
	// or source, or schema with payload (Debezium); any other JSON is
	// wrapped as a record event. A body that
	// is not JSON fails to decode (and is dead-lettered).
	PayloadAuto = "auto"
	// PayloadRaw wraps every body, JSON or not, as a record event.
	PayloadRaw = "raw"
)

// PayloadFormats lists what a payload format may be set to.
var PayloadFormats = []string{PayloadAuto, CodecRivven, CodecDebezium, CodecCloudEvents, PayloadRaw}

// CheckPayloadFormat rejects an unknown payload format, naming the allowed.
func CheckPayloadFormat(f string) error {
	for _, ok := range PayloadFormats {
		if f == ok {
			return nil
		}
	}
	return fmt.Errorf("unknown payload format %q (allowed: %s)", f, strings.Join(PayloadFormats, ", "))
}

// DecodeDelivery turns a delivery's payload into an event. format is one
// of PayloadFormats ("" means auto); a delivery that names its codec (a
// CloudEvent) is decoded with that codec whatever the format. An error is
// a per-record failure: the host dead-letters that record, never the batch.
func DecodeDelivery(format string, d *Delivery) (*Event, error) {
	if d.Err != nil {
		return nil, d.Err
	}
	if d.Codec != "" {
		format = d.Codec
	}
	switch format {
	case PayloadAuto, "":
		return decodeAuto(d)
	case PayloadRaw:
		return wrapRaw(d), nil
	}
	c, err := CodecByName(format)
	if err != nil {
		return nil, err
	}
	return c.Decode(d.Value)
}

// decodeAuto sniffs the top-level keys once and decodes with the codec
// they point to; other JSON is wrapped as a record.
func decodeAuto(d *Delivery) (*Event, error) {
	b := d.Value
	i := skipSpace(b, 0)
	if i >= len(b) {
		return nil, errors.New("payload is empty")
	}
	if b[i] != '{' {
		if !json.Valid(b) {
			return nil, fmt.Errorf("payload is not JSON (%s); set the payload format to raw to take any bytes", abbrev(b))
		}
		return wrapRaw(d), nil
	}
	var c Codec
	var op, row, schema, payload bool
	err := objectFields(b, func(k, _ []byte) error {
		switch {
		case keyIs(k, "event_type"):
			c = Rivven
			return errStopScan
		case keyIs(k, "specversion"):
			c = CloudEvents
			return errStopScan
		case keyIs(k, "op"):
			op = true
		case keyIs(k, "before"), keyIs(k, "after"), keyIs(k, "source"):
			row = true
		case keyIs(k, "schema"):
			schema = true
		case keyIs(k, "payload"):
			payload = true
		}
		return nil
	})
	switch {
	case c != nil:
		return c.Decode(b)
	case err != nil:
		return nil, fmt.Errorf("payload is not valid JSON: %w", err)
	case op && row, schema && payload:
		// A Debezium envelope, bare or in the JSON converter's wrapper.
		return Debezium.Decode(b)
	}
	return wrapRaw(d), nil
}

// wrapRaw makes a record event of a body that is not an event: the data is
// the body when it is JSON, else the body as a JSON string (text) or its
// base64 (binary), the usual JSON spellings. The stream is the topic, the
// position the delivery's id.
func wrapRaw(d *Delivery) *Event {
	e := &Event{Type: Record, Stream: d.Topic, Timestamp: d.Time, Data: RawPayload(jsonOrString(d.Value))}
	if e.Stream == "" {
		e.Stream = "default"
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now().UTC()
	}
	if len(d.Key) > 0 {
		e.Key = jsonOrString(d.Key)
	}
	e.Metadata.Position = d.ID
	return e
}

func jsonOrString(b []byte) []byte {
	switch {
	case len(b) == 0:
		return []byte("null")
	case json.Valid(b):
		return b
	case utf8.Valid(b):
		return appendString(nil, string(b))
	default:
		return appendString(nil, base64.StdEncoding.EncodeToString(b))
	}
}
