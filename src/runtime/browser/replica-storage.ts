/**
 * The replica's copy in IndexedDB (database `edgecd-replica:<name>`):
 *
 *   ranges  RangeMeta by range id
 *   kv      [range id, generation, 0, n]   one copy page: keys n.. of the copy, as read, in columns (see Page;
 *                                          earlier versions stored an array of StoredKv, still read)
 *           [range id, generation, 2, revision, n]  one commit's changes after the copy: {puts, deletes}
 *
 * Pages are stored whole because loading many small records is slow (IndexedDB in Chromium loads about 7,000 records
 * a second on a busy machine, and pages of 1,000 keys a hundred times faster); the changes after the copy are one
 * record per commit, [range id, generation, 2, revision, n] = {puts, deletes}, replayed in order on load (earlier
 * versions wrote one record per key, [range id, generation, 1, key], still read before the batches). Once many
 * keys changed, the engine sends a `fold` and the generation is rewritten as whole pages without change records
 * (compaction of the local store), so a long-lived replica's reload reads pages, not one record per changed key.
 *
 * Each commit is one readwrite transaction, so a crash keeps all of a commit or none of it. Commit points (a copy's
 * start, the swap, a drop, a meta) use `durability: 'strict'` (complete only once flushed to disk); copy pages and live
 * events use 'relaxed' (IndexedDB applies transactions in order, so a crash can only lose a suffix of them, and the
 * replica resumes from the older cursor or revision it finds). A re-copy fills a new generation beside the current
 * one and the swap switches the meta in one transaction. A full disk or an exhausted origin quota aborts the transaction with
 * QuotaExceededError: the replica then stops in its error state with what was stored before intact.
 */
import { promisifyRequest } from 'idb-keyval'
import type { StoredKv } from '../../replica/local-index.js'
import {
  type LoadedRange,
  type RangeMeta,
  ReplicaError,
  type ReplicaStorage,
  type StorageOp,
} from '../../replica/storage.js'

const rangesStore = 'ranges'
const kvStore = 'kv'

/** Every kv record of one generation of a range. */
const genRange = (id: string, gen: number) => IDBKeyRange.bound([id, gen], [id, gen, []])
const pagesOf = (id: string, gen: number) => IDBKeyRange.bound([id, gen, 0], [id, gen, 0, []])
const changesOf = (id: string, gen: number) => IDBKeyRange.bound([id, gen, 1], [id, gen, 1, []])
const batchesOf = (id: string, gen: number) => IDBKeyRange.bound([id, gen, 2], [id, gen, 2, []])
type Change = StoredKv | { key: string; deleted: true }
/** One commit's changes to a generation after its copy, in one record. */
interface Batch {
  puts: StoredKv[]
  deletes: string[]
}

/** The keys of one generation: its pages, then the changes over them; and how many change records there were. */
async function loadGen(kv: IDBObjectStore, id: string, gen: number): Promise<{ kvs: StoredKv[]; changes: number }> {
  const [pages, changes, batches] = await Promise.all([
    promisifyRequest(kv.getAll(pagesOf(id, gen))) as Promise<(StoredKv[] | Page)[]>,
    promisifyRequest(kv.getAll(changesOf(id, gen))) as Promise<Change[]>,
    promisifyRequest(kv.getAll(batchesOf(id, gen))) as Promise<Batch[]>,
  ])
  const all = pages.length === 1 ? decodePage(pages[0]!) : pages.flatMap(decodePage)
  if (changes.length === 0 && batches.length === 0) return { kvs: all, changes: 0 }
  const m = new Map(all.map((x) => [x.key, x]))
  // Per-key records (written by earlier versions), then the batches in commit order.
  for (const c of changes) 'deleted' in c ? m.delete(c.key) : m.set(c.key, c)
  let n = changes.length
  for (const b of batches) {
    for (const k of b.deletes) m.delete(k)
    for (const x of b.puts) m.set(x.key, x)
    n += b.deletes.length + b.puts.length
  }
  return { kvs: [...m.values()], changes: n }
}

/** Keys per page a fold writes. */
const foldPage = 1000

/**
 * A page as stored: columns, not an array of objects. Reading a record back costs IndexedDB a deserialization per
 * object (the most of a reload's time with 100,000 keys), while a few strings and typed arrays are copied whole;
 * the objects are then made in JavaScript. Keys are one string cut at `keyEnds`, values one buffer cut at `valueEnds`.
 */
interface Page {
  keys: string
  keyEnds: Uint32Array
  values: Uint8Array
  valueEnds: Uint32Array
  createRevisions: Float64Array
  modRevisions: Float64Array
  versions: Float64Array
  /** [index, lease] of the keys with a lease. */
  leases: [number, string][]
}

