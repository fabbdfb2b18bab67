// Package format serializes batches of events into whole objects (files)
// for storage sinks: JSON, JSON Lines, CSV, Avro (Object Container File or
// Confluent wire format) and Parquet, with optional compression of the
// text formats. The storage connector decides where an object goes; this
// package decides what its bytes are.
package format

import (
	"fmt"
	"io"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Format names.
const (
	JSON    = "json"
	JSONL   = "jsonl"
	CSV     = "csv"
	Avro    = "avro"
	Parquet = "parquet"
)

// Envelope names: what one event becomes in json/jsonl.
const (
	EnvelopeEvent = "event"
	EnvelopeRow   = "row"
)

// Options is the part of a sink's config that picks and tunes the format.
// Sinks embed it with `yaml:",inline"` and call Validate from their own Validate.
type Options struct {
	Format      string          `yaml:"format" default:"json" enum:"json,jsonl,csv,avro,parquet" doc:"Serialization of each object: json (one array), jsonl (one JSON value per line), csv, avro (Object Container File) or parquet."`
	Compression string          `yaml:"compression" default:"none" enum:"none,gzip,zstd,snappy,lz4" doc:"Compression of text formats (json, jsonl, csv); avro and parquet compress internally (see their blocks)."`
	Envelope    string          `yaml:"envelope" default:"event" enum:"event,row" doc:"What json/jsonl write per event: event (the full Rivven event JSON with type, stream, timestamp, metadata) or row (only the row: data, update's after, delete's before; non-data events skipped). csv, avro and parquet always write rows."`
	CSV         *CSVOptions     `yaml:"csv" doc:"CSV options (format: csv)."`
	Avro        *AvroOptions    `yaml:"avro" doc:"Avro options (format: avro)."`
	Parquet     *ParquetOptions `yaml:"parquet" doc:"Parquet options (format: parquet)."`
}

// Validate checks the rules that span fields. Paths are relative to the
// sink config ("csv.delimiter"); the caller prefixes its own path.
func (o *Options) Validate() []spec.Problem {
	var ps []spec.Problem
	f := o.format()
	switch f {
	case JSON, JSONL, CSV, Avro, Parquet:
	default:
		ps = append(ps, spec.Problem{Path: "format", Message: fmt.Sprintf("unknown format %q (allowed: json, jsonl, csv, avro, parquet)", o.Format)})
	}
	c := o.compression()
	switch c {
	case "none", "gzip", "zstd", "snappy", "lz4":
	default:
		ps = append(ps, spec.Problem{Path: "compression", Message: fmt.Sprintf("unknown compression %q (allowed: none, gzip, zstd, snappy, lz4)", o.Compression)})
	}
	if c != "none" && (f == Avro || f == Parquet) {
		ps = append(ps, spec.Problem{Path: "compression", Message: fmt.Sprintf("compression %q applies to json, jsonl and csv only; %s compresses internally: set %s.compression instead", c, f, f)})
	}
	switch o.Envelope {
	case "", EnvelopeEvent, EnvelopeRow:
	default:
		ps = append(ps, spec.Problem{Path: "envelope", Message: fmt.Sprintf("unknown envelope %q (allowed: event, row)", o.Envelope)})
	}
	if o.CSV != nil {
		if f != CSV {
			ps = append(ps, spec.Problem{Path: "csv", Message: fmt.Sprintf("csv options are set but format is %s", f)})
		}
		ps = append(ps, prefix("csv", o.CSV.validate())...)
	}
	if o.Avro != nil {
		if f != Avro {
			ps = append(ps, spec.Problem{Path: "avro", Message: fmt.Sprintf("avro options are set but format is %s", f)})
		}
		ps = append(ps, prefix("avro", o.Avro.validate())...)
	}
	if o.Parquet != nil {
		if f != Parquet {
			ps = append(ps, spec.Problem{Path: "parquet", Message: fmt.Sprintf("parquet options are set but format is %s", f)})
		}
		ps = append(ps, prefix("parquet", o.Parquet.validate())...)
	}
	return ps
}

func prefix(p string, ps []spec.Problem) []spec.Problem {
	for i := range ps {
		if ps[i].Path == "" {
			ps[i].Path = p
		} else {
			ps[i].Path = p + "." + ps[i].Path
		}
	}
	return ps
}

// format and compression apply the defaults, so that Options built in Go
// (not decoded from YAML) work with zero values.
func (o *Options) format() string {
	if o.Format == "" {
		return JSON
	}
	return o.Format
}

func (o *Options) compression() string {
	if o.Compression == "" {
		return "none"
	}
	return o.Compression
}

// Encoder turns one batch into one complete object (file). An Encoder may
// be reused for any number of batches but not concurrently.
type Encoder interface {
	Encode(w io.Writer, batch []*events.Event) error
	Extension() string       // with compression: ".jsonl.gz", ".csv.zst", ".json.snappy", ".jsonl.lz4", ".parquet", ".avro"
	ContentType() string     // application/json, application/x-ndjson, text/csv, application/avro, application/vnd.apache.parquet
	ContentEncoding() string // "gzip" etc. for compressed text formats, "" otherwise
}

// New returns the encoder the options describe. The options are validated
// first, so a sink that skipped Validate still gets a clear error.
func New(o Options) (Encoder, error) {
	if ps := o.Validate(); len(ps) > 0 {
		return nil, spec.Problems(ps)
	}
	var inner textEncoder
	switch o.format() {
	case JSON:
		inner = &jsonEncoder{array: true, rows: o.Envelope == EnvelopeRow}
	case JSONL:
		inner = &jsonEncoder{rows: o.Envelope == EnvelopeRow}
	case CSV:
		inner = newCSVEncoder(*orDefaults(o.CSV))
	case Avro:
		// Returned through explicit checks so that a failed constructor
		// gives a nil interface, not a typed nil pointer.
		enc, err := newAvroEncoder(*orDefaults(o.Avro))
		if err != nil {
			return nil, err
		}
		return enc, nil
	case Parquet:
		enc, err := newParquetEncoder(*orDefaults(o.Parquet))
		if err != nil {
			return nil, err
		}
		return enc, nil
	}
	enc, err := newCompressed(inner, o.compression())
	if err != nil {
		return nil, err
	}
	return enc, nil
}

// orDefaults returns the block, or its documented defaults when the
// config leaves it out.
func orDefaults[T any](p *T) *T {
	if p != nil {
		return p
	}
	p = new(T)
	if err := spec.ApplyDefaults(p); err != nil {
		// The default tags are constants of this package; a bad one is
		// a bug caught by the tests.
		panic(err)
	}
	return p
}
