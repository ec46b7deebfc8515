/**
 * The replica's public API: `openReplica({ endpoint, prefix })` and the Replica it resolves to. Runtime-agnostic:
 * storage is given (memory by default here; the browser build defaults to IndexedDB and shares one sync between
 * tabs, see src/runtime/browser/replica.ts; Node and Deno can pass a file storage).
 */
import type { Bytes } from '../client/bytes.js'
import { Client } from '../client/client.js'
import { followedSpan, type KeySpan, spanOf, textOfBin, textOfBytes, toBin } from './keys.js'
import type { SortOrder, SortTarget, StoredKv } from './local-index.js'
import { type ChangeBatch, type Consistency, type RangeStatus, ReplicaEngine, type ReplicaStatus } from './replica.js'
import { ClientSource, type ReplicaSource } from './source.js'
import { MemoryReplicaStorage, ReplicaError, type ReplicaStorage } from './storage.js'

/** Options of openReplica. */
export interface ReplicaOptions {
  /** A member URL, e.g. 'http://127.0.0.1:2379' (or `endpoints` for several). */
  endpoint?: string
  endpoints?: string[]
  /** The prefix to follow (or `ranges` for several). */
  prefix?: Bytes
  /** Ranges to follow: a key, `{prefix}`, `{key, rangeEnd}` or `{key, fromKey: true}`. */
  ranges?: KeySpan[]
  /** Auth, as the client: a token, or a user name and password (token renewed when refused). */
  token?: string
  username?: string
  password?: string
  /** An existing client to sync through (its endpoints and auth are used; the replica does not close it). */
  client?: Client
  /** Where the copy is kept; default memory here, IndexedDB in the browser build. */
  storage?: ReplicaStorage
  /** How reads are answered by default (see Consistency); default 'linearizable'. */
  consistency?: Consistency
  /** Keys of the first copy page (default 1,000). */
  pageSize?: number
  /** Pages grow up to this many keys while small in bytes (default 8,000; only `pageSize` given: pages stay at it). */
  maxPageSize?: number
  /** Bound on a linearizable read's round trip before it answers stale (default 3,000 ms). */
  readTimeoutMs?: number
  /** openReplica rejects after this long with no local copy and no answer from the cluster (default 30,000 ms). */
  openTimeoutMs?: number
  /**
   * The live watch's coalescing window in ms (default 500; 0: none; at most 1,000): the member sends this range's
   * changes at most once per window, several revisions per message (`edgecd_coalesce_ms`, an edgecd extension;
   * etcd ignores it and sends one message per revision). A change after a quiet window comes at once; under a
   * steady stream, local state and subscribers lag the cluster by up to the window, but a linearizable read does
   * not wait for it (its progress request sends what the member holds). See docs/replica.md.
   */
  coalesceMs?: number
  /** WebSocket constructor (default globalThis.WebSocket; on Node 20 pass the `ws` package's). */
  WebSocket?: unknown
  fetch?: typeof fetch
  /** Backoff before retrying after the cluster was unreachable, by attempt. */
  backoffMs?: (attempt: number) => number
  /**
   * The storage's usage and quota in bytes; a copy that would not fit is not started (ERR_QUOTA). The browser build
   * uses navigator.storage.estimate() unless given.
   */
  estimate?: () => Promise<{ usage: number; quota: number } | undefined>
  /** @internal A source other than the client (tests' scripted server). */
  source?: ReplicaSource
}

/** A key-value of the local copy. */
export interface ReplicaKv {
  key: string
  value: string
  keyBytes: Uint8Array
  valueBytes: Uint8Array
  createRevision: number
  modRevision: number
  version: number
  lease: string
}

/** Options of a read. */
export interface ReadOptions {
  consistency?: Consistency
}

export interface RangeReadOptions extends ReadOptions {
  limit?: number
  keysOnly?: boolean
  countOnly?: boolean
  sortOrder?: SortOrder
  sortTarget?: SortTarget
  minModRevision?: number
  maxModRevision?: number
  minCreateRevision?: number
  maxCreateRevision?: number
}

