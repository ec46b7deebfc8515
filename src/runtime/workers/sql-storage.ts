import { decode, encode } from 'cbor-x'
import { MemoryStorage } from '../../raft/storage.js'
import type { Entry, HardState, Snapshot } from '../../raft/types.js'
import { emptyHardState } from '../../raft/types.js'
import { CachedStorage, type SaveRecords } from '../../storage/cached-storage.js'
import type { DurableStorage } from '../../storage/durable-storage.js'
import { isStorageError, StorageError } from '../../storage/errors.js'
import type { DurableObjectStorage, SqlStorage, SqlStorageValue } from './cf-api.js'

/**
 * A member's durable log in its Durable Object's SQLite database (`ctx.storage.sql`). The tables (all prefixed
 * `edgecd_`, so the object's other data, such as the KV API's `_cf_KV`, is left alone):
 *
 *   edgecd_meta(k, v)                       'format' = 'edgecd-do-sql' and 'version' = 1, checked on open;
 *                                           'hardstate' = CBOR [term, vote, commit];
 *                                           'snapshot' = CBOR [index, term, voters, learners, bytes, chunks];
 *                                           'file:<name>' = small text files (the member identity)
 *   edgecd_entries(idx, term, type, chunks, data)   one row per log entry; `data` holds its first chunk
 *   edgecd_entry_chunks(idx, seq, data)             the further chunks of an entry larger than one chunk
 *   edgecd_snapshot_chunks(seq, data)               the current snapshot's data, in chunks
 *
 * Limits: a SQLite-backed Durable Object refuses a row, string or BLOB over 2 MB (Cloudflare's documented limit), so
 * entry data and snapshots are cut into chunks of `chunkBytes` (1 MiB by default, well under the limit with the
 * other columns); the object's database may hold 10 GB (paid plan; 5 GB total on the free plan). A write past the
 * database's limit fails with the platform's error, which (as a failed fsync does on Node) stops the member without
 * losing an acknowledged write: the failed transaction is rolled back whole.
 *
 * Each save is one `transactionSync` (all of its rows or none), followed by `storage.sync()`, which resolves once
 * the transaction is durable; only then does the save resolve (and Raft send what depended on it). A crash at any
 * point leaves the previous save's state or the new one, never a mix, so there is nothing to repair on open.
 */
export const sqlFormat = 'edgecd-do-sql'
export const sqlFormatVersion = 1
/** Bytes per stored chunk of entry or snapshot data: half the platform's 2 MB row limit. */
export const sqlChunkBytesDefault = 1024 * 1024

export interface SqlStorageOptions {
  /** Bytes per chunk of entry and snapshot data (default 1 MiB). Tests make it small to exercise chunking. */
  chunkBytes?: number
  /**
   * Test hook: called inside each write transaction after its rows are written, with what the transaction does
   * ('save' or 'snapshot'); throwing from it makes that transaction fail and roll back (a crash mid-write).
   */
  beforeCommit?: (what: 'save' | 'snapshot') => void
}

const schema = [
  'CREATE TABLE IF NOT EXISTS edgecd_meta (k TEXT PRIMARY KEY, v BLOB)',
  'CREATE TABLE IF NOT EXISTS edgecd_entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL, chunks INTEGER NOT NULL, data BLOB)',
  'CREATE TABLE IF NOT EXISTS edgecd_entry_chunks (idx INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (idx, seq))',
  'CREATE TABLE IF NOT EXISTS edgecd_snapshot_chunks (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)',
]

/** A Uint8Array as the ArrayBuffer the SQL API binds as a BLOB (copied only when it views part of a buffer). */
function blob(u: Uint8Array): ArrayBuffer {
  if (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer) return u.buffer
  return u.slice().buffer
}

function bytes(v: SqlStorageValue): Uint8Array {
  if (v === null) return new Uint8Array(0)
  if (v instanceof ArrayBuffer) return new Uint8Array(v)
  throw new StorageError('ErrCorrupt', `Durable Object storage: expected a BLOB, found ${typeof v}`)
}

function getMeta(sql: SqlStorage, k: string): SqlStorageValue | undefined {
  const rows = sql.exec<{ v: SqlStorageValue }>('SELECT v FROM edgecd_meta WHERE k = ?', k).toArray()
  return rows[0]?.v
}

function putMeta(sql: SqlStorage, k: string, v: SqlStorageValue): void {
  sql.exec('INSERT OR REPLACE INTO edgecd_meta (k, v) VALUES (?, ?)', k, v)
}

/** Splits data into chunks of at most `size` bytes; empty data is one empty chunk. */
function chunksOf(data: Uint8Array, size: number): Uint8Array[] {
  if (data.byteLength <= size) return [data]
  const out: Uint8Array[] = []
  for (let at = 0; at < data.byteLength; at += size) out.push(data.subarray(at, Math.min(at + size, data.byteLength)))
  return out
}

function join(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.byteLength === total) return parts[0]!
  const out = new Uint8Array(total)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

