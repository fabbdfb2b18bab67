// Package stdout is a sink that prints events to standard output, for
// debugging pipelines and for piping events into other tools (jq, awk).
package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "stdout",
		Aliases:     []string{"console"},
		Category:    catalog.Utility,
		Subcategory: "Debug",
		Description: "Prints events to standard output as JSON, JSON lines, a readable layout, text or TSV.",
		Tags:        []string{"console", "debug", "print", "terminal", "json", "jsonl", "tsv"},
	}, New)
}

// Config is the stdout sink's config block.
type Config struct {
	Format      string                    `yaml:"format" default:"json" enum:"json,jsonl,pretty,text,tsv" doc:"Output layout: json (one document per event, indented when pretty), jsonl (one compact line per event), pretty (a header line, then the indented data), text (timestamp, event type, stream and data on one line), tsv (tab-separated event_type, stream, namespace, timestamp, data)."`
	Pretty      bool                      `yaml:"pretty" default:"false" doc:"Indent the documents of format json."`
	Codec       string                    `yaml:"codec" default:"rivven" enum:"rivven,debezium,cloudevents" doc:"How formats json and jsonl render an event: Rivven event JSON, Debezium change envelope or CloudEvents."`
	Debezium    events.DebeziumOptions    `yaml:"debezium" doc:"Settings of codec debezium, named after the Debezium connector properties (dots as underscores), with Debezium's defaults."`
	CloudEvents events.CloudEventsOptions `yaml:"cloudevents" doc:"Settings of codec cloudevents."`
}

// Validate rejects settings the chosen format would silently ignore.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	jsonish := c.Format == "json" || c.Format == "jsonl"
	if c.Codec != events.CodecRivven && !jsonish {
		ps = append(ps, spec.Problem{Path: "codec", Message: fmt.Sprintf("codec applies to formats json and jsonl, not %q", c.Format)})
	}
	for _, oe := range events.CodecErrors(c.Codec, c.Debezium, c.CloudEvents, false) {
		ps = append(ps, spec.Problem{Path: oe.Path, Message: oe.Message})
	}
	if c.Pretty && c.Format != "json" && c.Format != "pretty" {
		ps = append(ps, spec.Problem{Path: "pretty", Message: fmt.Sprintf("pretty applies to format json; format %q is one line per event", c.Format)})
	}
	return ps
}

// Sink prints events. Each Write renders its batch into one buffer and
// writes it with a single call, so concurrent batches never interleave and
// a batch costs one syscall.
type Sink struct {
	format string
	indent bool
	codec  events.Codec

	mu  sync.Mutex
	w   io.Writer
	buf []byte
	tmp bytes.Buffer // scratch for json.Indent and json.Compact
}

// New builds a sink that writes to os.Stdout.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) { return newSink(cfg, os.Stdout) }

func newSink(cfg *Config, w io.Writer) (*Sink, error) {
	codec, err := events.NewCodec(cfg.Codec, cfg.Debezium, cfg.CloudEvents)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	switch cfg.Format {
	case "json", "jsonl", "pretty", "text", "tsv":
	default:
		return nil, connector.Fatal(fmt.Errorf("stdout: unknown format %q", cfg.Format))
	}
	return &Sink{format: cfg.Format, indent: cfg.Pretty && cfg.Format == "json", codec: codec, w: w}, nil
}

// maxKeep is the largest buffer kept between batches; a rare huge batch
// should not pin its memory forever.
const maxKeep = 4 << 20

