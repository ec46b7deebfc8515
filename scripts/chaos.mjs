#!/usr/bin/env node
// `npm run chaos`: one chaos run against three real members (test/chaos/run.ts), printing the fault schedule as it
// happens and a summary line; exit code 1 on a violation, with the history written to the file the summary names.
//
//   npm run chaos                          60 s, random seed
//   CHAOS_SECONDS=600 npm run chaos        a long run
//   CHAOS_SEED=123 npm run chaos           replays seed 123's fault schedule
//   CHAOS_VERBOSE=0 npm run chaos          only the summary
import { spawnSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const result = spawnSync(process.execPath, ['--import', 'tsx', 'test/chaos/cli.ts'], { cwd: root, stdio: 'inherit' })
if (result.error) {
  console.error(`chaos: could not start node: ${result.error.message}`)
  process.exit(2)
}
process.exit(result.status ?? 1)
