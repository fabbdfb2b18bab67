package events

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
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

// CodecByName returns the codec with that name and its default options
// (NewCodec takes options).
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
// event has a top-level "event_type", a CloudEvent a top-level
// "specversion", anything else is taken as a Debezium envelope. Only
// top-level keys count: a row with an "event_type" column is still a row.
func DecodeAny(b []byte) (*Event, error) {
	var c Codec
	err := objectFields(b, func(k, _ []byte) error {
		switch {
		case keyIs(k, "event_type"):
			c = Rivven
		case keyIs(k, "specversion"):
			c = CloudEvents
		default:
			return nil
		}
		return errStopScan
	})
	switch {
	case c != nil:
		return c.Decode(b)
	case err != nil:
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return Debezium.Decode(b)
}

var errStopScan = errors.New("stop scan")

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

// checkTime rejects times outside the years 0000-9999, which RFC 3339 (and
// chrono's parser on the Rivven side) cannot spell.
func checkTime(what string, t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%s %v is outside the years 0000-9999", what, t)
	}
	return nil
}

func parseTimestamp(raw []byte) (time.Time, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		if t, ok := parseRFC3339UTC(raw[1 : len(raw)-1]); ok {
			return t, nil
		}
	}
	s, err := unquote(raw)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", s)
	}
	if t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("timestamp %q is outside the years 0000-9999", s)
	}
	return t, nil
}

// parseRFC3339UTC is the allocation-free fast path of parseTimestamp for
// the form Rivven writes: YYYY-MM-DDTHH:MM:SS[.fraction]Z with 1-9
// fractional digits. Anything else (offsets, odd forms, invalid dates) is
// left to time.Parse.
func parseRFC3339UTC(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	// time.Date moves Feb 30 to Mar 2: a day it moves does not exist.
	if day > 28 && time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() != day {
		return time.Time{}, false
	}
	ns := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := num(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for k := len(frac) - 1; k < 9; k++ {
			n *= 10
		}
		ns = n
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, ns, time.UTC), true
}

// ---- Rivven JSON -----------------------------------------------------------

type rivvenCodec struct{}

// Rivven is the default codec: Rivven's SourceEvent JSON, extended with
// "key" and "source" when the event has them.
var Rivven Codec = rivvenCodec{}

func (rivvenCodec) Name() string        { return CodecRivven }
func (rivvenCodec) ContentType() string { return "application/json" }

func (rivvenCodec) Append(dst []byte, e *Event) ([]byte, error) {
	n := len(dst)
	if err := checkTime("timestamp", e.Timestamp); err != nil {
		return dst, err
	}
	if _, err := ParseType(string(e.Type)); err != nil {
		return dst, err // it would not decode again
	}
	var err error
	dst = append(dst, `{"event_type":`...)
	dst = appendString(dst, string(e.Type.Wire()))
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
		return dst[:n], err
	}
	dst = append(dst, `,"metadata":`...)
	dst = appendMetadata(dst, &e.Metadata, wireMark(e.Type))
	if len(e.Key) > 0 {
		dst = append(dst, `,"key":`...)
		dst = append(dst, e.Key...)
	}
	if e.Source != nil {
		if dst, err = appendSource(append(dst, `,"source":`...), e.Source); err != nil {
			return dst[:n], err
		}
	}
	return append(dst, '}'), nil
}

// Metadata keys that tell the event types the reference's set lacks apart
// on the wire: metadata.snapshot (true, or "last" from the source) marks a
// snapshot row written as insert, metadata.control = "truncate" a truncate
// written as a state event.
const (
	MetaSnapshot = "snapshot"
	MetaControl  = "control"
)

// wireMark is the metadata entry Rivven JSON adds for t, if any.
func wireMark(t Type) Field {
	switch t {
	case SnapshotRead:
		return Field{Key: MetaSnapshot, Value: json.RawMessage("true")}
	case Truncate:
		return Field{Key: MetaControl, Value: json.RawMessage(`"truncate"`)}
	}
	return Field{}
}

