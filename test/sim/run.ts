/**
 * Runs many seeds and sums them up; shared by the CLI and the test suite.
 */
import type { Violation } from './checkers.js'
import type { InjectedBug } from './node.js'
import { runSeed, type SimResult } from './scenario.js'

export interface BatchOptions {
  /** First seed; seeds are firstSeed, firstSeed+1, ... */
  firstSeed: number
  seeds: number
  steps: number
  bug?: InjectedBug
}

export interface BatchResult {
  seeds: number
  steps: number
  violations: number
  failures: { seed: number; violations: Violation[]; setup: string }[]
  totals: SimResult['stats']
  /** The longest liveness phase of any seed, in ticks: how close the runs come to livenessTicksMax. */
  livenessTicksMax: number
}

export function runBatch(opts: BatchOptions): BatchResult {
  const out: BatchResult = {
    seeds: 0,
    steps: 0,
    violations: 0,
    failures: [],
    livenessTicksMax: 0,
    totals: {
      delivered: 0,
      lost: 0,
      unreachable: 0,
      snapshotsSent: 0,
      crashes: 0,
      restarts: 0,
      confChangesApplied: 0,
      applied: 0,
      leaderTerms: 0,
      reads: 0,
      proposals: 0,
    },
  }
  for (let i = 0; i < opts.seeds; i++) {
    const seed = opts.firstSeed + i
    const r = runSeed({ seed, steps: opts.steps, bug: opts.bug })
    out.seeds++
    out.steps += r.steps
    out.violations += r.violations.length
    out.livenessTicksMax = Math.max(out.livenessTicksMax, r.livenessTicks)
    if (r.violations.length > 0) out.failures.push({ seed, violations: r.violations, setup: r.setup })
    for (const k of Object.keys(out.totals) as (keyof BatchResult['totals'])[]) out.totals[k] += r.stats[k]
  }
  return out
}

export function formatViolation(v: Violation): string {
  return `${v.kind} at t=${v.tick}${v.node ? ` on node ${v.node}` : ''}: ${v.detail}`
}
