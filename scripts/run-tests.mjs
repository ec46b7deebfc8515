#!/usr/bin/env node
// `npm test`: runs every test/**/*.test.ts with node's test runner, TypeScript loaded through tsx.
//
//   npm test                                  every test
//   npm test -- test/raft                     the tests under a directory (or name single files)
//   npm test -- test/kv --test-name-pattern=txn     arguments starting with "-" go to `node --test` as they are
//   EDGECD_TESTS="test/raft test/kv" npm test  the same subset chosen through the environment (space-separated)
//   TEST_REPORTER=spec npm test               another reporter (default: tap)
//
// Tests that need programs beyond npm's packages (Debian's etcd and Chromium: test/support/requirements.ts) are never
// skipped silently. Before the run, a missing one is installed with its setup script when this process may do it
// (root, Debian's apt-get: as .ci/run does); otherwise the run stops with the exact command to run. A developer who
// cannot install them sets EDGECD_ALLOW_MISSING=1 (ignored under CI=true): those tests are then skipped, saying why.
//
// The default reporter is TAP on every terminal, so the run always ends with node's `# pass N` / `# fail N` summary
// lines, which CI parses (the spec reporter prints `ℹ pass N` instead). The exit code is node's: non-zero when any
// test fails.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findTests } from './find-tests.mjs'
import { node22Binary } from './setup-node22.mjs'
import { parallelConcurrency, splitGroups } from './test-groups.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const nodeArgs = args.filter((a) => a.startsWith('-'))
let paths = args.filter((a) => !a.startsWith('-'))
if (paths.length === 0 && process.env.EDGECD_TESTS) paths = process.env.EDGECD_TESTS.split(/\s+/).filter(Boolean)
if (paths.length === 0) paths = ['test']

let files
try {
  files = findTests(root, paths)
} catch (err) {
  console.error(`run-tests: ${err.message}`)
  process.exit(2)
}
if (files.length === 0) {
  console.error(`run-tests: no *.test.ts files under ${paths.join(', ')}`)
  process.exit(2)
}

const programs = {
  etcd: {
    present: () => {
      try {
        execFileSync('etcd', ['--version'], { stdio: 'pipe' })
        return true
      } catch {
        return false
      }
    },
    setup: ['bash', 'scripts/setup-etcd.sh'],
  },
  chromium: { present: () => existsSync('/usr/bin/chromium'), setup: ['sh', 'scripts/setup-chromium.sh'] },
  // Debian's python3-etcd3 and python3-etcd3gw, imported by Debian's /usr/bin/python3 (test/diff/python-clients).
  'python-etcd': {
    present: () =>
      spawnSync('/usr/bin/python3', ['-c', 'import etcd3, etcd3gw'], { env: { ...process.env, PYTHONPATH: '' } })
        .status === 0,
    setup: ['bash', 'scripts/setup-python-clients.sh'],
  },
  // Not a system package: any user may install it (npm, into a cache directory outside the project).
  node22: {
    present: () => node22Binary() !== undefined,
    setup: [process.execPath, 'scripts/setup-node22.mjs'],
    anyUser: true,
  },
}
const allowMissing = process.env.EDGECD_ALLOW_MISSING === '1' && process.env.CI !== 'true'
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const hasApt = existsSync('/usr/bin/apt-get')
for (const [name, p] of Object.entries(programs)) {
  const needed = files.some((f) => readFileSync(resolve(root, f), 'utf8').includes(`requires('${name}')`))
  if (!needed || p.present()) continue
  const command = p.setup.join(' ')
  if (allowMissing) {
    console.error(
      `run-tests: ${name} is missing; its tests are skipped (EDGECD_ALLOW_MISSING=1). To run them: ${command}`,
    )
    continue
  }
  if ((isRoot && hasApt) || p.anyUser) {
    console.error(`run-tests: ${name} is missing; installing it: ${command}`)
    const r = spawnSync(p.setup[0], p.setup.slice(1), { cwd: root, stdio: 'inherit' })
    if (r.status === 0 && p.present()) continue
    console.error(`run-tests: ${command} failed (exit ${r.status})`)
  }
  console.error(
    `run-tests: ${name} is missing and some tests need it. Run${p.anyUser ? '' : ' (as root)'}:\n  ${command}\n` +
      'or set EDGECD_ALLOW_MISSING=1 to skip those tests on this machine (not under CI).',
  )
  process.exit(2)
}

const reporter = process.env.TEST_REPORTER || 'tap'
// Files run two at a time except the serial list of scripts/test-groups.mjs (run alone, first), all in one report
// (scripts/run-test-groups.mjs). Options other than the ones understood here go to a plain `node --test` run of every
// file (node's own concurrency: one file at a time on 2 cores), as does EDGECD_TEST_SERIAL=1.
const plan = { reporter, groups: [], testNamePatterns: [] }
let concurrency = parallelConcurrency
let plain = process.env.EDGECD_TEST_SERIAL === '1'
for (const a of nodeArgs) {
  const [flag, value] = a.split(/=(.*)/s)
  if (flag === '--test-name-pattern' && value !== undefined) plan.testNamePatterns.push(value)
  else if (flag === '--test-concurrency' && /^\d+$/.test(value ?? '')) concurrency = Number(value)
  else if (flag === '--test-timeout' && /^\d+$/.test(value ?? '')) plan.timeout = Number(value)
  else if (a === '--test-only') plan.only = true
  else if (flag === '--test-reporter' && value) plan.reporter = value
  else plain = true
}
if (plan.testNamePatterns.length === 0) delete plan.testNamePatterns
let command
if (plain) {
  command = ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, ...nodeArgs, ...files]
} else {
  const { serial, parallel } = splitGroups(files)
  plan.groups = [
    { files: serial, concurrency: 1 },
    { files: parallel, concurrency },
  ]
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-tests-'))
  const planFile = join(dir, 'plan.json')
  writeFileSync(planFile, JSON.stringify(plan))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  command = ['--import', 'tsx', resolve(root, 'scripts/run-test-groups.mjs'), planFile]
}
const result = spawnSync(process.execPath, command, { cwd: root, stdio: 'inherit' })
if (result.error) {
  console.error(`run-tests: could not start node: ${result.error.message}`)
  process.exit(2)
}
process.exit(result.status ?? 1)
