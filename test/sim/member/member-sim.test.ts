/**
 * The member-level simulator as a test: seeds of whole members (the production Ready loop, KV store, lessor, watch
 * hub and WAL over MemoryFileOps) under faults must finish with no violation; the same seed must replay the same
 * run; and deliberately broken members must be caught, by the checkers or by the member's own assertions.
 * A failing seed is printed with the command that replays it (`npm run sim -- --level member --seed N`).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { formatViolation } from '../run.js'
import { memberReplayCommand, runMemberBatch } from './run.js'
import { runMemberSeed } from './scenario.js'

/**
 * Seeds run by `npm test`, with a shorter fault phase than `npm run sim` (measured: docs/testing.md). More:
 * `npm run sim -- --level member --seeds N`.
 */
const testSeeds = Number(process.env.EDGECD_MEMBER_SIM_SEEDS ?? 200)
const testFaultMs = 800

describe('member-level simulation', () => {
  test(`${testSeeds} seeds of whole members under faults: no violation`, async () => {
    const b = await runMemberBatch({ firstSeed: 1, seeds: testSeeds, faultMs: testFaultMs })
    const report = b.failures
      .map(
        (f) =>
          `seed ${f.seed}: ${formatViolation(f.violations[0]!)}\n  setup: ${f.setup}\n  replay: ${memberReplayCommand(f.seed, testFaultMs)}`,
      )
      .join('\n')
    assert.equal(b.violations, 0, report)
    // The runs did exercise the members: clients were answered, watchers saw events, members crashed and came
    // back, snapshots were streamed, membership changed and leadership moved.
    const t = b.totals
    assert.ok(t.okOps > 10 * testSeeds, `ok client ops: ${t.okOps}`)
    assert.ok(t.watchEvents > 10 * testSeeds, `watch events: ${t.watchEvents}`)
    assert.ok(t.crashes > testSeeds / 2 && t.restarts > testSeeds / 4, `crashes ${t.crashes}, restarts ${t.restarts}`)
    assert.ok(t.snapshotsSent > 0, 'no snapshot was ever sent')
    assert.ok(t.confChanges > testSeeds / 10, `membership changes: ${t.confChanges}`)
    assert.ok(t.transfers > testSeeds / 10, `leader transfers: ${t.transfers}`)
  })

  test('the same seed replays the same run', async () => {
    for (const seed of [7, 1234]) {
      const a = await runMemberSeed({ seed, faultMs: testFaultMs })
      const b = await runMemberSeed({ seed, faultMs: testFaultMs })
      assert.equal(a.traceHash, b.traceHash)
      assert.equal(a.steps, b.steps)
      assert.deepEqual(a.stats, b.stats)
    }
    const x = await runMemberSeed({ seed: 7, faultMs: 500 })
    const y = await runMemberSeed({ seed: 8, faultMs: 500 })
    assert.notEqual(x.traceHash, y.traceHash)
  })
})
