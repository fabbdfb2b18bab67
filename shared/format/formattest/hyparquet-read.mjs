// Reads Parquet files with hyparquet, a JavaScript reader written
// independently of parquet-go and arrow-go, and prints one JSON line per
// file: the path_in_schema of every column chunk of every row group, and
// the rows. Usage: node hyparquet-read.mjs HYPARQUET_DIR FILE...
// hyparquet is installed under .ci/node (pinned by its package-lock.json).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'

const [dir, ...files] = process.argv.slice(2)
const { parquetMetadata, parquetReadObjects } = await import(pathToFileURL(join(dir, 'src', 'index.js')).href)
// hyparquet reads UNCOMPRESSED and SNAPPY itself; node's zlib adds these.
const compressors = {
  GZIP: input => new Uint8Array(gunzipSync(input)),
  BROTLI: input => new Uint8Array(brotliDecompressSync(input)),
}

for (const f of files) {
  const b = readFileSync(f)
  const file = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)
  const out = { file: f }
  try {
    const meta = parquetMetadata(file)
    out.paths = meta.row_groups.map(rg => rg.columns.map(c => c.meta_data.path_in_schema.join('.')))
    out.rows = await parquetReadObjects({ file, compressors })
  } catch (e) {
    out.error = String(e && e.message || e)
  }
  // INT64 columns come back as BigInt, which JSON cannot hold: as text.
  console.log(JSON.stringify(out, (k, v) => typeof v === 'bigint' ? v.toString() : v))
}
