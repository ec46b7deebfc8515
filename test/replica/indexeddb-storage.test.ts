/**
 * The replica's IndexedDB storage (under fake-indexeddb in Node; in Chromium in chromium.test.ts): for seeded random
 * runs of writes, deletes, compactions (re-copies) and restarts against the scripted server, what it loads equals
 * what the memory storage loads after the same ops, and equals the server at the stored revision.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { followedSpan } from '../../src/replica/keys.js'
import type { StoredKv } from '../../src/replica/local-index.js'
import { ReplicaEngine } from '../../src/replica/replica.js'
import { MemoryReplicaStorage, type ReplicaStorage, type StorageOp } from '../../src/replica/storage.js'
import { IndexedDbReplicaStorage } from '../../src/runtime/browser/replica-storage.js'
import { rng, ScriptedServer } from './scripted-server.js'

const P = followedSpan({ prefix: 'p/' })
const text = (kvs: StoredKv[]) =>
  [...kvs]
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((kv) => `${kv.key}=${new TextDecoder().decode(kv.value)}@${kv.modRevision}`)
const tick = () => new Promise((r) => setImmediate(r))

/** Commits to the IndexedDB storage and mirrors every committed batch into a memory storage. */
class Mirrored implements ReplicaStorage {
  readonly name = 'mirrored'
  constructor(
    readonly idb: IndexedDbReplicaStorage,
    readonly mem: MemoryReplicaStorage,
  ) {}
  load() {
    return this.idb.load()
  }
  async commit(ops: StorageOp[]) {
    await this.idb.commit(ops)
    await this.mem.commit(structuredClone(ops))
  }
  close() {
    return this.idb.close()
  }
}

for (const seed of [1, 2, 3, 4]) {
  test(`IndexedDB replica storage, seed ${seed}: loads what the memory storage loads, equal to the server`, async () => {
    const rand = rng(seed)
    const server = new ScriptedServer(rng(seed + 50))
    for (let i = 0; i < 25; i++) server.put(`p/${i}`, `v${i}`)
    const mem = new MemoryReplicaStorage()
    const name = `replica-test-${seed}`
    let e: ReplicaEngine | undefined
    for (let round = 0; round < 4; round++) {
      const storage = new Mirrored(await IndexedDbReplicaStorage.open(name), mem)
      e = new ReplicaEngine({ storage, ranges: [P], source: server, pageSize: 3, backoffMs: () => 1 })
      await e.start()
      await e.ready(10_000)
      for (let i = 0; i < 30; i++) {
        const x = rand()
        if (x < 0.7) server.put(`p/${Math.floor(rand() * 30)}`, `r${round}-${i}`)
        else if (x < 0.9) server.delete(`p/${Math.floor(rand() * 30)}`)
        else if (round % 2 === 1) server.compact(server.revision)
        if (rand() < 0.5) await tick()
      }
      for (let i = 0; i < 20_000 && e.status().state !== 'live'; i++) await tick()
      const r = await e.read({ key: P.key, end: P.end }, 'linearizable-only')
      assert.equal(r.revision, server.revision)
      await e.flushed()
      await e.close()
      const [fromIdb] = await (async () => {
        const s = await IndexedDbReplicaStorage.open(name)
        try {
          return await s.load()
        } finally {
          await s.close()
        }
      })()
      const [fromMem] = await mem.load()
      assert.equal(fromIdb!.meta.revision, fromMem!.meta.revision, `round ${round}`)
      assert.equal(fromIdb!.meta.gen, fromMem!.meta.gen)
      assert.deepEqual(text(fromIdb!.kvs), text(fromMem!.kvs), `round ${round}`)
      assert.deepEqual(text(fromIdb!.kvs), text(server.stateAt(fromIdb!.meta.revision, P.key, P.end)))
      assert.equal(fromIdb!.meta.revision, server.revision)
    }
  })
}