/** What every read answers besides its data. */
export interface ReadMeta {
  /** The revision of the cluster the answer reflects. */
  revision: number
  /** True when the answer was not confirmed current with the cluster (offline, or a 'local' read). */
  stale: boolean
  /** When the replica last heard from the cluster about this range (ms since the epoch). */
  lastContact: number | undefined
}

export interface GetResult extends ReadMeta {
  /** The value as UTF-8 text; undefined when the key does not exist. */
  value: string | undefined
  kv: ReplicaKv | undefined
}

export interface GetBytesResult extends ReadMeta {
  value: Uint8Array | undefined
  kv: ReplicaKv | undefined
}

export interface RangeResult extends ReadMeta {
  kvs: ReplicaKv[]
  count: number
  more: boolean
}

/** A change of the local copy, as subscribers see it. */
export interface ReplicaEvent {
  type: 'PUT' | 'DELETE'
  kv: ReplicaKv
}

export interface ReplicaChange {
  revision: number
  events: ReplicaEvent[]
  /** 'events': live changes; 'resync': a re-copy after compaction swapped in; 'removed': permission lost. */
  cause: ChangeBatch['cause']
}

/** A stored kv as the API shows it: key and value text decoded on first use (one object per answer, no closures). */
class PublicKv implements ReplicaKv {
  private keyText: string | undefined
  private valueText: string | undefined
  readonly createRevision: number
  readonly modRevision: number
  readonly version: number
  readonly lease: string
  constructor(private readonly kv: StoredKv) {
    this.createRevision = kv.createRevision
    this.modRevision = kv.modRevision
    this.version = kv.version
    this.lease = kv.lease
  }
  get key(): string {
    this.keyText ??= textOfBin(this.kv.key)
    return this.keyText
  }
  /** The value's bytes (a live change's value is decoded on first read, see LazyKv). */
  get valueBytes(): Uint8Array {
    return this.kv.value
  }
  get value(): string {
    this.valueText ??= textOfBytes(this.kv.value)
    return this.valueText
  }
  get keyBytes(): Uint8Array {
    const k = this.kv.key
    const out = new Uint8Array(k.length)
    for (let i = 0; i < k.length; i++) out[i] = k.charCodeAt(i)
    return out
  }
  toJSON() {
    return {
      key: this.key,
      value: this.value,
      createRevision: this.createRevision,
      modRevision: this.modRevision,
      version: this.version,
      lease: this.lease,
    }
  }
}

export function publicKv(kv: StoredKv): ReplicaKv {
  return new PublicKv(kv)
}

function getResult(a: {
  kvs: StoredKv[]
  revision: number
  stale: boolean
  lastContact: number | undefined
}): GetResult {
  const kv = a.kvs[0] ? new PublicKv(a.kvs[0]) : undefined
  return { value: kv?.value, kv, revision: a.revision, stale: a.stale, lastContact: a.lastContact }
}

