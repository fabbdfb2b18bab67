package format

import (
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// ParquetOptions tune format: parquet.
type ParquetOptions struct {
	Compression        string `yaml:"compression" default:"snappy" enum:"none,snappy,gzip,lz4,zstd,brotli" doc:"Page compression codec (lz4 is written as LZ4_RAW, the codec current readers expect)."`
	RowGroupSize       int    `yaml:"row_group_size" default:"10000" min:"1" doc:"Maximum rows per row group."`
	EnableStatistics   bool   `yaml:"enable_statistics" default:"true" doc:"Write min/max statistics of pages and column chunks (null counts are always written)."`
	DataPageSize       int    `yaml:"data_page_size" default:"1048576" min:"1024" doc:"Target size of a data page in bytes, before encoding and compression."`
	DictionaryPageSize int    `yaml:"dictionary_page_size" default:"1048576" min:"1" doc:"Size limit of a string column's dictionary in bytes; beyond it the row group's remaining pages are plain-encoded."`
}

func (p *ParquetOptions) validate() []spec.Problem {
	var ps []spec.Problem
	if _, ok := parquetCodecs[p.Compression]; !ok && p.Compression != "" {
		ps = append(ps, spec.Problem{Path: "compression", Message: fmt.Sprintf("unknown parquet compression %q (allowed: none, snappy, gzip, lz4, zstd, brotli)", p.Compression)})
	}
	if p.RowGroupSize < 0 {
		ps = append(ps, spec.Problem{Path: "row_group_size", Message: fmt.Sprintf("row_group_size must be at least 1, got %d", p.RowGroupSize)})
	}
	if p.DataPageSize != 0 && p.DataPageSize < 1024 {
		ps = append(ps, spec.Problem{Path: "data_page_size", Message: fmt.Sprintf("data_page_size must be at least 1024, got %d", p.DataPageSize)})
	}
	if p.DictionaryPageSize < 0 {
		ps = append(ps, spec.Problem{Path: "dictionary_page_size", Message: fmt.Sprintf("dictionary_page_size must be at least 1, got %d", p.DictionaryPageSize)})
	}
	return ps
}

var parquetCodecs = map[string]compress.Codec{
	"none":   &parquet.Uncompressed,
	"snappy": &parquet.Snappy,
	"gzip":   &parquet.Gzip,
	"lz4":    &parquet.Lz4Raw,
	"zstd":   &parquet.Zstd,
	"brotli": &parquet.Brotli,
}

// ParquetCodec is the page compression codec of a compression name
// (none, snappy, gzip, lz4 as LZ4_RAW, zstd, brotli), for sinks that
// write Parquet files of their own schema with the codecs this package's
// encoder uses.
func ParquetCodec(name string) (compress.Codec, bool) {
	c, ok := parquetCodecs[name]
	return c, ok
}

// parquetChunk is how many rows are turned into parquet.Rows before they
// are handed to the writer; it bounds the scratch memory per batch.
const parquetChunk = 1024

type parquetEncoder struct {
	opts  ParquetOptions
	table flatTable
	cols  []column

	sig    []byte
	lastW  *parquet.GenericWriter[any] // writer of the last schema, reused via Reset
	lastSg string

	buf []parquet.Row
}

func newParquetEncoder(o ParquetOptions) (*parquetEncoder, error) {
	// Zero values written in Go mean the documented defaults.
	if o.Compression == "" {
		o.Compression = "snappy"
	}
	if o.RowGroupSize == 0 {
		o.RowGroupSize = 10000
	}
	if o.DataPageSize == 0 {
		o.DataPageSize = 1 << 20
	}
	if o.DictionaryPageSize == 0 {
		o.DictionaryPageSize = 1 << 20
	}
	return &parquetEncoder{opts: o}, nil
}

func (p *parquetEncoder) Extension() string       { return ".parquet" }
func (p *parquetEncoder) ContentType() string     { return "application/vnd.apache.parquet" }
func (p *parquetEncoder) ContentEncoding() string { return "" }

// schema builds the file schema of the inferred columns: one optional
// leaf per column, strings dictionary-encoded; nested objects and arrays
// are strings of JSON text.
func (p *parquetEncoder) schema() *parquet.Schema {
	g := make(parquet.Group, len(p.cols))
	for _, c := range p.cols {
		var n parquet.Node
		switch c.kind {
		case kindBool:
			n = parquet.Leaf(parquet.BooleanType)
		case kindLong:
			n = parquet.Int(64)
		case kindDouble:
			n = parquet.Leaf(parquet.DoubleType)
		default:
			// Nested objects and arrays are JSON text in a plain UTF8
			// column: readers disagree on the JSON annotation (arrow-go
			// reads it as binary), while every reader takes a string.
			n = parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
		}
		// Every column is OPTIONAL, as the reference's inferred schemas
		// are nullable: a column that happens to have no null in one
		// batch must not make this file's schema incompatible with the
		// next one's (Spark, Hive and Iceberg merge optional columns).
		g[c.name] = parquet.Optional(n)
	}
	return parquet.NewSchema("schema", g)
}

func (p *parquetEncoder) writer(w io.Writer) (*parquet.GenericWriter[any], error) {
	sig := p.sig[:0]
	for _, c := range p.cols {
		sig = append(sig, c.name...)
		sig = append(sig, 0, byte(c.kind), boolByte(c.nullable))
	}
	p.sig = sig
	// Reusing the writer needs parquet-go v0.32.1 or later: v0.32.0's Reset
	// cleared the column paths it shared with the previous file's footer,
	// so every file after the first had an empty path_in_schema, which
	// readers other than arrow-go refuse (TestParquetEveryObjectReadable).
	if p.lastW != nil && string(sig) == p.lastSg {
		p.lastW.Reset(w)
		return p.lastW, nil
	}
	schema := p.schema()
	opts := []parquet.WriterOption{
		schema,
		parquet.Compression(parquetCodecs[p.opts.Compression]),
		parquet.MaxRowsPerRowGroup(int64(p.opts.RowGroupSize)),
		parquet.PageBufferSize(p.opts.DataPageSize),
		parquet.DictionaryMaxBytes(int64(p.opts.DictionaryPageSize)),
		parquet.DataPageStatistics(p.opts.EnableStatistics),
		// Version 1 data pages: what every reader, old Hive and Presto
		// included, understands; v2 gains nothing for these columns.
		parquet.DataPageVersion(1),
	}
	if !p.opts.EnableStatistics {
		for _, c := range p.cols {
			opts = append(opts, parquet.SkipPageBounds(c.name))
		}
	}
	cfg, err := parquet.NewWriterConfig(opts...)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	pw := parquet.NewGenericWriter[any](w, cfg)
	p.lastW, p.lastSg = pw, string(sig)
	return pw, nil
}

func (p *parquetEncoder) Encode(w io.Writer, batch []*events.Event) error {
	t := &p.table
	if err := t.load(batch, nil); err != nil {
		return err
	}
	p.cols = t.infer()
	pw, err := p.writer(w)
	if err != nil {
		return err
	}
	defer pw.Reset(io.Discard) // do not keep the caller's writer
	for r := 0; r < t.nrows; r += parquetChunk {
		if err := p.writeChunk(pw, r, min(t.nrows, r+parquetChunk)); err != nil {
			p.lastW = nil // its state is unknown now
			return err
		}
	}
	if err := pw.Close(); err != nil {
		p.lastW = nil
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// writeChunk writes rows [from, to). Byte array values point into the
// events' JSON; the writer copies them into its column buffers during
// WriteRows.
func (p *parquetEncoder) writeChunk(pw *parquet.GenericWriter[any], from, to int) error {
	t := &p.table
	p.buf = p.buf[:0]
	for r := from; r < to; r++ {
		var row parquet.Row
		if len(p.buf) < cap(p.buf) {
			row = p.buf[:len(p.buf)+1][len(p.buf)][:0]
		}
		for j := range p.cols {
			c := &p.cols[j]
			x := t.cell(r, t.order[j])
			if !x.set || x.kind == kindNull {
				row = append(row, parquet.NullValue().Level(0, 0, j))
				continue
			}
			var v parquet.Value
			switch c.kind {
			case kindBool:
				v = parquet.BooleanValue(x.raw[0] == 't')
			case kindLong:
				n, err := x.long()
				if err != nil {
					return fmt.Errorf("parquet column %s: %w", c.name, err)
				}
				v = parquet.Int64Value(n)
			case kindDouble:
				f, err := x.double()
				if err != nil {
					return fmt.Errorf("parquet column %s: %w", c.name, err)
				}
				v = parquet.DoubleValue(f)
			default:
				// Strings are their text; promoted numbers and booleans
				// and nested values are their JSON text.
				v = parquet.ByteArrayValue(x.raw)
			}
			row = append(row, v.Level(0, 1, j))
		}
		p.buf = append(p.buf, row)
	}
	if _, err := pw.WriteRows(p.buf); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}