// Write prints the batch. Events that cannot be rendered (say, a schema
// event under the Debezium codec) are reported in a *connector.WriteError;
// the others are printed.
func (s *Sink) Write(_ context.Context, batch []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	var failed map[int]error
	for i, e := range batch {
		mark := len(buf)
		var err error
		if buf, err = s.render(buf, e); err != nil {
			buf = buf[:mark]
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = fmt.Errorf("stdout: %w", err)
		}
	}
	if cap(buf) <= maxKeep {
		s.buf = buf
	} else {
		s.buf = nil
	}
	if len(buf) > 0 {
		if _, err := s.w.Write(buf); err != nil {
			return fmt.Errorf("stdout: %w", err)
		}
	}
	if failed != nil {
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

// render appends one event, ending in a newline.
func (s *Sink) render(b []byte, e *events.Event) ([]byte, error) {
	switch s.format {
	case "json", "jsonl":
		start := len(b)
		var err error
		if b, err = s.codec.Append(b, e); err != nil {
			if errors.Is(err, events.ErrSkipped) {
				return b, nil // left out by the encoding (no line)
			}
			return b, err
		}
		if s.indent {
			b, err = s.reformat(b, start, "", "  ")
		} else {
			b, err = s.oneLine(b, start)
		}
		return append(b, '\n'), err
	case "pretty":
		return s.appendPretty(b, e)
	case "text":
		b = events.AppendTimestamp(b, e.Timestamp)
		b = append(b, ' ')
		b = append(b, e.Type...)
		b = append(b, ' ')
		b = append(b, e.Stream...)
		b = append(b, ' ')
		b, err := s.appendData(b, e)
		return append(b, '\n'), err
	default: // tsv
		b = appendTSV(b, string(e.Type))
		b = append(b, '\t')
		b = appendTSV(b, e.Stream)
		b = append(b, '\t')
		b = appendTSV(b, e.NamespaceOr(""))
		b = append(b, '\t')
		b = events.AppendTimestamp(b, e.Timestamp)
		b = append(b, '\t')
		b, err := s.appendData(b, e)
		return append(b, '\n'), err
	}
}

// appendPretty renders a header line for people, then the data indented:
//
//	[2025-01-01T00:00:00Z] INSERT orders (shop) key={"order_id":1} position=0
//	  {
//	    "order_id": 1,
//	    ...
func (s *Sink) appendPretty(b []byte, e *events.Event) ([]byte, error) {
	b = append(b, '[')
	b = events.AppendTimestamp(b, e.Timestamp)
	b = append(b, "] "...)
	b = append(b, strings.ToUpper(string(e.Type))...)
	b = append(b, ' ')
	b = append(b, e.Stream...)
	if e.Namespace != nil {
		b = append(b, " ("...)
		b = append(b, *e.Namespace...)
		b = append(b, ')')
	}
	if len(e.Key) > 0 {
		b = append(b, " key="...)
		start := len(b)
		var err error
		if b, err = s.oneLine(append(b, e.Key...), start); err != nil {
			return b, fmt.Errorf("key: %w", err)
		}
	}
	if e.Metadata.Position != "" {
		b = append(b, " position="...)
		b = append(b, e.Metadata.Position...)
	}
	b = append(b, "\n  "...)
	start := len(b)
	b, err := e.Data.AppendJSON(b)
	if err != nil {
		return b, err
	}
	b, err = s.reformat(b, start, "  ", "  ")
	return append(b, '\n'), err
}

// appendData appends the event's data as compact JSON.
func (s *Sink) appendData(b []byte, e *events.Event) ([]byte, error) {
	start := len(b)
	b, err := e.Data.AppendJSON(b)
	if err != nil {
		return b, err
	}
	return s.oneLine(b, start)
}

// oneLine compacts b[start:] when it spans lines or holds tabs (raw data
// keeps the layout it arrived in); most JSON is compact already and is left
// alone without being parsed.
func (s *Sink) oneLine(b []byte, start int) ([]byte, error) {
	if !bytes.ContainsAny(b[start:], "\n\r\t") {
		return b, nil
	}
	s.tmp.Reset()
	if err := json.Compact(&s.tmp, b[start:]); err != nil {
		return b[:start], fmt.Errorf("invalid JSON: %w", err)
	}
	return append(b[:start], s.tmp.Bytes()...), nil
}

// reformat indents b[start:] in place.
func (s *Sink) reformat(b []byte, start int, prefix, indent string) ([]byte, error) {
	s.tmp.Reset()
	if err := json.Indent(&s.tmp, b[start:], prefix, indent); err != nil {
		return b[:start], fmt.Errorf("invalid JSON: %w", err)
	}
	return append(b[:start], s.tmp.Bytes()...), nil
}

// appendTSV appends a field with tab, newline, carriage return and
// backslash escaped, so every event stays one row of five columns.
func appendTSV(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\\':
			b = append(b, `\\`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
