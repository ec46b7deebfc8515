import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

// The CLI bundles, built by scripts/build.mjs (and by test/cli/quick-get.test.ts into a temporary directory).
// The CLI as bin/edgecd.js runs it: dist/cli/edgecd.cjs, one CommonJS file with every client command (a command's
// modules are evaluated only when it runs), which bin/edgecd.js compiles through vm.Script with V8's code cache.
// Start-up time is what etcdctl users compare us with (docs/benchmarks.md): CommonJS because Node's ES module loader
// costs a one-shot call more than the whole CLI's code (it loads fs/promises, resolves and links asynchronously), and
// one file because every file is a resolve, a read and a compile. npm packages stay require()s (installed beside us;
// only `watch` (ws) and a password prompt (read) load one), but for http-parser-js. `serve` and `snapshot` stay the
// tsc output (ES modules: the member's code), imported through the function bin/edgecd.js passes in as
// `__edgecdImport`: code compiled by vm.Script has no import() of its own on Node 20 once it comes from the code cache.
// The quick path of `edgecd get` (src/cli/quick-get.ts) is a second, small bundle with the same options:
// dist/cli/quick-get.cjs, which bin/edgecd.js tries first for a `get`.
export const cliBundles = [
  { entry: 'src/cli/main.ts', out: 'cli/edgecd.cjs' },
  // Minified: every byte is read and every function deserialized on each call (54 KB to 29 KB: about 1.5 ms of CPU).
  { entry: 'src/cli/quick-get.ts', out: 'cli/quick-get.cjs', minify: true },
]
/** Bundles the CLI into `<dist>/cli/` (esbuild only: no tsc, no stamp). */
export async function buildCliBundles(dist) {
  const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8'))
  const esmSiblings = { './serve.js': ['runServe'], './snapshot.js': ['runSnapshot'] }
  for (const cli of cliBundles)
    await build({
      entryPoints: [resolve(root, cli.entry)],
      outfile: resolve(dist, cli.out),
      bundle: true,
      format: 'cjs',
      minify: cli.minify === true,
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
                ...esmSiblings[a.path].map(
                  (n) => `export const ${n} = (...args) => load().then((m) => m.${n}(...args))`,
                ),
              ].join('\n'),
            }))
          },
        },
      ],
    })
}
