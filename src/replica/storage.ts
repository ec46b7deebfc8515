/**
 * Where a replica keeps its copy between runs. One storage holds every followed range of one replica: per range a
 * meta record and its keys, each key stored under (range, generation, key). A re-copy writes a new generation beside
 * the current one and `swap` switches the meta to it in one atomic commit, so a reload never finds a half-copied
 * range as the current one; a copy interrupted half-way resumes from its stored cursor at its pinned revision.
 *
 * Backends: MemoryReplicaStorage (tests, and Node processes that need no persistence), IndexedDB in the browser
 * (src/runtime/browser/replica-storage.ts), a file on Node and Deno (src/runtime/node/replica-storage.ts).
 */
import type { StoredKv } from './local-index.js'

/** A range copy in progress: generation `gen` is being filled from a read pinned at `revision`, next page at `nextKey`. */
export interface CopyState {
  gen: number
  /** The pinned revision (every page reads at it). */
  revision: number
  /** Key of the next page (binary string); null once every page is stored. */
  nextKey: string | null
  /** Keys copied so far and the total the first page reported (progress). */
  copied: number
  total: number
}

/** What a storage keeps about one followed range. */
export interface RangeMeta {
  id: string
  /** First key and range end, binary strings ('\0' end: every key from `key` up). */
  key: string
  end: string
  /** The current generation (0: no complete copy yet). */
  gen: number
  /** The revision the current generation reflects (0: none). */
  revision: number
  copy?: CopyState | undefined
  /** When the replica last heard from the cluster about this range (ms since the epoch). */
  lastContact?: number | undefined
}

/** One atomic change to the storage. */
export type StorageOp =
  /** Events applied to the current generation, which now reflects `revision`. */
  | {
      kind: 'events'
      range: string
      revision: number
      puts: StoredKv[]
      deletes: string[]
      /**
       * The revision of each delete (the DELETE event's kv.mod_revision), in the order of `deletes`: one watch message
       * (and a merged op) carries several revisions. Absent (ops of earlier versions, broadcast by an older tab):
       * every delete is at `revision`. Loading never needs it (a deleted key is simply absent).
       */
      deleteRevisions?: number[] | undefined
      lastContact?: number | undefined
    }
  /** A new range to follow (no data yet), or a changed meta. */
  | { kind: 'meta'; meta: RangeMeta }
  /** Starts a copy into generation copy.gen: drops every generation but the current, records the copy state. */
  | { kind: 'copy-start'; range: string; copy: CopyState }
  /** One page of a copy stored into copy.gen, with the cursor after it. */
  | { kind: 'copy-page'; range: string; copy: CopyState; puts: StoredKv[] }
  /** The copy is complete: its generation becomes current at its revision; the old generation is dropped. */
  | { kind: 'swap'; range: string; gen: number; revision: number; lastContact?: number | undefined }
  /** Forget the range and all its keys (permission lost, or no longer followed). */
  | { kind: 'drop'; range: string }
  /**
   * Compaction of the local store: generation `gen` of the range holds exactly `kvs` (the state every op before this
   * one produced). Changes nothing a load returns; a storage that keeps changes as separate records (IndexedDB)
   * rewrites the generation as whole pages from it, one that compacts by itself (memory, file) ignores it.
   */
  | { kind: 'fold'; range: string; gen: number; kvs: StoredKv[] }

/** What load() returns for one range. */
export interface LoadedRange {
  meta: RangeMeta
  /** Keys of the current generation. */
  kvs: StoredKv[]
  /** Keys of the copy in progress (meta.copy.gen), if any. */
  staged: StoredKv[]
  /** How many per-key change records the current generation has beside its pages (a storage that keeps them). */
  changes?: number
}

export interface ReplicaStorage {
  /** Everything stored, range by range. */
  load(): Promise<LoadedRange[]>
  /**
   * Only the metas (optional; a storage whose metas are much cheaper to read than its data): the engine then starts
   * the watches of complete ranges while load() runs.
   */
  loadMetas?(): Promise<RangeMeta[]>
  /** Applies the ops in order, atomically: after a crash either all of them are stored or none. */
  commit(ops: StorageOp[]): Promise<void>
  /**
   * Optional: commit, synchronously (a storage that keeps everything in memory). When there, the engine stores each
   * live change at once instead of through a promise (nothing is queued ahead of it, so the order is the same).
   */
  readonly commitSync?: ((ops: StorageOp[]) => void) | undefined
  /**
   * Optional: the storage keeps the kv objects of committed ops as they are (no clone, no serialization), so they
   * may be live changes whose value is decoded on first read (the memory storage). Otherwise the engine hands it
   * plain objects.
   */
  readonly keepsObjects?: boolean | undefined
  close(): Promise<void>
  /** A short name for messages ("IndexedDB edgecd-replica:..."). */
  readonly name: string
}

