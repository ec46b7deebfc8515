/**
 * Deliberately broken members (test/sim/member/world.ts, MemberBug) must be caught by the member-level checkers
 * (linearizability, watch guarantees, KV hash, Raft invariants) or stop on the member's own assertions (the revision
 * moves by one per write, applied indexes are contiguous). Replay one: `npm run sim -- --level member --bug B --seed N`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { ViolationKind } from '../checkers.js'
import { runMemberSeed } from './scenario.js'
import type { MemberBug } from './world.js'

describe('member-level: injected bugs are caught', () => {
  /** How many of the seeds caught the bug, and the kinds of all their violations. */
  async function caughtBy(
    bug: MemberBug,
    seeds: number,
    faultMs = 1200,
  ): Promise<{ caught: number; kinds: Set<ViolationKind>; details: string[] }> {
    let caught = 0
    const kinds = new Set<ViolationKind>()
    const details: string[] = []
    for (let seed = 1; seed <= seeds; seed++) {
      const r = await runMemberSeed({ seed, faultMs, bug })
      if (r.violations.length === 0) continue
      caught++
      for (const v of r.violations) {
        kinds.add(v.kind)
        details.push(v.detail)
      }
    }
    return { caught, kinds, details }
  }

  test('a disk that skips the fsync (acknowledges before durable) loses state across a crash', async () => {
    const { caught, kinds } = await caughtBy('skip-fsync', 6)
    assert.ok(caught >= 4, `caught in ${caught} of 6 seeds`)
    assert.ok(kinds.has('durability') || kinds.has('assertion') || kinds.has('linearizability'), [...kinds].join())
  })

  test('a Ready loop that applies and answers before its save is on disk breaks the Raft invariants', async () => {
    const { caught, kinds } = await caughtBy('apply-before-persist', 4)
    assert.equal(caught, 4)
    assert.ok(kinds.has('log-matching') || kinds.has('state-machine-safety'), [...kinds].join())
  })

  test('answering a linearizable read before its ReadIndex is not linearizable', async () => {
    const { caught, kinds } = await caughtBy('read-before-index', 6, 2500)
    assert.ok(caught >= 2, `caught in ${caught} of 6 seeds`)
    assert.ok(kinds.has('linearizability'), [...kinds].join())
  })

  test('a member whose state diverges fails the KV hash and the watch checks', async () => {
    const { caught, kinds } = await caughtBy('diverge-apply', 4)
    assert.equal(caught, 4)
    assert.ok(kinds.has('kv-hash') || kinds.has('watch'), [...kinds].join())
  })

  test('the revision assertion stops a member that applies a put twice', async () => {
    const { caught, details } = await caughtBy('double-apply', 3)
    assert.equal(caught, 3)
    assert.ok(
      details.some((d) => /assertion failed: revision moved by 2/.test(d)),
      details.slice(0, 3).join('\n'),
    )
  })

  test('the applied-index assertion stops a member that skips an entry', async () => {
    const { caught, details } = await caughtBy('skip-apply', 4)
    assert.ok(caught >= 2, `caught in ${caught} of 4 seeds`)
    assert.ok(
      details.some((d) => /assertion failed: applied index \d+ does not follow/.test(d)),
      details.join('\n'),
    )
  })
})
