#!/usr/bin/env node
// The `edgecd` command. It runs the compiled CLI (dist/cli/edgecd.js, bundled by `npm run build`, which `npm ci`,
// `npm install` and `npm pack` run through `prepare`). In a checkout whose sources are newer than the last build it
// runs the sources through tsx instead, so it never runs stale output (the check walks src/: a few ms; an installed
// package has no src/ and skips it).
// node:fs through require: an ESM `import ... from 'node:fs'` builds its module namespace by reading every export,
// which loads fs's lazy streams (a few ms of start-up for nothing).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { existsSync, readdirSync, statSync } = require('node:fs')

const root = new URL('../', import.meta.url)
const stamp = new URL('dist/.build-stamp', root)
const src = new URL('src/', root)

/** Newest modification time under a directory, in ms. */
function newest(dir) {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

const built = existsSync(stamp)
const fresh = built && (!existsSync(src) || statSync(stamp).mtimeMs >= newest(src.pathname.replace(/\/$/, '')))
let main
if (fresh) {
  ;({ main } = await import('../dist/cli/edgecd.js'))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main } = await import('../src/cli/main.ts'))
}
process.exitCode = await main(process.argv.slice(2))
