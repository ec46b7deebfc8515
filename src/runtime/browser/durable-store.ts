import { promisifyRequest, type UseStore } from 'idb-keyval'

/** An idb-keyval custom store whose connection can be closed, so the database can be reopened or deleted. */
export interface ClosableStore {
  store: UseStore
  close(): Promise<void>
}

/**
 * idb-keyval's createStore, with one change that matters for us: every transaction asks for `durability: 'strict'`.
 * Chromium's default is 'relaxed' (a transaction completes once the data is in the OS, before it is flushed), which
 * could lose an acknowledged write on power loss; 'strict' completes only after the flush. Browsers without the
 * option ignore it. (idb-keyval documents custom stores as the way to change how transactions are made.)
 */
export function createDurableStore(dbName: string, storeName: string): ClosableStore {
  let dbp: Promise<IDBDatabase> | undefined
  const getDb = (): Promise<IDBDatabase> => {
    if (dbp) return dbp
    const request = indexedDB.open(dbName)
    request.onupgradeneeded = () => {
      request.result.createObjectStore(storeName)
    }
    const p = promisifyRequest(request)
    dbp = p
    p.then(
      (db) => {
        // Browsers may close a connection by themselves (storage pressure, the user clearing data).
        db.onclose = () => {
          if (dbp === p) dbp = undefined
        }
      },
      () => {
        if (dbp === p) dbp = undefined
      },
    )
    return p
  }
  const store: UseStore = (txMode, callback) =>
    getDb().then((db) => callback(db.transaction(storeName, txMode, { durability: 'strict' }).objectStore(storeName)))
  const close = async () => {
    const p = dbp
    dbp = undefined
    if (p) (await p).close()
  }
  return { store, close }
}