test('compaction of the local store: changes after the copy are folded back into pages, and a reload equals the server', async () => {
  const server = new ScriptedServer(rng(7))
  for (let i = 0; i < 40; i++) server.put(`p/${i}`, `v${i}`)
  const name = 'replica-fold-test'
  const rand = rng(8)
  const changeRecords = async () => {
    const req = indexedDB.open(name)
    const db = await new Promise<IDBDatabase>((ok, no) => {
      req.onsuccess = () => ok(req.result)
      req.onerror = () => no(req.error)
    })
    const keys = await new Promise<IDBValidKey[]>((ok, no) => {
      const r = db.transaction('kv').objectStore('kv').getAllKeys()
      r.onsuccess = () => ok(r.result)
      r.onerror = () => no(r.error)
    })
    db.close()
    return {
      changes: keys.filter((k) => (k as unknown[])[2] !== 0).length,
      pages: keys.filter((k) => (k as unknown[])[2] === 0).length,
    }
  }
  for (let round = 0; round < 3; round++) {
    const storage = await IndexedDbReplicaStorage.open(name)
    const e = new ReplicaEngine({ storage, ranges: [P], source: server, pageSize: 4, foldAfter: 6, backoffMs: () => 1 })
    await e.start()
    await e.ready(10_000)
    // 60 writes over 50 keys (puts of new and old keys, deletes), delivered in small batches.
    for (let i = 0; i < 60; i++) {
      if (rand() < 0.8) server.put(`p/${Math.floor(rand() * 50)}`, `r${round}-${i}`)
      else server.delete(`p/${Math.floor(rand() * 50)}`)
      if (i % 3 === 0) await tick()
    }
    const r = await e.read({ key: P.key, end: P.end }, 'linearizable-only')
    assert.equal(r.revision, server.revision)
    await e.flushed()
    await e.close()
    const { changes, pages } = await changeRecords()
    const s = await IndexedDbReplicaStorage.open(name)
    const [loaded] = await s.load()
    await s.close()
    // Without folds the change records would hold every change since the copy (dozens); a fold leaves at most the
    // threshold (max(6, a quarter of ~40 keys)) plus the last batch.
    assert.ok(loaded!.changes! <= 16, `round ${round}: ${loaded!.changes} changes left in ${changes} records`)
    assert.ok(changes <= loaded!.changes!)
    assert.ok(pages >= 1)
    assert.equal(loaded!.meta.revision, server.revision)
    assert.deepEqual(text(loaded!.kvs), text(server.stateAt(server.revision, P.key, P.end)), `round ${round}`)
  }
})

test('IndexedDB layout of earlier versions (pages as arrays, one change record per key) still loads', async () => {
  const name = 'replica-old-layout'
  const id = 'r1'
  const kv = (key: string, rev: number): StoredKv => ({
    key,
    value: new TextEncoder().encode(`v${rev}`),
    createRevision: rev,
    modRevision: rev,
    version: 1,
    lease: '0',
  })
  // Written as an earlier version did: the database made by the storage, records put by hand.
  await (await IndexedDbReplicaStorage.open(name)).close()
  const db = await new Promise<IDBDatabase>((ok, no) => {
    const req = indexedDB.open(name)
    req.onsuccess = () => ok(req.result)
    req.onerror = () => no(req.error)
  })
  await new Promise<void>((ok, no) => {
    const t = db.transaction(['ranges', 'kv'], 'readwrite')
    t.objectStore('ranges').put({ id, key: 'p/', end: 'p0', gen: 1, revision: 7 }, id)
    t.objectStore('kv').put([kv('p/a', 2), kv('p/b', 3)], [id, 1, 0, 0])
    t.objectStore('kv').put([kv('p/c', 4)], [id, 1, 0, 2])
    t.objectStore('kv').put({ key: 'p/b', deleted: true }, [id, 1, 1, 'p/b'])
    t.objectStore('kv').put(kv('p/d', 6), [id, 1, 1, 'p/d'])
    t.oncomplete = () => ok()
    t.onerror = () => no(t.error)
  })
  db.close()
  const s = await IndexedDbReplicaStorage.open(name)
  const [l] = await s.load()
  assert.deepEqual(text(l!.kvs), ['p/a=v2@2', 'p/c=v4@4', 'p/d=v6@6'])
  assert.equal(l!.changes, 2)
  // New changes (one record per commit) apply over the old ones; a fold rewrites all of it as column pages.
  await s.commit([{ kind: 'events', range: id, revision: 9, puts: [kv('p/d', 9)], deletes: ['p/a'] }])
  const [l2] = await s.load()
  assert.deepEqual(text(l2!.kvs), ['p/c=v4@4', 'p/d=v9@9'])
  assert.equal(l2!.meta.revision, 9)
  await s.commit([{ kind: 'fold', range: id, gen: 1, kvs: l2!.kvs }])
  const [l3] = await s.load()
  assert.deepEqual(text(l3!.kvs), ['p/c=v4@4', 'p/d=v9@9'])
  assert.equal(l3!.changes, 0)
  await s.close()
})
