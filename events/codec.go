package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Codec turns events into bytes and back.
type Codec interface {
	Name() string
	ContentType() string
	// Append appends the encoding of e to dst.
	Append(dst []byte, e *Event) ([]byte, error)
	// Decode parses one event. The event may keep references into b, so b
	// must not be changed afterwards.
	Decode(b []byte) (*Event, error)
}

// Codec names accepted in configuration.
const (
	CodecRivven      = "rivven"
	CodecDebezium    = "debezium"
	CodecCloudEvents = "cloudevents"
)

// CodecNames lists the codecs in a stable order.
var CodecNames = []string{CodecRivven, CodecDebezium, CodecCloudEvents}

// CodecByName returns the codec with that name.
func CodecByName(name string) (Codec, error) {
	switch name {
	case CodecRivven, "", "json":
		return Rivven, nil
	case CodecDebezium:
		return Debezium, nil
	case CodecCloudEvents:
		return CloudEvents, nil
	}
	return nil, fmt.Errorf("unknown codec %q (allowed: %s)", name, strings.Join(CodecNames, ", "))
}

// DecodeAny sniffs which codec produced b and decodes with it: a Rivven
// event has "event_type", a CloudEvent "specversion", anything else is taken
// as a Debezium envelope.
func DecodeAny(b []byte) (*Event, error) {
	switch {
	case bytes.Contains(b, []byte(`"event_type"`)):
		return Rivven.Decode(b)
	case bytes.Contains(b, []byte(`"specversion"`)):
		return CloudEvents.Decode(b)
	default:
		return Debezium.Decode(b)
	}
}

// Marshal encodes e with the Rivven JSON codec.
func Marshal(e *Event) ([]byte, error) { return Rivven.Append(nil, e) }

// Unmarshal decodes Rivven JSON (or any codec, see DecodeAny).
func Unmarshal(b []byte) (*Event, error) { return DecodeAny(b) }

// AppendTimestamp formats t the way chrono does for Rivven events: RFC 3339
// in UTC with "Z" and 0, 3, 6 or 9 fractional digits.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return t.AppendFormat(dst, "2006-01-02T15:04:05Z")
	case ns%1_000_000 == 0:
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	case ns%1000 == 0:
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	default:
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000000000Z")
	}
}

func parseTimestamp(raw []byte) (time.Time, error) {
	s, err := unquote(raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", s)
	}
	return t.UTC(), nil
}

// ---- Rivven JSON -----------------------------------------------------------

type rivvenCodec struct{}

// Rivven is the default codec: Rivven's SourceEvent JSON, extended with
// "key" and "source" when the event has them.
var Rivven Codec = rivvenCodec{}

func (rivvenCodec) Name() string        { return CodecRivven }
func (rivvenCodec) ContentType() string { return "application/json" }

func (rivvenCodec) Append(dst []byte, e *Event) ([]byte, error) {
	var err error
	dst = append(dst, `{"event_type":`...)
	dst = appendString(dst, string(e.Type))
	dst = append(dst, `,"stream":`...)
	dst = appendString(dst, e.Stream)
	dst = append(dst, `,"namespace":`...)
	if e.Namespace == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, *e.Namespace)
	}
	dst = append(dst, `,"timestamp":"`...)
	dst = AppendTimestamp(dst, e.Timestamp)
	dst = append(dst, `","data":`...)
	if dst, err = e.Data.AppendJSON(dst); err != nil {
		return dst, err
	}
	dst = append(dst, `,"metadata":`...)
	dst = appendMetadata(dst, &e.Metadata)
	if len(e.Key) > 0 {
		dst = append(dst, `,"key":`...)
		dst = append(dst, e.Key...)
	}
	if e.Source != nil {
		b, err := json.Marshal(e.Source)
		if err != nil {
			return dst, err
		}
		dst = append(dst, `,"source":`...)
		dst = append(dst, b...)
	}
	return append(dst, '}'), nil
}

