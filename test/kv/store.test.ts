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

  test("past 12 keys, ties come out in etcd's order: Go 1.19's sort.Sort (pdqsort), not a stable sort", () => {
    // Recorded from etcd 3.4.23 (Go 1.19.8): 30 keys k00..k29 with value i % 3, then k03, k07, k20 put again.
    // Found by test/diff/random-grpc.test.ts with a key space wider than 12.
    const s = newStore()
    const k = (i: number) => `k${String(i).padStart(2, '0')}`
    for (let i = 0; i < 30; i++) put(s, k(i), String(i % 3))
    for (const i of [3, 7, 20]) put(s, k(i), 'x')
    const order = (target: SortTarget, sort_order: SortOrder) =>
      keysOf(get(s, 'k', 'l', { sort_target: target, sort_order }).kvs)
        .map((key) => key.slice(1))
        .join(',')
    const etcd = {
      versionAsc: '21,02,15,14,04,05,06,28,08,09,10,11,12,13,29,01,16,17,18,19,27,00,22,23,24,25,26,20,07,03',
      versionDesc: '03,20,07,14,16,05,06,02,08,09,10,11,12,13,00,15,04,17,18,19,01,21,22,23,24,25,26,27,28,29',
      valueAsc: '09,15,00,27,18,12,06,24,21,04,10,22,25,13,28,01,16,19,14,17,11,08,23,05,26,02,29,20,07,03',
      valueDesc: '03,20,07,14,17,05,29,02,08,26,23,11,16,22,28,25,04,13,10,19,01,12,21,18,24,15,09,27,00,06',
    }
    assert.equal(order(SortTarget.VERSION, SortOrder.ASCEND), etcd.versionAsc)
    assert.equal(order(SortTarget.VERSION, SortOrder.NONE), etcd.versionAsc)
    assert.equal(order(SortTarget.VERSION, SortOrder.DESCEND), etcd.versionDesc)
    assert.equal(order(SortTarget.VALUE, SortOrder.ASCEND), etcd.valueAsc)
    assert.equal(order(SortTarget.VALUE, SortOrder.DESCEND), etcd.valueDesc)
  })

  test("pdqsort's pattern breaking (its xorshift) as Go's: 220 keys with few distinct values, recorded from etcd", () => {
    const s = newStore()
    const k = (p: string, i: number) => `${p}/${String(i).padStart(3, '0')}`
    for (let i = 0; i < 220; i++) put(s, k('p0', i), String.fromCharCode(97 + ((i * 7919) % 5)))
    for (let i = 0; i < 220; i++) put(s, k('p2', i), i % 17 === 0 ? 'z' : 'a')
    const order = (p: string, sort_order: SortOrder) =>
      keysOf(get(s, `${p}/`, `${p}0`, { sort_target: SortTarget.VALUE, sort_order }).kvs)
        .map((key) => Number(key.slice(3)))
        .join(',')
    assert.equal(
      order('p0', SortOrder.DESCEND),
      '191,86,161,131,136,166,6,91,81,216,126,11,76,171,96,211,16,71,176,156,66,21,101,141,206,111,26,61,181,56,201,31,151,186,116,106,36,51,146,196,46,41,121,1,192,47,177,112,147,107,187,37,52,197,22,32,142,57,152,182,67,27,62,102,132,162,202,117,42,122,97,17,72,212,172,137,12,77,157,92,167,127,82,7,217,2,207,87,33,88,163,83,168,93,158,78,73,173,98,68,153,178,63,103,58,183,53,188,108,148,48,43,193,113,38,143,198,28,118,203,23,208,18,123,138,13,213,8,128,218,133,3,109,69,134,219,129,4,124,139,9,214,119,14,144,209,114,19,24,149,204,29,104,199,154,34,99,39,94,159,194,44,89,189,164,49,84,54,79,169,184,59,74,179,174,64,100,35,175,70,180,60,75,55,170,185,80,50,165,85,190,45,90,40,160,195,95,65,155,130,200,30,105,25,150,205,0,20,110,145,210,15,115,10,120,215,140,5,125,135',
    )
    assert.equal(
      order('p2', SortOrder.ASCEND),
      '110,141,3,4,5,6,7,8,9,10,11,12,13,14,15,16,18,19,20,21,22,23,24,108,26,27,28,29,30,31,32,33,35,36,219,37,38,39,40,41,42,43,44,45,46,47,48,49,50,218,217,216,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,215,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,214,86,87,88,89,1,91,92,93,94,95,96,97,98,99,100,101,213,103,104,105,106,107,25,2,90,111,112,113,114,115,116,117,118,212,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,211,137,138,139,140,109,142,143,144,145,146,147,148,149,150,151,152,210,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169,209,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,208,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,207,205,206,119,187,170,153,136,204,102,51,68,85,34,17,0',
    )
  })

  test('an unknown sort target that would sort is refused (etcd 3.4 dies on it; 3.5\'s "invalid sort option")', () => {
    const s = newStore()
    put(s, 'a', '2')
    put(s, 'b', '1')
    for (const [sort_target, sort_order] of [
      [9, SortOrder.NONE],
      [5, SortOrder.ASCEND],
      [-1, SortOrder.DESCEND],
    ] as const)
      assert.equal(
        etcdCode(() => get(s, 'a', '\0', { sort_target: sort_target as SortTarget, sort_order })),
        'ErrInvalidSortOption',
      )
    // An unknown order sorts nothing in etcd 3.4, whatever the target: answered in key order.
    assert.deepEqual(keysOf(get(s, 'a', '\0', { sort_target: 9 as SortTarget, sort_order: 7 as SortOrder }).kvs), [
      'a',
      'b',
    ])
    assert.deepEqual(keysOf(get(s, 'a', '\0', { sort_target: SortTarget.VALUE, sort_order: -1 as SortOrder }).kvs), [
      'a',
      'b',
    ])
    // In a txn too (checked before anything runs).
    const t = () =>
      s.apply({
        txn: {
          compare: [],
          success: [{ request_range: { ...defaultRangeRequest(), key: b('a'), sort_target: 7 as SortTarget } }],
          failure: [],
        },
      })
    assert.equal(etcdCode(t), 'ErrInvalidSortOption')
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

describe('ownBytes', () => {
  test('copies a Node Buffer view (Buffer#slice would share the larger buffer)', async () => {
    const { ownBytes } = await import('../../src/kv/bytes.js')
    const { Buffer } = await import('node:buffer')
    const big = Buffer.from('xxkeyvaluexx')
    const view = big.subarray(2, 5)
    const own = ownBytes(view)
    big.write('ZZZ', 2)
    assert.equal(new TextDecoder().decode(own), 'key')
    assert.notEqual(own.buffer, big.buffer)
    assert.equal(own.byteLength, own.buffer.byteLength)
  })
})