/** Error codes of the replica (see docs/replica.md). */
export type ReplicaErrorCode =
  | 'ERR_OFFLINE'
  | 'ERR_NOT_FOLLOWED'
  | 'ERR_PERMISSION_DENIED'
  | 'ERR_STORAGE'
  | 'ERR_QUOTA'
  | 'ERR_CLOSED'
  | 'ERR_NOT_READY'

export class ReplicaError extends Error {
  override readonly name = 'ReplicaError'
  constructor(
    readonly code: ReplicaErrorCode,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts)
  }
}

/** Applies ops to plain maps: the memory backend, and the model the other backends are tested against. */
export class MemoryReplicaStorage implements ReplicaStorage {
  readonly name = 'memory'
  readonly keepsObjects: boolean = true
  readonly metas = new Map<string, RangeMeta>()
  /** range -> gen -> key -> kv */
  readonly data = new Map<string, Map<number, Map<string, StoredKv>>>()
  /** Commits done so far (tests stop a replica after a given number of them). */
  commits = 0
  /** Test hook: called before each commit; throwing fails the commit with nothing stored. */
  beforeCommit: ((ops: StorageOp[]) => void) | undefined

  /** Tests: the engine's early watches (see ReplicaStorage.loadMetas) with the memory storage too. */
  metasApart = false

  get loadMetas(): (() => Promise<RangeMeta[]>) | undefined {
    return this.metasApart ? async () => [...this.metas.values()].map((m) => structuredClone(m)) : undefined
  }

  async load(): Promise<LoadedRange[]> {
    return [...this.metas.values()].map((meta) => {
      const gens = this.data.get(meta.id)
      return {
        meta: structuredClone(meta),
        kvs: [...(gens?.get(meta.gen)?.values() ?? [])],
        staged: meta.copy ? [...(gens?.get(meta.copy.gen)?.values() ?? [])] : [],
      }
    })
  }

  /** Commits synchronously (see ReplicaStorage.commitSync); tests turn it off to run the engine's asynchronous path. */
  syncCommits = true

  get commitSync(): ((ops: StorageOp[]) => void) | undefined {
    return this.syncCommits ? this.commitNow : undefined
  }

  private readonly commitNow = (ops: StorageOp[]): void => {
    this.beforeCommit?.(ops)
    this.commits++
    applyOps(this.metas, this.data, ops)
  }

  async commit(ops: StorageOp[]): Promise<void> {
    this.commitNow(ops)
  }

  async close(): Promise<void> {}
}

/** The key map of one generation of a range, made on first use. */
function genMap(
  data: Map<string, Map<number, Map<string, StoredKv>>>,
  range: string,
  g: number,
): Map<string, StoredKv> {
  let gens = data.get(range)
  if (!gens) {
    gens = new Map()
    data.set(range, gens)
  }
  let m = gens.get(g)
  if (!m) {
    m = new Map()
    gens.set(g, m)
  }
  return m
}

/** The meaning of each op, on maps (shared by the memory and file backends). */
export function applyOps(
  metas: Map<string, RangeMeta>,
  data: Map<string, Map<number, Map<string, StoredKv>>>,
  ops: StorageOp[],
): void {
  for (const op of ops) {
    switch (op.kind) {
      case 'meta':
        metas.set(op.meta.id, structuredClone(op.meta))
        break
      case 'events': {
        const meta = metas.get(op.range)
        if (!meta) break
        const m = genMap(data, op.range, meta.gen)
        for (const k of op.deletes) m.delete(k)
        for (const kv of op.puts) m.set(kv.key, kv)
        meta.revision = Math.max(meta.revision, op.revision)
        if (op.lastContact !== undefined) meta.lastContact = op.lastContact
        break
      }
      case 'copy-start': {
        const meta = metas.get(op.range)
        if (!meta) break
        for (const g of [...(data.get(op.range)?.keys() ?? [])]) if (g !== meta.gen) data.get(op.range)!.delete(g)
        meta.copy = { ...op.copy }
        break
      }
      case 'copy-page': {
        const meta = metas.get(op.range)
        if (!meta) break
        const m = genMap(data, op.range, op.copy.gen)
        for (const kv of op.puts) m.set(kv.key, kv)
        meta.copy = { ...op.copy }
        break
      }
      case 'swap': {
        const meta = metas.get(op.range)
        if (!meta) break
        data.get(op.range)?.delete(meta.gen)
        meta.gen = op.gen
        meta.revision = op.revision
        meta.copy = undefined
        if (op.lastContact !== undefined) meta.lastContact = op.lastContact
        break
      }
      case 'drop':
        metas.delete(op.range)
        data.delete(op.range)
        break
      case 'fold':
        break
    }
  }
}
