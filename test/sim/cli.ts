/**
 * `npm run sim`: the deterministic cluster simulator.
 *
 *   npm run sim -- --seeds 500             seeds 1..500 (the default), each for --steps ticks (default 300)
 *   npm run sim -- --seeds 500 --from 9000 seeds 9000..9499
 *   npm run sim -- --seed 42 --verbose     replays one seed and prints its trace
 *   npm run sim -- --bug corrupt-apply     runs with a deliberate bug, to see the checkers fire
 *
 * Every failing seed prints its violation and the command that replays it. The last line is always
 * `sim: N seeds, S steps, V violations`, and the exit code is 0 only when V is 0.
 */
import { parseArgs } from 'node:util'
import type { InjectedBug } from './node.js'
import { formatViolation, runBatch } from './run.js'
import { runSeed, stepsDefault } from './scenario.js'

const seedsDefault = 500
const bugs: readonly InjectedBug[] = ['corrupt-apply', 'forget-vote', 'lose-tail', 'never-heal']

function main(): number {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      from: { type: 'string' },
      seed: { type: 'string' },
      steps: { type: 'string' },
      verbose: { type: 'boolean', short: 'v' },
      bug: { type: 'string' },
    },
    strict: true,
  })
  const int = (name: string, v: string | undefined, dflt: number): number => {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`)
    return n
  }
  const steps = int('steps', values.steps, stepsDefault)
  const bug = values.bug as InjectedBug | undefined
  if (bug !== undefined && !bugs.includes(bug)) throw new Error(`--bug must be one of ${bugs.join(', ')}`)
  const started = performance.now()

  if (values.seed !== undefined) {
    const seed = int('seed', values.seed, 0)
    const r = runSeed({ seed, steps, verbose: values.verbose ?? false, bug })
    if (values.verbose) for (const line of r.trace) console.log(line)
    console.log(`seed ${seed}: ${r.setup}`)
    console.log(`seed ${seed}: trace ${r.traceHash}, ${JSON.stringify(r.stats)}`)
    for (const v of r.violations) console.log(`seed ${seed}: ${formatViolation(v)}`)
    if (r.violations.length > 0) console.log(`replay: npm run sim -- --seed ${seed}${bug ? ` --bug ${bug}` : ''}`)
    console.log(`sim: 1 seeds, ${r.steps} steps, ${r.violations.length} violations`)
    return r.violations.length === 0 ? 0 : 1
  }

  const b = runBatch({
    firstSeed: int('from', values.from, 1),
    seeds: int('seeds', values.seeds, seedsDefault),
    steps,
    bug,
  })
  for (const f of b.failures) {
    console.log(`seed ${f.seed}: ${formatViolation(f.violations[0]!)}`)
    console.log(`  setup: ${f.setup}`)
    console.log(
      `replay: npm run sim -- --seed ${f.seed}${steps !== stepsDefault ? ` --steps ${steps}` : ''}${bug ? ` --bug ${bug}` : ''}`,
    )
  }
  const t = b.totals
  console.log(
    `coverage: ${t.leaderTerms} leader terms, ${t.applied} entries applied, ${t.proposals} proposals, ${t.reads} reads, ` +
      `${t.crashes} crashes, ${t.restarts} restarts, ${t.snapshotsSent} snapshots sent, ${t.confChangesApplied} conf ` +
      `changes applied, ${t.delivered} messages delivered, ${t.lost + t.unreachable} lost; ` +
      `slowest recovery ${b.livenessTicksMax} ticks; ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  )
  console.log(`sim: ${b.seeds} seeds, ${b.steps} steps, ${b.violations} violations`)
  return b.violations === 0 ? 0 : 1
}

try {
  process.exitCode = main()
} catch (err) {
  console.error(`sim: ${err instanceof Error ? err.message : String(err)}`)
  console.log('sim: 0 seeds, 0 steps, 1 violations')
  process.exitCode = 2
}