function encodePage(kvs: StoredKv[]): Page {
  const n = kvs.length
  let total = 0
  for (const x of kvs) total += x.value.length
  const p: Page = {
    keys: '',
    keyEnds: new Uint32Array(n),
    values: new Uint8Array(total),
    valueEnds: new Uint32Array(n),
    createRevisions: new Float64Array(n),
    modRevisions: new Float64Array(n),
    versions: new Float64Array(n),
    leases: [],
  }
  const keys: string[] = new Array(n)
  let k = 0
  let v = 0
  for (let i = 0; i < n; i++) {
    const x = kvs[i]!
    keys[i] = x.key
    k += x.key.length
    p.keyEnds[i] = k
    p.values.set(x.value, v)
    v += x.value.length
    p.valueEnds[i] = v
    p.createRevisions[i] = x.createRevision
    p.modRevisions[i] = x.modRevision
    p.versions[i] = x.version
    if (x.lease !== '0') p.leases.push([i, x.lease])
  }
  p.keys = keys.join('')
  return p
}

/** The kvs of a page record (an array of StoredKv as earlier versions stored them, or a columnar Page). */
function decodePage(rec: StoredKv[] | Page): StoredKv[] {
  if (Array.isArray(rec)) return rec
  const n = rec.keyEnds.length
  const out: StoredKv[] = new Array(n)
  let k = 0
  let v = 0
  for (let i = 0; i < n; i++) {
    const ke = rec.keyEnds[i]!
    const ve = rec.valueEnds[i]!
    out[i] = {
      key: rec.keys.slice(k, ke),
      value: rec.values.subarray(v, ve),
      createRevision: rec.createRevisions[i]!,
      modRevision: rec.modRevisions[i]!,
      version: rec.versions[i]!,
      lease: '0',
    }
    k = ke
    v = ve
  }
  for (const [i, lease] of rec.leases) out[i]!.lease = lease
  return out
}

export class IndexedDbReplicaStorage implements ReplicaStorage {
  readonly name: string
  /** The metas as stored (commits need each range's current generation). */
  private readonly metas = new Map<string, RangeMeta>()

  private constructor(
    private readonly db: IDBDatabase,
    dbName: string,
  ) {
    this.name = `IndexedDB ${dbName}`
  }

  static async open(dbName: string): Promise<IndexedDbReplicaStorage> {
    const req = indexedDB.open(dbName, 1)
    req.onupgradeneeded = () => {
      const db = req.result
      if (!db.objectStoreNames.contains(rangesStore)) db.createObjectStore(rangesStore)
      if (!db.objectStoreNames.contains(kvStore)) db.createObjectStore(kvStore)
    }
    let db: IDBDatabase
    try {
      db = await promisifyRequest(req)
    } catch (err) {
      throw new ReplicaError('ERR_STORAGE', `IndexedDB ${dbName}: cannot open: ${(err as Error)?.message ?? err}`, {
        cause: err,
      })
    }
    return new IndexedDbReplicaStorage(db, dbName)
  }

  private tx(mode: IDBTransactionMode, durability: IDBTransactionDurability = 'strict'): IDBTransaction {
    return this.db.transaction([rangesStore, kvStore], mode, { durability })
  }

  async loadMetas(): Promise<RangeMeta[]> {
    return (await promisifyRequest(this.tx('readonly').objectStore(rangesStore).getAll())) as RangeMeta[]
  }

  async load(): Promise<LoadedRange[]> {
    const t = this.tx('readonly')
    const metas = (await promisifyRequest(t.objectStore(rangesStore).getAll())) as RangeMeta[]
    const kv = t.objectStore(kvStore)
    const out = await Promise.all(
      metas.map(async (meta) => {
        const none = { kvs: [], changes: 0 }
        const [cur, staged] = await Promise.all([
          meta.gen > 0 ? loadGen(kv, meta.id, meta.gen) : none,
          meta.copy ? loadGen(kv, meta.id, meta.copy.gen) : none,
        ])
        return { meta, kvs: cur.kvs, staged: staged.kvs, changes: cur.changes }
      }),
    )
    this.metas.clear()
    for (const m of metas) this.metas.set(m.id, structuredClone(m))
    return out
  }

