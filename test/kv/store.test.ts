/**
 * The MVCC core: revisions, put, delete, range. Numbers are etcd 3.4's as recorded in shared/etcd-api.md §6.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { defaultRangeRequest, SortOrder, SortTarget } from '../../src/protocol/types.js'
import { b, del, etcdCode, get, keysOf, kvTuple, newStore, put, str } from './helpers.js'

describe('revisions', () => {
  test('an empty store is at revision 1 and the first put gets 2, each write one more', () => {
    const s = newStore()
    assert.equal(s.revision, 1)
    assert.equal(put(s, 'a', '1').header?.revision, 2)
    assert.equal(put(s, 'b', '1').header?.revision, 3)
    assert.equal(put(s, 'a', '2').header?.revision, 4)
    assert.equal(s.revision, 4)
  })

  test('reads and no-op deletes do not bump the revision', () => {
    const s = newStore()
    put(s, 'a')
    get(s, 'a')
    const d = del(s, 'zzz')
    assert.equal(d.deleted, 0)
    assert.equal(d.header?.revision, 2)
    assert.equal(s.revision, 2)
  })

  test('a delete of several keys takes one revision', () => {
    const s = newStore()
    put(s, 'a')
    put(s, 'b')
    put(s, 'c')
    const d = del(s, 'a', 'c')
    assert.equal(d.deleted, 2)
    assert.equal(d.header?.revision, 5)
    assert.equal(s.revision, 5)
  })
})

describe('put', () => {
  test('version counts puts; create_revision stays; mod_revision moves', () => {
    const s = newStore()
    put(s, 'k', 'v1')
    put(s, 'x')
    put(s, 'k', 'v2')
    assert.deepEqual(kvTuple(get(s, 'k').kvs[0]), ['k', 'v2', 2, 4, 2])
  })

  test('version resets to 1 after delete and re-create; create_revision is the new revision', () => {
    const s = newStore()
    put(s, 'k', 'v1')
    put(s, 'k', 'v2')
    del(s, 'k')
    put(s, 'k', 'v3')
    assert.deepEqual(kvTuple(get(s, 'k').kvs[0]), ['k', 'v3', 5, 5, 1])
  })

  test('prev_kv returns the previous value only when the key existed', () => {
    const s = newStore()
    assert.equal(put(s, 'k', 'v1', { prev_kv: true }).prev_kv, undefined)
    assert.deepEqual(kvTuple(put(s, 'k', 'v2', { prev_kv: true }).prev_kv), ['k', 'v1', 2, 2, 1])
  })

  test('ignore_value keeps the value and is still a write (version and mod_revision move)', () => {
    const s = newStore()
    put(s, 'k', 'v1')
    const r = put(s, 'k', '', { ignore_value: true })
    assert.equal(r.header?.revision, 3)
    assert.deepEqual(kvTuple(get(s, 'k').kvs[0]), ['k', 'v1', 2, 3, 2])
  })

  test("ignore_value / ignore_lease errors are etcd's", () => {
    const s = newStore()
    assert.equal(
      etcdCode(() => put(s, 'missing', '', { ignore_value: true })),
      'ErrKeyNotFound',
    )
    assert.equal(
      etcdCode(() => put(s, 'missing', '', { ignore_lease: true })),
      'ErrKeyNotFound',
    )
    put(s, 'k', 'v')
    assert.equal(
      etcdCode(() => put(s, 'k', 'x', { ignore_value: true })),
      'ErrValueProvided',
    )
    assert.equal(
      etcdCode(() => put(s, 'k', 'x', { ignore_lease: true, lease: 5n })),
      'ErrLeaseProvided',
    )
    assert.equal(
      etcdCode(() => put(s, '', 'x')),
      'ErrEmptyKey',
    )
    assert.equal(s.revision, 2, 'refused puts change nothing')
  })

  test('a put with an unknown lease is ErrLeaseNotFound', () => {
    const s = newStore()
    assert.equal(
      etcdCode(() => put(s, 'k', 'v', { lease: 42n })),
      'ErrLeaseNotFound',
    )
    assert.equal(s.revision, 1)
  })

  test('the store keeps its own copy of request bytes', () => {
    const s = newStore()
    const key = b('k')
    const value = b('v')
    put(s, '', '', { key, value })
    key[0] = 0x78
    value[0] = 0x78
    assert.deepEqual(kvTuple(get(s, 'k').kvs[0]), ['k', 'v', 2, 2, 1])
  })
})

describe('delete', () => {
  test('deleted counts live keys; prev_kvs lists them in key order', () => {
    const s = newStore()
    put(s, 'a', '1')
    put(s, 'b', '2')
    put(s, 'c', '3')
    del(s, 'b')
    const d = del(s, 'a', '\0', { prev_kv: true })
    assert.equal(d.deleted, 2)
    assert.deepEqual(
      d.prev_kvs.map((kv) => str(kv.value)),
      ['1', '3'],
    )
    assert.equal(get(s, 'a', '\0').count, 0)
  })

  test('empty key is ErrEmptyKey', () => {
    assert.equal(
      etcdCode(() => del(newStore(), '')),
      'ErrEmptyKey',
    )
  })
})

describe('range', () => {
  const fill = () => {
    const s = newStore()
    for (const k of ['a', 'b', 'c', 'd', 'e']) put(s, k, k.toUpperCase())
    return s
  }

  test('single key, prefix range, from-key "\\0", all "\\0"/"\\0", range_end <= key empty', () => {
    const s = fill()
    assert.deepEqual(keysOf(get(s, 'b').kvs), ['b'])
    assert.deepEqual(keysOf(get(s, 'b', 'd').kvs), ['b', 'c'])
    assert.deepEqual(keysOf(get(s, 'c', '\0').kvs), ['c', 'd', 'e'])
    assert.deepEqual(keysOf(get(s, '\0', '\0').kvs), ['a', 'b', 'c', 'd', 'e'])
    assert.deepEqual(get(s, 'c', 'c').kvs, [])
    assert.deepEqual(get(s, 'c', 'b').kvs, [])
    assert.equal(get(s, 'c', 'b').count, 0)
    assert.equal(
      etcdCode(() => get(s, '')),
      'ErrEmptyKey',
    )
  })

  test('a miss has no kvs and count 0', () => {
    const r = get(fill(), 'zz')
    assert.deepEqual(r.kvs, [])
    assert.equal(r.count, 0)
    assert.equal(r.more, false)
  })

  test('count is before limit; more when limited; limit 0 and negative are unlimited', () => {
    const s = fill()
    const r = get(s, 'a', '\0', { limit: 2 })
    assert.deepEqual(keysOf(r.kvs), ['a', 'b'])
    assert.equal(r.count, 5)
    assert.equal(r.more, true)
    assert.equal(get(s, 'a', '\0', { limit: 5 }).more, false)
    assert.equal(get(s, 'a', '\0', { limit: 0 }).kvs.length, 5)
    assert.equal(get(s, 'a', '\0', { limit: -3 }).kvs.length, 5)
  })

  test('count_only and keys_only', () => {
    const s = fill()
    const c = get(s, 'a', '\0', { count_only: true })
    assert.equal(c.count, 5)
    assert.deepEqual(c.kvs, [])
    const k = get(s, 'a', 'c', { keys_only: true })
    assert.deepEqual(keysOf(k.kvs), ['a', 'b'])
    assert.deepEqual(
      k.kvs.map((kv) => kv.value.length),
      [0, 0],
    )
    assert.equal(get(s, 'a').kvs[0]!.value.length, 1, 'keys_only does not touch the stored value')
  })

  test('count is before the min/max revision filters; more counts filtered results', () => {
    const s = fill() // a@2 b@3 c@4 d@5 e@6
    const r = get(s, 'a', '\0', { min_mod_revision: 3, max_mod_revision: 5 })
    assert.deepEqual(keysOf(r.kvs), ['b', 'c', 'd'])
    assert.equal(r.count, 5)
    const l = get(s, 'a', '\0', { min_create_revision: 4, limit: 1 })
    assert.deepEqual(keysOf(l.kvs), ['c'])
    assert.equal(l.more, true)
    assert.deepEqual(keysOf(get(s, 'a', '\0', { max_create_revision: 3 }).kvs), ['a', 'b'])
  })

  test('sort: DESCEND by key; target != KEY with order NONE sorts ASCEND; ties keep key order; limit after sort', () => {
    const s = newStore()
    put(s, 'a', '3')
    put(s, 'b', '1')
    put(s, 'c', '2')
    put(s, 'b', '1') // b version 2
    put(s, 'd', '1')
    assert.deepEqual(keysOf(get(s, 'a', '\0', { sort_order: SortOrder.DESCEND }).kvs), ['d', 'c', 'b', 'a'])
    assert.deepEqual(keysOf(get(s, 'a', '\0', { sort_target: SortTarget.VALUE }).kvs), ['b', 'd', 'c', 'a'])
    assert.deepEqual(keysOf(get(s, 'a', '\0', { sort_target: SortTarget.VALUE, sort_order: SortOrder.DESCEND }).kvs), [
      'a',
      'c',
      'b',
      'd',
    ])
    assert.deepEqual(
      keysOf(get(s, 'a', '\0', { sort_target: SortTarget.VERSION, sort_order: SortOrder.DESCEND }).kvs),
      ['b', 'a', 'c', 'd'],
    )
    const lim = get(s, 'a', '\0', { sort_target: SortTarget.MOD, sort_order: SortOrder.DESCEND, limit: 2 })
    assert.deepEqual(keysOf(lim.kvs), ['d', 'b'])
    assert.equal(lim.more, true)
    assert.equal(lim.count, 4)
    assert.deepEqual(keysOf(get(s, 'a', '\0', { sort_target: SortTarget.CREATE, sort_order: SortOrder.ASCEND }).kvs), [
      'a',
      'b',
      'c',
      'd',
    ])
  })

  test('sort target != KEY with order NONE and a limit sorts only the first limit + 1 keys, as etcd does', () => {
    const s = newStore()
    put(s, 'a', 'z')
    put(s, 'b', 'y')
    put(s, 'c', 'x')
    put(s, 'd', 'a')
    const r = get(s, 'a', '\0', { sort_target: SortTarget.VALUE, limit: 2 })
    // etcd fetches a, b, c (limit + 1) by key, sorts them by value (c, b, a), truncates to 2.
    assert.deepEqual(keysOf(r.kvs), ['c', 'b'])
    assert.equal(r.more, true)
  })

  test('historical reads; header.revision is the current revision; future is ErrFutureRev', () => {
    const s = newStore()
    put(s, 'k', 'v1') // 2
    put(s, 'k', 'v2') // 3
    del(s, 'k') // 4
    put(s, 'k', 'v3') // 5
    const at = (rev: number) => get(s, 'k', '', { revision: rev })
    assert.equal(at(1).kvs.length, 0)
    assert.deepEqual(kvTuple(at(2).kvs[0]), ['k', 'v1', 2, 2, 1])
    assert.deepEqual(kvTuple(at(3).kvs[0]), ['k', 'v2', 2, 3, 2])
    assert.equal(at(4).kvs.length, 0)
    assert.deepEqual(kvTuple(at(5).kvs[0]), ['k', 'v3', 5, 5, 1])
    assert.equal(at(3).header?.revision, 5)
    assert.deepEqual(kvTuple(at(0).kvs[0]), ['k', 'v3', 5, 5, 1])
    assert.deepEqual(kvTuple(at(-7).kvs[0]), ['k', 'v3', 5, 5, 1])
    assert.equal(
      etcdCode(() => at(6)),
      'ErrFutureRev',
    )
    assert.equal(get(s, 'a', '\0', { revision: 3, count_only: true }).count, 1)
    assert.equal(get(s, 'a', '\0', { revision: 4, count_only: true }).count, 0)
  })

  test('binary keys order bytewise (0xff after ASCII, "\\0" first)', () => {
    const s = newStore()
    put(s, '', '', { key: Uint8Array.of(0xff) })
    put(s, '', '', { key: Uint8Array.of(0x00) })
    put(s, 'a')
    const r = s.range(defaultRangeRequest({ key: Uint8Array.of(0), range_end: Uint8Array.of(0) }))
    assert.deepEqual(
      r.kvs.map((kv) => [...kv.key]),
      [[0], [0x61], [0xff]],
    )
  })
})