/** Maps what the SQL API throws to a StorageError that says where and, for a full database, what to do. */
function ioError(err: unknown, doing: string): StorageError {
  if (isStorageError(err)) return err
  const msg = (err as Error)?.message ?? String(err)
  const full = /SQLITE_FULL|database or disk is full|exceeded.*(size|storage)/i.test(msg)
  const tooBig = /TOOBIG|too big/i.test(msg)
  const what = full
    ? `the object's storage limit is reached (${msg}); compact and defragment, or raise the plan's limit`
    : tooBig
      ? `a row is over the platform's 2 MB limit (${msg})`
      : msg
  return new StorageError('ErrIO', `Durable Object storage (${doing}): ${what}`, { cause: err })
}

interface StoredSnapshotMeta {
  index: number
  term: number
  voters: string[]
  learners: string[]
  bytes: number
  chunks: number
}

function readSnapshot(sql: SqlStorage): Snapshot | undefined {
  const raw = getMeta(sql, 'snapshot')
  if (raw === undefined || raw === null) return undefined
  const [index, term, voters, learners, total, chunks] = decode(bytes(raw)) as [
    number,
    number,
    string[],
    string[],
    number,
    number,
  ]
  const rows = sql
    .exec<{ seq: number; data: ArrayBuffer }>('SELECT seq, data FROM edgecd_snapshot_chunks ORDER BY seq')
    .toArray()
  if (rows.length !== chunks || rows.some((r, i) => r.seq !== i)) {
    throw new StorageError(
      'ErrCorrupt',
      `Durable Object storage: snapshot ${index} has ${rows.length} of its ${chunks} chunks`,
    )
  }
  const data = join(
    rows.map((r) => bytes(r.data)),
    total,
  )
  if (data.byteLength !== total) {
    throw new StorageError(
      'ErrCorrupt',
      `Durable Object storage: snapshot ${index} has ${data.byteLength} of ${total} bytes`,
    )
  }
  return { data, metadata: { index, term, confState: { voters, learners } } }
}

function readEntries(sql: SqlStorage, after: number): Entry[] {
  const rows = sql
    .exec<{ idx: number; term: number; type: number; chunks: number; data: SqlStorageValue }>(
      'SELECT idx, term, type, chunks, data FROM edgecd_entries WHERE idx > ? ORDER BY idx',
      after,
    )
    .toArray()
  const out: Entry[] = []
  for (const r of rows) {
    let data = bytes(r.data)
    if (r.chunks > 1) {
      const more = sql
        .exec<{ data: ArrayBuffer }>('SELECT data FROM edgecd_entry_chunks WHERE idx = ? ORDER BY seq', r.idx)
        .toArray()
        .map((c) => bytes(c.data))
      if (more.length !== r.chunks - 1) {
        throw new StorageError(
          'ErrCorrupt',
          `Durable Object storage: entry ${r.idx} has ${more.length + 1} of its ${r.chunks} chunks`,
        )
      }
      const parts = [data, ...more]
      data = join(
        parts,
        parts.reduce((n, p) => n + p.byteLength, 0),
      )
    }
    out.push({ index: r.idx, term: r.term, type: r.type as Entry['type'], data })
  }
  return out
}

/**
 * Opens (creating on first use) the member's log in a SQLite-backed Durable Object's storage. Refuses tables of
 * another format version (ErrVersion) and a log with a gap (ErrCorrupt). One open storage per object: the object is
 * single-threaded and is the only writer of its database, so no lock is needed.
 */
export async function openSqlStorage(
  storage: DurableObjectStorage,
  options: SqlStorageOptions = {},
): Promise<DurableObjectSqlStorage> {
  const sql = storage.sql
  let mem: MemoryStorage
  try {
    mem = storage.transactionSync(() => {
      for (const s of schema) sql.exec(s)
      const format = getMeta(sql, 'format')
      const version = getMeta(sql, 'version')
      if (format === undefined) {
        const n = sql.exec<{ n: number }>('SELECT count(*) AS n FROM edgecd_entries').one().n
        if (n > 0)
          throw new StorageError('ErrNotEdgecdDir', `Durable Object storage holds ${n} entries but no format record`)
        putMeta(sql, 'format', sqlFormat)
        putMeta(sql, 'version', sqlFormatVersion)
      } else if (format !== sqlFormat) {
        throw new StorageError('ErrNotEdgecdDir', `Durable Object storage holds format ${JSON.stringify(format)}`)
      } else if (version !== sqlFormatVersion) {
        throw new StorageError(
          'ErrVersion',
          `Durable Object storage is in format version ${String(version)}, this edgecd reads version ${sqlFormatVersion}`,
        )
      }
      const snap = readSnapshot(sql)
      const hsRaw = getMeta(sql, 'hardstate')
      const hs: HardState = hsRaw
        ? (([term, vote, commit]) => ({ term, vote, commit }))(decode(bytes(hsRaw)) as [number, string, number])
        : { ...emptyHardState }
      const m = new MemoryStorage()
      if (snap && snap.metadata.index > 0) m.applySnapshot(snap)
      const entries = readEntries(sql, m.lastIndex())
      for (let i = 0; i < entries.length; i++) {
        const want = m.lastIndex() + 1 + i
        if (entries[i]!.index !== want)
          throw new StorageError(
            'ErrCorrupt',
            `Durable Object storage: entry ${entries[i]!.index} where ${want} belongs`,
          )
      }
      m.append(entries)
      m.setHardState(hs)
      return m
    })
  } catch (err) {
    throw ioError(err, 'open')
  }
  return new DurableObjectSqlStorage(storage, mem, options)
}

