/**
 * Runs many member-level seeds and sums them up; shared by `npm run sim` and the test suite.
 */
import type { Violation } from '../checkers.js'
import { faultMsDefault, type MemberSimResult, runMemberSeed } from './scenario.js'
import type { MemberBug } from './world.js'

export interface MemberBatchOptions {
  firstSeed: number
  seeds: number
  faultMs?: number
  bug?: MemberBug
  /** Called after each seed (progress for long runs). */
  onSeed?: (r: MemberSimResult) => void
}

export interface MemberBatchResult {
  seeds: number
  steps: number
  violations: number
  failures: { seed: number; violations: Violation[]; setup: string }[]
  totals: MemberSimResult['stats']
}

export async function runMemberBatch(o: MemberBatchOptions): Promise<MemberBatchResult> {
  const out: MemberBatchResult = {
    seeds: 0,
    steps: 0,
    violations: 0,
    failures: [],
    totals: {
      ops: 0,
      okOps: 0,
      watchEvents: 0,
      crashes: 0,
      restarts: 0,
      removedRestarts: 0,
      snapshotsSent: 0,
      confChanges: 0,
      transfers: 0,
      leaderTerms: 0,
      finalRevision: 0,
    },
  }
  for (let i = 0; i < o.seeds; i++) {
    const seed = o.firstSeed + i
    const r = await runMemberSeed({ seed, faultMs: o.faultMs, bug: o.bug })
    out.seeds++
    out.steps += r.steps
    out.violations += r.violations.length
    if (r.violations.length > 0) out.failures.push({ seed, violations: r.violations, setup: r.setup })
    for (const k of Object.keys(out.totals) as (keyof MemberBatchResult['totals'])[]) out.totals[k] += r.stats[k]
    o.onSeed?.(r)
  }
  return out
}

/** The command that replays one member-level seed. */
export function memberReplayCommand(seed: number, faultMs?: number, bug?: MemberBug): string {
  return (
    `npm run sim -- --level member --seed ${seed}` +
    (faultMs !== undefined && faultMs !== faultMsDefault ? ` --fault-ms ${faultMs}` : '') +
    (bug ? ` --bug ${bug}` : '')
  )
}
