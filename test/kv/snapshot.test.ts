/**
 * Snapshot round trips, hashKV against etcd's own numbers, and determinism: stores fed the same requests agree.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { InternalRequest } from '../../src/kv/requests.js'
import { KvSnapshotError } from '../../src/kv/snapshot.js'
import { KvStore } from '../../src/kv/store.js'
import { AlarmAction, AlarmType } from '../../src/protocol/types.js'
import {
  b,
  CompareResult,
  CompareTarget,
  cmp,
  del,
  delReq,
  etcdCode,
  get,
  kvTuple,
  newStore,
  opDel,
  opPut,
  put,
  putReq,
  RecordingSink,
  txn,
  txnReq,
  watchReq,
} from './helpers.js'

/** The sequence run against etcd 3.4.23 to record the hashKV values below. */
function etcdSequence(s: KvStore, compact: boolean): void {
  put(s, 'a', '1') // 2
  put(s, 'b', '2') // 3
  put(s, 'a', '3') // 4
  del(s, 'b') // 5
  txn(s, { success: [opPut('c', 'x'), opPut('d', '')] }) // 6
  s.apply({ lease_grant: { ID: 4660n, TTL: 1000 } })
  put(s, 'e', 'v', { lease: 4660n }) // 7
  put(s, 'b', 'again') // 8
  if (compact) s.apply({ compaction: { revision: 4, physical: false } })
}

/** Every answer a store gives about its data, for comparing two stores. */
function observe(s: KvStore): unknown {
  const out: unknown[] = [s.revision, s.compactRevision, s.sizeBytes, s.keyCount, s.activeAlarms()]
  for (let rev = Math.max(1, s.compactRevision); rev <= s.revision; rev++) {
    const r = get(s, '\0', '\0', { revision: rev })
    // hashKV refuses the compact revision itself (etcd: rev <= compactRev is ErrCompacted).
    const hash = rev > s.compactRevision ? s.hashKV(rev).hash : undefined
    out.push(
      rev,
      r.count,
      r.kvs.map((kv) => [kvTuple(kv), kv.lease]),
      hash,
    )
  }
  out.push(s.leaseLeases().leases.map((l) => s.leaseTimeToLive({ ID: l.ID, keys: true })))
  const sink = new RecordingSink()
  s.watchHub
    .openStream(sink)
    .create(watchReq('\0', '\0', { start_revision: Math.max(1, s.compactRevision), prev_kv: true }))
  out.push(sink.messages.slice(1).map((m) => m.events))
  return out
}

describe('hashKV', () => {
  test("equals etcd 3.4.23's HashKV for the same history (before and after compaction)", () => {
    const s = newStore()
    etcdSequence(s, false)
    assert.equal(s.hashKV(0).hash, 1376076218)
    assert.equal(s.hashKV(3).hash, 1827592406)
    s.apply({ compaction: { revision: 4, physical: false } })
    assert.deepEqual(
      [0, 5, 6, 8].map((r) => s.hashKV(r).hash),
      [3788506191, 1468967122, 2549487896, 3788506191],
    )
    assert.equal(s.hashKV(0).compact_revision, 4)
  })

  test('a negative revision hashes no row, as etcd (only 0 means "current"): the empty history\'s hash', () => {
    const s = newStore()
    etcdSequence(s, false)
    // 1084519789: etcd 3.4.23's HashKV at revision -1 (the CRC-32C of its bucket name alone), found by
    // test/diff/random-grpc.test.ts.
    assert.equal(s.hashKV(-1).hash, 1084519789)
    assert.equal(newStore().hashKV(-5).hash, 1084519789)
    assert.equal(s.hashKV(0).hash, 1376076218)
  })

  test("hashKV errors are etcd's: at or below the compact revision, above the current one", () => {
    const s = newStore()
    etcdSequence(s, true)
    assert.equal(
      etcdCode(() => s.hashKV(4)),
      'ErrCompacted',
    )
    assert.equal(
      etcdCode(() => s.hashKV(9)),
      'ErrFutureRev',
    )
  })
})

