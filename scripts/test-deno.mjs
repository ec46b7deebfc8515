#!/usr/bin/env node
import { spawnSync } from 'node:child_process'
// `npm run test:deno` (node --import tsx: the Deno invocation lives in test/support/deno.ts): runs the portable tests under Deno, proving the Raft core and the simulator run unchanged
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
// Member tests (test/deno/**) start real members, so they run in a second `deno test` with more permissions:
// networking on loopback only (--allow-net=127.0.0.1), reads and writes in a temp dir of their own (TMPDIR, removed
// afterwards), and running openssl (throwaway certificates), node (Node members of a mixed cluster, path in
// EDGECD_NODE) and this deno (src/runtime/deno/main.ts as users run it).
//
//   npm run test:deno                           test/raft/**/*.test.ts, test/sim/*.test.ts, test/kv/**/*.test.ts
//                                               and test/deno/**/*.test.ts
//   npm run test:deno -- test/raft/log.test.ts  a subset (files or directories)
//   DENO_TEST_NO_CHECK=1 npm run test:deno      skip Deno's own type-check (tsc already checks in CI)
//
// Simulation tests see EDGECD_SIM_SHORT=1 and should run a short schedule under Deno. The exit code is Deno's:
// non-zero when any test fails.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { denoBinary, denoEnv, denoTestArgs } from '../test/support/deno.ts'
import { findTests } from './find-tests.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

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
    if (existsSync(join(root, 'test/deno'))) files.push(...findTests(root, ['test/deno']))
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
if (!deno) {
  console.error(
    'test-deno: no Deno binary in node_modules (looked at node_modules/deno/deno, node_modules/@deno/*/deno); run npm ci',
  )
  process.exit(2)
}
const isMemberTest = (f) => f.startsWith('test/deno/')
const pure = files.filter((f) => !isMemberTest(f))
const members = files.filter(isMemberTest)
const base = denoTestArgs([...(process.env.DENO_TEST_NO_CHECK ? ['--no-check'] : []), ...denoArgs])
const env = denoEnv({ EDGECD_SIM_SHORT: '1' })
if (process.stdout.isTTY) delete env.NO_COLOR

function run(command, runEnv) {
  console.log(`$ ${deno.replace(`${root}/`, '')} ${command.join(' ').replaceAll(`${root}/`, '').replaceAll(root, '.')}`)
  const result = spawnSync(deno, command, { cwd: root, env: runEnv, stdio: 'inherit' })
  if (result.error) {
    console.error(`test-deno: could not start ${deno}: ${result.error.message}`)
    process.exit(2)
  }
  return result.status ?? 1
}

let status = 0
if (pure.length > 0) status = run([...base, `--allow-read=${root}`, ...pure], env)
if (members.length > 0) {
  const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-test-'))
  try {
    const permissions = [
      '--allow-net=127.0.0.1',
      `--allow-read=${root},${tmp}`,
      `--allow-write=${tmp}`,
      `--allow-run=openssl,${process.execPath},${deno}`,
    ]
    const s = run([...base, ...permissions, ...members], { ...env, TMPDIR: tmp, EDGECD_NODE: process.execPath })
    if (status === 0) status = s
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}
process.exit(status)
