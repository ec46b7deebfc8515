/**
 * The simulator as a test: many seeds of the whole cluster under faults must finish with no violation; the same
 * seed must replay the same run; and deliberately broken nodes must be caught. Runs under Node and Deno (node:test
 * and node:assert only). A failing seed is printed with the command that replays it.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { ViolationKind } from './checkers.js'
import type { InjectedBug } from './node.js'
import { formatViolation, runBatch } from './run.js'
import { runSeed, stepsDefault } from './scenario.js'

/** `npm run test:deno` asks for a short schedule (scripts/test-deno.mjs sets EDGECD_SIM_SHORT=1). */
const short = typeof process !== 'undefined' && process.env.EDGECD_SIM_SHORT === '1'

/** Seeds run by `npm test` (about 4 s on a 2-core machine); `npm run sim -- --seeds N` runs more. */
const testSeeds = short ? 50 : 300

describe('simulation', () => {
  test(`${testSeeds} seeds x ${stepsDefault} ticks: no violation`, () => {
    const b = runBatch({ firstSeed: 1, seeds: testSeeds, steps: stepsDefault })
    const report = b.failures
      .map(
        (f) =>
          `seed ${f.seed}: ${formatViolation(f.violations[0]!)}\n  replay: npm run sim -- --level raft --seed ${f.seed}`,
      )
      .join('\n')
    assert.equal(b.violations, 0, report)
    // The runs did exercise the cluster: leaders came and went, entries committed, snapshots and members moved.
    assert.ok(b.totals.leaderTerms >= testSeeds, `leader terms: ${b.totals.leaderTerms}`)
    assert.ok(b.totals.applied > 10 * testSeeds, `entries applied: ${b.totals.applied}`)
    assert.ok(b.totals.snapshotsSent > 0, 'no snapshot was ever sent')
    assert.ok(b.totals.crashes > 0 && b.totals.restarts > 0, 'no crash or restart')
    assert.ok(b.totals.reads > 0, 'no read index request')
  })

  test('the same seed replays the same run', () => {
    for (const seed of [7, 1234]) {
      const a = runSeed({ seed, steps: stepsDefault })
      const b = runSeed({ seed, steps: stepsDefault })
      assert.equal(a.traceHash, b.traceHash)
      assert.equal(a.steps, b.steps)
      assert.deepEqual(a.stats, b.stats)
    }
    assert.notEqual(runSeed({ seed: 7, steps: 100 }).traceHash, runSeed({ seed: 8, steps: 100 }).traceHash)
  })

  test('a verbose replay takes the same path as a quiet one', () => {
    const quiet = runSeed({ seed: 99, steps: 150 })
    const loud = runSeed({ seed: 99, steps: 150, verbose: true })
    assert.equal(quiet.traceHash, loud.traceHash)
    assert.ok(loud.trace.length > 0)
  })
})

describe('injected bugs are caught', () => {
  /** How many of the seeds caught the bug, and the kinds of their first violations. */
  function kindsFor(bug: InjectedBug, seeds: number): { caught: number; kinds: Set<ViolationKind> } {
    let caught = 0
    const kinds = new Set<ViolationKind>()
    for (let seed = 1; seed <= seeds; seed++) {
      const r = runSeed({ seed, steps: stepsDefault, bug })
      if (r.violations.length === 0) continue
      caught++
      kinds.add(r.violations[0]!.kind)
    }
    return { caught, kinds }
  }

  test('a node applying a corrupted entry breaks state machine safety', () => {
    const { caught, kinds } = kindsFor('corrupt-apply', 5)
    assert.equal(caught, 5)
    assert.deepEqual([...kinds], ['state-machine-safety'])
  })

  test('a disk that forgets a vote across a crash is caught', () => {
    const { caught, kinds } = kindsFor('forget-vote', 20)
    assert.ok(caught >= 10, `caught in ${caught} of 20 seeds`)
    assert.ok(kinds.has('durability'))
  })

  test('a disk that loses acknowledged entries in a crash is caught', () => {
    const { caught } = kindsFor('lose-tail', 30)
    assert.ok(caught >= 5, `caught in ${caught} of 30 seeds`)
  })

  test('a network that never heals fails the liveness phase', () => {
    const { caught, kinds } = kindsFor('never-heal', 3)
    assert.equal(caught, 3)
    assert.deepEqual([...kinds], ['liveness'])
  })
})