// appendMetadata writes m, plus mark when m does not already have its key.
func appendMetadata(dst []byte, m *Metadata, mark Field) []byte {
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
		dst = appendRawOrNull(dst, f.Value)
	}
	if mark.Key != "" {
		if _, ok := m.Get(mark.Key); !ok {
			sep()
			dst = appendString(dst, mark.Key)
			dst = append(dst, ':')
			dst = append(dst, mark.Value...)
		}
	}
	return append(dst, '}')
}

// unwire gives back the event type a Rivven event_type stood for: an
// insert marked as a snapshot row, a state event marked as a truncate.
func unwire(t Type, m *Metadata) Type {
	switch t {
	case Insert:
		if v, ok := m.Get(MetaSnapshot); ok && !isNull(v) && string(v) != "false" && string(v) != `"false"` {
			return SnapshotRead
		}
	case State:
		if v, ok := m.Get(MetaControl); ok && string(v) == `"truncate"` {
			return Truncate
		}
	}
	return t
}

// appendSource writes SourceInfo with the field names and omitempty rules
// of its struct tags, but without encoding/json's HTML escaping and with
// commit_ts in the same form as the event timestamp.
func appendSource(dst []byte, s *SourceInfo) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	field := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	for _, f := range [...]struct{ name, val string }{
		{"connector", s.Connector}, {"name", s.Name}, {"database", s.Database}, {"schema", s.Schema},
		{"table", s.Table}, {"position", s.Position},
	} {
		if f.val != "" {
			field(f.name)
			dst = appendString(dst, f.val)
		}
	}
	if s.CommitTS != nil {
		if err := checkTime("source commit_ts", *s.CommitTS); err != nil {
			return dst, err
		}
		field("commit_ts")
		dst = append(dst, '"')
		dst = AppendTimestamp(dst, *s.CommitTS)
		dst = append(dst, '"')
	}
	if s.Snapshot {
		field("snapshot")
		dst = append(dst, "true"...)
	}
	if s.Commit != "" {
		field("commit")
		dst = appendString(dst, s.Commit)
	}
	if s.LastCommit != "" {
		field("last_commit")
		dst = appendString(dst, s.LastCommit)
	}
	if len(s.Columns) > 0 {
		field("columns")
		dst = append(dst, s.Columns...)
	}
	return append(dst, '}'), nil
}

// decodeSource reads what appendSource (or encoding/json) wrote. Unknown
// fields are ignored and null leaves a field empty, as with encoding/json.
func decodeSource(b []byte) (*SourceInfo, error) {
	box := new(struct {
		s  SourceInfo
		ts time.Time
	})
	s := &box.s
	err := objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "connector"):
			s.Connector, err = nameOrNull(v)
		case keyIs(k, "name"):
			s.Name, err = nameOrNull(v)
		case keyIs(k, "commit"):
			s.Commit, err = stringOrNull(v)
		case keyIs(k, "last_commit"):
			s.LastCommit, err = stringOrNull(v)
		case keyIs(k, "database"):
			s.Database, err = nameOrNull(v)
		case keyIs(k, "schema"):
			s.Schema, err = nameOrNull(v)
		case keyIs(k, "table"):
			s.Table, err = nameOrNull(v)
		case keyIs(k, "position"):
			s.Position, err = stringOrNull(v)
		case keyIs(k, "columns"):
			if !isNull(v) {
				if len(v) == 0 || v[0] != '{' {
					err = fmt.Errorf("expected an object, got %s", abbrev(v))
				} else {
					s.Columns = internColumns(v)
				}
			}
		case keyIs(k, "commit_ts"):
			if !isNull(v) {
				if box.ts, err = parseTimestamp(v); err == nil {
					s.CommitTS = &box.ts
				}
			}
		case keyIs(k, "snapshot"):
			switch string(v) {
			case "true":
				s.Snapshot = true
			case "false", "null":
				s.Snapshot = false
			default:
				err = fmt.Errorf("expected true or false, got %s", abbrev(v))
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func isNull(v []byte) bool { return len(v) == 0 || string(v) == "null" }

// columnsIntern keeps one string per distinct source.columns, so that
// decoding a table's events does not copy its column list for each.
var columnsIntern struct {
	sync.Mutex
	m map[string]string
}

func internColumns(v []byte) string {
	columnsIntern.Lock()
	defer columnsIntern.Unlock()
	if s, ok := columnsIntern.m[string(v)]; ok {
		return s
	}
	if columnsIntern.m == nil || len(columnsIntern.m) >= maxCachedTables {
		columnsIntern.m = map[string]string{}
	}
	s := string(v)
	columnsIntern.m[s] = s
	return s
}

// stringOrNull decodes a string token; null gives "".
func stringOrNull(v []byte) (string, error) { return textOrNull(v, unquote) }

// nameOrNull is stringOrNull for names that repeat from event to event (a
// stream, a table, a connector): they are interned, as object keys are.
func nameOrNull(v []byte) (string, error) { return textOrNull(v, internKey) }

func textOrNull(v []byte, unquote func([]byte) (string, error)) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if v[0] != '"' {
		return "", fmt.Errorf("expected a string, got %s", abbrev(v))
	}
	return unquote(v)
}

