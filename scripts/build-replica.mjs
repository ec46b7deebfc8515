#!/usr/bin/env node
// Bundles the browser replica (src/runtime/browser/replica-entry.ts) into dist/browser/replica.js: one self-contained ES
// module (no bare imports), the file members serve at GET /ui/replica.js when esbuild is not installed. Members with
// esbuild build the same module in memory on the first request. Prints the raw and gzipped sizes.
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const out = resolve(root, 'dist/browser/replica.js')
mkdirSync(dirname(out), { recursive: true })
await build({
  entryPoints: [resolve(root, 'src/runtime/browser/replica-entry.ts')],
  outfile: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
})
const bytes = readFileSync(out)
const text = bytes.toString('utf8')
if (/\bimport\s*(?:[\w{},*\s]+from\s*)?["'][^./]/.test(text)) {
  console.error('dist/browser/replica.js has a bare import')
  process.exit(1)
}
console.log(
  `dist/browser/replica.js: ${(bytes.length / 1024).toFixed(1)} KB, ${(gzipSync(bytes, { level: 9 }).length / 1024).toFixed(1)} KB gzipped`,
)
