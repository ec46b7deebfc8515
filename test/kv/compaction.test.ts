/** Compaction: etcd's errors and boundaries (etcd-api.md §6), and that history behind the compact revision is freed. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { KvStore } from '../../src/kv/store.js'
import { del, etcdCode, get, kvTuple, newStore, put } from './helpers.js'

const compact = (s: KvStore, revision: number, physical = false) => s.apply({ compaction: { revision, physical } })

describe('compaction', () => {
  test('reads at R work, below R are ErrCompacted; again at <= R is ErrCompacted; above current is ErrFutureRev', () => {
    const s = newStore()
    put(s, 'k', 'v1') // 2
    put(s, 'k', 'v2') // 3
    put(s, 'k', 'v3') // 4
    put(s, 'k', 'v4') // 5
    const r = compact(s, 4, true)
    assert.equal(r.header?.revision, 5)
    assert.equal(s.revision, 5, 'compaction does not bump the revision')
    assert.equal(s.compactRevision, 4)
    assert.deepEqual(kvTuple(get(s, 'k', '', { revision: 4 }).kvs[0]), ['k', 'v3', 2, 4, 3])
    assert.deepEqual(kvTuple(get(s, 'k', '', { revision: 5 }).kvs[0]), ['k', 'v4', 2, 5, 4])
    assert.equal(
      etcdCode(() => get(s, 'k', '', { revision: 3 })),
      'ErrCompacted',
    )
    assert.equal(
      etcdCode(() => get(s, 'k', '', { revision: 1 })),
      'ErrCompacted',
    )
    assert.equal(
      etcdCode(() => compact(s, 4)),
      'ErrCompacted',
    )
    assert.equal(
      etcdCode(() => compact(s, 2)),
      'ErrCompacted',
    )
    assert.equal(
      etcdCode(() => compact(s, 6)),
      'ErrFutureRev',
    )
    compact(s, 5)
    assert.equal(
      etcdCode(() => get(s, 'k', '', { revision: 4 })),
      'ErrCompacted',
    )
    assert.deepEqual(kvTuple(get(s, 'k').kvs[0]), ['k', 'v4', 2, 5, 4])
  })

  test('a fresh store compacts at 0 and 1 once each, as etcd (compactMainRev starts at -1)', () => {
    const s = newStore()
    compact(s, 0)
    assert.equal(
      etcdCode(() => compact(s, 0)),
      'ErrCompacted',
    )
    assert.equal(
      etcdCode(() => compact(s, -3)),
      'ErrCompacted',
    )
    compact(s, 1)
    assert.equal(
      etcdCode(() => compact(s, 2)),
      'ErrFutureRev',
    )
  })

  test('keys deleted at or before R vanish; a key deleted after R is still readable at R', () => {
    const s = newStore()
    put(s, 'gone', 'x') // 2
    del(s, 'gone') // 3
    put(s, 'later', 'y') // 4
    put(s, 'keep', 'z') // 5
    del(s, 'later') // 6
    assert.equal(s.keyCount, 3)
    const sizeBefore = s.sizeBytes
    compact(s, 5)
    assert.equal(s.keyCount, 2, 'the fully deleted key is dropped from the index')
    assert.ok(s.sizeBytes < sizeBefore)
    assert.equal(get(s, 'later', '', { revision: 5 }).count, 1)
    assert.equal(get(s, 'later').count, 0)
    assert.equal(get(s, 'a', '\0', { revision: 5 }).count, 2)
    compact(s, 6)
    assert.equal(s.keyCount, 1)
  })

  test('history behind R is freed: a key written many times keeps one row', () => {
    const s = newStore()
    for (let i = 0; i < 100; i++) put(s, 'k', 'x'.repeat(100))
    const big = s.sizeBytes
    compact(s, s.revision)
    assert.ok(s.sizeBytes * 50 < big, `${s.sizeBytes} vs ${big}`)
    assert.equal(get(s, 'k').kvs[0]!.version, 100)
  })

  test('a key re-created after R keeps its old generation readable at R', () => {
    const s = newStore()
    put(s, 'k', 'a') // 2
    del(s, 'k') // 3
    put(s, 'k', 'b') // 4
    compact(s, 2)
    assert.deepEqual(kvTuple(get(s, 'k', '', { revision: 2 }).kvs[0]), ['k', 'a', 2, 2, 1])
    assert.equal(get(s, 'k', '', { revision: 3 }).count, 0)
    assert.deepEqual(kvTuple(get(s, 'k').kvs[0]), ['k', 'b', 4, 4, 1])
  })
})
