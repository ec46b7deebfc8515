#!/usr/bin/env node
// `npm test`: runs every test/**/*.test.ts with node's test runner, TypeScript loaded through tsx.
//
//   npm test                                  every test
//   npm test -- test/raft                     the tests under a directory (or name single files)
//   npm test -- test/kv --test-name-pattern=txn     arguments starting with "-" go to `node --test` as they are
//   EDGECD_TESTS="test/raft test/kv" npm test  the same subset chosen through the environment (space-separated)
//   TEST_REPORTER=spec npm test               another reporter (default: tap)
//
// The default reporter is TAP on every terminal, so the run always ends with node's `# pass N` / `# fail N` summary
// lines, which CI parses (the spec reporter prints `ℹ pass N` instead). The exit code is node's: non-zero when any
// test fails.
import { spawnSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findTests } from './find-tests.mjs'

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

const reporter = process.env.TEST_REPORTER || 'tap'
const command = ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, ...nodeArgs, ...files]
const result = spawnSync(process.execPath, command, { cwd: root, stdio: 'inherit' })
if (result.error) {
  console.error(`run-tests: could not start node: ${result.error.message}`)
  process.exit(2)
}
process.exit(result.status ?? 1)
