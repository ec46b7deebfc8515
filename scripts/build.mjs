#!/usr/bin/env node
// `npm run build` (also run by `prepare`, so `npm ci` and `npm pack` build): compiles src/ to JavaScript with type
// declarations in dist/ (tsc -p tsconfig.build.json), then bundles the browser builds with esbuild:
//   dist/browser/edgecd-client.js   the client as one self-contained ES module
//   dist/browser/replica.js         the browser replica (also served by members at /ui/replica.js)
//   dist/worker/worker.js           the Worker and its Durable Object member class, for workerd
//   dist/cli/edgecd.cjs             the CLI bin/edgecd.js runs (one CommonJS file)
//   dist/cli/quick-get.cjs          the quick path of `edgecd get` it tries first (src/cli/quick-get.ts)
// and writes dist/.build-stamp last. bin/edgecd.js runs dist/ when the stamp is newer than every file under src/
// (an installed package has no src/), and the sources through tsx otherwise, so a checkout never runs stale output.
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildCliBundles } from './build-cli.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = resolve(root, 'dist')

rmSync(dist, { recursive: true, force: true })
// typescript's package exports hide bin/tsc from require.resolve; its file path is stable.
const tsc = resolve(root, 'node_modules/typescript/bin/tsc')
const r = spawnSync(process.execPath, [tsc, '-p', resolve(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
})
if (r.status !== 0) {
  console.error('build: tsc failed')
  process.exit(r.status ?? 1)
}

const { build } = await import('esbuild')
/** One self-contained browser ES module (no bare imports) per entry. */
const browserBundles = [
  { entry: 'src/client/index.ts', out: 'browser/edgecd-client.js' },
  { entry: 'src/runtime/browser/replica-entry.ts', out: 'browser/replica.js' },
]
mkdirSync(resolve(dist, 'browser'), { recursive: true })
for (const b of browserBundles) {
  await build({
    entryPoints: [resolve(root, b.entry)],
    outfile: resolve(dist, b.out),
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'warning',
  })
}
// The Worker (the package's `edgecd/worker`, wrangler's `main` for a deploy from node_modules, and what
// `edgecd serve --runtime workerd` runs from an installed package): one ES module for workerd with only `cloudflare:*`
// left as imports, and cbor-x's no-eval build (workerd forbids code generation in handlers; RUNTIMES.md §3, §5). The
// same options as src/runtime/node/workerd-bundle.ts.
await build({
  entryPoints: [resolve(root, 'src/runtime/workers/worker.ts')],
  outfile: resolve(dist, 'worker/worker.js'),
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  conditions: ['workerd', 'worker', 'browser'],
  mainFields: ['module', 'main'],
  external: ['cloudflare:*'],
  alias: { 'cbor-x': createRequire(import.meta.url).resolve('cbor-x/index-no-eval') },
  define: { 'process.env.NODE_DEBUG': 'false', 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
})
// The CLI as bin/edgecd.js runs it: dist/cli/edgecd.cjs and the quick path of `edgecd get` (scripts/build-cli.mjs).
await buildCliBundles(dist)
writeFileSync(resolve(dist, '.build-stamp'), `${new Date().toISOString()}\n`)
console.error(
  `build: dist/ (JavaScript, declarations, ${browserBundles.length} browser bundle(s), the Worker, the CLI)`,
)
