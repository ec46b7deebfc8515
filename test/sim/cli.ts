/**
 * `npm run sim`: the deterministic simulators, at two levels.
 *
 *   raft level: Raft nodes (src/raft's RawNode) under the simulator's own Ready loop (test/sim/node.ts), in ticks.
 *   member level: whole edgecd members (src/etcdserver/member.ts with the production Ready loop, KV store, lessor,
 *     watch hub and WAL over MemoryFileOps) on virtual time, with clients and watchers (test/sim/member/).
 *
 *   npm run sim                                    both levels: 500 raft seeds, 100 member seeds
 *   npm run sim -- --level member --seeds 1000     member seeds 1..1000 (--from 9000: seeds 9000..)
 *   npm run sim -- --level raft --seeds 500 --steps 300
 *   npm run sim -- --level member --seed 42 --verbose   replays one seed and prints its trace
 *   npm run sim -- --level member --bug skip-fsync      runs with a deliberate bug, to see the checkers fire
 *   npm run sim -- --level member --fault-ms 5000       a longer fault phase (virtual ms; default 2500)
 *   npm run sim -- --seed 42                           without --level, --seed and --bug mean the raft level
 *
 * Every failing seed prints its violation and the command that replays it. The last line is always
 * `sim: N seeds, S steps, V violations` (both levels summed), and the exit code is 0 only when V is 0.
 */
import { parseArgs } from 'node:util'
import { memberReplayCommand, runMemberBatch } from './member/run.js'
import { faultMsDefault, runMemberSeed } from './member/scenario.js'
import { type MemberBug, memberBugs } from './member/world.js'
import type { InjectedBug } from './node.js'
import { formatViolation, runBatch } from './run.js'
import { runSeed, stepsDefault } from './scenario.js'

const raftSeedsDefault = 500
const memberSeedsDefault = 100
const raftBugs: readonly InjectedBug[] = ['corrupt-apply', 'forget-vote', 'lose-tail', 'never-heal']

interface Tally {
  seeds: number
  steps: number
  violations: number
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      level: { type: 'string' },
      seeds: { type: 'string' },
      from: { type: 'string' },
      seed: { type: 'string' },
      steps: { type: 'string' },
      'fault-ms': { type: 'string' },
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
  // Without --level: both levels, except that --seed and --bug alone mean the raft level (as before there were two).
  const level = values.level ?? (values.seed !== undefined || values.bug !== undefined ? 'raft' : 'both')
  if (!['raft', 'member', 'both'].includes(level)) throw new Error(`--level must be raft, member or both, got ${level}`)
  const bug = values.bug
  if (bug !== undefined) {
    if (level === 'both') throw new Error('--bug needs --level raft or --level member')
    const known: readonly string[] = level === 'raft' ? raftBugs : memberBugs
    if (!known.includes(bug)) throw new Error(`--bug must be one of ${known.join(', ')} at the ${level} level`)
  }
  if (values.seed !== undefined && level === 'both') throw new Error('--seed needs --level raft or --level member')
  const steps = int('steps', values.steps, stepsDefault)
  const faultMs = int('fault-ms', values['fault-ms'], faultMsDefault)
  const total: Tally = { seeds: 0, steps: 0, violations: 0 }
  const add = (t: Tally) => {
    total.seeds += t.seeds
    total.steps += t.steps
    total.violations += t.violations
  }

