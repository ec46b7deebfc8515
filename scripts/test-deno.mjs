#!/usr/bin/env node
import { spawnSync } from 'node:child_process'
// `npm run test:deno`: runs the portable tests under Deno, proving the Raft core and the simulator run unchanged
// outside Node. It uses the Deno binary that the `deno` npm package installed (RUNTIMES.md §2), entirely offline:
//
//   - deno.json sets `nodeModulesDir: "manual"`, so bare imports (`pure-rand/...`, `cbor-x`) resolve from
//     node_modules, and `--cached-only` forbids any download;
//   - deno.json turns on sloppy imports, so `../src/raft/storage.js` finds `storage.ts` as tsc and tsx do;
//   - DENO_DIR is `.deno/` inside the repo (gitignored) and DENO_NO_UPDATE_CHECK=1 stops the upgrade check;
//   - `--allow-env` because cbor-x reads process.env at import time; reads are allowed inside the repo only;
//     no network, no writes.
//
// The test files are written for `node:test` + `node:assert`, which `deno test` runs natively.
//
//   npm run test:deno                           test/raft/**/*.test.ts, test/sim/*.test.ts and test/kv/**/*.test.ts
//   npm run test:deno -- test/raft/log.test.ts  a subset (files or directories)
//   DENO_TEST_NO_CHECK=1 npm run test:deno      skip Deno's own type-check (tsc already checks in CI)
//
// Simulation tests see EDGECD_SIM_SHORT=1 and should run a short schedule under Deno. The exit code is Deno's:
// non-zero when any test fails.
import { accessSync, constants, existsSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findTests } from './find-tests.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** The Deno binary from node_modules: the linked `deno/deno`, else the platform package's own copy. */
function denoBinary() {
  const candidates = [join(root, 'node_modules/deno/deno')]
  const scoped = join(root, 'node_modules/@deno')
  if (existsSync(scoped)) for (const d of readdirSync(scoped)) candidates.push(join(scoped, d, 'deno'))
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      return c
    } catch {}
  }
  console.error(
    'test-deno: no Deno binary in node_modules (looked at node_modules/deno/deno, node_modules/@deno/*/deno); run npm ci',
  )
  process.exit(2)
}

const args = process.argv.slice(2)
const denoArgs = args.filter((a) => a.startsWith('-'))
const paths = args.filter((a) => !a.startsWith('-'))
let files
try {
  if (paths.length > 0) {
    files = findTests(root, paths)
  } else {
    files = []
    if (existsSync(join(root, 'test/raft'))) files.push(...findTests(root, ['test/raft']))
    if (existsSync(join(root, 'test/sim'))) files.push(...findTests(root, ['test/sim'], { recursive: false }))
    // The KV store is pure too: it must behave the same on Deno.
    if (existsSync(join(root, 'test/kv'))) files.push(...findTests(root, ['test/kv']))
  }
} catch (err) {
  console.error(`test-deno: ${err.message}`)
  process.exit(2)
}
if (files.length === 0) {
  console.error('test-deno: no test files found (expected test/raft/**/*.test.ts)')
  process.exit(2)
}

const deno = denoBinary()
const command = [
  'test',
  `--config=${join(root, 'deno.json')}`,
  '--no-prompt',
  '--cached-only',
  '--allow-env',
  `--allow-read=${root}`,
  ...(process.env.DENO_TEST_NO_CHECK ? ['--no-check'] : []),
  ...denoArgs,
  ...files,
]
const env = {
  ...process.env,
  DENO_DIR: process.env.DENO_DIR || join(root, '.deno'),
  DENO_NO_UPDATE_CHECK: '1',
  EDGECD_SIM_SHORT: '1',
}
if (!process.stdout.isTTY) env.NO_COLOR = '1'
console.log(`$ ${deno.replace(`${root}/`, '')} ${command.join(' ').replaceAll(`${root}/`, '').replaceAll(root, '.')}`)
const result = spawnSync(deno, command, { cwd: root, env, stdio: 'inherit' })
if (result.error) {
  console.error(`test-deno: could not start ${deno}: ${result.error.message}`)
  process.exit(2)
}
process.exit(result.status ?? 1)