func appendMetadata(dst []byte, m *Metadata) []byte {
	dst = append(dst, '{')
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	if m.Position != "" {
		sep()
		dst = append(dst, `"position":`...)
		dst = appendString(dst, m.Position)
	}
	if m.TransactionID != "" {
		sep()
		dst = append(dst, `"transaction_id":`...)
		dst = appendString(dst, m.TransactionID)
	}
	if m.Sequence != nil {
		sep()
		dst = append(dst, `"sequence":`...)
		dst = strconv.AppendUint(dst, *m.Sequence, 10)
	}
	if m.SchemaID != nil {
		sep()
		dst = append(dst, `"schema_id":`...)
		dst = strconv.AppendUint(dst, uint64(*m.SchemaID), 10)
	}
	if m.SchemaSubject != "" {
		sep()
		dst = append(dst, `"schema_subject":`...)
		dst = appendString(dst, m.SchemaSubject)
	}
	for _, f := range m.Extra {
		sep()
		dst = appendString(dst, f.Key)
		dst = append(dst, ':')
		dst = append(dst, f.Value...)
	}
	return append(dst, '}')
}

func (rivvenCodec) Decode(b []byte) (*Event, error) {
	e := &Event{Stream: "default"}
	var haveType, haveTS bool
	err := objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "event_type"):
			var s string
			if s, err = unquote(v); err == nil {
				e.Type, err = ParseType(s)
			}
			haveType = true
		case keyIs(k, "stream"):
			e.Stream, err = unquote(v)
		case keyIs(k, "namespace"):
			if string(v) != "null" {
				var s string
				s, err = unquote(v)
				e.Namespace = &s
			}
		case keyIs(k, "timestamp"):
			e.Timestamp, err = parseTimestamp(v)
			haveTS = true
		case keyIs(k, "data"):
			e.Data = RawPayload(v)
		case keyIs(k, "metadata"):
			err = decodeMetadata(v, &e.Metadata)
		case keyIs(k, "key"):
			if string(v) != "null" {
				e.Key = json.RawMessage(v)
			}
		case keyIs(k, "source"):
			if string(v) != "null" {
				e.Source = new(SourceInfo)
				err = json.Unmarshal(v, e.Source)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rivven event: %w", err)
	}
	if !haveType {
		return nil, fmt.Errorf("rivven event: missing event_type")
	}
	if !haveTS {
		return nil, fmt.Errorf("rivven event: missing timestamp")
	}
	return e, nil
}

func decodeMetadata(b []byte, m *Metadata) error {
	if string(b) == "null" {
		return nil
	}
	return objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "position") && v[0] == '"':
			m.Position, err = unquote(v)
		case keyIs(k, "transaction_id") && v[0] == '"':
			m.TransactionID, err = unquote(v)
		case keyIs(k, "sequence") && v[0] != 'n':
			var n uint64
			n, err = strconv.ParseUint(string(v), 10, 64)
			m.Sequence = &n
		case keyIs(k, "schema_id") && v[0] != 'n':
			var n uint64
			n, err = strconv.ParseUint(string(v), 10, 32)
			id := uint32(n)
			m.SchemaID = &id
		case keyIs(k, "schema_subject") && v[0] == '"':
			m.SchemaSubject, err = unquote(v)
		default:
			var key string
			if key, err = unquote(k); err == nil {
				m.Extra = append(m.Extra, Field{Key: key, Value: json.RawMessage(v)})
			}
		}
		return err
	})
}

// ---- Debezium envelope -----------------------------------------------------

type debeziumCodec struct{}

// Debezium encodes the Debezium change envelope
// {before, after, source, op, ts_ms} and decodes it with or without the
// {schema, payload} wrapper of the JSON converter.
var Debezium Codec = debeziumCodec{}

func (debeziumCodec) Name() string        { return CodecDebezium }
func (debeziumCodec) ContentType() string { return "application/json" }

