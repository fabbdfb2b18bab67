package format

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/rivven/rivven-connect/events"
)

// jsonEncoder writes json (one array) or jsonl (one value per line). With
// envelope event each element is the event in Rivven's wire JSON (what
// events.Rivven writes); with envelope row it is the row only and
// non-data events are skipped.
type jsonEncoder struct {
	array bool
	rows  bool
	buf   []byte       // reused between events and batches
	line  bytes.Buffer // compacted multi-line payloads (jsonl)
}

func (j *jsonEncoder) ext() string {
	if j.array {
		return ".json"
	}
	return ".jsonl"
}

func (j *jsonEncoder) contentType() string {
	if j.array {
		return "application/json"
	}
	return "application/x-ndjson"
}

func (j *jsonEncoder) encode(w *bufio.Writer, batch []*events.Event) error {
	if j.array {
		w.WriteByte('[')
	}
	first := true
	for i, e := range batch {
		var b []byte
		var err error
		if j.rows {
			if !e.Type.IsData() {
				continue
			}
			if b, err = jsonRow(e); err == nil && b == nil {
				continue // a null row, as the tabular formats skip it
			}
		} else {
			j.buf, err = events.Rivven.Append(j.buf[:0], e)
			b = j.buf
		}
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if !j.array && bytes.ContainsAny(b, "\r\n") {
			// Payloads keep the bytes they arrived in, pretty-printed
			// JSON included; a JSON Lines record must be one line. Raw
			// CR and LF can only be white space (in strings they are
			// escaped), so compacting is safe.
			j.line.Reset()
			if err := json.Compact(&j.line, b); err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
			b = j.line.Bytes()
		}
		if j.array {
			if !first {
				w.WriteByte(',')
			}
			w.WriteByte('\n')
		}
		first = false
		w.Write(b)
		if !j.array {
			w.WriteByte('\n')
		}
	}
	if j.array {
		if !first {
			w.WriteByte('\n')
		}
		w.WriteByte(']')
		w.WriteByte('\n')
	}
	// bufio.Writer remembers its first error; Flush (by the caller)
	// reports it.
	return nil
}

// jsonRow returns the row's own bytes (an update's after image is a slice
// of its data): nothing decoded, nothing re-encoded. Unlike the tabular
// formats, any JSON value is a row here (a record's data may be a string
// or an array); nil means a null row.
func jsonRow(e *events.Event) ([]byte, error) {
	if e.Type == events.Update {
		return rowBytes(e)
	}
	b, err := e.Data.JSON()
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	return b, nil
}
