/** Quota, alarms and config validation. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { defaultKvConfig, KvConfigError, validateKvConfig } from '../../src/kv/config.js'
import { changeOverheadBytes } from '../../src/kv/quota.js'
import { KvStore } from '../../src/kv/store.js'
import { AlarmAction, AlarmType } from '../../src/protocol/types.js'
import { CompareResult, CompareTarget, cmp, del, etcdCode, get, newStore, opGet, opPut, put, txn } from './helpers.js'

const alarm = (s: KvStore, action: AlarmAction, alarm: AlarmType, memberID = '0') =>
  s.apply({ alarm: { action, memberID, alarm } }).alarms

describe('quota', () => {
  // Each 100-byte value costs 1 + 100 + overhead.
  const rowCost = 1 + 100 + changeOverheadBytes
  const full = () => {
    const s = newStore({ quotaBackendBytes: rowCost * 3 + 10 })
    put(s, 'a', 'x'.repeat(100))
    put(s, 'b', 'x'.repeat(100))
    put(s, 'c', 'x'.repeat(100))
    return s
  }

  test('a write that would reach the quota raises NOSPACE and is refused; the alarm replicates', () => {
    const s = full()
    assert.equal(
      etcdCode(() => put(s, 'd', 'x'.repeat(100))),
      'ErrNoSpace',
    )
    assert.equal(s.revision, 4)
    assert.deepEqual(s.activeAlarms(), [{ memberID: '0', alarm: AlarmType.NOSPACE }])
    // While the alarm is active even a tiny put is refused (etcd's capped applier).
    assert.equal(
      etcdCode(() => put(s, 'e', '')),
      'ErrNoSpace',
    )
    assert.deepEqual(KvStore.restore(s.snapshot()).activeAlarms(), s.activeAlarms())
  })

  test('while NOSPACE: puts, txns with puts (whatever the compare) and lease grants refused; the rest works', () => {
    const s = full()
    alarm(s, AlarmAction.ACTIVATE, AlarmType.NOSPACE, '42')
    assert.equal(
      etcdCode(() => put(s, 'a', 'y')),
      'ErrNoSpace',
    )
    assert.equal(
      etcdCode(() =>
        txn(s, { compare: [cmp('zz', CompareTarget.VALUE, CompareResult.EQUAL, 'no')], success: [opPut('a')] }),
      ),
      'ErrNoSpace',
    )
    assert.equal(
      etcdCode(() => s.apply({ lease_grant: { ID: 1n, TTL: 10 } })),
      'ErrNoSpace',
    )
    assert.equal(txn(s, { success: [opGet('a')] }).succeeded, true)
    assert.equal(get(s, 'a').count, 1)
    assert.equal(del(s, 'a').deleted, 1)
    s.apply({ compaction: { revision: s.revision, physical: true } })
    // The operator made room: disarm, and writes work again.
    assert.deepEqual(alarm(s, AlarmAction.DEACTIVATE, AlarmType.NOSPACE, '42'), [
      { memberID: '42', alarm: AlarmType.NOSPACE },
    ])
    assert.equal(put(s, 'a', 'back').header?.revision, 6)
  })

  test('sizeBytes counts keys, values and history, and shrinks with compaction and deletes of history', () => {
    const s = newStore()
    assert.equal(s.sizeBytes, 0)
    put(s, 'key', 'value')
    assert.equal(s.sizeBytes, 3 + 5 + changeOverheadBytes)
    put(s, 'key', 'value2')
    assert.equal(s.sizeBytes, 3 + 5 + changeOverheadBytes + 3 + 6 + changeOverheadBytes)
    s.apply({ compaction: { revision: 3, physical: false } })
    assert.equal(s.sizeBytes, 3 + 6 + changeOverheadBytes)
  })
})

describe('alarms', () => {
  test('GET, ACTIVATE, DEACTIVATE answer as etcd', () => {
    const s = newStore()
    assert.deepEqual(alarm(s, AlarmAction.GET, AlarmType.NONE), [])
    assert.deepEqual(alarm(s, AlarmAction.ACTIVATE, AlarmType.NOSPACE, '7'), [
      { memberID: '7', alarm: AlarmType.NOSPACE },
    ])
    assert.deepEqual(alarm(s, AlarmAction.ACTIVATE, AlarmType.NOSPACE, '7'), [], 'already active')
    assert.deepEqual(alarm(s, AlarmAction.ACTIVATE, AlarmType.NONE, '7'), [])
    alarm(s, AlarmAction.ACTIVATE, AlarmType.CORRUPT, '3')
    assert.equal(alarm(s, AlarmAction.GET, AlarmType.NONE).length, 2)
    assert.deepEqual(alarm(s, AlarmAction.GET, AlarmType.CORRUPT), [{ memberID: '3', alarm: AlarmType.CORRUPT }])
    assert.deepEqual(alarm(s, AlarmAction.DEACTIVATE, AlarmType.CORRUPT, '9'), [], 'not active for that member')
    assert.equal(s.revision, 1, 'alarms do not bump the revision')
  })

  test('CORRUPT refuses writes and reads with ErrCorrupt', () => {
    const s = newStore()
    put(s, 'a')
    alarm(s, AlarmAction.ACTIVATE, AlarmType.CORRUPT, '3')
    assert.equal(
      etcdCode(() => put(s, 'a')),
      'ErrCorrupt',
    )
    assert.equal(
      etcdCode(() => del(s, 'a')),
      'ErrCorrupt',
    )
    assert.equal(
      etcdCode(() => get(s, 'a')),
      'ErrCorrupt',
    )
    alarm(s, AlarmAction.DEACTIVATE, AlarmType.CORRUPT, '3')
    assert.equal(get(s, 'a').count, 1)
  })
})

describe('validateKvConfig', () => {
  test("defaults are etcd's", () => {
    const c = validateKvConfig()
    assert.equal(c.maxTxnOps, 128)
    assert.equal(c.minLeaseTtlSeconds, 2)
    assert.equal(c.quotaBackendBytes, 2 * 1024 ** 3)
    assert.equal(c.watcherQueueEventsMax, 1024)
    assert.deepEqual(c, { ...defaultKvConfig })
  })

  test('every limit must be a positive safe integer; the error names the field', () => {
    for (const field of Object.keys(defaultKvConfig)) {
      for (const bad of [0, -1, 1.5, Number.NaN, '3']) {
        assert.throws(
          () => validateKvConfig({ [field]: bad }),
          (err: unknown) => err instanceof KvConfigError && err.field === field,
          `${field}=${String(bad)}`,
        )
      }
    }
    assert.throws(() => validateKvConfig({ minLeaseTtlSeconds: 10, maxLeaseTtlSeconds: 5 }), KvConfigError)
    assert.throws(() => new KvStore({ maxTxnOps: 0 }), KvConfigError)
  })
})