func (debeziumCodec) Append(dst []byte, e *Event) ([]byte, error) {
	op := e.Type.Op()
	if op == "" || op == "s" {
		return dst, fmt.Errorf("a Debezium envelope cannot carry %s events", e.Type)
	}
	var before, after []byte
	var err error
	switch e.Type {
	case Insert, Record, SnapshotRead:
		if after, err = e.Data.JSON(); err != nil {
			return dst, err
		}
	case Delete:
		if before, err = e.Data.JSON(); err != nil {
			return dst, err
		}
	case Update:
		err = objectFields(mustJSON(&e.Data), func(k, v []byte) error {
			switch {
			case keyIs(k, "before"):
				before = v
			case keyIs(k, "after"):
				after = v
			}
			return nil
		})
		if err != nil {
			return dst, fmt.Errorf("update data: %w", err)
		}
	}
	dst = append(dst, `{"before":`...)
	dst = appendRawOrNull(dst, before)
	dst = append(dst, `,"after":`...)
	dst = appendRawOrNull(dst, after)
	dst = append(dst, `,"source":{"version":"rivven-connect","connector":`...)
	src := e.Source
	if src == nil {
		src = &SourceInfo{}
	}
	dst = appendString(dst, orDefault(src.Connector, "rivven"))
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, e.Stream)
	dst = append(dst, `,"ts_ms":`...)
	ts := e.Timestamp
	if src.CommitTS != nil {
		ts = *src.CommitTS
	}
	dst = strconv.AppendInt(dst, ts.UnixMilli(), 10)
	dst = append(dst, `,"snapshot":`...)
	if e.Type == SnapshotRead || src.Snapshot {
		dst = append(dst, `"true"`...)
	} else {
		dst = append(dst, `"false"`...)
	}
	dst = append(dst, `,"db":`...)
	dst = appendString(dst, src.Database)
	if schema := orDefault(src.Schema, e.NamespaceOr("")); schema != "" {
		dst = append(dst, `,"schema":`...)
		dst = appendString(dst, schema)
	}
	dst = append(dst, `,"table":`...)
	dst = appendString(dst, orDefault(src.Table, e.Stream))
	if pos := orDefault(src.Position, e.Metadata.Position); pos != "" {
		dst = append(dst, `,"position":`...)
		dst = appendString(dst, pos)
	}
	dst = append(dst, `},"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","ts_ms":`...)
	dst = strconv.AppendInt(dst, e.Timestamp.UnixMilli(), 10)
	if e.Metadata.TransactionID != "" {
		dst = append(dst, `,"transaction":{"id":`...)
		dst = appendString(dst, e.Metadata.TransactionID)
		if e.Metadata.Sequence != nil {
			dst = append(dst, `,"total_order":`...)
			dst = strconv.AppendUint(dst, *e.Metadata.Sequence, 10)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

func mustJSON(p *Payload) []byte {
	b, err := p.JSON()
	if err != nil {
		return []byte("null")
	}
	return b
}

func appendRawOrNull(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type debeziumSource struct {
	Connector string          `json:"connector"`
	Name      string          `json:"name"`
	TsMs      int64           `json:"ts_ms"`
	Snapshot  json.RawMessage `json:"snapshot"`
	DB        string          `json:"db"`
	Schema    string          `json:"schema"`
	Table     string          `json:"table"`
	Position  string          `json:"position"`
	LSN       json.Number     `json:"lsn"`
	File      string          `json:"file"`
	Pos       json.Number     `json:"pos"`
	GTID      string          `json:"gtid"`
}

func (debeziumCodec) Decode(b []byte) (*Event, error) {
	var before, after, source, op, tsMs, txn, payload []byte
	err := objectFields(b, func(k, v []byte) error {
		switch {
		case keyIs(k, "before"):
			before = v
		case keyIs(k, "after"):
			after = v
		case keyIs(k, "source"):
			source = v
		case keyIs(k, "op"):
			op = v
		case keyIs(k, "ts_ms"):
			tsMs = v
		case keyIs(k, "transaction"):
			txn = v
		case keyIs(k, "payload"):
			payload = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("debezium envelope: %w", err)
	}
	if op == nil && payload != nil && payload[0] == '{' {
		return Debezium.Decode(payload) // JSON-converter {schema, payload} wrapper
	}
	if op == nil {
		return nil, fmt.Errorf("debezium envelope: missing op")
	}
	opc, err := unquote(op)
	if err != nil {
		return nil, fmt.Errorf("debezium envelope: op: %w", err)
	}
	e := &Event{}
	isNull := func(v []byte) bool { return len(v) == 0 || string(v) == "null" }
	switch opc {
	case "c":
		e.Type, e.Data = Insert, RawPayload(after)
	case "r":
		e.Type, e.Data = SnapshotRead, RawPayload(after)
	case "u":
		e.Type = Update
		d := make([]byte, 0, len(before)+len(after)+22)
		d = append(d, `{"before":`...)
		d = appendRawOrNull(d, before)
		d = append(d, `,"after":`...)
		d = appendRawOrNull(d, after)
		e.Data = RawPayload(append(d, '}'))
	case "d":
		e.Type, e.Data = Delete, RawPayload(before)
	case "t":
		e.Type = Truncate
	default:
		return nil, fmt.Errorf("debezium envelope: unknown op %q (allowed: c, u, d, r, t)", opc)
	}
	if (opc == "c" || opc == "r") && isNull(after) || opc == "d" && isNull(before) {
		return nil, fmt.Errorf("debezium envelope: op %q without row", opc)
	}
	var src debeziumSource
	if !isNull(source) {
		if err := json.Unmarshal(source, &src); err != nil {
			return nil, fmt.Errorf("debezium envelope: source: %w", err)
		}
	}
	if tsMs != nil {
		ms, err := strconv.ParseInt(string(tsMs), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("debezium envelope: ts_ms: %w", err)
		}
		e.Timestamp = time.UnixMilli(ms).UTC()
	} else {
		e.Timestamp = time.UnixMilli(src.TsMs).UTC()
	}
	e.Stream = orDefault(src.Table, "default")
	if ns := orDefault(src.Schema, src.DB); ns != "" {
		e.Namespace = &ns
	}
	info := &SourceInfo{Connector: src.Connector, Database: src.DB, Schema: src.Schema, Table: src.Table}
	switch {
	case src.Position != "":
		info.Position = src.Position
	case src.LSN != "":
		info.Position = "lsn:" + src.LSN.String()
	case src.GTID != "":
		info.Position = "gtid:" + src.GTID
	case src.File != "":
		info.Position = src.File + ":" + src.Pos.String()
	}
	if src.TsMs != 0 {
		ct := time.UnixMilli(src.TsMs).UTC()
		info.CommitTS = &ct
	}
	info.Snapshot = opc == "r" || strings.Trim(string(src.Snapshot), `"`) == "true"
	e.Source = info
	e.Metadata.Position = info.Position
	if !isNull(txn) {
		var t struct {
			ID         string  `json:"id"`
			TotalOrder *uint64 `json:"total_order"`
		}
		if err := json.Unmarshal(txn, &t); err == nil {
			e.Metadata.TransactionID, e.Metadata.Sequence = t.ID, t.TotalOrder
		}
	}
	return e, nil
}

// ---- CloudEvents 1.0 (structured JSON) -------------------------------------

type cloudEventsCodec struct{}

// CloudEvents encodes structured-mode CloudEvents 1.0 JSON with type
// "rivven.<stream>.<event_type>" and the Rivven fields as extension
// attributes, so that decoding gives the same event back.
var CloudEvents Codec = cloudEventsCodec{}

func (cloudEventsCodec) Name() string        { return CodecCloudEvents }
func (cloudEventsCodec) ContentType() string { return "application/cloudevents+json" }

func (cloudEventsCodec) Append(dst []byte, e *Event) ([]byte, error) {
	var err error
	dst = append(dst, `{"specversion":"1.0","type":`...)
	dst = appendString(dst, "rivven."+e.Stream+"."+string(e.Type))
	dst = append(dst, `,"source":`...)
	src := "rivven-connect"
	if e.Source != nil && e.Source.Connector != "" {
		src = "/rivven/" + e.Source.Connector
	}
	dst = appendString(dst, src)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, cloudEventID(e))
	dst = append(dst, `,"time":"`...)
	dst = AppendTimestamp(dst, e.Timestamp)
	dst = append(dst, `","datacontenttype":"application/json","data":`...)
	if dst, err = e.Data.AppendJSON(dst); err != nil {
		return dst, err
	}
	dst = append(dst, `,"rivvenstream":`...)
	dst = appendString(dst, e.Stream)
	if e.Namespace != nil {
		dst = append(dst, `,"rivvennamespace":`...)
		dst = appendString(dst, *e.Namespace)
	}
	dst = append(dst, `,"rivvenop":`...)
	dst = appendString(dst, string(e.Type))
	if len(e.Key) > 0 {
		// The CloudEvents partitioning extension.
		dst = append(dst, `,"partitionkey":`...)
		dst = appendString(dst, string(e.Key))
	}
	if md := &e.Metadata; md.Position != "" || md.TransactionID != "" || md.Sequence != nil ||
		md.SchemaID != nil || md.SchemaSubject != "" || len(md.Extra) > 0 {
		dst = append(dst, `,"rivvenmetadata":`...)
		dst = appendMetadata(dst, md)
	}
	if e.Source != nil {
		b, err := json.Marshal(e.Source)
		if err != nil {
			return dst, err
		}
		dst = append(dst, `,"rivvensource":`...)
		dst = append(dst, b...)
	}
	return append(dst, '}'), nil
}

// cloudEventID is stable for the same change (so consumers can dedupe on
// it): position and sequence when the source gave them, else a hash.
func cloudEventID(e *Event) string {
	if e.Metadata.Position != "" {
		id := e.Stream + ":" + e.Metadata.Position
		if e.Metadata.Sequence != nil {
			id += ":" + strconv.FormatUint(*e.Metadata.Sequence, 10)
		}
		return id
	}
	h := fnv64(nil, e.Stream, string(e.Type), string(AppendTimestamp(nil, e.Timestamp)))
	b, _ := e.Data.JSON()
	h = fnv64(b, "", "", "") ^ h
	return strconv.FormatUint(h, 16)
}

func fnv64(b []byte, parts ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
	}
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func (cloudEventsCodec) Decode(b []byte) (*Event, error) {
	e := &Event{Stream: "default"}
	var typ, op string
	var haveData bool
	err := objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "specversion"):
			var s string
			if s, err = unquote(v); err == nil && s != "1.0" {
				err = fmt.Errorf("unsupported specversion %q", s)
			}
		case keyIs(k, "type"):
			typ, err = unquote(v)
		case keyIs(k, "time"):
			e.Timestamp, err = parseTimestamp(v)
		case keyIs(k, "data"):
			e.Data, haveData = RawPayload(v), true
		case keyIs(k, "data_base64"):
			var s string
			if s, err = unquote(v); err == nil {
				var raw []byte
				raw, err = decodeBase64(s)
				e.Data, haveData = RawPayload(raw), true
			}
		case keyIs(k, "rivvenstream"):
			e.Stream, err = unquote(v)
		case keyIs(k, "rivvennamespace"):
			var s string
			s, err = unquote(v)
			e.Namespace = &s
		case keyIs(k, "rivvenop"):
			op, err = unquote(v)
		case keyIs(k, "partitionkey"):
			var s string
			if s, err = unquote(v); err == nil {
				if json.Valid([]byte(s)) {
					e.Key = json.RawMessage(s)
				} else {
					e.Key = json.RawMessage(strconv.Quote(s))
				}
			}
		case keyIs(k, "rivvenmetadata"):
			err = decodeMetadata(v, &e.Metadata)
		case keyIs(k, "rivvensource"):
			e.Source = new(SourceInfo)
			err = json.Unmarshal(v, e.Source)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cloudevent: %w", err)
	}
	if op == "" {
		// type is rivven.<stream>.<op>; streams may contain dots.
		if i := strings.LastIndexByte(typ, '.'); strings.HasPrefix(typ, "rivven.") && i > len("rivven") {
			op = typ[i+1:]
			if e.Stream == "default" && i > len("rivven.") {
				e.Stream = typ[len("rivven."):i]
			}
		} else {
			op = string(Record)
		}
	}
	if e.Type, err = ParseType(op); err != nil {
		return nil, fmt.Errorf("cloudevent: %w", err)
	}
	if !haveData {
		e.Data = Payload{}
	}
	return e, nil
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