describe('snapshot', () => {
  test('a restored store answers every read, historical ones included, exactly as the original', () => {
    const s = newStore()
    etcdSequence(s, true)
    s.apply({ lease_grant: { ID: 77n, TTL: 600 } })
    s.apply({ lease_checkpoint: { checkpoints: [{ ID: 77n, remaining_TTL: 321 }] } })
    put(s, 'f', 'leased', { lease: 77n })
    del(s, 'c')
    s.apply({ alarm: { action: AlarmAction.ACTIVATE, memberID: '5', alarm: AlarmType.NOSPACE } })
    const bytes = s.snapshot()
    const r = KvStore.restore(bytes)
    assert.deepEqual(observe(r), observe(s))
    assert.deepEqual([...r.snapshot()], [...bytes], 'snapshot of the restored store is byte-identical')
    assert.equal(r.hash(), s.hash())
    assert.equal(r.leaseTimeToLive({ ID: 77n, keys: false }).TTL, 321, 'the checkpointed remaining TTL survives')
    // Both continue identically.
    for (const x of [s, r]) {
      x.apply({ alarm: { action: AlarmAction.DEACTIVATE, memberID: '5', alarm: AlarmType.NOSPACE } })
      x.apply({ lease_revoke: { ID: 77n } })
      put(x, 'g', 'after')
      x.apply({ compaction: { revision: 7, physical: false } })
    }
    assert.deepEqual(observe(r), observe(s))
  })

  test('round trip of an empty store and of a store compacted at the revision of a delete', () => {
    assert.deepEqual(observe(KvStore.restore(newStore().snapshot())), observe(newStore()))
    const s = newStore()
    put(s, 'a', '1') // 2
    put(s, 'b', '1') // 3
    txn(s, { success: [opDel('a'), opPut('c', '1')] }) // 4
    s.apply({ compaction: { revision: 4, physical: false } })
    assert.deepEqual(observe(KvStore.restore(s.snapshot())), observe(s))
  })

  test('restore replaces the state in place; open watchers catch up from where they were', () => {
    const leader = newStore()
    const follower = newStore()
    put(leader, 'k', '1')
    put(follower, 'k', '1')
    const sink = new RecordingSink()
    follower.watchHub.openStream(sink).create(watchReq('k'))
    put(leader, 'k', '2')
    put(leader, 'k', '3')
    follower.restore(leader.snapshot())
    assert.deepEqual(sink.events(), ['PUT k=2@3', 'PUT k=3@4'])
    put(follower, 'k', '4')
    assert.deepEqual(sink.events().at(-1), 'PUT k=4@5')
  })

  test('garbage is refused with KvSnapshotError', () => {
    assert.throws(() => KvStore.restore(new Uint8Array([1, 2, 3])), KvSnapshotError)
    assert.throws(() => KvStore.restore(b('not cbor at all')), KvSnapshotError)
  })
})

describe('determinism', () => {
  /** A seeded request stream covering every write kind, including refused requests. */
  function requests(seed: number, n: number): InternalRequest[] {
    let x = seed
    const rnd = (m: number) => {
      x = (x * 1103515245 + 12345) & 0x7fffffff
      return x % m
    }
    const out: InternalRequest[] = []
    let rev = 1
    for (let i = 0; i < n; i++) {
      const k = `k${rnd(20)}`
      switch (rnd(9)) {
        case 0:
        case 1:
        case 2:
          out.push({ put: putReq(k, `v${i}`, rnd(4) === 0 ? { lease: BigInt(1 + rnd(4)) } : {}) })
          break
        case 3:
          out.push({ delete_range: delReq(k, rnd(2) === 0 ? '' : `k${rnd(20)}`) })
          break
        case 4:
          out.push({
            txn: txnReq({
              compare: [cmp(k, CompareTarget.VERSION, CompareResult.GREATER, rnd(3))],
              success: [opPut(k, `t${i}`), opDel(`z${rnd(5)}`)],
              failure: [opPut(`z${rnd(5)}`, `f${i}`)],
            }),
          })
          break
        case 5:
          out.push({ lease_grant: { ID: BigInt(1 + rnd(4)), TTL: rnd(20) } })
          break
        case 6:
          out.push({ lease_revoke: { ID: BigInt(1 + rnd(4)) } })
          break
        case 7:
          rev += rnd(6)
          out.push({ compaction: { revision: rev, physical: false } })
          break
        default:
          out.push({ lease_checkpoint: { checkpoints: [{ ID: BigInt(1 + rnd(4)), remaining_TTL: rnd(10) }] } })
      }
    }
    return out
  }

  test('two stores fed the same requests have equal hash() after every step; a restore midway joins them', () => {
    for (const seed of [1, 2, 3]) {
      const reqs = requests(seed, 600)
      const a = newStore()
      const c = newStore()
      let restored: KvStore | undefined
      const outcome = (s: KvStore, r: InternalRequest) => {
        try {
          return s.apply(r).header?.revision
        } catch (err) {
          return (err as { code: string }).code
        }
      }
      reqs.forEach((r, i) => {
        const oa = outcome(a, r)
        assert.equal(outcome(c, r), oa, `seed ${seed} step ${i}`)
        if (restored !== undefined) assert.equal(outcome(restored, r), oa)
        if (i === 300) restored = KvStore.restore(a.snapshot())
        if (i % 50 === 0) assert.equal(a.hash(), c.hash(), `seed ${seed} step ${i}`)
      })
      assert.equal(a.hash(), c.hash())
      assert.equal(restored!.hash(), a.hash())
      assert.deepEqual(observe(restored!), observe(a))
      assert.ok(a.revision > 100, `the stream writes (${a.revision})`)
    }
  })
})