// abbrev shortens a JSON token for an error message.
func abbrev(v []byte) string {
	if len(v) > 40 {
		return string(v[:37]) + "..."
	}
	return string(v)
}

// parseTypeToken reads an event_type string token without allocating.
func parseTypeToken(v []byte) (Type, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		body := v[1 : len(v)-1]
		for _, t := range Types {
			if string(body) == string(t) {
				return t, nil
			}
		}
	}
	s, err := stringOrNull(v)
	if err != nil {
		return "", err
	}
	return ParseType(s)
}

// rivvenBox holds an event together with the storage its pointer fields
// point to, so that decoding allocates once for all of them.
type rivvenBox struct {
	e   Event
	ns  string
	seq uint64
	sid uint32
}

func (rivvenCodec) Decode(b []byte) (*Event, error) {
	box := new(rivvenBox)
	e := &box.e
	e.Stream = "default"
	var haveType, haveTS bool
	err := objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "event_type"):
			e.Type, err = parseTypeToken(v)
			haveType = true
		case keyIs(k, "stream"):
			if v[0] != '"' {
				err = fmt.Errorf("expected a string, got %s", abbrev(v))
			} else {
				e.Stream, err = internKey(v)
			}
		case keyIs(k, "namespace"):
			if isNull(v) {
				e.Namespace = nil
			} else if box.ns, err = nameOrNull(v); err == nil {
				e.Namespace = &box.ns
			}
		case keyIs(k, "timestamp"):
			e.Timestamp, err = parseTimestamp(v)
			haveTS = true
		case keyIs(k, "data"):
			e.Data = RawPayload(v)
		case keyIs(k, "metadata"):
			e.Metadata = Metadata{}
			err = decodeMetadata(v, &e.Metadata, &box.seq, &box.sid)
		case keyIs(k, "key"):
			e.Key = nil
			if !isNull(v) {
				e.Key = json.RawMessage(v)
			}
		case keyIs(k, "source"):
			e.Source = nil
			if !isNull(v) {
				e.Source, err = decodeSource(v)
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
	e.Type = unwire(e.Type, &e.Metadata)
	return e, nil
}

// decodeMetadata reads EventMetadata into m. The known fields follow serde:
// null (or absence) leaves them unset and a value of the wrong type is an
// error; every other key is kept, in order, in Extra. seq and sid, when not
// nil, are where Sequence and SchemaID point.
func decodeMetadata(b []byte, m *Metadata, seq *uint64, sid *uint32) error {
	if isNull(b) {
		return nil
	}
	return objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "position"):
			m.Position, err = stringOrNull(v)
		case keyIs(k, "transaction_id"):
			m.TransactionID, err = stringOrNull(v)
		case keyIs(k, "sequence"):
			m.Sequence = nil
			if !isNull(v) {
				var n uint64
				if n, err = parseUint(v, 64); err == nil {
					if seq == nil {
						seq = new(uint64)
					}
					*seq = n
					m.Sequence = seq
				}
			}
		case keyIs(k, "schema_id"):
			m.SchemaID = nil
			if !isNull(v) {
				var n uint64
				if n, err = parseUint(v, 32); err == nil {
					if sid == nil {
						sid = new(uint32)
					}
					*sid = uint32(n)
					m.SchemaID = sid
				}
			}
		case keyIs(k, "schema_subject"):
			m.SchemaSubject, err = stringOrNull(v)
		default:
			var key string
			if key, err = internKey(k); err == nil {
				m.Extra = append(m.Extra, Field{Key: key, Value: json.RawMessage(v)})
			}
		}
		if err != nil {
			return fmt.Errorf("metadata.%s: %w", k[1:len(k)-1], err)
		}
		return nil
	})
}

