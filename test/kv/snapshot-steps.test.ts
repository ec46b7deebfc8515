/**
 * The snapshot built in steps (KvStore.snapshotInSteps, MemberStateMachine.snapshotInSteps, used by the Raft node so
 * a large history does not stall the Ready loop): the same bytes as the one-go snapshot() of the state at the call,
 * whatever is applied between the steps, for every CBOR head width of the keys array and of the member's byte string.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MemberStateMachine } from '../../src/etcdserver/member.js'
import { ClusterState } from '../../src/etcdserver/membership.js'
import { cborHead, concatBytes } from '../../src/kv/snapshot.js'
import type { KvStore } from '../../src/kv/store.js'
import { del, newStore, put, rng } from './helpers.js'

/** A store with `keys` keys, `writes` seeded puts/deletes over them, a lease and a compaction. */
function seeded(seed: number, keys: number, writes: number): KvStore {
  const s = newStore()
  const r = rng(seed)
  s.apply({ lease_grant: { ID: 4660n, TTL: 1000 } })
  for (let i = 0; i < keys; i++) put(s, `k/${String(i).padStart(6, '0')}`, 'v'.repeat(r(40)))
  for (let i = 0; i < writes; i++) {
    const k = `k/${String(r(Math.max(1, keys))).padStart(6, '0')}`
    if (r(5) === 0) del(s, k)
    else put(s, k, `w${i}`.repeat(1 + r(20)), r(7) === 0 ? { lease: 4660n } : {})
    if (i === Math.floor(writes / 2)) s.apply({ compaction: { revision: s.revision - 3, physical: false } })
  }
  return s
}

/** Runs the generator to its end, applying `between(step)` after each step. */
function drain<T>(g: Iterator<void, T, void>, between: (step: number) => void = () => {}): { value: T; steps: number } {
  let steps = 0
  for (;;) {
    const r = g.next()
    if (r.done) return { value: r.value, steps }
    between(++steps)
  }
}

describe('snapshot in steps', () => {
  test('cborHead writes the shortest head, as cbor-x does', () => {
    assert.deepEqual([...cborHead(4, 0)], [0x80])
    assert.deepEqual([...cborHead(4, 23)], [0x97])
    assert.deepEqual([...cborHead(4, 24)], [0x98, 24])
    assert.deepEqual([...cborHead(2, 256)], [0x59, 1, 0])
    assert.deepEqual([...cborHead(2, 65_536)], [0x5a, 0, 1, 0, 0])
    assert.deepEqual([...cborHead(2, 2 ** 32 + 5)], [0x5b, 0, 0, 0, 1, 0, 0, 0, 5])
  })

  // Key counts across the keys array's head widths (1, 2, 3 and 5 bytes), small steps so there are many.
  for (const [seed, keys, writes, rowsPerStep] of [
    [1, 0, 0, 4],
    [2, 5, 30, 4],
    [3, 30, 200, 7],
    [4, 300, 1_000, 64],
    [5, 70_000, 2_000, 8_192],
  ] as const)
    test(`the same bytes as snapshot(): ${keys} keys, ${writes} writes (seed ${seed})`, () => {
      const s = seeded(seed, keys, writes)
      const want = s.snapshot()
      const r = rng(seed * 31)
      // Writes, deletes and a compaction between the steps change nothing of what is encoded.
      const { value, steps } = drain(s.snapshotInSteps(rowsPerStep), (step) => {
        put(s, `k/${String(r(Math.max(1, keys))).padStart(6, '0')}`, `between${step}`)
        if (step % 3 === 0) del(s, `k/${String(r(Math.max(1, keys))).padStart(6, '0')}`)
        if (step === 2) s.apply({ compaction: { revision: s.revision - 1, physical: false } })
      })
      const got = concatBytes(value)
      assert.equal(got.length, want.length, `seed ${seed}: length`)
      assert.ok(Buffer.from(got).equals(Buffer.from(want)), `seed ${seed}: bytes differ`)
      if (keys * 2 > rowsPerStep) assert.ok(steps > 1, `seed ${seed}: ${steps} steps`)
      if (steps > 0) assert.notDeepEqual(s.snapshot(), want, 'the store moved on meanwhile')
    })

  test("the member's snapshot: the same bytes as snapshot(), small and above 64 KiB", () => {
    for (const [seed, keys, writes] of [
      [7, 3, 10],
      [8, 3_000, 3_000],
    ] as const) {
      const sm = new MemberStateMachine(
        seeded(seed, keys, writes),
        new ClusterState([
          { ID: '1', name: 'm0', peerURLs: ['http://127.0.0.1:2380'], clientURLs: [], isLearner: false },
        ]),
      )
      const want = sm.snapshot()
      const { value, steps } = drain(sm.snapshotInSteps(), () => put(sm.kv, 'k/000000', 'moved'))
      assert.ok(
        Buffer.from(value).equals(Buffer.from(want)),
        `seed ${seed}: bytes differ (${value.length} vs ${want.length})`,
      )
      if (keys > 1000)
        assert.ok(want.length > 65_536 && steps >= 1, `seed ${seed}: ${want.length} bytes, ${steps} steps`)
      // And it restores.
      const back = new MemberStateMachine(newStore(), new ClusterState())
      back.restore(value)
      assert.ok(Buffer.from(back.snapshot()).equals(Buffer.from(want)))
    }
  })
})
