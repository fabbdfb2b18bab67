// Reads an Iceberg table with icebird, a JavaScript Iceberg reader (on
// hyparquet) that shares no code with iceberg-go, and prints one JSON
// object: the rows, each value tagged with its JavaScript type, or the
// error icebird raised.
//
// Usage: node icebird-read.mjs ICEBIRD_DIR PREFIX BASE TABLE_URL METADATA_FILE
//
// icebird reads only through fetch. The table's metadata, manifest lists
// and manifests name files by their file:// URLs (PREFIX is the
// warehouse's), which node's fetch cannot open: every URL under PREFIX is
// fetched from BASE, an HTTP server over the warehouse directory, and any
// other URL fails the read.
import { register } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [dir, prefix, base, tableUrl, metadataFileName] = process.argv.slice(2)
register('./icebird-hooks.mjs', import.meta.url)
const { icebergRead } = await import(pathToFileURL(join(dir, 'src', 'index.js')).href)

const realFetch = globalThis.fetch
globalThis.fetch = (input, init) => {
  const url = typeof input === 'string' ? input : input.url
  if (!url.startsWith(prefix + '/')) {
    return Promise.reject(new Error(`icebird fetched ${url}, outside the warehouse`))
  }
  return realFetch(base + encodeURI(url.slice(prefix.length)), init)
}

// JSON has no BigInt, Date or undefined: each value becomes {t, v}.
function tag(v) {
  if (v === undefined) return { t: 'undefined' }
  if (v === null) return { t: 'null' }
  if (typeof v === 'bigint') return { t: 'bigint', v: v.toString() }
  if (v instanceof Date) return { t: 'date', v: v.toISOString() }
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return { t: typeof v, v }
  return { t: 'other', v: JSON.stringify(v, (k, x) => typeof x === 'bigint' ? x.toString() : x) }
}

const out = {}
try {
  const rows = await icebergRead({ tableUrl, metadataFileName })
  out.rows = rows.map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, tag(v)])))
} catch (e) {
  out.error = String(e && e.stack || e)
}
console.log(JSON.stringify(out))
