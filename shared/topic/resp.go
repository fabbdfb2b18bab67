package topic

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// rawReply collects a raw RESP reply (redis.NewRawWriteToCmd) in one
// buffer: strings arrive through ReadFrom with their length known, so
// they are read straight into place.
type rawReply struct{ b []byte }

func (w *rawReply) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *rawReply) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	lr, limited := r.(*io.LimitedReader)
	if limited {
		w.b = slices.Grow(w.b, int(lr.N))
	}
	for !limited || lr.N > 0 {
		if len(w.b) == cap(w.b) {
			w.b = slices.Grow(w.b, 4096)
		}
		k, err := r.Read(w.b[len(w.b):cap(w.b)])
		w.b = w.b[:len(w.b)+k]
		n += int64(k)
		if err == io.EOF {
			if limited && lr.N > 0 {
				return n, io.ErrUnexpectedEOF
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// decodeXRead reads XREAD's raw reply for one stream, in RESP2 (an array
// of [stream, entries]) or RESP3 (a map stream → entries); a null reply
// is no messages. Keys, values and header values are slices of raw with
// their capacity capped, so an append to one cannot run into the next.
func decodeXRead(raw []byte, topic string, partition int32) ([]Message, error) {
	rd := respReader{b: raw}
	kind, n, _, err := rd.next()
	if err != nil || kind == respNull || n == 0 {
		return nil, err
	}
	switch kind {
	case '*': // [[stream, entries]]
		if kind, n, _, err = rd.next(); err != nil || kind != '*' || n != 2 {
			return nil, rd.unexpected(err, "a [stream, entries] pair")
		}
	case '%': // {stream: entries}
	default:
		return nil, rd.unexpected(nil, "an array or map of streams")
	}
	if kind, _, _, err = rd.next(); err != nil || kind != '$' {
		return nil, rd.unexpected(err, "the stream's name")
	}
	kind, n, _, err = rd.next()
	if err != nil || kind == respNull {
		return nil, err
	}
	if kind != '*' {
		return nil, rd.unexpected(nil, "an array of entries")
	}
	out := make([]Message, 0, n)
	// The epoch header most messages carry alone comes from one array.
	epochs := make([]Header, 0, n)
	for range n {
		m, err := rd.entry(topic, partition, &epochs)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// entry reads one stream entry, [id, [field, value, ...]], as a message:
// fields k (key), v (value), h (headers), t (ms), e (producer epoch).
func (rd *respReader) entry(topic string, partition int32, epochs *[]Header) (Message, error) {
	kind, n, _, err := rd.next()
	if err != nil || kind != '*' || n < 2 {
		return Message{}, rd.unexpected(err, "an entry")
	}
	kind, _, id, err := rd.next()
	if err != nil || kind != '$' {
		return Message{}, rd.unexpected(err, "an entry id")
	}
	seq, ok := entrySeq(id)
	if !ok {
		return Message{}, fmt.Errorf("%s[%d]: entry %s was not written by this transport", topic, partition, id)
	}
	m := Message{Topic: topic, Partition: partition, Offset: seq - 1}
	kind, nf, _, err := rd.next()
	if err != nil {
		return Message{}, err
	}
	switch kind {
	case '*':
	case '%':
		nf *= 2
	case respNull:
		nf = 0
	default:
		return Message{}, rd.unexpected(nil, "an entry's fields")
	}
	var epoch []byte
	for range nf / 2 {
		k1, _, f, err := rd.next()
		if err != nil {
			return Message{}, err
		}
		k2, _, v, err := rd.next()
		if err != nil {
			return Message{}, err
		}
		if k1 != '$' || k2 != '$' {
			return Message{}, rd.unexpected(nil, "a field and its value")
		}
		if len(f) != 1 {
			continue
		}
		switch f[0] {
		case 'k':
			if len(v) > 0 {
				m.Key = v
			}
		case 'v':
			m.Value = v
		case 'h':
			if len(v) > 0 {
				m.Headers = decodeHeaders(v)
			}
		case 't':
			if ms, ok := parseDigits(v); ok {
				m.Time = time.UnixMilli(ms)
			}
		case 'e':
			if string(v) != "0" {
				epoch = v
			}
		}
	}
	if epoch != nil {
		h := Header{Key: EpochHeader, Value: epoch}
		if m.Headers == nil && len(*epochs) < cap(*epochs) {
			i := len(*epochs)
			*epochs = append(*epochs, h)
			m.Headers = (*epochs)[i : i+1 : i+1]
		} else {
			m.Headers = append(m.Headers, h)
		}
	}
	// An entry with more elements (XREADGROUP's delivery metadata) has
	// them after its fields.
	for range n - 2 {
		if err := rd.skip(); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

// entrySeq is the sequence part of an entry id "<ms>-<seq>".
func entrySeq(id []byte) (int64, bool) {
	if i := bytes.IndexByte(id, '-'); i >= 0 {
		return parseDigits(id[i+1:])
	}
	return 0, false
}

// parseDigits parses a non-negative decimal integer of up to 18 digits.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// respNull is the kind next reports for a null (RESP2 $-1 or *-1, RESP3 _).
const respNull = '_'

// respReader walks a raw RESP2/RESP3 reply.
type respReader struct {
	b []byte
	i int
}

// next reads one element's header: its kind ('$' for every string, '*'
// for arrays, sets and pushes, '%' for maps and attributes, ':' for every
// number, respNull), the count of an aggregate (a map's in pairs), and a
// string's bytes (a capacity-capped slice of the reply). An error reply
// comes back as a replyError.
func (rd *respReader) next() (kind byte, n int, str []byte, err error) {
	if rd.i >= len(rd.b) {
		return 0, 0, nil, io.ErrUnexpectedEOF
	}
	end := bytes.Index(rd.b[rd.i:], crlf)
	if end < 1 {
		return 0, 0, nil, io.ErrUnexpectedEOF
	}
	kind, line := rd.b[rd.i], rd.b[rd.i+1:rd.i+end:rd.i+end]
	rd.i += end + 2
	switch kind {
	case '$', '=', '!': // bulk, verbatim and bulk error strings
		l, ok := parseLen(line)
		if !ok {
			return respNull, 0, nil, nil // $-1
		}
		if rd.i+l+2 > len(rd.b) {
			return 0, 0, nil, io.ErrUnexpectedEOF
		}
		str = rd.b[rd.i : rd.i+l : rd.i+l]
		rd.i += l + 2
		if kind == '!' {
			return 0, 0, nil, replyError(str)
		}
		return '$', 0, str, nil
	case '+':
		return '$', 0, line, nil
	case '-':
		return 0, 0, nil, replyError(line)
	case '*', '~', '>', '%', '|':
		l, ok := parseLen(line)
		if !ok {
			return respNull, 0, nil, nil // *-1
		}
		if kind == '%' || kind == '|' {
			return '%', l, nil, nil
		}
		return '*', l, nil, nil
	case '_':
		return respNull, 0, nil, nil
	case ':', ',', '#', '(':
		return ':', 0, line, nil
	}
	return 0, 0, nil, fmt.Errorf("unexpected RESP type %q", kind)
}

// replyError is an error reply found in a raw reply: a redis.Error, as
// go-redis's own replies are, so that it is classified the same way.
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError marks it a Redis error reply (redis.Error).
func (replyError) RedisError() {}

var _ redis.Error = replyError("")

// skip reads past one element, aggregates included.
func (rd *respReader) skip() error {
	kind, n, _, err := rd.next()
	if err != nil {
		return err
	}
	if kind == '%' {
		n *= 2
	}
	if kind == '*' || kind == '%' {
		for range n {
			if err := rd.skip(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (rd *respReader) unexpected(err error, want string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("unexpected reply: want %s at byte %d", want, rd.i)
}

var crlf = []byte("\r\n")

// parseLen parses a RESP length; false for -1 (null).
func parseLen(b []byte) (int, bool) {
	n, ok := parseDigits(b)
	return int(n), ok
}
