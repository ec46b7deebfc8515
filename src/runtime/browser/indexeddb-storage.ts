import { promisifyRequest } from 'idb-keyval'
import { MemoryStorage } from '../../raft/storage.js'
import type { Entry, HardState, Snapshot } from '../../raft/types.js'
import { emptyHardState } from '../../raft/types.js'
import { CachedStorage, type SaveRecords } from '../../storage/cached-storage.js'
import type { DurableStorage } from '../../storage/durable-storage.js'
import { isStorageError, StorageError } from '../../storage/errors.js'
import { type ClosableStore, createDurableStore } from './durable-store.js'

/**
 * The layout in IndexedDB: one object store `raft` in the database, with
 *
 *   'meta'       { format: 'edgecd-idb', version: 1 }  written when the database is created, checked on open
 *   'hardstate'  HardState
 *   'snapshot'   Snapshot (structured clone keeps `data` a Uint8Array)
 *   [index]      Entry, keyed by a one-number array so entries sort after the string keys and by index
 *
 * IndexedDB transactions are atomic, so there is no torn write to repair: each save is one transaction that either
 * happened or did not. The browser checksums its own files, so no CRC here.
 */
export const idbFormat = 'edgecd-idb'
export const idbFormatVersion = 1
const storeName = 'raft'

interface Meta {
  format: string
  version: number
}

/** Options of the IndexedDB backend. */
export interface IndexedDbStorageOptions {
  /** Open without writing (not even the format record of a new database); every write is refused with ErrReadOnly. */
  readOnly?: boolean
}

const entryKey = (index: number): IDBValidKey => [index]
/** Every entry key from `index` up. */
const entriesFrom = (index: number) => IDBKeyRange.lowerBound(entryKey(index))
/** Every entry key up to `index`, inclusive. Bounded below too: the string keys sort before every array key. */
const entriesTo = (index: number) => IDBKeyRange.bound(entryKey(0), entryKey(index))

/** Runs one IndexedDB transaction's work; maps what the browser throws to StorageError naming the database. */
async function tx<T>(
  db: ClosableStore,
  name: string,
  mode: IDBTransactionMode,
  fn: (s: IDBObjectStore) => Promise<T>,
): Promise<T> {
  try {
    return await db.store(mode, fn)
  } catch (err) {
    if (isStorageError(err)) throw err
    const e = err as DOMException
    if (e?.name === 'NotFoundError') {
      throw new StorageError('ErrNotEdgecdDir', `IndexedDB database ${name} has no object store "${storeName}"`, {
        cause: err,
      })
    }
    const what =
      e?.name === 'QuotaExceededError' ? 'the browser storage quota is exhausted' : (e?.message ?? String(err))
    throw new StorageError('ErrIO', `IndexedDB database ${name}: ${what}`, { cause: err })
  }
}

/**
 * Takes the Web Lock `edgecd:<dbName>` (navigator.locks, shared by every tab and worker of the origin) without
 * waiting, and holds it until the returned function is called; throws ErrLocked if another open holds it. Where the
 * browser has no Web Locks API (or in Node against fake-indexeddb) nothing is locked.
 */
async function lockDatabase(dbName: string): Promise<(() => void) | undefined> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks
  if (!locks) return undefined
  const name = `edgecd:${dbName}`
  let release!: () => void
  const held = new Promise<void>((r) => {
    release = r
  })
  const got = await new Promise<boolean>((resolve, reject) => {
    locks
      .request(name, { mode: 'exclusive', ifAvailable: true }, async (lock) => {
        resolve(lock !== null)
        if (lock) await held
      })
      .catch(reject)
  })
  if (!got) {
    throw new StorageError(
      'ErrLocked',
      `IndexedDB database ${dbName} is locked by another open storage (Web Lock ${name}, held by this page or ` +
        'another tab or worker of this origin); one member per database: close that one first',
    )
  }
  return release
}

/**
 * Opens (creating if new) the durable log in the IndexedDB database `dbName` of this origin. Refuses a database that
 * holds other data (ErrNotEdgecdDir) or another format version (ErrVersion), and a log that does not hang together
 * (ErrCorrupt), without writing anything. Unless `readOnly`, holds the database's Web Lock until close().
 */
