/**
 * MemoryStorage, checked the way etcd-io/raft's storage_test.go checks it (TestStorageTerm, TestStorageEntries,
 * TestStorageAppend, TestStorageCompact): a log whose dummy head entry sits at index 3, term 3.
 *
 * This file also runs under Deno (`npm run test:deno`), so it uses only `node:test` and `node:assert`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isRaftError } from '../../src/raft/errors.js'
import { MemoryStorage } from '../../src/raft/storage.js'
import { type Entry, EntryType } from '../../src/raft/types.js'

function ent(index: number, term: number): Entry {
  return { index, term, type: EntryType.EntryNormal, data: new Uint8Array(0) }
}

/** A storage holding entries 3..5 with terms 3..5, with entry 3 as the dummy head (as if compacted at 3). */
function storageWith(ents: Entry[]): MemoryStorage {
  const s = new MemoryStorage()
  // Start from index 1, then compact up to the first entry so it becomes the dummy head, as etcd's tests set up.
  const first = ents[0]!
  const fill: Entry[] = []
  for (let i = 1; i < first.index; i++) fill.push(ent(i, 1))
  s.append([...fill, ...ents])
  if (first.index > 1) s.compact(first.index)
  return s
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    if (isRaftError(err)) return err.code
    throw err
  }
}

const base = [ent(3, 3), ent(4, 4), ent(5, 5)]

describe('MemoryStorage', () => {
  test('a new storage is empty: firstIndex 1, lastIndex 0, term(0) = 0', () => {
    const s = new MemoryStorage()
    assert.equal(s.firstIndex(), 1)
    assert.equal(s.lastIndex(), 0)
    assert.equal(s.term(0), 0)
    assert.deepEqual(s.initialState().hardState, { term: 0, vote: '', commit: 0 })
  })

  test('term: compacted below the head, available within, unavailable past the end', () => {
    const s = storageWith(base)
    assert.equal(
      errorCode(() => s.term(2)),
      'ErrCompacted',
    )
    assert.equal(s.term(3), 3)
    assert.equal(s.term(4), 4)
    assert.equal(s.term(5), 5)
    assert.equal(
      errorCode(() => s.term(6)),
      'ErrUnavailable',
    )
  })

  test('entries: bounds and the maxBytes limit (always at least one entry)', () => {
    const s = storageWith([...base, ent(6, 6)])
    assert.equal(
      errorCode(() => s.entries(2, 6, Number.MAX_SAFE_INTEGER)),
      'ErrCompacted',
    )
    assert.equal(
      errorCode(() => s.entries(3, 4, Number.MAX_SAFE_INTEGER)),
      'ErrCompacted',
    )
    assert.deepEqual(s.entries(4, 5, Number.MAX_SAFE_INTEGER), [ent(4, 4)])
    assert.deepEqual(s.entries(4, 6, Number.MAX_SAFE_INTEGER), [ent(4, 4), ent(5, 5)])
    assert.deepEqual(s.entries(4, 7, Number.MAX_SAFE_INTEGER), [ent(4, 4), ent(5, 5), ent(6, 6)])
    assert.deepEqual(s.entries(4, 7, 0), [ent(4, 4)])
    assert.equal(
      errorCode(() => s.entries(4, 8, Number.MAX_SAFE_INTEGER)),
      'ErrUnavailable',
    )
  })

  test('firstIndex and lastIndex follow append and compact', () => {
    const s = storageWith(base)
    assert.equal(s.firstIndex(), 4)
    assert.equal(s.lastIndex(), 5)
    s.append([ent(6, 5)])
    assert.equal(s.lastIndex(), 6)
    s.compact(4)
    assert.equal(s.firstIndex(), 5)
    assert.equal(s.term(4), 4)
    assert.equal(
      errorCode(() => s.compact(4)),
      'ErrCompacted',
    )
  })

  test('append: overlapping entries replace the tail, older ones are ignored, new ones extend', () => {
    const cases: { name: string; append: Entry[]; want: Entry[] }[] = [
      { name: 'same entries', append: [ent(3, 3), ent(4, 4), ent(5, 5)], want: base },
      {
        name: 'conflict at 4 truncates',
        append: [ent(3, 3), ent(4, 6), ent(5, 6)],
        want: [ent(3, 3), ent(4, 6), ent(5, 6)],
      },
      { name: 'extends', append: [ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)], want: [...base, ent(6, 5)] },
      { name: 'older entries are cut off', append: [ent(2, 3), ent(3, 3), ent(4, 5)], want: [ent(3, 3), ent(4, 5)] },
      { name: 'conflict in the middle', append: [ent(4, 5)], want: [ent(3, 3), ent(4, 5)] },
      { name: 'direct append', append: [ent(6, 5)], want: [...base, ent(6, 5)] },
    ]
    for (const c of cases) {
      const s = storageWith(base)
      s.append(c.append)
      const got = [ent(s.firstIndex() - 1, s.term(s.firstIndex() - 1))]
      if (s.lastIndex() >= s.firstIndex()) got.push(...s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity))
      assert.deepEqual(got, c.want, c.name)
    }
  })

  test('append past a gap is a broken invariant, not a silent hole', () => {
    const s = storageWith(base)
    assert.throws(() => s.append([ent(7, 5)]), { name: 'RaftAssertionError' })
  })
})