  async commit(ops: StorageOp[]): Promise<void> {
    // Strict (flushed to disk before it completes) where the design needs a commit point: a copy's start and swap, a
    // drop, a meta. Copy pages and live events are relaxed: IndexedDB keeps transactions in order, so a crash loses
    // at most a suffix of them, and the replica then resumes from the older cursor or revision it finds (a page or an
    // event received again, never a gap); the next strict commit makes everything before it durable.
    const strict = ops.some((op) => op.kind !== 'copy-page' && op.kind !== 'events' && op.kind !== 'fold')
    const t = this.tx('readwrite', strict ? 'strict' : 'relaxed')
    const ranges = t.objectStore(rangesStore)
    const kv = t.objectStore(kvStore)
    const metas = new Map(this.metas)
    const touched = new Set<string>()
    // Orders the batch records of one commit that reach the same revision (ops of several ranges, or a range's ops
    // split by another op); records of later commits sort after by revision.
    let batchSeq = 0
    const meta = (id: string): RangeMeta | undefined => {
      const m = metas.get(id)
      if (!m) return undefined
      // Copy on first change: this.metas is updated only once the transaction completed.
      if (!touched.has(id)) {
        const c = structuredClone(m)
        metas.set(id, c)
        touched.add(id)
        return c
      }
      return m
    }
    try {
      for (const op of ops) {
        switch (op.kind) {
          case 'meta':
            metas.set(op.meta.id, structuredClone(op.meta))
            touched.add(op.meta.id)
            break
          case 'events': {
            const m = meta(op.range)
            if (!m) break
            // One record per commit (keyed by the revision it reaches): a catch-up of thousands of events is a few
            // puts, and a reload a few reads; folds turn them back into pages.
            if (op.puts.length > 0 || op.deletes.length > 0) {
              const batch: Batch = { puts: op.puts, deletes: op.deletes }
              kv.put(batch, [m.id, m.gen, 2, op.revision, batchSeq++])
            }
            m.revision = Math.max(m.revision, op.revision)
            if (op.lastContact !== undefined) m.lastContact = op.lastContact
            break
          }
          case 'copy-start': {
            const m = meta(op.range)
            if (!m) break
            kv.delete(IDBKeyRange.bound([m.id, -Infinity], [m.id, m.gen], false, true))
            kv.delete(IDBKeyRange.bound([m.id, m.gen, []], [m.id, Infinity]))
            m.copy = { ...op.copy }
            break
          }
          case 'copy-page': {
            const m = meta(op.range)
            if (!m) break
            if (op.puts.length > 0) kv.put(encodePage(op.puts), [m.id, op.copy.gen, 0, op.copy.copied - op.puts.length])
            m.copy = { ...op.copy }
            break
          }
          case 'swap': {
            const m = meta(op.range)
            if (!m) break
            if (m.gen !== op.gen) kv.delete(genRange(m.id, m.gen))
            m.gen = op.gen
            m.revision = op.revision
            m.copy = undefined
            if (op.lastContact !== undefined) m.lastContact = op.lastContact
            break
          }
          case 'fold': {
            // Compaction: the generation rewritten as whole pages, its change records gone (one transaction).
            const m = meta(op.range)
            if (!m || m.gen !== op.gen) break
            kv.delete(genRange(m.id, m.gen))
            for (let i = 0; i < op.kvs.length; i += foldPage)
              kv.put(encodePage(op.kvs.slice(i, i + foldPage)), [m.id, m.gen, 0, i])
            break
          }
          case 'drop':
            kv.delete(IDBKeyRange.bound([op.range], [op.range, []]))
            ranges.delete(op.range)
            metas.delete(op.range)
            touched.delete(op.range)
            break
        }
      }
      for (const id of touched) {
        const m = metas.get(id)
        if (m) ranges.put(m, id)
      }
      await promisifyRequest(t)
    } catch (err) {
      try {
        t.abort()
      } catch {}
      const e = (t.error ?? err) as DOMException
      const quota = e?.name === 'QuotaExceededError'
      throw new ReplicaError(
        quota ? 'ERR_QUOTA' : 'ERR_STORAGE',
        `${this.name}: ${quota ? 'the storage quota is exhausted (QuotaExceededError)' : (e?.message ?? String(err))}`,
        { cause: e },
      )
    }
    this.metas.clear()
    for (const [id, m] of metas) this.metas.set(id, m)
  }

  async close(): Promise<void> {
    this.db.close()
  }
}

/** Asks the browser to keep this origin's storage under pressure (navigator.storage.persist); false if refused. */
export async function requestPersistentStorage(): Promise<boolean> {
  const s = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage
  if (!s?.persist) return false
  try {
    return (await s.persisted?.()) || (await s.persist())
  } catch {
    return false
  }
}

/** The origin's storage usage and quota (navigator.storage.estimate), when the browser tells. */
export async function storageEstimate(): Promise<{ usage: number; quota: number } | undefined> {
  const s = (globalThis as { navigator?: { storage?: StorageManager } }).navigator?.storage
  if (!s?.estimate) return undefined
  const e = await s.estimate()
  return { usage: e.usage ?? 0, quota: e.quota ?? 0 }
}