  if (values.seed !== undefined) {
    const seed = int('seed', values.seed, 0)
    if (level === 'raft') {
      const r = runSeed({ seed, steps, verbose: values.verbose ?? false, bug: bug as InjectedBug | undefined })
      if (values.verbose) for (const line of r.trace) console.log(line)
      console.log(`seed ${seed}: ${r.setup}`)
      console.log(`seed ${seed}: trace ${r.traceHash}, ${JSON.stringify(r.stats)}`)
      for (const v of r.violations) console.log(`seed ${seed}: ${formatViolation(v)}`)
      if (r.violations.length > 0)
        console.log(`replay: npm run sim -- --level raft --seed ${seed}${bug ? ` --bug ${bug}` : ''}`)
      add({ seeds: 1, steps: r.steps, violations: r.violations.length })
    } else {
      const r = await runMemberSeed({ seed, faultMs, bug: bug as MemberBug | undefined, verbose: values.verbose })
      if (values.verbose) for (const line of r.trace) console.log(line)
      console.log(`seed ${seed}: ${r.setup}`)
      console.log(`seed ${seed}: trace ${r.traceHash}, ${JSON.stringify(r.stats)}`)
      for (const v of r.violations) console.log(`seed ${seed}: ${formatViolation(v)}`)
      if (r.violations.length > 0) console.log(`replay: ${memberReplayCommand(seed, faultMs, bug as MemberBug)}`)
      add({ seeds: 1, steps: r.steps, violations: r.violations.length })
    }
    console.log(`sim: ${total.seeds} seeds, ${total.steps} steps, ${total.violations} violations`)
    return total.violations === 0 ? 0 : 1
  }

  const firstSeed = int('from', values.from, 1)
  if (level !== 'member') {
    const started = performance.now()
    const b = runBatch({
      firstSeed,
      seeds: int('seeds', values.seeds, raftSeedsDefault),
      steps,
      bug: bug as InjectedBug | undefined,
    })
    for (const f of b.failures) {
      console.log(`raft seed ${f.seed}: ${formatViolation(f.violations[0]!)}`)
      console.log(`  setup: ${f.setup}`)
      console.log(
        `replay: npm run sim -- --level raft --seed ${f.seed}${steps !== stepsDefault ? ` --steps ${steps}` : ''}${bug ? ` --bug ${bug}` : ''}`,
      )
    }
    const t = b.totals
    console.log(
      `raft coverage: ${t.leaderTerms} leader terms, ${t.applied} entries applied, ${t.proposals} proposals, ${t.reads} reads, ` +
        `${t.crashes} crashes, ${t.restarts} restarts, ${t.snapshotsSent} snapshots sent, ${t.confChangesApplied} conf ` +
        `changes applied, ${t.delivered} messages delivered, ${t.lost + t.unreachable} lost; ` +
        `slowest recovery ${b.livenessTicksMax} ticks; ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s`,
    )
    add(b)
  }
  if (level !== 'raft') {
    const started = performance.now()
    const b = await runMemberBatch({
      firstSeed,
      seeds: int('seeds', values.seeds, memberSeedsDefault),
      faultMs,
      bug: bug as MemberBug | undefined,
      onSeed: (r) => {
        if (r.violations.length === 0) return
        console.log(`member seed ${r.seed}: ${formatViolation(r.violations[0]!)}`)
        console.log(`  setup: ${r.setup}`)
        console.log(`replay: ${memberReplayCommand(r.seed, faultMs, bug as MemberBug | undefined)}`)
      },
    })
    const t = b.totals
    console.log(
      `member coverage: ${t.ops} client ops (${t.okOps} ok), ${t.watchEvents} watch events, ${t.leaderTerms} leader ` +
        `terms, ${t.crashes} crashes, ${t.restarts} restarts, ${t.snapshotsSent} snapshots sent, ${t.confChanges} ` +
        `membership changes, ${t.transfers} leader transfers${t.removedRestarts ? `, ${t.removedRestarts} restarts of removed members` : ''}; ${((performance.now() - started) / 1000).toFixed(1)} s`,
    )
    add(b)
  }
  console.log(`sim: ${total.seeds} seeds, ${total.steps} steps, ${total.violations} violations`)
  return total.violations === 0 ? 0 : 1
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(`sim: ${err instanceof Error ? err.message : String(err)}`)
    console.log('sim: 0 seeds, 0 steps, 1 violations')
    process.exitCode = 2
  },
)
