package events

import (
	"strconv"
	"strings"
)

// ---- CloudEvents 1.0 (structured JSON, encoding) ---------------------------

// cloudEventsCodec encodes structured-mode CloudEvents 1.0 JSON with type
// "<prefix>.<stream>.<event type>", source "/<connector>/<server
// name>/<database>" and the Rivven fields as extension attributes, so that
// decoding gives the same event back.
type cloudEventsCodec struct {
	prefix string
}

// CloudEvents is the CloudEvents codec with type prefix "io.rivven".
var CloudEvents Codec = &cloudEventsCodec{prefix: "io.rivven"}

func (*cloudEventsCodec) Name() string        { return CodecCloudEvents }
func (*cloudEventsCodec) ContentType() string { return "application/cloudevents+json" }

func (c *cloudEventsCodec) Append(dst []byte, e *Event) ([]byte, error) {
	n := len(dst)
	if err := checkTime("timestamp", e.Timestamp); err != nil {
		return dst, err
	}
	var err error
	dst = append(dst, `{"specversion":"1.0","type":"`...)
	dst = appendEscaped(dst, c.prefix)
	dst = append(dst, '.')
	dst = appendEscaped(dst, e.Stream)
	dst = append(dst, '.')
	dst = appendEscaped(dst, string(e.Type))
	dst = append(dst, `","source":"`...)
	dst = appendCloudEventSource(dst, e)
	dst = append(dst, `","id":"`...)
	dst = appendCloudEventID(dst, e)
	dst = append(dst, `","time":"`...)
	dst = AppendTimestamp(dst, e.Timestamp)
	dst = append(dst, `","datacontenttype":"application/json","data":`...)
	if dst, err = e.Data.AppendJSON(dst); err != nil {
		return dst[:n], err
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
		// The CloudEvents partitioning extension: a string, here the key's JSON.
		dst = append(dst, `,"partitionkey":"`...)
		dst = appendEscaped(dst, string(e.Key))
		dst = append(dst, '"')
	}
	// CloudEvents extension attributes are strings, numbers, booleans,
	// binaries, URIs or timestamps, never objects (CloudEvents SDKs reject
	// an event that has one), so metadata and source travel as JSON text.
	if md := &e.Metadata; md.Position != "" || md.TransactionID != "" || md.Sequence != nil ||
		md.SchemaID != nil || md.SchemaSubject != "" || len(md.Extra) > 0 {
		dst = append(dst, `,"rivvenmetadata":"`...)
		dst = appendEscaped(dst, string(appendMetadata(nil, md, Field{})))
		dst = append(dst, '"')
	}
	if e.Source != nil {
		src, err := appendSource(nil, e.Source)
		if err != nil {
			return dst[:n], err
		}
		dst = append(dst, `,"rivvensource":"`...)
		dst = appendEscaped(dst, string(src))
		dst = append(dst, '"')
	}
	return append(dst, '}'), nil
}

// appendCloudEventSource appends the source attribute, JSON-escaped:
// /<connector>/<server name>/<database>, so that events of two databases
// (or two servers) never share source + id. Parts the event lacks are
// left out; an event without a source block is "rivven-connect".
func appendCloudEventSource(dst []byte, e *Event) []byte {
	s := e.Source
	if s == nil || s.Connector == "" && s.Name == "" && s.Database == "" {
		return append(dst, "rivven-connect"...)
	}
	for _, p := range [...]string{orDefault(s.Connector, "rivven"), s.Name, s.Database} {
		if p != "" {
			dst = append(dst, '/')
			dst = appendEscaped(dst, uriSegment(p))
		}
	}
	return dst
}

// uriSegment escapes what a URI-reference path segment cannot hold.
func uriSegment(s string) string {
	if !strings.ContainsAny(s, "/%?# ") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/', '%', '?', '#', ' ':
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c), 16)))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// appendCloudEventID appends an id that is the same for the same change
// however the stream was resumed (consumers dedupe on source + id),
// JSON-escaped:
//   - a change of a transaction: <ns>.<stream>:<commit position>:<index in
//     the transaction> (source.commit and metadata.sequence);
//   - a snapshot row: <ns>.<stream>:snapshot@<snapshot position>:<key>, so
//     a row read again by the same snapshot after a restart keeps its id;
//   - else <stream>:<metadata.position>[:<sequence>] when the source gave a
//     position, or a hash of stream, type, timestamp and data.
func appendCloudEventID(dst []byte, e *Event) []byte {
	src := e.Source
	switch {
	case src != nil && src.Commit != "" && e.Metadata.Sequence != nil:
		dst = appendStreamName(dst, e)
		dst = append(dst, ':')
		dst = appendEscaped(dst, src.Commit)
		dst = append(dst, ':')
		return strconv.AppendUint(dst, *e.Metadata.Sequence, 10)
	case src != nil && (e.Type == SnapshotRead || src.Snapshot && (e.Type == Insert || e.Type == Record)) && src.Position != "" && len(e.Key) > 0:
		dst = appendStreamName(dst, e)
		dst = append(dst, ":snapshot@"...)
		dst = appendEscaped(dst, src.Position)
		dst = append(dst, ':')
		return appendEscaped(dst, string(e.Key))
	case e.Metadata.Position != "":
		dst = appendEscaped(dst, e.Stream)
		dst = append(dst, ':')
		dst = appendEscaped(dst, e.Metadata.Position)
		if e.Metadata.Sequence != nil {
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, *e.Metadata.Sequence, 10)
		}
		return dst
	}
	var tsBuf [40]byte
	h := fnvOffset
	h = fnvAdd(h, e.Stream)
	h = fnvAdd(h, string(e.Type))
	h = fnvAdd(h, AppendTimestamp(tsBuf[:0], e.Timestamp))
	b, _ := e.Data.JSON()
	h ^= fnvAdd(fnvOffset, b)
	return strconv.AppendUint(dst, h, 16)
}

// appendStreamName appends <namespace>.<stream> (or the stream alone),
// JSON-escaped.
func appendStreamName(dst []byte, e *Event) []byte {
	if e.Namespace != nil && *e.Namespace != "" && !strings.HasPrefix(e.Stream, *e.Namespace+".") {
		dst = appendEscaped(dst, *e.Namespace)
		dst = append(dst, '.')
	}
	return appendEscaped(dst, e.Stream)
}
