package format

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/rivven/rivven-connect/events"
)

// textEncoder writes one batch of a text format to a buffered writer; the
// compression layer around it owns buffering and compression.
type textEncoder interface {
	encode(w *bufio.Writer, batch []*events.Event) error
	ext() string
	contentType() string
}

// compressed wraps a text encoder with an optional compressor. The
// compressor and the buffer are kept between batches and Reset onto each
// new object, because allocating a zstd or gzip writer per object costs
// more than encoding a small batch.
type compressed struct {
	inner textEncoder
	codec string
	bw    *bufio.Writer
	gz    *gzip.Writer
	zs    *zstd.Encoder
	sn    *snappy.Writer
	lz    *lz4.Writer
}

// compressionExt is the file suffix of each codec, as the reference's
// Output Compression table names them. Snappy uses the framing format
// (a stream, like the other three), under the reference's .snappy.
var compressionExt = map[string]string{
	"none":   "",
	"gzip":   ".gz",
	"zstd":   ".zst",
	"snappy": ".snappy",
	"lz4":    ".lz4",
}

func newCompressed(inner textEncoder, codec string) (*compressed, error) {
	c := &compressed{inner: inner, codec: codec, bw: bufio.NewWriterSize(io.Discard, 64<<10)}
	switch codec {
	case "none":
	case "gzip":
		c.gz = gzip.NewWriter(io.Discard)
	case "zstd":
		zs, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		c.zs = zs
	case "snappy":
		c.sn = snappy.NewBufferedWriter(io.Discard)
	case "lz4":
		c.lz = lz4.NewWriter(io.Discard)
	default:
		return nil, fmt.Errorf("unknown compression %q (allowed: none, gzip, zstd, snappy, lz4)", codec)
	}
	return c, nil
}

func (c *compressed) Extension() string   { return c.inner.ext() + compressionExt[c.codec] }
func (c *compressed) ContentType() string { return c.inner.contentType() }

// ContentEncoding is the HTTP Content-Encoding of the object. gzip and
// zstd are registered codings; snappy and lz4 are not, so their names are
// informational (clients will not decode them transparently).
func (c *compressed) ContentEncoding() string {
	if c.codec == "none" {
		return ""
	}
	return c.codec
}

func (c *compressed) Encode(w io.Writer, batch []*events.Event) error {
	var comp io.WriteCloser
	switch {
	case c.gz != nil:
		c.gz.Reset(w)
		comp = c.gz
	case c.zs != nil:
		c.zs.Reset(w)
		comp = c.zs
	case c.sn != nil:
		c.sn.Reset(w)
		comp = c.sn
	case c.lz != nil:
		c.lz.Reset(w)
		comp = c.lz
	}
	if comp == nil {
		c.bw.Reset(w)
	} else {
		c.bw.Reset(comp)
	}
	// Drop the reference to w whatever happens, so the encoder does not
	// keep the caller's writer (and its buffers) alive between batches.
	defer c.bw.Reset(io.Discard)
	if err := c.inner.encode(c.bw, batch); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if comp != nil {
		if err := comp.Close(); err != nil {
			return fmt.Errorf("%s: %w", c.codec, err)
		}
	}
	return nil
}