/** The Durable Object SQLite backend: the log in memory for Raft's reads, each write one SQLite transaction. */
export class DurableObjectSqlStorage extends CachedStorage implements DurableStorage {
  private readonly chunkBytes: number
  constructor(
    private readonly storage: DurableObjectStorage,
    mem: MemoryStorage,
    private readonly options: SqlStorageOptions,
  ) {
    super(mem, false, 'Durable Object storage')
    this.chunkBytes = options.chunkBytes ?? sqlChunkBytesDefault
  }

  /** The database's size in bytes, as the platform bills and limits it. */
  get databaseSize(): number {
    return this.storage.sql.databaseSize
  }

  private insertEntry(e: Entry): void {
    const sql = this.storage.sql
    const parts = chunksOf(e.data, this.chunkBytes)
    sql.exec(
      'INSERT OR REPLACE INTO edgecd_entries (idx, term, type, chunks, data) VALUES (?, ?, ?, ?, ?)',
      e.index,
      e.term,
      e.type,
      parts.length,
      blob(parts[0]!),
    )
    for (let seq = 1; seq < parts.length; seq++)
      sql.exec('INSERT INTO edgecd_entry_chunks (idx, seq, data) VALUES (?, ?, ?)', e.index, seq, blob(parts[seq]!))
  }

  private dropEntriesFrom(index: number): void {
    this.storage.sql.exec('DELETE FROM edgecd_entries WHERE idx >= ?', index)
    this.storage.sql.exec('DELETE FROM edgecd_entry_chunks WHERE idx >= ?', index)
  }

  private writeSnapshot(snap: Snapshot): void {
    const sql = this.storage.sql
    const m = snap.metadata
    const parts = chunksOf(snap.data, this.chunkBytes)
    sql.exec('DELETE FROM edgecd_snapshot_chunks')
    for (let seq = 0; seq < parts.length; seq++)
      sql.exec('INSERT INTO edgecd_snapshot_chunks (seq, data) VALUES (?, ?)', seq, blob(parts[seq]!))
    const stored: StoredSnapshotMeta = {
      index: m.index,
      term: m.term,
      voters: [...m.confState.voters],
      learners: [...m.confState.learners],
      bytes: snap.data.byteLength,
      chunks: parts.length,
    }
    putMeta(
      sql,
      'snapshot',
      blob(encode([stored.index, stored.term, stored.voters, stored.learners, stored.bytes, stored.chunks])),
    )
  }

  protected async persistSaves(saves: readonly SaveRecords[], snap?: Snapshot): Promise<void> {
    try {
      this.storage.transactionSync(() => {
        let floor = this.mem.snapshot().metadata.index
        if (snap) {
          // A snapshot from the leader replaces the whole log.
          this.writeSnapshot(snap)
          this.dropEntriesFrom(0)
          floor = snap.metadata.index
        }
        let hs: HardState | undefined
        for (const save of saves) {
          const kept = save.entries.filter((e) => e.index > floor)
          // An entry at an index already held replaces it and everything after it (a new leader's overwrite).
          if (kept.length > 0) this.dropEntriesFrom(kept[0]!.index)
          for (const e of kept) this.insertEntry(e)
          hs = save.hs ?? hs
        }
        if (hs) putMeta(this.storage.sql, 'hardstate', blob(encode([hs.term, hs.vote, hs.commit])))
        this.options.beforeCommit?.('save')
      })
      await this.storage.sync()
    } catch (err) {
      throw ioError(err, 'save')
    }
  }

  protected async persistSnapshot(snap: Snapshot): Promise<void> {
    try {
      this.storage.transactionSync(() => {
        this.writeSnapshot(snap)
        // The entries the snapshot covers are released; the read side keeps them until compact().
        this.storage.sql.exec('DELETE FROM edgecd_entries WHERE idx <= ?', snap.metadata.index)
        this.storage.sql.exec('DELETE FROM edgecd_entry_chunks WHERE idx <= ?', snap.metadata.index)
        this.options.beforeCommit?.('snapshot')
      })
      await this.storage.sync()
    } catch (err) {
      throw ioError(err, 'snapshot')
    }
  }

  protected async release(): Promise<void> {}
}

/** Small text files of a member (its identity) in the same database, so they live and die with its log. */
export function sqlTextFiles(storage: DurableObjectStorage): {
  readText(name: string): Promise<string | undefined>
  writeText(name: string, text: string): Promise<void>
} {
  return {
    async readText(name) {
      storage.sql.exec(schema[0]!)
      const v = getMeta(storage.sql, `file:${name}`)
      return typeof v === 'string' ? v : undefined
    },
    async writeText(name, text) {
      storage.transactionSync(() => {
        storage.sql.exec(schema[0]!)
        putMeta(storage.sql, `file:${name}`, text)
      })
      await storage.sync()
    },
  }
}
