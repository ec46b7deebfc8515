#!/usr/bin/env node
// `npm run build` (also run by `prepare`, so `npm ci` and `npm pack` build): compiles src/ to JavaScript with type
// declarations in dist/ (tsc -p tsconfig.build.json), then bundles the browser builds with esbuild:
//   dist/browser/edgecd-client.js   the client as one self-contained ES module
//   dist/browser/replica.js         the browser replica (also served by members at /ui/replica.js)
//   dist/worker/worker.js           the Worker and its Durable Object member class, for workerd
//   dist/cli/edgecd.cjs             the CLI bin/edgecd.js runs (one CommonJS file)
// and writes dist/.build-stamp last. bin/edgecd.js runs dist/ when the stamp is newer than every file under src/
// (an installed package has no src/), and the sources through tsx otherwise, so a checkout never runs stale output.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

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
// The CLI as bin/edgecd.js runs it: dist/cli/edgecd.cjs, one CommonJS file with every client command (a command's
// modules are evaluated only when it runs), which bin/edgecd.js compiles through vm.Script with V8's code cache.
// Start-up time is what etcdctl users compare us with (docs/benchmarks.md): CommonJS because Node's ES module loader
// costs a one-shot call more than the whole CLI's code (it loads fs/promises, resolves and links asynchronously), and
// one file because every file is a resolve, a read and a compile. npm packages stay require()s (installed beside us;
// only `watch` (ws) and a password prompt (read) load one), but for http-parser-js. `serve` and `snapshot` stay the
// tsc output (ES modules: the member's code), imported through the function bin/edgecd.js passes in as
// `__edgecdImport`: code compiled by vm.Script has no import() of its own on Node 20 once it comes from the code cache.
const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8'))
const esmSiblings = { './serve.js': ['runServe'], './snapshot.js': ['runSnapshot'] }
await build({
  entryPoints: [resolve(root, 'src/cli/main.ts')],
  outfile: resolve(dist, 'cli/edgecd.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // npm packages stay require()s, but for http-parser-js, which every http:// call uses (src/cli/http-fetch.ts).
  external: Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })
    .filter((n) => n !== 'http-parser-js')
    .flatMap((n) => [n, `${n}/*`]),
  // import() of node: modules, ws and read becomes require(): see above.
  supported: { 'dynamic-import': false },
  // import.meta.url computed when read (node:url's pathToFileURL costs a call about 0.5 ms; a `get` never reads it).
  define: { 'import.meta.url': '__edgecdMeta.url' },
  // Strict, as the ES modules it is built from (a directive counts only as the file's first statement).
  banner: {
    js: '"use strict";\nvar __edgecdMeta = { get url() { return require("node:url").pathToFileURL(__filename).href } };',
  },
  // main.ts using an export the stand-ins below do not have must fail the build, not run into undefined.
  logOverride: { 'import-is-undefined': 'error' },
  logLevel: 'warning',
  plugins: [
    {
      name: 'esm-siblings',
      setup(b) {
        // createRequire(import.meta.url) is the bundle's own require (bin/edgecd.js makes it for this file): loading
        // node:module's public module costs a call 0.7 ms (Node 20) to 1.2 ms (Node 22) of CPU.
        b.onResolve({ filter: /^node:module$/ }, (a) =>
          a.importer.includes('/src/cli/') ? { path: a.path, namespace: 'own-require' } : undefined,
        )
        b.onLoad({ filter: /.*/, namespace: 'own-require' }, () => ({
          loader: 'js',
          contents: 'export const createRequire = () => require',
        }))
        b.onResolve({ filter: /^\.\/(serve|snapshot)\.js$/ }, (a) =>
          a.importer.endsWith('/src/cli/main.ts') ? { path: a.path, namespace: 'esm-sibling' } : undefined,
        )
        b.onLoad({ filter: /.*/, namespace: 'esm-sibling' }, (a) => ({
          loader: 'js',
          contents: [
            `const load = () => __edgecdImport(new URL(${JSON.stringify(a.path)}, __edgecdMeta.url).href)`,
            ...esmSiblings[a.path].map((n) => `export const ${n} = (...args) => load().then((m) => m.${n}(...args))`),
          ].join('\n'),
        }))
      },
    },
  ],
})
writeFileSync(resolve(dist, '.build-stamp'), `${new Date().toISOString()}\n`)
console.error(
  `build: dist/ (JavaScript, declarations, ${browserBundles.length} browser bundle(s), the Worker, the CLI)`,
)