// parseUint reads an unsigned integer token of at most bits bits.
func parseUint(v []byte, bits int) (uint64, error) {
	var n uint64
	ok := len(v) > 0 && len(v) <= 20 && (v[0] != '0' || len(v) == 1)
	for _, c := range v {
		if c < '0' || c > '9' {
			ok = false
			break
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			ok = false
			break
		}
		n = n*10 + d
	}
	if !ok || bits < 64 && n >= 1<<bits {
		return 0, fmt.Errorf("expected an unsigned %d-bit integer, got %s", bits, abbrev(v))
	}
	return n, nil
}

// parseLSN reads PostgreSQL's X/Y text form of a WAL position.
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
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

// debeziumSource is the part of a Debezium source block that the decoder
// uses; PostgreSQL, MySQL and our own encoder fill different parts of it.
type debeziumSource struct {
	Connector string
	Name      string
	TsMs      int64
	TsNs      int64
	Snapshot  bool
	DB        string
	Schema    string
	Table     string
	Position  string
	LSN       string
	File      string
	Pos       string
	GTID      string
	TxID      string
}

func decodeDebeziumSource(b []byte, src *debeziumSource) error {
	return objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "connector"):
			src.Connector, err = stringOrNull(v)
		case keyIs(k, "name"):
			src.Name, err = stringOrNull(v)
		case keyIs(k, "ts_ms"):
			if !isNull(v) {
				src.TsMs, err = parseInt(v)
			}
		case keyIs(k, "ts_us"):
			if !isNull(v) && src.TsNs == 0 {
				var us int64
				if us, err = parseInt(v); err == nil {
					src.TsNs = us * 1000
				}
			}
		case keyIs(k, "ts_ns"):
			if !isNull(v) {
				src.TsNs, err = parseInt(v)
			}
		case keyIs(k, "snapshot"):
			// "true", "last", "first", "incremental", ... or a boolean in
			// old versions: anything but false means a snapshot.
			switch string(v) {
			case "false", `"false"`, "null", `""`:
				src.Snapshot = false
			default:
				src.Snapshot = true
			}
		case keyIs(k, "db"):
			src.DB, err = stringOrNull(v)
		case keyIs(k, "schema"):
			src.Schema, err = stringOrNull(v)
		case keyIs(k, "table"):
			src.Table, err = stringOrNull(v)
		case keyIs(k, "position"):
			src.Position, err = stringOrNull(v)
		case keyIs(k, "lsn"):
			src.LSN, err = scalarString(v)
		case keyIs(k, "file"):
			src.File, err = stringOrNull(v)
		case keyIs(k, "pos"):
			src.Pos, err = scalarString(v)
		case keyIs(k, "gtid"):
			src.GTID, err = stringOrNull(v)
		case keyIs(k, "txId"):
			src.TxID, err = scalarString(v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
}

// scalarString gives a number or string token as text; null gives "".
func scalarString(v []byte) (string, error) {
	if len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
		return string(v), nil
	}
	return stringOrNull(v)
}

// parseInt reads a signed 64-bit integer token.
func parseInt(v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("expected an integer, got %s", abbrev(v))
	}
	return n, nil
}

func (*debeziumCodec) Decode(b []byte) (*Event, error) {
	return decodeDebezium(b, 0)
}

