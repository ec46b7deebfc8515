/**
 * Leases: grant/revoke/keys through apply (replicated), and the leader's clock outside apply (promote, renew,
 * expired, checkpoints), with time passed in as monotonic milliseconds: no sleeps.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { KvStore } from '../../src/kv/store.js'
import { del, etcdCode, get, keysOf, newStore, put, str } from './helpers.js'

const grant = (s: KvStore, ID: bigint, TTL: number, nowMs?: number) => s.apply({ lease_grant: { ID, TTL } }, nowMs)
const revoke = (s: KvStore, ID: bigint) => s.apply({ lease_revoke: { ID } })
const ttl = (s: KvStore, ID: bigint, nowMs?: number) => s.leaseTimeToLive({ ID, keys: true }, nowMs)

describe('lease grant and revoke (replicated)', () => {
  test('TTL minimum is minLeaseTtlSeconds (2): TTL 0, 1 and -5 become 2', () => {
    const s = newStore()
    assert.equal(grant(s, 1n, 0).TTL, 2)
    assert.equal(grant(s, 2n, 1).TTL, 2)
    assert.equal(grant(s, 3n, -5).TTL, 2)
    assert.equal(grant(s, 4n, 30).TTL, 30)
    assert.equal(newStore({ minLeaseTtlSeconds: 5 }).apply({ lease_grant: { ID: 1n, TTL: 3 } }).TTL, 5)
  })

  test('the requested ID is honoured; a taken ID is ErrLeaseExist; 0 is refused; too long is ErrLeaseTTLTooLarge', () => {
    const s = newStore()
    const g = grant(s, 7587n, 30)
    assert.equal(g.ID, 7587n)
    assert.equal(
      etcdCode(() => grant(s, 7587n, 30)),
      'ErrLeaseExist',
    )
    assert.equal(
      etcdCode(() => grant(s, 0n, 30)),
      'ErrLeaseNotFound',
    )
    assert.equal(
      etcdCode(() => grant(s, 9n, 9_000_000_001)),
      'ErrLeaseTTLTooLarge',
    )
    assert.equal(grant(s, -3n, 10).ID, -3n, 'any non-zero int64 id')
  })

  test('grant does not bump the revision; header is the current revision', () => {
    const s = newStore()
    put(s, 'a')
    assert.equal(grant(s, 1n, 10).header?.revision, 2)
    assert.equal(s.revision, 2)
  })

  test('revoke deletes the attached keys in one revision, in key order; the lease is gone', () => {
    const s = newStore()
    grant(s, 1n, 10)
    put(s, 'k2', 'x', { lease: 1n }) // 2
    put(s, 'k1', 'y', { lease: 1n }) // 3
    put(s, 'free', 'z') // 4
    assert.deepEqual(ttl(s, 1n).keys.map(str), ['k1', 'k2'])
    const r = revoke(s, 1n)
    assert.equal(r.header?.revision, 5)
    assert.equal(s.revision, 5)
    assert.deepEqual(keysOf(get(s, 'a', '\0').kvs), ['free'])
    assert.equal(ttl(s, 1n).TTL, -1)
    assert.deepEqual(s.leaseLeases().leases, [])
    assert.equal(
      etcdCode(() => revoke(s, 1n)),
      'ErrLeaseNotFound',
    )
  })

  test('revoking a lease without keys does not bump the revision', () => {
    const s = newStore()
    grant(s, 1n, 10)
    revoke(s, 1n)
    assert.equal(s.revision, 1)
  })

  test('a put without a lease detaches the key; ignore_lease keeps it; delete detaches', () => {
    const s = newStore()
    grant(s, 1n, 10)
    put(s, 'a', '1', { lease: 1n })
    put(s, 'b', '1', { lease: 1n })
    put(s, 'c', '1', { lease: 1n })
    put(s, 'a', '2')
    put(s, 'b', '2', { ignore_lease: true })
    del(s, 'c')
    assert.equal(get(s, 'a').kvs[0]!.lease, 0n)
    assert.equal(get(s, 'b').kvs[0]!.lease, 1n)
    assert.deepEqual(ttl(s, 1n).keys.map(str), ['b'])
    revoke(s, 1n)
    assert.deepEqual(keysOf(get(s, 'a', '\0').kvs), ['a'])
  })

  test('moving a key to another lease', () => {
    const s = newStore()
    grant(s, 1n, 10)
    grant(s, 2n, 10)
    put(s, 'k', 'v', { lease: 1n })
    put(s, 'k', 'v', { lease: 2n })
    assert.deepEqual(ttl(s, 1n).keys, [])
    assert.deepEqual(ttl(s, 2n).keys.map(str), ['k'])
  })

  test('timetolive of an unknown lease is TTL -1; keys only when asked; leases are listed by id', () => {
    const s = newStore()
    assert.deepEqual((({ ID, TTL }) => ({ ID, TTL }))(ttl(s, 99n)), { ID: 99n, TTL: -1 })
    grant(s, 5n, 30)
    grant(s, 3n, 30)
    put(s, 'k', '', { lease: 5n })
    assert.deepEqual(s.leaseTimeToLive({ ID: 5n, keys: false }).keys, [])
    const t = ttl(s, 5n)
    assert.equal(t.grantedTTL, 30)
    assert.equal(t.TTL, 30, 'a follower reports the granted TTL')
    assert.deepEqual(
      s.leaseLeases().leases.map((l) => l.ID),
      [3n, 5n],
    )
  })
})

describe("the leader's lease clock", () => {
  test("leases are listed soonest expiry first on the leader (etcd's leasesByExpiry), by id without clocks", () => {
    const s = newStore()
    grant(s, 3n, 100)
    grant(s, 1n, 300)
    grant(s, 2n, 50)
    assert.deepEqual(
      s.leaseLeases().leases.map((l) => l.ID),
      [1n, 2n, 3n],
      'a follower: no clocks, by id',
    )
    s.lessor.promote(1000)
    assert.deepEqual(
      s.leaseLeases().leases.map((l) => l.ID),
      [2n, 3n, 1n],
    )
  })

  test('leases expire only on the leader, after their TTL; expired() hands each out once per retry interval', () => {
    const s = newStore()
    grant(s, 1n, 2)
    grant(s, 2n, 5)
    assert.deepEqual(s.lessor.expired(1_000_000), [], 'a follower never expires leases')
    s.lessor.promote(1000)
    assert.deepEqual(s.lessor.expired(2999), [])
    assert.deepEqual(s.lessor.expired(3000), [1n])
    assert.deepEqual(s.lessor.expired(3500), [], 'handed out, waiting for its revoke')
    assert.deepEqual(s.lessor.expired(6000), [1n, 2n], 'the revoke got lost: handed out again after 3 s')
    revoke(s, 1n)
    revoke(s, 2n)
    assert.deepEqual(s.lessor.expired(100_000), [])
  })

  test('expired() returns at most max leases, oldest first', () => {
    const s = newStore()
    s.lessor.promote(0)
    for (let i = 1; i <= 5; i++) grant(s, BigInt(i), 10 + i, 0)
    assert.deepEqual(s.lessor.expired(60_000, 2), [1n, 2n])
  })

  test('renew restarts the clock with the full TTL; unknown or expired lease answers 0; followers refuse', () => {
    const s = newStore()
    grant(s, 1n, 10)
    assert.equal(
      etcdCode(() => s.lessor.renew(1n, 0)),
      'ErrNotLeader',
    )
    s.lessor.promote(0)
    assert.equal(s.lessor.renew(1n, 8000), 10)
    assert.deepEqual(s.lessor.expired(17_999), [])
    assert.deepEqual(s.lessor.expired(18_000), [1n])
    assert.equal(s.lessor.renew(1n, 18_000), 0, 'expired: its revoke is on the way')
    assert.equal(s.lessor.renew(42n, 0), 0)
  })

  test('timetolive on the leader counts down (truncated like etcd: 30 s granted, 0.5 s later "29")', () => {
    const s = newStore()
    s.lessor.promote(0)
    grant(s, 1n, 30, 1000)
    assert.equal(ttl(s, 1n, 1500).TTL, 29)
    assert.equal(ttl(s, 1n, 21_000).TTL, 10)
    assert.equal(ttl(s, 1n, 40_000).TTL, 0)
  })

  test('a lease granted on the leader without a clock reading starts at the next one', () => {
    const s = newStore()
    s.lessor.promote(0)
    grant(s, 1n, 2)
    assert.deepEqual(s.lessor.expired(5000), [], 'clock starts at 5000')
    assert.deepEqual(s.lessor.expired(7000), [1n])
  })

  test('demote stops the clock; promote restarts every lease at its remaining TTL', () => {
    const s = newStore()
    grant(s, 1n, 10)
    s.lessor.promote(0)
    s.lessor.demote()
    assert.deepEqual(s.lessor.expired(50_000), [])
    s.lessor.promote(50_000)
    assert.deepEqual(s.lessor.expired(59_999), [])
    assert.deepEqual(s.lessor.expired(60_000), [1n])
  })

  test('checkpoints carry the remaining TTL to a new leader; a renew clears it', () => {
    const cfg = { leaseCheckpointIntervalMs: 10_000 }
    const leader = newStore(cfg)
    const follower = newStore(cfg)
    const both = (f: (s: KvStore) => void) => {
      f(leader)
      f(follower)
    }
    both((s) => grant(s, 1n, 60))
    both((s) => grant(s, 2n, 5)) // shorter than the interval: never checkpointed, as in etcd
    leader.lessor.promote(0)
    assert.deepEqual(leader.lessor.checkpoints(9_999), [])
    const cps = leader.lessor.checkpoints(10_000)
    assert.deepEqual(cps, [{ ID: 1n, remaining_TTL: 50 }])
    both((s) => s.apply({ lease_checkpoint: { checkpoints: cps } }))
    assert.equal(ttl(follower, 1n).TTL, 50, 'a follower reports the checkpointed TTL')
    // Leader change at t=12 s: the follower's clock starts at the checkpointed 50 s, not the full 60 s.
    leader.lessor.demote()
    follower.lessor.promote(12_000)
    assert.deepEqual(follower.lessor.expired(61_999), [2n])
    assert.equal(ttl(follower, 1n, 61_999).TTL, 0)
    // A keepalive after a checkpoint makes the leader checkpoint 0, so the next leader grants the full TTL again.
    assert.equal(follower.lessor.renew(1n, 61_999), 60)
    assert.deepEqual(follower.lessor.expired(62_000), [])
    const clear = follower.lessor.checkpoints(62_001)
    assert.deepEqual(clear, [{ ID: 1n, remaining_TTL: 0 }])
    follower.apply({ lease_checkpoint: { checkpoints: clear } })
    assert.equal(ttl(follower, 1n).TTL, 60)
  })

  test('the expiry path end to end: the leader proposes revokes, every member applies them', () => {
    const a = newStore()
    const b = newStore()
    for (const s of [a, b]) {
      grant(s, 9n, 2)
      put(s, 'lock', 'me', { lease: 9n })
    }
    a.lessor.promote(0)
    for (const id of a.lessor.expired(2000)) for (const s of [a, b]) revoke(s, id)
    for (const s of [a, b]) {
      assert.equal(get(s, 'lock').count, 0)
      assert.equal(s.revision, 3)
    }
    assert.equal(a.hash(), b.hash())
  })
})
