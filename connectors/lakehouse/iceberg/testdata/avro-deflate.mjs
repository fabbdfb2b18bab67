// The Avro deflate codec for icebird (see icebird-hooks.mjs): a block is
// raw RFC 1951 deflate data, as the Avro specification defines it.
import { inflateRawSync } from 'node:zlib'

export function gunzip(input) {
  const b = inflateRawSync(input)
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}