func decodeDebezium(b []byte, depth int) (*Event, error) {
	var before, after, source, op, tsMs, txn, payload, changes []byte
	err := objectFields(b, func(k, v []byte) error {
		switch {
		case keyIs(k, "tableChanges"):
			changes = v
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
	if op == nil && payload != nil && payload[0] == '{' && depth == 0 {
		return decodeDebezium(payload, depth+1) // JSON-converter {schema, payload} wrapper
	}
	if op == nil && changes != nil {
		// A schema change record: its first table change is the data.
		var table []byte
		err := arrayObjects(changes, func(n int, el []byte) (int, error) {
			return objectFieldsEnd(el, func(k, v []byte) error {
				if n == 0 && keyIs(k, "table") {
					table = v
				}
				return nil
			})
		})
		if err != nil {
			return nil, fmt.Errorf("debezium schema change: tableChanges: %w", err)
		}
		op, after = []byte(`"s"`), table
	}
	if op == nil {
		return nil, fmt.Errorf("debezium envelope: missing op")
	}
	opc, err := stringOrNull(op)
	if err != nil {
		return nil, fmt.Errorf("debezium envelope: op: %w", err)
	}
	box := new(struct {
		e   Event
		ns  string
		src SourceInfo
		ct  time.Time
		seq uint64
	})
	e := &box.e
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
	case "s":
		e.Type, e.Data = Schema, RawPayload(after)
	default:
		return nil, fmt.Errorf("debezium envelope: unknown op %q (allowed: c, u, d, r, t)", opc)
	}
	if (opc == "c" || opc == "r") && isNull(after) || opc == "d" && isNull(before) {
		return nil, fmt.Errorf("debezium envelope: op %q without row", opc)
	}
	var src debeziumSource
	if !isNull(source) {
		if err := decodeDebeziumSource(source, &src); err != nil {
			return nil, fmt.Errorf("debezium envelope: source: %w", err)
		}
	}
	// The event time is the commit time (source.ts_*); the top-level
	// ts_ms is when the connector processed the change, used only when
	// the source block has no time.
	var ms int64
	if !isNull(tsMs) {
		if ms, err = parseInt(tsMs); err != nil {
			return nil, fmt.Errorf("debezium envelope: ts_ms: %w", err)
		}
	}
	switch {
	case src.TsNs != 0 && src.TsNs/1_000_000 == src.TsMs:
		e.Timestamp = time.Unix(0, src.TsNs).UTC()
	case src.TsMs != 0:
		e.Timestamp = time.UnixMilli(src.TsMs).UTC()
	default:
		e.Timestamp = time.UnixMilli(ms).UTC()
	}
	if err := checkTime("ts_ms", e.Timestamp); err != nil {
		return nil, fmt.Errorf("debezium envelope: %w", err)
	}
	e.Stream = orDefault(src.Table, "default")
	if box.ns = orDefault(src.Schema, src.DB); box.ns != "" {
		e.Namespace = &box.ns
	}
	info := &box.src
	*info = SourceInfo{Connector: src.Connector, Name: src.Name, Database: src.DB, Schema: src.Schema, Table: src.Table}
	lsn, lsnErr := strconv.ParseUint(src.LSN, 10, 64)
	switch {
	case src.Position != "":
		info.Position = src.Position
	case src.LSN != "" && lsnErr == nil && src.Connector == "postgresql":
		// PostgreSQL's own X/Y spelling, as postgres-cdc writes it.
		info.Position = strings.ToUpper(strconv.FormatUint(lsn>>32, 16) + "/" + strconv.FormatUint(lsn&0xffffffff, 16))
	case src.LSN != "":
		info.Position = "lsn:" + src.LSN
	case src.File != "":
		info.Position = src.File + ":" + src.Pos
	case src.GTID != "":
		info.Position = "gtid:" + src.GTID
	}
	if src.TsMs != 0 {
		box.ct = e.Timestamp
		if err := checkTime("source ts_ms", box.ct); err != nil {
			return nil, fmt.Errorf("debezium envelope: %w", err)
		}
		info.CommitTS = &box.ct
	}
	info.Snapshot = opc == "r" || src.Snapshot
	e.Source = info
	e.Metadata.Position = info.Position
	e.Metadata.TransactionID = src.TxID // PostgreSQL's source.txId
	if e.Metadata.TransactionID == "" {
		e.Metadata.TransactionID = src.GTID // MySQL's transaction GTID
	}
	if !isNull(txn) {
		// The transaction block (provide.transaction.metadata=true).
		_ = objectFields(txn, func(k, v []byte) error {
			switch {
			case keyIs(k, "id"):
				if id, err := scalarString(v); err == nil && id != "" {
					e.Metadata.TransactionID = id
				}
			case keyIs(k, "total_order"):
				if n, err := parseUint(v, 64); err == nil {
					box.seq = n
					e.Metadata.Sequence = &box.seq
				}
			}
			return nil
		})
	}
	return e, nil
}

// ---- CloudEvents 1.0 (structured JSON) -------------------------------------

const fnvOffset = uint64(14695981039346656037)

// fnvAdd continues an FNV-1a hash over s.
func fnvAdd[T string | []byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (*cloudEventsCodec) Decode(b []byte) (*Event, error) {
	box := new(rivvenBox)
	e := &box.e
	e.Stream = "default"
	var typ, op []byte
	err := objectFields(b, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "specversion"):
			if string(v) != `"1.0"` {
				var s string
				if s, err = stringOrNull(v); err == nil {
					err = fmt.Errorf("unsupported specversion %q", s)
				}
			}
		case keyIs(k, "type"):
			if v[0] != '"' {
				err = fmt.Errorf("expected a string, got %s", abbrev(v))
			}
			typ = v
		case keyIs(k, "time"):
			e.Timestamp, err = parseTimestamp(v)
		case keyIs(k, "data"):
			e.Data = RawPayload(v)
		case keyIs(k, "data_base64"):
			var s string
			if s, err = stringOrNull(v); err == nil {
				var raw []byte
				if raw, err = decodeBase64(s); err == nil {
					if json.Valid(raw) {
						e.Data = RawPayload(raw)
					} else {
						// Not JSON (binary or text): keep the base64 string,
						// the usual JSON spelling of bytes.
						e.Data = RawPayload(v)
					}
				}
			}
		case keyIs(k, "rivvenstream"):
			if v[0] != '"' {
				err = fmt.Errorf("expected a string, got %s", abbrev(v))
			} else {
				e.Stream, err = internKey(v)
			}
		case keyIs(k, "rivvennamespace"):
			if isNull(v) {
				e.Namespace = nil
			} else if box.ns, err = nameOrNull(v); err == nil {
				e.Namespace = &box.ns
			}
		case keyIs(k, "rivvenop"):
			op = v
		case keyIs(k, "partitionkey"):
			var s string
			if s, err = stringOrNull(v); err == nil && s != "" {
				if json.Valid([]byte(s)) {
					e.Key = json.RawMessage(s)
				} else {
					e.Key = appendString(nil, s)
				}
			}
		case keyIs(k, "rivvenmetadata"):
			e.Metadata = Metadata{}
			if v, err = jsonTextOrObject(v); err == nil {
				err = decodeMetadata(v, &e.Metadata, &box.seq, &box.sid)
			}
		case keyIs(k, "rivvensource"):
			e.Source = nil
			if v, err = jsonTextOrObject(v); err == nil && !isNull(v) {
				e.Source, err = decodeSource(v)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cloudevent: %w", err)
	}
	if op != nil {
		e.Type, err = parseTypeToken(op)
	} else {
		// type is [io.]rivven.<stream>.<op>; streams may contain dots.
		var t string
		if typ != nil {
			t, err = unquote(typ)
		}
		t = strings.TrimPrefix(t, "io.")
		if i := strings.LastIndexByte(t, '.'); err == nil && strings.HasPrefix(t, "rivven.") && i > len("rivven") {
			if e.Stream == "default" && i > len("rivven.") {
				e.Stream = t[len("rivven."):i]
			}
			e.Type, err = ParseType(t[i+1:])
		} else if err == nil {
			e.Type = Record
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cloudevent: %w", err)
	}
	return e, nil
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// jsonTextOrObject returns the JSON an extension attribute carries: the
// text of a string (as written since extensions must not be objects), or
// the value itself (as events written before that still have it).
func jsonTextOrObject(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != '"' {
		return v, nil
	}
	s, err := unquote(v)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}
