/**
 * Txn: compares, branches, nesting, duplicate keys, op limits, revisions inside and outside (etcd-api.md §3 and §6;
 * the nested-compare and from-key cases were checked against etcd 3.4.23).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  cmp,
  del,
  etcdCode,
  get,
  keysOf,
  kvTuple,
  newStore,
  opDel,
  opGet,
  opPut,
  opTxn,
  put,
  CompareResult as R,
  str,
  CompareTarget as T,
  txn,
  txnReq,
} from './helpers.js'

describe('txn revisions and responses', () => {
  test('all keys of one txn share one revision with increasing sub', () => {
    const s = newStore()
    const r = txn(s, { success: [opPut('a', '1'), opPut('b', '2'), opPut('c', '3')] })
    assert.equal(r.succeeded, true)
    assert.equal(r.header?.revision, 2)
    assert.deepEqual(
      r.responses.map((x) => x.response_put?.header?.revision),
      [2, 2, 2],
    )
    for (const k of ['a', 'b', 'c']) assert.equal(get(s, k).kvs[0]!.mod_revision, 2)
    assert.equal(s.revision, 2)
    // The sub order shows in the hash-visible history: a watch replay lists them in op order.
    assert.equal(put(s, 'd').header?.revision, 3)
  })

  test('a failed compare with an empty failure branch, and a read-only txn, do not bump the revision', () => {
    const s = newStore()
    put(s, 'a', '1')
    const f = txn(s, { compare: [cmp('a', T.VALUE, R.EQUAL, 'nope')], success: [opPut('a', '2')] })
    assert.equal(f.succeeded, false)
    assert.deepEqual(f.responses, [])
    assert.equal(f.header?.revision, 2)
    const ro = txn(s, { success: [opGet('a')] })
    assert.equal(ro.header?.revision, 2)
    assert.equal(s.revision, 2)
  })

  test('the failure branch runs when a compare fails', () => {
    const s = newStore()
    const r = txn(s, { compare: [cmp('a', T.VERSION, R.GREATER, 0)], success: [opPut('x')], failure: [opPut('y')] })
    assert.equal(r.succeeded, false)
    assert.equal(get(s, 'x').count, 0)
    assert.equal(get(s, 'y').count, 1)
    assert.equal(s.revision, 2)
  })

  test('ops see earlier ops; a range header is the txn revision once something changed', () => {
    const s = newStore()
    put(s, 'a', 'old') // 2
    put(s, 'b', 'bee') // 3
    const r = txn(s, {
      success: [opGet('a'), opPut('a', 'new'), opGet('a'), opDel('zz'), opDel('b', '', { prev_kv: true })],
    })
    const [r0, r1, r2, r3, r4] = r.responses
    assert.equal(str(r0!.response_range!.kvs[0]!.value), 'old')
    assert.equal(r0!.response_range!.header?.revision, 3)
    assert.equal(r1!.response_put!.header?.revision, 4)
    assert.deepEqual(kvTuple(r2!.response_range!.kvs[0]), ['a', 'new', 2, 4, 2])
    assert.equal(r2!.response_range!.header?.revision, 4)
    assert.equal(r3!.response_delete_range!.deleted, 0)
    assert.equal(
      r3!.response_delete_range!.header?.revision,
      4,
      'a no-op delete after a change reports the txn revision',
    )
    assert.equal(r4!.response_delete_range!.deleted, 1)
    assert.equal(str(r4!.response_delete_range!.prev_kvs[0]!.value), 'bee')
    assert.equal(r.header?.revision, 4)
    assert.equal(get(s, 'b').count, 0)
    assert.equal(get(s, 'a', '', { revision: 3 }).kvs[0]!.mod_revision, 2)
  })

  test('a no-op delete before any change reports the current revision', () => {
    const s = newStore()
    put(s, 'a')
    const r = txn(s, { success: [opDel('zz')] })
    assert.equal(r.responses[0]!.response_delete_range!.header?.revision, 2)
    assert.equal(s.revision, 2)
  })

  test('nested txn: empty header, ops carry revisions; its compares see the state before the outer txn', () => {
    const s = newStore()
    const r = txn(s, {
      success: [
        opPut('n', '1'),
        opTxn({
          compare: [cmp('n', T.VERSION, R.GREATER, 0)],
          success: [opPut('m', 'yes')],
          failure: [opPut('m', 'no')],
        }),
      ],
    })
    const nested = r.responses[1]!.response_txn!
    assert.equal(nested.header?.revision, 0)
    assert.equal(nested.succeeded, false)
    assert.equal(nested.responses[0]!.response_put!.header?.revision, 2)
    assert.equal(str(get(s, 'm').kvs[0]!.value), 'no', 'etcd 3.4 evaluates every compare before the txn runs')
    assert.equal(s.revision, 2)
  })
})

describe('compares', () => {
  const s = newStore()
  put(s, 'k', 'v5') // 2
  put(s, 'k', 'v5') // 3, version 2
  put(s, 'other', 'x') // 4
  const ok = (...c: ReturnType<typeof cmp>[]) => txn(s, { compare: c }).succeeded

  test('VERSION, CREATE, MOD, VALUE, LEASE with EQUAL, GREATER, LESS, NOT_EQUAL', () => {
    assert.equal(ok(cmp('k', T.VERSION, R.EQUAL, 2)), true)
    assert.equal(ok(cmp('k', T.VERSION, R.GREATER, 1)), true)
    assert.equal(ok(cmp('k', T.VERSION, R.LESS, 2)), false)
    assert.equal(ok(cmp('k', T.VERSION, R.NOT_EQUAL, 2)), false)
    assert.equal(ok(cmp('k', T.CREATE, R.EQUAL, 2)), true)
    assert.equal(ok(cmp('k', T.MOD, R.EQUAL, 3)), true)
    assert.equal(ok(cmp('k', T.MOD, R.LESS, 4)), true)
    assert.equal(ok(cmp('k', T.VALUE, R.EQUAL, 'v5')), true)
    assert.equal(ok(cmp('k', T.VALUE, R.GREATER, 'v4')), true)
    assert.equal(ok(cmp('k', T.VALUE, R.LESS, 'v6')), true)
    assert.equal(ok(cmp('k', T.VALUE, R.NOT_EQUAL, 'v5')), false)
    assert.equal(ok(cmp('k', T.LEASE, R.EQUAL, 0)), true)
    assert.equal(ok(cmp('k', T.LEASE, R.GREATER, 0)), false)
  })

  test('an unknown result is true and an unknown target compares as equal, as etcd compareKV', () => {
    assert.equal(ok({ ...cmp('k', T.VERSION, R.EQUAL, 99), result: 9 as R }), true)
    assert.equal(ok({ ...cmp('k', T.VERSION, R.EQUAL, 99), target: 9 as T }), true)
    assert.equal(ok({ ...cmp('k', T.VERSION, R.NOT_EQUAL, 99), target: 9 as T }), false)
  })

  test('compares are ANDed', () => {
    assert.equal(ok(cmp('k', T.VERSION, R.EQUAL, 2), cmp('k', T.MOD, R.EQUAL, 3)), true)
    assert.equal(ok(cmp('k', T.VERSION, R.EQUAL, 2), cmp('k', T.MOD, R.EQUAL, 2)), false)
  })

  test('a missing key compares with version/create/mod 0; VALUE on a missing key is always false', () => {
    assert.equal(ok(cmp('nope', T.VERSION, R.EQUAL, 0)), true)
    assert.equal(ok(cmp('nope', T.CREATE, R.EQUAL, 0)), true)
    assert.equal(ok(cmp('nope', T.MOD, R.LESS, 1)), true)
    assert.equal(ok(cmp('nope', T.LEASE, R.EQUAL, 0)), true)
    assert.equal(ok(cmp('nope', T.VALUE, R.EQUAL, '')), false)
    assert.equal(ok(cmp('nope', T.VALUE, R.NOT_EQUAL, 'x')), false)
  })

  test('a compare with range_end must hold for every key in the range', () => {
    assert.equal(ok(cmp('k', T.MOD, R.GREATER, 1, '\0')), true) // k@3, other@4
    assert.equal(ok(cmp('k', T.MOD, R.GREATER, 3, '\0')), false)
    assert.equal(ok(cmp('a', T.VERSION, R.GREATER, 0, 'z')), true)
    assert.equal(ok(cmp('x', T.VERSION, R.EQUAL, 0, 'z')), true, 'an empty range compares as a missing key')
    assert.equal(ok(cmp('x', T.VALUE, R.EQUAL, '', 'z')), false)
  })

  test('compares read the current revision, not a deleted one', () => {
    const s2 = newStore()
    put(s2, 'k')
    del(s2, 'k')
    assert.equal(txn(s2, { compare: [cmp('k', T.VERSION, R.EQUAL, 0)] }).succeeded, true)
    assert.equal(txn(s2, { compare: [cmp('k', T.CREATE, R.EQUAL, 0)] }).succeeded, true)
  })
})

describe('txn validation', () => {
  test('duplicate keys among puts, or put and delete of one key, are ErrDuplicateKey', () => {
    const s = newStore()
    const dup = (t: Parameters<typeof txn>[1]) => etcdCode(() => txn(s, t))
    assert.equal(dup({ success: [opPut('a'), opPut('a')] }), 'ErrDuplicateKey')
    assert.equal(dup({ success: [opPut('a'), opDel('a')] }), 'ErrDuplicateKey')
    assert.equal(dup({ success: [opDel('a', 'c'), opPut('b')] }), 'ErrDuplicateKey')
    assert.equal(dup({ failure: [opPut('a'), opPut('a')] }), 'ErrDuplicateKey')
    assert.equal(dup({ success: [opPut('a'), opTxn({ success: [opPut('a')] })] }), 'ErrDuplicateKey')
    assert.equal(dup({ success: [opDel('a'), opTxn({ failure: [opPut('a')] })] }), 'ErrDuplicateKey')
    assert.equal(dup({ success: [opTxn({ success: [opDel('a', 'c')] }), opPut('b')] }), 'ErrDuplicateKey')
    assert.equal(s.revision, 1)
  })

  test('allowed: overlapping deletes, one key in both branches, in then and else of a nested txn', () => {
    const s = newStore()
    put(s, 'a')
    put(s, 'b')
    const r = txn(s, { success: [opDel('a', 'c'), opDel('a')] })
    assert.equal(r.responses[0]!.response_delete_range!.deleted, 2)
    assert.equal(r.responses[1]!.response_delete_range!.deleted, 0)
    txn(s, { success: [opPut('x', '1')], failure: [opPut('x', '2')] })
    txn(s, { success: [opTxn({ success: [opPut('y', 'then')], failure: [opPut('y', 'else')] })] })
    assert.equal(str(get(s, 'y').kvs[0]!.value), 'then')
  })

  test('a from-key delete does not conflict with a put (etcd 3.4): both changes share the revision', () => {
    const s = newStore()
    put(s, 'b', 'old') // 2
    const r = txn(s, { success: [opDel('a', '\0'), opPut('b', 'new')] })
    assert.equal(r.responses[0]!.response_delete_range!.deleted, 1)
    assert.equal(r.header?.revision, 3)
    assert.deepEqual(kvTuple(get(s, 'b').kvs[0]), ['b', 'new', 3, 3, 1])
    assert.deepEqual(kvTuple(get(s, 'b', '', { revision: 2 }).kvs[0]), ['b', 'old', 2, 2, 1])
  })

  test('a from-key delete then an ignore_value put of a deleted key rolls back (etcd panics)', () => {
    const s = newStore()
    put(s, 'b', 'old')
    put(s, 'c', 'c')
    const before = s.hash()
    assert.equal(
      etcdCode(() => txn(s, { success: [opDel('a', '\0'), opPut('b', '', { ignore_value: true })] })),
      'ErrKeyNotFound',
    )
    assert.equal(s.revision, 3)
    assert.equal(s.hash(), before)
    assert.deepEqual(keysOf(get(s, 'a', '\0').kvs), ['b', 'c'])
  })

  test('more than maxTxnOps ops (max of compares, success, failure) is ErrTooManyOps', () => {
    const s = newStore()
    const puts = (n: number) => Array.from({ length: n }, (_, i) => opPut(`k${i}`))
    assert.equal(
      etcdCode(() => txn(s, { success: puts(129) })),
      'ErrTooManyOps',
    )
    assert.equal(
      etcdCode(() => txn(s, { failure: puts(129) })),
      'ErrTooManyOps',
    )
    const cmps = Array.from({ length: 129 }, () => cmp('a', T.VERSION, R.EQUAL, 0))
    assert.equal(
      etcdCode(() => txn(s, { compare: cmps })),
      'ErrTooManyOps',
    )
    assert.equal(txn(s, { success: puts(128) }).header?.revision, 2)
    const small = newStore({ maxTxnOps: 3 })
    assert.equal(
      etcdCode(() => txn(small, { success: puts(4) })),
      'ErrTooManyOps',
    )
    // A nested txn may use what its parent left: 3 - 2 = 1 op.
    assert.equal(
      etcdCode(() => txn(small, { success: [opPut('x'), opTxn({ success: puts(2) })] })),
      'ErrTooManyOps',
    )
    assert.equal(txn(small, { success: [opPut('x'), opTxn({ success: puts(1) })] }).succeeded, true)
  })

  test('empty keys, empty ops, value/lease provided with ignore flags', () => {
    const s = newStore()
    assert.equal(
      etcdCode(() => txn(s, { compare: [cmp('', T.VERSION, R.EQUAL, 0)] })),
      'ErrEmptyKey',
    )
    assert.equal(
      etcdCode(() => txn(s, { success: [opPut('')] })),
      'ErrEmptyKey',
    )
    assert.equal(
      etcdCode(() => txn(s, { success: [opGet('')] })),
      'ErrEmptyKey',
    )
    assert.equal(
      etcdCode(() => txn(s, { success: [{}] })),
      'ErrKeyNotFound',
    )
    assert.equal(
      etcdCode(() => txn(s, { success: [opPut('a', 'v', { ignore_value: true })] })),
      'ErrValueProvided',
    )
    assert.equal(
      etcdCode(() => txn(s, { success: [opPut('a', '', { ignore_value: true })] })),
      'ErrKeyNotFound',
    )
    assert.equal(
      etcdCode(() => txn(s, { success: [opPut('a', '', { lease: 9n })] })),
      'ErrLeaseNotFound',
    )
    assert.equal(s.revision, 1)
  })

  test('ranges in a txn: future revision and compacted revision are refused before anything is written', () => {
    const s = newStore()
    put(s, 'a') // 2
    put(s, 'a') // 3
    assert.equal(
      etcdCode(() => txn(s, { success: [opPut('b'), opGet('a', '', { revision: 4 })] })),
      'ErrFutureRev',
    )
    s.apply({ compaction: { revision: 3, physical: false } })
    assert.equal(
      etcdCode(() => txn(s, { success: [opPut('b'), opGet('a', '', { revision: 2 })] })),
      'ErrCompacted',
    )
    assert.equal(get(s, 'b').count, 0)
    assert.equal(txn(s, { success: [opGet('a', '', { revision: 3 })] }).responses[0]!.response_range!.count, 1)
  })

  test('negative range revisions in a txn: ErrCompacted below -1 (never compacted) or below the compact revision', () => {
    const s = newStore()
    put(s, 'a')
    assert.equal(txn(s, { success: [opGet('a', '', { revision: -1 })] }).responses[0]!.response_range!.count, 1)
    assert.equal(
      etcdCode(() => txn(s, { success: [opGet('a', '', { revision: -2 })] })),
      'ErrCompacted',
    )
    s.apply({ compaction: { revision: 2, physical: false } })
    assert.equal(
      etcdCode(() => txn(s, { success: [opGet('a', '', { revision: -1 })] })),
      'ErrCompacted',
    )
    assert.equal(get(s, 'a', '', { revision: -1 }).count, 1, 'outside a txn a negative revision is the current one')
  })

  test('readTxn serves read-only txns and refuses writing ones', () => {
    const s = newStore()
    put(s, 'a', '1')
    const r = s.readTxn(txnReq({ compare: [cmp('a', T.VALUE, R.EQUAL, '1')], success: [opGet('a')] }))
    assert.equal(r.succeeded, true)
    assert.equal(str(r.responses[0]!.response_range!.kvs[0]!.value), '1')
    assert.throws(() => s.readTxn(txnReq({ success: [opPut('a')] })))
  })
})