/** A local, revision-stamped copy of one or more key ranges. */
export class Replica {
  /** @internal */
  constructor(
    /** @internal */ readonly engine: ReplicaEngine,
    private readonly defaults: { consistency: Consistency },
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  /** One key: `{ value, revision, stale }`, value the UTF-8 text (undefined when absent). */
  get(key: Bytes, opts?: ReadOptions): Promise<GetResult> {
    const consistency = opts?.consistency ?? this.defaults.consistency
    if (consistency === 'local') {
      // The hot path: answered synchronously from memory (a resolved promise, no async chain).
      try {
        return Promise.resolve(getResult(this.engine.readLocal({ key: toBin(key), end: '' })))
      } catch (err) {
        return Promise.reject(err)
      }
    }
    return this.engine.read({ key: toBin(key), end: '' }, consistency).then(getResult)
  }

  /** One key's value as bytes. */
  async getBytes(key: Bytes, opts: ReadOptions = {}): Promise<GetBytesResult> {
    const a = await this.engine.read({ key: toBin(key), end: '' }, opts.consistency ?? this.defaults.consistency)
    const kv = a.kvs[0] ? publicKv(a.kvs[0]) : undefined
    return { value: kv?.valueBytes, kv, revision: a.revision, stale: a.stale, lastContact: a.lastContact }
  }

  /** A range with etcd's RangeRequest semantics on the local copy: `{prefix}`, `{key, rangeEnd}`, `{key, fromKey}`. */
  async range(span: KeySpan, opts: RangeReadOptions = {}): Promise<RangeResult> {
    const { key, end } = spanOf(span)
    const { consistency, ...q } = opts
    const a = await this.engine.read({ key, end, ...q }, consistency ?? this.defaults.consistency)
    return {
      kvs: a.kvs.map(publicKv),
      count: a.count,
      more: a.more,
      revision: a.revision,
      stale: a.stale,
      lastContact: a.lastContact,
    }
  }

  /** Calls `fn` with each change to keys in `span` of the local copy; returns the function that stops it. */
  watch(span: KeySpan, fn: (change: ReplicaChange) => void): () => void {
    const { key, end } = spanOf(span)
    return this.engine.subscribe(key, end, (b) =>
      fn({
        revision: b.revision,
        cause: b.cause,
        events: b.changes.map((c) => ({ type: c.type, kv: publicKv(c.kv) })),
      }),
    )
  }

  /** The replica's state now. */
  get status(): ReplicaStatus {
    return this.engine.status()
  }

  /** Calls `fn` on every status change (syncing, live, offline, resyncing, error...). */
  onStatus(fn: (s: ReplicaStatus) => void): () => void {
    return this.engine.onStatus(fn)
  }

  /** Calls `fn` after each page of a copy or re-copy. */
  onProgress(fn: (s: RangeStatus) => void): () => void {
    return this.engine.onProgress(fn)
  }

  /** Stops syncing and closes the storage (the stored copy stays for the next open). */
  async close(): Promise<void> {
    await this.engine.close()
    await this.onClose()
  }
}

/** The followed ranges of the options, as binary strings. */
export function rangesOf(opts: { prefix?: Bytes; ranges?: KeySpan[] }): { key: string; end: string }[] {
  const spans: KeySpan[] = [...(opts.ranges ?? [])]
  if (opts.prefix !== undefined) spans.push({ prefix: opts.prefix })
  if (spans.length === 0) throw new ReplicaError('ERR_NOT_FOLLOWED', 'replica: give a prefix or ranges to follow')
  return spans.map(followedSpan)
}

/** The client a replica syncs through, from its options. */
export function clientOf(opts: ReplicaOptions): Client {
  if (opts.client) return opts.client
  const endpoints = opts.endpoints ?? (opts.endpoint ? [opts.endpoint] : [])
  if (endpoints.length === 0) throw new ReplicaError('ERR_NOT_FOLLOWED', 'replica: give an endpoint')
  return new Client({
    endpoints,
    token: opts.token,
    username: opts.username,
    password: opts.password,
    WebSocket: opts.WebSocket,
    fetch: opts.fetch,
    dialTimeoutMs: 3000,
    commandTimeoutMs: 5000,
    backoffMinMs: 50,
    backoffMaxMs: 2000,
  })
}

/**
 * Opens a replica and resolves once it can answer: every range copied (or loaded from storage) and either live or,
 * with the cluster unreachable, offline with its stored copy.
 */
export async function openReplica(opts: ReplicaOptions): Promise<Replica> {
  const ranges = rangesOf(opts)
  const client = opts.source ? undefined : clientOf(opts)
  const source = opts.source ?? new ClientSource(client!, opts.coalesceMs)
  const engine = new ReplicaEngine({
    storage: opts.storage ?? new MemoryReplicaStorage(),
    ranges,
    source,
    pageSize: opts.pageSize,
    maxPageSize: opts.maxPageSize,
    estimate: opts.estimate,
    readTimeoutMs: opts.readTimeoutMs,
    backoffMs: opts.backoffMs,
  })
  const replica = new Replica(engine, { consistency: opts.consistency ?? 'linearizable' }, async () => {
    if (client && !opts.client) client.close()
  })
  try {
    await engine.start()
    await engine.ready(opts.openTimeoutMs ?? 30_000)
  } catch (err) {
    await replica.close().catch(() => {})
    throw err
  }
  return replica
}
