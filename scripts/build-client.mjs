#!/usr/bin/env node
// Bundles the TypeScript client (src/client/index.ts) for browsers with esbuild: one minified ESM file in
// dist/edgecd-client.js, then prints its raw and gzipped sizes. The target is under 30 KB gzipped.
//
//   node scripts/build-client.mjs            build and print sizes
//   node scripts/build-client.mjs --check    also exit 1 when the gzipped size is over the target
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const out = resolve(root, 'dist/edgecd-client.js')
const gzipBytesMax = 30 * 1024
mkdirSync(dirname(out), { recursive: true })
await build({
  entryPoints: [resolve(root, 'src/client/index.ts')],
  outfile: out,
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  // The client must not pull in runtime modules; fail the build if anything tries.
  external: [],
  logLevel: 'warning',
})
const bytes = readFileSync(out)
const gz = gzipSync(bytes, { level: 9 }).length
console.log(
  `dist/edgecd-client.js: ${(bytes.length / 1024).toFixed(1)} KB, ${(gz / 1024).toFixed(1)} KB gzipped (target < ${gzipBytesMax / 1024} KB)`,
)
if (process.argv.includes('--check') && gz > gzipBytesMax) process.exit(1)
