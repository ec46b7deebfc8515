/** The contract suite on the IndexedDB backend, against fake-indexeddb in Node; plus its refusals of foreign data. */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { openIndexedDbStorage } from '../../src/runtime/browser/indexeddb-storage.js'
import { isStorageError } from '../../src/storage/errors.js'
import { contractCases, ents } from './contract.js'

let dbCounter = 0

describe('storage contract: indexeddb (fake-indexeddb)', () => {
  for (const c of contractCases) {
    test(c.name, async () => {
      const name = `edgecd-contract-${++dbCounter}`
      await c.run({ open: () => openIndexedDbStorage(name) })
      indexedDB.deleteDatabase(name)
    })
  }
})

/** Creates database `name` with one object store and the given records, as another app (or version) would. */
async function seed(name: string, storeName: string, records: [IDBValidKey, unknown][]): Promise<void> {
  const req = indexedDB.open(name)
  req.onupgradeneeded = () => {
    req.result.createObjectStore(storeName)
  }
  const db = await new Promise<IDBDatabase>((res, rej) => {
    req.onsuccess = () => res(req.result)
    req.onerror = () => rej(req.error)
  })
  const t = db.transaction(storeName, 'readwrite')
  for (const [k, v] of records) t.objectStore(storeName).put(v, k)
  await new Promise((res) => {
    t.oncomplete = res
  })
  db.close()
}

describe('storage faults (indexeddb)', () => {
  test('a database of another app, or without our format record, is refused', async () => {
    await seed('other-app', 'keyval', [['a', 1]])
    await assert.rejects(
      openIndexedDbStorage('other-app'),
      (e) => isStorageError(e, 'ErrNotEdgecdDir') && /other-app/.test(e.message),
    )
    await seed('foreign-records', 'raft', [['x', 1]])
    await assert.rejects(openIndexedDbStorage('foreign-records'), (e) => isStorageError(e, 'ErrNotEdgecdDir'))
    await seed('foreign-format', 'raft', [['meta', { format: 'other', version: 1 }]])
    await assert.rejects(openIndexedDbStorage('foreign-format'), (e) => isStorageError(e, 'ErrNotEdgecdDir'))
  })

  test('a database of another format version is refused', async () => {
    await seed('v2', 'raft', [['meta', { format: 'edgecd-idb', version: 2 }]])
    await assert.rejects(
      openIndexedDbStorage('v2'),
      (e) => isStorageError(e, 'ErrVersion') && /version 2/.test(e.message),
    )
  })

  test('a gap in the stored entries is refused as corruption', async () => {
    const s = await openIndexedDbStorage('gap')
    await s.save({ term: 1, vote: '1', commit: 1 }, ents(1, 3, 1))
    await s.close()
    await seed('gap', 'raft', [[[5], { index: 5, term: 1, type: 0, data: new Uint8Array(1) }]])
    await assert.rejects(
      openIndexedDbStorage('gap'),
      (e) => isStorageError(e, 'ErrCorrupt') && /entry 5 where 4/.test(e.message),
    )
  })

  test('a readOnly open serves reads and refuses writes', async () => {
    const s = await openIndexedDbStorage('ro')
    await s.save({ term: 1, vote: '1', commit: 2 }, ents(1, 2, 1))
    await s.close()
    const r = await openIndexedDbStorage('ro', { readOnly: true })
    assert.equal(r.lastIndex(), 2)
    await assert.rejects(r.save(undefined, ents(3, 3, 1)), (e) => isStorageError(e, 'ErrReadOnly'))
    await r.close()
  })
})
