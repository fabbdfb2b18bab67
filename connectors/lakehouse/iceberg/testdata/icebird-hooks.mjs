// Module hooks for icebird-read.mjs. icebird's Avro reader
// (src/avro/avro.read.js) inflates deflate blocks with the gunzip of
// hyparquet-compressors 1.1.1, which after the last deflate block looks
// for another gzip member 8 bytes (a gzip footer) further on. Avro's
// deflate codec is raw deflate, with no header or footer, so gunzip
// decodes the block again from its start, past the end of its buffer,
// until it overflows the stack or meets a stored block there and throws
// ("RangeError: offset is out of bounds"). Go's compress/flate ends every
// stream with an empty stored block, so without this hook icebird reads
// no manifest list iceberg-go writes. Only that one import is answered by
// avro-deflate.mjs (node's zlib); the Avro decoding, and everything else,
// stays icebird's.
const deflate = new URL('./avro-deflate.mjs', import.meta.url).href

export async function resolve(specifier, context, next) {
  if (specifier === 'hyparquet-compressors' && context.parentURL?.endsWith('/icebird/src/avro/avro.read.js')) {
    return { url: deflate, shortCircuit: true }
  }
  return next(specifier, context)
}