export async function openIndexedDbStorage(
  dbName = 'edgecd',
  options: IndexedDbStorageOptions = {},
): Promise<IndexedDbStorage> {
  const unlock = options.readOnly ? undefined : await lockDatabase(dbName)
  const db = createDurableStore(dbName, storeName)
  try {
    const loaded = await tx(db, dbName, 'readonly', async (s) => {
      const [meta, hs, snap, count] = await Promise.all([
        promisifyRequest(s.get('meta')) as Promise<Meta | undefined>,
        promisifyRequest(s.get('hardstate')) as Promise<HardState | undefined>,
        promisifyRequest(s.get('snapshot')) as Promise<Snapshot | undefined>,
        promisifyRequest(s.count()),
      ])
      const entries = (await promisifyRequest(s.getAll(entriesFrom((snap?.metadata.index ?? 0) + 1)))) as Entry[]
      return { meta, hs, snap, count, entries }
    })
    const { meta, hs, snap, count, entries } = loaded
    if (!meta) {
      if (count > 0) {
        throw new StorageError(
          'ErrNotEdgecdDir',
          `IndexedDB database ${dbName} holds ${count} records but no edgecd format record`,
        )
      }
      if (!options.readOnly) {
        await tx(db, dbName, 'readwrite', (s) => {
          s.put({ format: idbFormat, version: idbFormatVersion } satisfies Meta, 'meta')
          return promisifyRequest(s.transaction)
        })
      }
    } else if (meta.format !== idbFormat) {
      throw new StorageError(
        'ErrNotEdgecdDir',
        `IndexedDB database ${dbName} holds format ${JSON.stringify(meta.format)}`,
      )
    } else if (meta.version !== idbFormatVersion) {
      throw new StorageError(
        'ErrVersion',
        `IndexedDB database ${dbName} is in format version ${meta.version}, this edgecd reads version ${idbFormatVersion}`,
      )
    }
    const mem = new MemoryStorage()
    if (snap && snap.metadata.index > 0) mem.applySnapshot(snap)
    for (let i = 0; i < entries.length; i++) {
      const want = mem.lastIndex() + 1 + i
      if (entries[i]!.index !== want) {
        throw new StorageError(
          'ErrCorrupt',
          `IndexedDB database ${dbName}: entry ${entries[i]!.index} where ${want} belongs`,
        )
      }
    }
    mem.append(entries)
    mem.setHardState(hs ?? { ...emptyHardState })
    return new IndexedDbStorage(db, dbName, mem, options.readOnly ?? false, unlock)
  } catch (err) {
    await db.close()
    unlock?.()
    throw err
  }
}

/** The IndexedDB backend: the log in memory for Raft's reads, each write one strict-durability transaction. */
export class IndexedDbStorage extends CachedStorage implements DurableStorage {
  constructor(
    private readonly db: ClosableStore,
    private readonly dbName: string,
    mem: MemoryStorage,
    readOnly: boolean,
    private readonly unlock?: () => void,
  ) {
    super(mem, readOnly, `IndexedDB database ${dbName}`)
  }

  protected persistSaves(saves: readonly SaveRecords[], snap?: Snapshot): Promise<void> {
    return tx(this.db, this.dbName, 'readwrite', (s) => {
      let floor = this.mem.snapshot().metadata.index
      if (snap) {
        // A snapshot from the leader replaces the whole log.
        s.put(plainSnapshot(snap), 'snapshot')
        s.delete(entriesFrom(0))
        floor = snap.metadata.index
      }
      let hs: HardState | undefined
      for (const save of saves) {
        const kept = save.entries.filter((e) => e.index > floor)
        // An entry at an index already held replaces it and everything after it (a new leader's overwrite).
        if (kept.length > 0) s.delete(entriesFrom(kept[0]!.index))
        for (const e of kept) {
          // IndexedDB clones a view's whole buffer: an entry may view a shared one (the member carves its proposals
          // out of 64 KiB slabs, src/etcdserver/proposal.ts), so store its own bytes only.
          const d = e.data
          const data = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength ? d : d.slice()
          s.put({ index: e.index, term: e.term, type: e.type, data } satisfies Entry, entryKey(e.index))
        }
        hs = save.hs ?? hs
      }
      if (hs) s.put({ term: hs.term, vote: hs.vote, commit: hs.commit } satisfies HardState, 'hardstate')
      return promisifyRequest(s.transaction)
    })
  }

  protected persistSnapshot(snap: Snapshot): Promise<void> {
    return tx(this.db, this.dbName, 'readwrite', (s) => {
      s.put(plainSnapshot(snap), 'snapshot')
      // The entries the snapshot covers are released; the read side keeps them until compact().
      s.delete(entriesTo(snap.metadata.index))
      return promisifyRequest(s.transaction)
    })
  }

  protected async release(): Promise<void> {
    try {
      await this.db.close()
    } finally {
      this.unlock?.()
    }
  }
}

/** A copy with only the fields we own, so structured clone never meets a caller's extra properties. */
function plainSnapshot(snap: Snapshot): Snapshot {
  const m = snap.metadata
  return {
    data: snap.data,
    metadata: {
      index: m.index,
      term: m.term,
      confState: { voters: [...m.confState.voters], learners: [...m.confState.learners] },
    },
  }
}
