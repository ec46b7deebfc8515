#!/bin/sh
':' //; if [ -n "$NODE_EXTRA_CA_CERTS" ]; then case " $* " in *' serve '*) ;; *) case "$NODE_OPTIONS" in *-ca*) ;; *)
':' //; export EDGECD_NODE_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS" NODE_EXTRA_CA_CERTS= ;; esac ;; esac; fi
':' //; exec node "$0" "$@"
// The `edgecd` command: a POSIX sh launcher (the three lines above) and CommonJS (from here on, bin/package.json
// says so); `node bin/edgecd.js ...` skips the launcher and runs the same program. docs/cli.md#start-up has the
// measurements behind each step.
//
// The launcher: Node 20 parses every certificate of NODE_EXTRA_CA_CERTS (and its own ~140 roots) while it starts,
// about 35 ms of CPU per call, TLS or not. So Node starts with the variable empty and its value in
// EDGECD_NODE_EXTRA_CA_CERTS; below it goes back into process.env (for the commands `lock` runs) and the CLI reads
// the file on its first https call (src/cli/extra-ca.ts). Not for `serve` (the member and its peers' TLS stay
// Node's), nor with a --use-*-ca option in NODE_OPTIONS (which choose other roots).
//
// Then the compiled CLI, dist/cli/edgecd.cjs (npm run build; `npm ci`, `npm install` and `npm pack` build it
// through `prepare`), compiled through vm.Script with V8's code cache: the cache is made after the first run and kept
// under $XDG_CACHE_HOME/edgecd/v8 (or ~/.cache/edgecd/v8, or $EDGECD_CACHE_DIR/v8), one file per Node version and
// build of the bundle; a cache V8 rejects is replaced, one that cannot be written is skipped silently;
// NODE_DISABLE_COMPILE_CACHE=1 turns it off. In a checkout whose sources are newer than the last build it runs the
// sources through tsx instead, so it never runs stale output (the check walks src/: a few ms; an installed package
// has no src/ and skips it).
//
// A command line with a `get` in it first goes to the quick path (dist/cli/quick-get.cjs, src/cli/quick-get.ts: a
// small bundle for the common plain-http read), which runs it or hands it back untouched to the full CLI.
'use strict'
const { existsSync, readdirSync, readFileSync, statSync } = require('node:fs')
const path = require('node:path')

const argv = process.argv.slice(2)
// This file's own CommonJS module (loadBundle below has a local `module`, the bundle's).
const binModule = module
const root = path.join(__dirname, '..')

// NODE_EXTRA_CA_CERTS kept from Node's start by the launcher: back into the environment, and to the CLI below.
let deferredCa
const savedCa = process.env.EDGECD_NODE_EXTRA_CA_CERTS
if (savedCa !== undefined) {
  delete process.env.EDGECD_NODE_EXTRA_CA_CERTS
  if (savedCa !== '' && !process.env.NODE_EXTRA_CA_CERTS) {
    process.env.NODE_EXTRA_CA_CERTS = savedCa
    deferredCa = savedCa
  }
}

if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
  // Nothing else to load for the version.
  process.stdout.write(`${require('../package.json').version}\n`)
} else {
  void run()
}

async function run() {
  const stamp = path.join(root, 'dist/.build-stamp')
  const src = path.join(root, 'src')
  const fresh = existsSync(stamp) && (!existsSync(src) || statSync(stamp).mtimeMs >= newest(src))
  let cli
  let loaded
  if (fresh) {
    if (argv.includes('get') && !process.env.EDGECD_CLI_NO_QUICK) {
      const quick = loadBundle(path.join(root, 'dist/cli/quick-get.cjs'))
      const code = await quick.exports.quickGet(argv)
      if (code !== undefined) {
        quick.saveCodeCache()
        process.exitCode = code
        return
      }
    }
    loaded = loadBundle(path.join(root, 'dist/cli/edgecd.cjs'))
    cli = loaded.exports
  } else {
    const { register } = await import('tsx/esm/api')
    register()
    cli = await import(require('node:url').pathToFileURL(path.join(src, 'cli/main.ts')).href)
  }
  if (deferredCa !== undefined) cli.deferExtraCaCerts(deferredCa)
  const code = await cli.main(argv)
  loaded?.saveCodeCache()
  process.exitCode = code
}

/** Newest modification time under a directory, in ms. */
function newest(dir) {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

/**
 * Compiles and runs the CommonJS bundle as Node's loader would (the same wrapper arguments, plus __edgecdImport for
 * the ES modules it imports: see scripts/build.mjs), with V8's code cache when there is one. Returns its exports
 * and saveCodeCache(), which writes the cache (after the run, so it holds the functions the run compiled) when
 * there was none or V8 rejected it.
 */
function loadBundle(file) {
  const vm = require('node:vm')
  const source = readFileSync(file, 'utf8')
  const cacheFile = codeCacheFile(file)
  let cachedData
  if (cacheFile !== undefined) {
    try {
      cachedData = readFileSync(cacheFile)
    } catch {}
  }
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname, __edgecdImport) {${source}\n})`,
    { filename: file, cachedData },
  )
  const module = { exports: {} }
  script.runInThisContext()(
    module.exports,
    // Module.createRequire, as node:module exports it, read off this file's own module (not the local `module`
    // above): node:module's public module is not evaluated, nor the ES module loader and source-map modules it loads.
    (binModule.constructor.createRequire ?? require('node:module').createRequire)(file),
    module,
    file,
    path.dirname(file),
    (url) => import(url),
  )
  return {
    exports: module.exports,
    saveCodeCache() {
      if (cacheFile === undefined || (cachedData !== undefined && !script.cachedDataRejected)) return
      try {
        const fs = require('node:fs')
        const dir = path.dirname(cacheFile)
        fs.mkdirSync(dir, { recursive: true })
        const tmp = `${cacheFile}.${process.pid}.tmp`
        fs.writeFileSync(tmp, script.createCachedData())
        fs.renameSync(tmp, cacheFile)
        // Keep the newest few (one per Node version and build in use); older builds' caches go.
        const files = fs
          .readdirSync(dir)
          .filter((f) => f.endsWith('.v8'))
          .map((f) => ({ f, t: fs.statSync(path.join(dir, f)).mtimeMs }))
          .sort((a, b) => b.t - a.t)
        for (const { f } of files.slice(8)) fs.rmSync(path.join(dir, f), { force: true })
      } catch {}
    },
  }
}

/** $HOME on POSIX (what os.homedir() returns first there), without loading node:os. */
function home(env) {
  return process.platform === 'win32' ? undefined : env.HOME
}

/** Where the code cache of this bundle for this Node lives; undefined when there is no place for it. */
function codeCacheFile(file) {
  const env = process.env
  if (env.NODE_DISABLE_COMPILE_CACHE) return undefined
  try {
    const base =
      env.EDGECD_CACHE_DIR ||
      // $HOME, which os.homedir() reads first on POSIX: node:os is loaded only without it (or on Windows).
      path.join(env.XDG_CACHE_HOME || path.join(home(env) || require('node:os').homedir(), '.cache'), 'edgecd')
    const st = statSync(file)
    // V8 checks its own version, flags and the source's length; the key adds the build and the options Node got.
    const key = [file, st.size, st.mtimeMs, process.execArgv.join(' '), env.NODE_OPTIONS ?? ''].join('\0')
    let h = 0x811c9dc5 // FNV-1a
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0
    return path.join(base, 'v8', `edgecd-${process.version}-${process.arch}-${h.toString(16)}.v8`)
  } catch {
    return undefined
  }
}
