// Runs test files in groups through node:test's run() and prints them as ONE report: scripts/run-tests.mjs starts
// this file as `node --import tsx scripts/run-test-groups.mjs <plan.json>` (each file's own process inherits
// `--import tsx`). The plan is `{ groups: [{ files, concurrency }], reporter, testNamePatterns, only, timeout }`;
// the groups run one after the other, each with its own file concurrency (scripts/test-groups.mjs says which file
// runs where and why).
//
// Node's CLI runs one run() and prints one summary; two runs would print two TAP plans and two `# pass N` blocks, and
// CI parses the summary. So the events of every group go through one reporter: top-level tests are numbered 1..N
// across the groups (node itself can give a file that fails to load the number of the test before it), each group's
// own plan and summary lines are dropped, and one plan and one summary (`# tests`, `# suites`, `# pass`, `# fail`,
// `# cancelled`, `# skipped`, `# todo`, the sums over the groups, and the whole run's `# duration_ms`) close the
// report, in node's format. The exit code is node's: 1 once any test fails.
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { run } from 'node:test'
import { dot, junit, lcov, spec, tap } from 'node:test/reporters'

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const summaryKeys = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo']
const summaryLine = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/
const started = performance.now()

async function* events() {
  const totals = Object.fromEntries(summaryKeys.map((k) => [k, 0]))
  let number = 0
  for (const group of plan.groups) {
    if (group.files.length === 0) continue
    const stream = run({
      files: group.files,
      concurrency: group.concurrency,
      ...(plan.testNamePatterns ? { testNamePatterns: plan.testNamePatterns } : {}),
      ...(plan.only ? { only: true } : {}),
      ...(plan.timeout ? { timeout: plan.timeout } : {}),
    })
    for await (const event of stream) {
      const { type, data } = event
      if (type === 'test:fail') process.exitCode = 1
      if (data?.nesting === 0) {
        if (type === 'test:plan') continue
        if (type === 'test:diagnostic') {
          const m = summaryLine.exec(data.message)
          if (m) {
            if (m[1] !== 'duration_ms') totals[m[1]] += Number(m[2])
            continue
          }
        }
        if (type === 'test:pass' || type === 'test:fail') {
          number++
          yield { type, data: { ...data, testNumber: number } }
          continue
        }
      }
      yield event
    }
  }
  yield { type: 'test:plan', data: { nesting: 0, count: number } }
  const diagnostic = (message) => ({ type: 'test:diagnostic', data: { nesting: 0, message } })
  for (const k of summaryKeys) yield diagnostic(`${k} ${totals[k]}`)
  yield diagnostic(`duration_ms ${performance.now() - started}`)
  if (totals.fail > 0 || totals.cancelled > 0) process.exitCode = 1
}

const name = plan.reporter ?? 'tap'
const reporters = { dot, junit, lcov, spec, tap }
const reporter = reporters[name]
if (typeof reporter !== 'function') {
  console.error(`run-tests: unknown reporter ${name} (one of: ${Object.keys(reporters).join(', ')})`)
  process.exit(2)
}
const source = Readable.from(events(), { objectMode: true })
// tap, dot and junit are async generator functions over the events; spec and lcov are Transform streams (classes).
const out =
  reporter.constructor.name === 'AsyncGeneratorFunction' ? Readable.from(reporter(source)) : source.pipe(new reporter())
out.pipe(process.stdout)
