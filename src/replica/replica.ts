/**
 * The replica's sync engine and local copy. For each followed range:
 *
 *   copy    a consistent copy in bounded pages, every page read at one pinned revision R (the first page's header),
 *           each page stored with the cursor after it, so a restart resumes at the next page; the complete copy is
 *           swapped in at once (in memory and in storage), so no reader ever sees a half-copied range;
 *   follow  a watch from R+1 on the client's shared watch stream; every response is applied to the in-memory tree and
 *           stored, so a restart resumes from the stored revision. Events at or below the applied revision are
 *           dropped (repeated deliveries), callbacks of a replaced watch are ignored (late deliveries);
 *   resync  when the watch (or a pinned page) answers that the revision was compacted, a new copy is made beside the
 *           current one (which keeps answering reads at its revision) and swapped in;
 *   denied  when the server refuses the range for permission, its local data is deleted and the range stops.
 *
 * Reads answer from the in-memory tree. Linearizable (the default while online): one quorum read of the range's
 * revision (a count-only range), then the answer once the range has applied up to it (a progress request on the
 * watch stream brings it there when nothing in the range changed). Offline: the local copy, marked stale.
 *
 * The engine runs where the sync is led (one tab of an origin, see src/runtime/browser/replica.ts); other tabs run a
 * Replica without a source that applies the leader's committed ops (`applyRemote`).
 */
import { describeRange, rangeId } from './keys.js'
import {
  type KvTree,
  type LocalAnswer,
  type LocalQuery,
  newTree,
  queryTree,
  type StoredKv,
  within,
} from './local-index.js'
import {
  classify,
  plainKv,
  type ReplicaSource,
  type SourceError,
  type SourceEvent,
  type SourceWatch,
} from './source.js'
import { type CopyState, type RangeMeta, ReplicaError, type ReplicaStorage, type StorageOp } from './storage.js'

/** The state of one followed range, and of the replica as a whole (the most urgent of its ranges'). */
export type ReplicaState = 'loading' | 'syncing' | 'resyncing' | 'live' | 'offline' | 'denied' | 'error' | 'closed'

export interface RangeStatus {
  id: string
  /** Readable range, e.g. `prefix "app/"`. */
  range: string
  state: ReplicaState
  /** The revision the local copy of this range reflects (0: no complete copy yet). */
  revision: number
  /** Copy progress while syncing or resyncing. */
  copied?: number
  total?: number
}

export interface ReplicaStatus {
  state: ReplicaState
  /** The lowest revision any followed range reflects. */
  revision: number
  /** The highest cluster revision seen in an answer. */
  clusterRevision: number
  /** clusterRevision - revision: revisions of the whole key space not yet known to be reflected (see docs). */
  lag: number
  /** When the replica last heard from the cluster (ms since the epoch), undefined if never. */
  lastContact: number | undefined
  /** Whether this replica leads the sync (false: a follower tab fed by the leader). */
  leader: boolean
  error?: ReplicaError | undefined
  ranges: RangeStatus[]
}

/** One change to the local copy, delivered to subscribers. */
export interface LocalChange {
  type: 'PUT' | 'DELETE'
  kv: StoredKv
}

export interface ChangeBatch {
  /** The range's revision after the changes. */
  revision: number
  changes: LocalChange[]
  /** Why: live events, or a re-copy swapped in (the difference between the old and the new copy). */
  cause: 'events' | 'resync' | 'removed'
}

/** How a read may be answered. */
export type Consistency = 'linearizable' | 'linearizable-only' | 'local'

export interface EngineOptions {
  storage: ReplicaStorage
  /** The followed ranges as binary strings [key, end). */
  ranges: { key: string; end: string }[]
  /** The cluster; undefined for a follower tab (no sync of its own). */
  source?: ReplicaSource | undefined
  /** Keys of the first copy page (default 1,000). */
  pageSize?: number
  /**
   * Pages grow (doubling) up to this many keys while a page is under ~1 MiB of keys and values (default 8,000; when
   * only `pageSize` is given, pages stay at pageSize).
   */
  maxPageSize?: number
  /** Bound on a linearizable read's round trip before it answers stale (default 3,000 ms). */
  readTimeoutMs?: number
  /** Backoff before retrying after the cluster was unreachable, by attempt (default 100 ms doubling to 5 s). */
  backoffMs?: (attempt: number) => number
  now?: () => number
  /** Called with each batch of ops once stored (the browser leader broadcasts them to the other tabs). */
  onCommitted?: (ops: StorageOp[]) => void
  /** For a follower: asks the leader to request progress (so a linearizable read can complete). */
  askProgress?: () => void
  /** Copy pages stored but not yet committed before the copy waits for storage (default 4). */
  pagesAhead?: number
  /**
   * Compaction of the local store: once a range has more than max(foldAfter, a quarter of its keys) changed keys
   * since its copy or last fold, its current state is written back as whole pages (a `fold` op), so a reload reads
   * pages, not one record per changed key (default 2,000).
   */
  foldAfter?: number
  /**
   * The storage's usage and quota in bytes (the browser: navigator.storage.estimate()). Given, a copy first checks
   * that its estimated size fits, else the replica enters the error state with ERR_QUOTA without copying.
   */
  estimate?: (() => Promise<{ usage: number; quota: number } | undefined>) | undefined
}

interface Followed {
  meta: RangeMeta
  tree: KvTree
  staged: KvTree | undefined
  state: ReplicaState
  watch: SourceWatch | undefined
  /** Identity of the current watch: callbacks of an older one are ignored. */
  watchToken: object | undefined
  waiters: { revision: number; resolve: () => void }[]
  deniedError?: ReplicaError
  /** Keys changed (upper bound of per-key change records in storage) since the copy or the last fold. */
  changes: number
}

type Listener<T> = (v: T) => void

/** Bytes a stored key costs beyond its key and value (revisions, lease, record and index overhead), for checkSpace. */
const recordOverhead = 64

/** The byte size a copy page aims at (keys and values): pages double while under half of it, halve above twice it. */
const pageBytes = 2 * 1024 * 1024

const sleep = (ms: number, cancel?: Promise<void>) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms)
    void cancel?.then(() => {
      clearTimeout(t)
      r()
    })
  })

/** The empty puts or deletes of a one-event op (ops are never changed once made). */
const none: never[] = []

/** What persist() answers once ops are stored synchronously (shared: no promise per live change). */
const stored: Promise<void> = Promise.resolve()

/** A rejected promise that is not an unhandled rejection (callers of live events do not wait; fail() reports). */
function rejected(e: ReplicaError): Promise<void> {
  const p = Promise.reject(e)
  p.catch(() => {})
  return p
}

const byModRevision = (a: LocalChange, b: LocalChange): number => a.kv.modRevision - b.kv.modRevision

/** Whether changes are in revision order already (a message's puts are, unless it has deletes or repeats a key). */
function inRevisionOrder(changes: LocalChange[]): boolean {
  for (let i = 1; i < changes.length; i++) if (changes[i - 1]!.kv.modRevision > changes[i]!.kv.modRevision) return false
  return true
}

/** A message this small finds a key's earlier change by a scan of the keys seen so far instead of a Map. */
const scanKeysUpTo = 16

/**
 * Each key's last state among `events` newer than `applied` (a repeated delivery is dropped): its kv, or the revision
 * of its delete, keys in first-seen order (the order a Map keeps), and the highest revision among them (`applied`
 * when none is newer). Several revisions in one response (a catch-up, or a coalescing window): the last change of a
 * key wins. A small message (the live case: a window's few changes) scans instead of hashing every key into a Map.
 */
export function lastStates(
  events: SourceEvent[],
  applied: number,
): { keys: string[]; states: (StoredKv | number)[]; revision: number } {
  const keys: string[] = []
  const states: (StoredKv | number)[] = []
  let revision = applied
  const m = events.length > scanKeysUpTo ? new Map<string, number>() : undefined
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!
    const kv = e.kv
    if (kv.modRevision <= applied) continue
    const state = e.type === 'DELETE' ? kv.modRevision : kv
    if (kv.modRevision > revision) revision = kv.modRevision
    let at = -1
    if (m !== undefined) at = m.get(kv.key) ?? -1
    else
      for (let j = 0; j < keys.length; j++)
        if (keys[j] === kv.key) {
          at = j
          break
        }
    if (at >= 0) states[at] = state
    else {
      if (m !== undefined) m.set(kv.key, keys.length)
      keys.push(kv.key)
      states.push(state)
    }
  }
  return { keys, states, revision }
}

/** Merges consecutive 'events' ops of one range (each key's last state wins; a delete keeps its own revision). */
export function mergeOps(ops: StorageOp[]): StorageOp[] {
  if (ops.length === 1) return ops
  const out: StorageOp[] = []
  for (const op of ops) {
    const last = out[out.length - 1]
    if (op.kind === 'events' && last?.kind === 'events' && last.range === op.range) {
      // A key's last state: its kv, or the revision of its delete.
      const m = new Map<string, StoredKv | number>()
      for (const o of [last, op]) {
        for (let i = 0; i < o.deletes.length; i++) m.set(o.deletes[i]!, o.deleteRevisions?.[i] ?? o.revision)
        for (const kv of o.puts) m.set(kv.key, kv)
      }
      const puts: StoredKv[] = []
      const deletes: string[] = []
      const deleteRevisions: number[] = []
      for (const [k, v] of m) {
        if (typeof v === 'number') {
          deletes.push(k)
          deleteRevisions.push(v)
        } else puts.push(v)
      }
      out[out.length - 1] = {
        kind: 'events',
        range: op.range,
        revision: Math.max(op.revision, last.revision),
        puts,
        deletes,
        deleteRevisions: deletes.length > 0 ? deleteRevisions : undefined,
        lastContact: op.lastContact ?? last.lastContact,
      }
    } else out.push(op)
  }
  return out
}

export class ReplicaEngine {
  readonly ranges = new Map<string, Followed>()
  private readonly order: string[] = []
  private readonly pageSize: number
  private readonly maxPageSize: number
  private readonly readTimeoutMs: number
  private readonly now: () => number
  private readonly backoff: (attempt: number) => number
  private closed = false
  private fatal: ReplicaError | undefined
  private lastContact: number | undefined
  private clusterRevision = 0
  private queue: StorageOp[] = []
  private flushing: Promise<void> | undefined
  private readonly statusListeners = new Set<Listener<ReplicaStatus>>()
  private readonly progressListeners = new Set<Listener<RangeStatus>>()
  private readonly subscribers = new Set<{ key: string; end: string; fn: Listener<ChangeBatch> }>()
  private lastStatusKey = ''
  private source: ReplicaSource | undefined
  private runs: Promise<void>[] = []
  private readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = []
  private closeSignal!: () => void
  private readonly closing = new Promise<void>((r) => {
    this.closeSignal = r
  })

  constructor(private readonly opts: EngineOptions) {
    this.pageSize = opts.pageSize ?? 1000
    this.maxPageSize = Math.max(this.pageSize, opts.maxPageSize ?? (opts.pageSize ? opts.pageSize : 8000))
    this.readTimeoutMs = opts.readTimeoutMs ?? 3000
    this.now = opts.now ?? Date.now
    this.backoff = opts.backoffMs ?? ((a) => Math.min(5000, 100 * 2 ** Math.min(a, 6)))
    this.source = opts.source
    this.lazyValues = opts.storage.keepsObjects === true && opts.onCommitted === undefined
    for (const r of opts.ranges) {
      const id = rangeId(r.key, r.end)
      if (this.ranges.has(id)) continue
      this.ranges.set(id, {
        meta: { id, key: r.key, end: r.end, gen: 0, revision: 0 },
        tree: newTree(),
        staged: undefined,
        state: 'loading',
        watch: undefined,
        watchToken: undefined,
        waiters: [],
        changes: 0,
      })
      this.order.push(id)
    }
    this.only = this.order.length === 1 ? this.ranges.get(this.order[0]!) : undefined
  }

  /** The followed range when there is exactly one (the reads' fast path). */
  private readonly only: Followed | undefined

  /** Loads the stored copy (dropping stored ranges no longer followed) and, with a source, starts syncing. */
  async start(): Promise<void> {
    if (this.source) await this.loadAndLead(this.source)
    else await this.load()
    this.emitStatus()
  }

  /**
   * Watch callbacks that arrive while the stored copy is still loading, in order (undefined: not loading). With a
   * storage that reads its metas apart (IndexedDB), the watch of every complete range starts from its stored revision
   * at once and the cluster's catch-up overlaps the load; its deliveries are applied after the load, in order.
   */
  private loadGate: (() => void)[] | undefined

  /** Loads the store and starts syncing, the watches of complete ranges already during the load when possible. */
  private async loadAndLead(source: ReplicaSource): Promise<void> {
    const metas = this.opts.storage.loadMetas ? await this.opts.storage.loadMetas().catch(() => undefined) : undefined
    const early = new Set<Followed>()
    if (metas && !this.closed) {
      for (const m of metas) {
        const f = this.ranges.get(m.id)
        if (f && m.gen > 0 && !m.copy && f.state !== 'denied') {
          f.meta = structuredClone(m)
          early.add(f)
        }
      }
    }
    if (early.size > 0) {
      this.loadGate = []
      for (const f of early) this.runs.push(this.run(f, source))
    }
    try {
      await this.load()
    } finally {
      const gate = this.loadGate
      this.loadGate = undefined
      for (const fn of gate ?? []) fn()
    }
    for (const id of this.order) {
      const f = this.ranges.get(id)!
      if (!early.has(f)) this.runs.push(this.run(f, source))
    }
  }

  /**
   * A follower's ops that arrive while it loads the store: the load's snapshot may or may not include them, so they
   * are applied again after it (in order; replaying a contiguous run of changes over a snapshot taken inside it ends
   * in the right state). A copy, swap or drop among them makes the load start over instead.
   */
  private remoteDuringLoad: StorageOp[][] | undefined

  private async load(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      this.remoteDuringLoad = this.source ? undefined : []
      await this.loadOnce()
      const during = this.remoteDuringLoad ?? []
      this.remoteDuringLoad = undefined
      const structural = during.some((ops) => ops.some((op) => op.kind !== 'events'))
      if (!structural || attempt >= 5) {
        for (const ops of during) this.applyLocal(ops)
        return
      }
    }
  }

  private async loadOnce(): Promise<void> {
    const loaded = await this.opts.storage.load()
    const ops: StorageOp[] = []
    const found = new Set<string>()
    for (const l of loaded) {
      const f = this.ranges.get(l.meta.id)
      if (!f) {
        // Stored by an earlier run that followed other ranges.
        if (this.source) ops.push({ kind: 'drop', range: l.meta.id })
        continue
      }
      found.add(l.meta.id)
      const old = f.tree
      f.meta = l.meta
      f.tree = newTree(l.kvs)
      f.changes = l.changes ?? 0
      f.staged = l.meta.copy ? newTree(l.staged) : undefined
      if (!this.source && f.state !== 'denied') f.state = l.meta.gen > 0 ? 'loading' : 'syncing'
      if (l.meta.lastContact !== undefined) this.lastContact = Math.max(this.lastContact ?? 0, l.meta.lastContact)
      if (old.size > 0) this.emitDiff(f, old, 'resync')
      this.wake(f)
    }
    for (const f of this.ranges.values())
      if (!found.has(f.meta.id) && this.source && f.state !== 'denied') ops.push({ kind: 'meta', meta: { ...f.meta } })
    if (ops.length > 0) await this.persist(ops)
  }

  /** Starts leading the sync with `source` (a follower tab that won the lock reloads the store first). */
  async promote(source: ReplicaSource): Promise<void> {
    if (this.source || this.closed) return
    this.source = source
    await this.loadAndLead(source)
    this.emitStatus()
  }

  get isLeader(): boolean {
    return this.source !== undefined
  }

  // ------------------------------------------------------------------ sync

  private async run(f: Followed, source: ReplicaSource): Promise<void> {
    let attempt = 0
    let restartCopy = false
    while (!this.closed && !this.fatal && f.state !== 'denied') {
      try {
        if (f.meta.gen === 0 || f.meta.copy || restartCopy) {
          await this.copy(f, source, restartCopy)
          restartCopy = false
        }
        attempt = 0
        await this.follow(f, source)
        return
      } catch (e) {
        if (this.closed) return
        if (e instanceof ReplicaError) {
          this.fail(e)
          return
        }
        const err = classify(e)
        if (err.kind === 'denied') {
          await this.deny(f, err)
          return
        }
        if (err.kind === 'compacted') {
          restartCopy = true
          continue
        }
        if (f.meta.gen > 0 || err.kind === 'unavailable') this.setState(f, 'offline')
        await sleep(this.backoff(attempt++), this.closing)
      }
    }
  }

  /** Copies the range at one pinned revision into a new generation, page by page, then swaps it in. */
  private async copy(f: Followed, source: ReplicaSource, restart: boolean): Promise<void> {
    const resync = f.meta.gen > 0
    this.setState(f, resync ? 'resyncing' : 'syncing')
    let c: CopyState | undefined = restart ? undefined : f.meta.copy
    if (c && c.revision === 0) c = undefined
    if (!c) {
      c = {
        gen: Math.max(f.meta.gen, f.meta.copy?.gen ?? 0) + 1,
        revision: 0,
        nextKey: f.meta.key,
        copied: 0,
        total: 0,
      }
      this.apply([{ kind: 'copy-start', range: f.meta.id, copy: { ...c } }])
    }
    let inFlight: Promise<void>[] = []
    const ahead = this.opts.pagesAhead ?? 4
    let limit = this.pageSize
    let first = true
    while (c.nextKey !== null) {
      if (this.closed) return
      const page = await source.range({
        key: c.nextKey,
        end: f.meta.end,
        revision: c.revision || undefined,
        limit,
        // After the first page the revision is known to be committed: a member that has applied it answers the
        // same without a ReadIndex round (one that has not answers "future revision", and the page is retried).
        serializable: c.revision > 0,
      })
      this.contact(page.revision)
      const next: CopyState = { ...c }
      if (next.revision === 0) {
        next.revision = page.revision
        next.total = page.count
      }
      next.copied += page.kvs.length
      const last = page.kvs[page.kvs.length - 1]
      next.nextKey = page.more && last ? `${last.key}\0` : null
      c = next
      // Pages grow while they are small in bytes (fewer round trips and transactions: each page costs the member a
      // scan of the rest of the range to count it), up to maxPageSize keys, and shrink when large.
      let bytes = 0
      for (const kv of page.kvs) bytes += kv.key.length + kv.value.length
      if (first) {
        first = false
        await this.checkSpace(f, page.kvs.length, bytes, next.total - (next.copied - page.kvs.length))
      }
      if (bytes < pageBytes / 2 && page.kvs.length >= limit) limit = Math.min(this.maxPageSize, limit * 2)
      else if (bytes > pageBytes * 2) limit = Math.max(1, Math.floor(limit / 2))
      inFlight.push(this.apply([{ kind: 'copy-page', range: f.meta.id, copy: { ...c }, puts: page.kvs }]))
      if (inFlight.length >= ahead) {
        await Promise.all(inFlight)
        inFlight = []
      }
      for (const l of this.progressListeners) l(this.rangeStatus(f))
    }
    await Promise.all(inFlight)
    await this.apply([{ kind: 'swap', range: f.meta.id, gen: c.gen, revision: c.revision, lastContact: this.now() }])
  }

  /**
   * Before a copy stores anything: whether the storage has room for the `remaining` keys, estimated from the first
   * page (`n` keys of `bytes` bytes, plus a per-record overhead). Not enough: the error state ERR_QUOTA, like etcd's
   * NOSPACE alarm, instead of a copy that would fail half-way (a re-copy needs room beside the current copy, which
   * the usage already counts).
   */
  private async checkSpace(f: Followed, n: number, bytes: number, remaining: number): Promise<void> {
    const estimate = this.opts.estimate
    if (!estimate || n === 0) return
    let e: { usage: number; quota: number } | undefined
    try {
      e = await estimate()
    } catch {
      return
    }
    if (!e || !(e.quota > 0)) return
    const need = Math.ceil(remaining * (bytes / n + recordOverhead))
    const free = e.quota - e.usage
    if (need <= free) return
    const mb = (x: number) => (x < 1e6 ? `${Math.round(x / 1e3)} kB` : `${(x / 1e6).toFixed(1)} MB`)
    throw new ReplicaError(
      'ERR_QUOTA',
      `${this.opts.storage.name}: copying ${describeRange(f.meta.key, f.meta.end)} needs about ${mb(need)} (${remaining} keys) but the storage has ${mb(Math.max(0, free))} free of its ${mb(e.quota)} quota; the copy was not started (free space, or follow a smaller range)`,
    )
  }

  private follow(f: Followed, source: ReplicaSource): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const token = {}
      f.watchToken = token
      const current = () => f.watchToken === token && !this.closed
      const stop = (err?: SourceError) => {
        if (f.watchToken === token) {
          f.watchToken = undefined
          f.watch = undefined
        }
        err ? reject(err) : resolve()
      }
      // While the store loads (see loadGate) deliveries wait, in order, and are applied after it.
      const gated =
        <A extends unknown[]>(fn: (...a: A) => void) =>
        (...a: A) => {
          if (this.loadGate) this.loadGate.push(() => fn(...a))
          else fn(...a)
        }
      const events = (events: SourceEvent[], headerRev: number) => {
        if (!current()) return
        const now = this.contact(headerRev)
        if (f.state !== 'live') this.setState(f, 'live')
        this.applyEvents(f, events, now)
      }
      f.watch = source.watch(f.meta.key, f.meta.end, f.meta.revision + 1, {
        created: gated((rev: number) => {
          if (!current()) return
          this.contact(rev)
          this.setState(f, 'live')
        }),
        // The hot path (every live change): no rest arguments unless the store is loading.
        events: (evs: SourceEvent[], headerRev: number) => {
          if (this.loadGate) this.loadGate.push(() => events(evs, headerRev))
          else events(evs, headerRev)
        },
        progress: gated((rev: number) => {
          if (!current()) return
          this.contact(rev)
          if (rev > f.meta.revision)
            void this.apply([
              { kind: 'events', range: f.meta.id, revision: rev, puts: [], deletes: [], lastContact: this.now() },
            ]).catch(() => {})
        }),
        disconnected: gated(() => {
          if (!current()) return
          this.setState(f, 'offline')
        }),
        failed: gated((err: SourceError) => {
          if (!current()) return
          stop(err)
        }),
      })
      if (this.closed) stop()
    })
  }

  /**
   * Whether live changes may keep their value undecoded until read (source.ts's LazyKv): only when the storage keeps
   * the objects as given and no other tab is sent the ops (a structured clone would drop the lazy value).
   */
  private readonly lazyValues: boolean

  private applyEvents(f: Followed, events: SourceEvent[], now: number): void {
    if (!this.lazyValues) events = events.map((e) => ({ type: e.type, kv: plainKv(e.kv) }))
    let puts: StoredKv[]
    let deletes: string[]
    let deleteRevisions: number[] | undefined
    let rev = f.meta.revision
    let changed = 0
    if (events.length === 1) {
      // The common live delivery: one event, no merging, one array.
      const e = events[0]!
      if (e.kv.modRevision <= rev) return
      rev = e.kv.modRevision
      if (e.type === 'DELETE') {
        puts = none
        deletes = [e.kv.key]
        deleteRevisions = [rev]
      } else {
        puts = [e.kv]
        deletes = none
      }
      changed = 1
    } else {
      // A key's last state in the message (its kv, or the revision of its delete), keys in first-seen order.
      const last = lastStates(events, f.meta.revision)
      if (last.revision === f.meta.revision) return
      rev = last.revision
      puts = []
      deletes = []
      const { keys, states } = last
      for (let i = 0; i < keys.length; i++) {
        const v = states[i]!
        if (typeof v === 'number') {
          deletes.push(keys[i]!)
          deleteRevisions ??= []
          deleteRevisions.push(v)
        } else puts.push(v)
      }
      changed = keys.length
    }
    void this.apply([
      { kind: 'events', range: f.meta.id, revision: rev, puts, deletes, deleteRevisions, lastContact: now },
    ])
    f.changes += changed
    this.maybeFold(f)
  }

  /** Queues a fold of `f`'s current generation once enough keys changed since its copy or last fold. */
  private maybeFold(f: Followed): void {
    if (!this.source || f.meta.gen === 0 || f.changes <= Math.max(this.opts.foldAfter ?? 2000, f.tree.size / 4)) return
    f.changes = 0
    // The ops before it (queued in order) produce exactly this tree in storage; the tree's values are immutable.
    void this.persist([{ kind: 'fold', range: f.meta.id, gen: f.meta.gen, kvs: [...f.tree.values()] }]).catch(() => {})
  }

  private async deny(f: Followed, err: SourceError): Promise<void> {
    f.watchToken = undefined
    f.watch?.cancel()
    f.watch = undefined
    f.deniedError = new ReplicaError(
      'ERR_PERMISSION_DENIED',
      `${describeRange(f.meta.key, f.meta.end)}: ${err.message}; its local copy was deleted`,
      { cause: err },
    )
    f.state = 'denied'
    try {
      await this.apply([{ kind: 'drop', range: f.meta.id }])
    } catch {}
    this.emitStatus()
    this.checkReady()
  }

  /** Notes an answer from the cluster at `revision`; returns the time of it. */
  private contact(revision: number): number {
    const now = this.now()
    this.lastContact = now
    if (revision > this.clusterRevision) this.clusterRevision = revision
    return now
  }

  // ------------------------------------------------------------------ applying and storing

  /** Applies ops to memory now, stores them (in order, merged), and resolves once stored. */
  private apply(ops: StorageOp[]): Promise<void> {
    this.applyLocal(ops)
    return this.persist(ops)
  }

  /** A follower tab: ops the leader stored. */
  applyRemote(ops: StorageOp[]): void {
    if (this.source || this.closed) return
    if (this.remoteDuringLoad) this.remoteDuringLoad.push(ops)
    else this.applyLocal(ops)
  }

  private applyLocal(ops: StorageOp[]): void {
    for (const op of ops) {
      if (op.kind === 'meta') {
        const f = this.ranges.get(op.meta.id)
        if (f) f.meta = { ...op.meta }
        continue
      }
      const f = this.ranges.get(op.range)
      if (!f) continue
      if ('lastContact' in op && op.lastContact !== undefined) {
        f.meta.lastContact = op.lastContact
        if (!this.source) this.lastContact = Math.max(this.lastContact ?? 0, op.lastContact)
      }
      switch (op.kind) {
        case 'events': {
          if (op.revision <= f.meta.revision && op.puts.length === 0 && op.deletes.length === 0) break
          // Changes are built only for subscribers (none: the tree alone).
          const changes: LocalChange[] | undefined = this.subscribers.size > 0 ? [] : undefined
          const deletes = op.deletes
          for (let i = 0; i < deletes.length; i++) {
            const k = deletes[i]!
            if (changes === undefined) {
              f.tree.delete(k)
              continue
            }
            const old = f.tree.get(k)
            if (old) {
              f.tree.delete(k)
              // Each delete with its own revision (etcd's DELETE event: kv.mod_revision is the delete's revision).
              const modRevision = op.deleteRevisions?.[i] ?? op.revision
              changes.push({ type: 'DELETE', kv: { ...old, modRevision, value: new Uint8Array(0) } })
            }
          }
          for (const kv of op.puts) {
            f.tree.set(kv.key, kv)
            changes?.push({ type: 'PUT', kv })
          }
          if (op.revision > f.meta.revision) f.meta.revision = op.revision
          if (changes && changes.length > 0) {
            // Several revisions in one op (deletes and puts kept apart, keys in first-seen order): subscribers see
            // them in revision order.
            if (changes.length > 1 && !inRevisionOrder(changes)) changes.sort(byModRevision)
            this.notify(f, { revision: f.meta.revision, changes, cause: 'events' })
          }
          this.wake(f)
          if (!this.source) this.emitStatus()
          break
        }
        case 'copy-start':
          f.staged = newTree()
          f.meta.copy = { ...op.copy }
          break
        case 'copy-page':
          f.staged ??= newTree()
          for (const kv of op.puts) f.staged.set(kv.key, kv)
          f.meta.copy = { ...op.copy }
          break
        case 'swap': {
          const old = f.tree
          f.tree = f.staged ?? newTree()
          f.staged = undefined
          f.meta.gen = op.gen
          f.meta.revision = op.revision
          f.meta.copy = undefined
          f.changes = 0
          if (!this.source && f.state !== 'denied') f.state = 'loading'
          this.emitDiff(f, old, 'resync')
          this.wake(f)
          this.emitStatus()
          break
        }
        case 'drop': {
          const old = f.tree
          f.tree = newTree()
          f.staged = undefined
          f.meta = { ...f.meta, gen: 0, revision: 0, copy: undefined }
          this.emitDiff(f, old, 'removed')
          if (!this.source && f.state !== 'denied') {
            f.state = 'denied'
            f.deniedError = new ReplicaError(
              'ERR_PERMISSION_DENIED',
              `${describeRange(f.meta.key, f.meta.end)}: permission denied; its local copy was deleted`,
            )
            this.emitStatus()
          }
          break
        }
      }
    }
  }

  private persist(ops: StorageOp[]): Promise<void> {
    if (this.fatal) return rejected(this.fatal)
    const commitSync = this.opts.storage.commitSync
    if (commitSync !== undefined && this.flushing === undefined) {
      // A storage that commits synchronously (memory): stored now, in order (nothing is queued before it), without
      // a promise and microtasks per live change.
      try {
        commitSync.call(this.opts.storage, ops)
      } catch (err) {
        const e = this.storageFailure(err)
        this.fail(e)
        return rejected(e)
      }
      this.committed(ops)
      return stored
    }
    for (const op of ops) this.queue.push(op)
    if (this.flushing === undefined) {
      this.flushing = this.flush()
      // Callers that do not wait (live events) must not leave an unhandled rejection: fail() reports the error.
      this.flushing.catch(() => {})
    }
    return this.flushing
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const ops = mergeOps(this.queue.splice(0))
        try {
          await this.opts.storage.commit(ops)
        } catch (err) {
          const e = this.storageFailure(err)
          this.fail(e)
          throw e
        }
        this.committed(ops)
      }
    } finally {
      this.flushing = undefined
    }
  }

  /** Ops are stored: other tabs apply them too (no fold: it changes no state, and it is the largest op there is). */
  private committed(ops: StorageOp[]): void {
    if (!this.opts.onCommitted) return
    const shared = ops.length === 1 ? (ops[0]!.kind === 'fold' ? [] : ops) : ops.filter((op) => op.kind !== 'fold')
    if (shared.length > 0) this.opts.onCommitted(shared)
  }

  /** The replica's error for a failed commit: ERR_QUOTA when the storage is full, else ERR_STORAGE. */
  private storageFailure(err: unknown): ReplicaError {
    const quota =
      (err instanceof ReplicaError && err.code === 'ERR_QUOTA') ||
      /quota/i.test(String((err as Error)?.message)) ||
      (err as Error)?.name === 'QuotaExceededError'
    return new ReplicaError(
      quota ? 'ERR_QUOTA' : 'ERR_STORAGE',
      quota
        ? `${this.opts.storage.name}: the storage quota is exhausted; the replica stopped syncing (nothing stored was lost; free space and open it again)`
        : `${this.opts.storage.name}: storing the replica failed: ${(err as Error)?.message ?? err}; the replica stopped syncing`,
      { cause: err },
    )
  }

  /** Resolves once everything applied so far is stored. */
  async flushed(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {})
    if (this.fatal) throw this.fatal
  }

  /** Enters the error state: sync stops; reads answer from memory, marked stale. */
  private fail(e: ReplicaError): void {
    if (this.fatal) return
    this.fatal = e
    this.queue = []
    for (const f of this.ranges.values()) {
      f.watchToken = undefined
      f.watch?.cancel()
      f.watch = undefined
      if (f.state !== 'denied') f.state = 'error'
    }
    for (const w of this.readyWaiters.splice(0)) w.reject(e)
    this.emitStatus()
  }

  // ------------------------------------------------------------------ reads

  /** The followed range that contains [key, end), or an error. */
  private rangeFor(key: string, end: string): Followed {
    const only = this.only
    if (only && within(key, end, only.meta.key, only.meta.end)) {
      if (only.state === 'denied') throw only.deniedError!
      return only
    }
    for (const id of this.order) {
      const f = this.ranges.get(id)!
      if (within(key, end, f.meta.key, f.meta.end)) {
        if (f.state === 'denied') throw f.deniedError!
        return f
      }
    }
    throw new ReplicaError(
      'ERR_NOT_FOLLOWED',
      `${end === '' ? `key ${describeRange(key, `${key}\0`).replace(/^\[|, .*$/g, '')}` : describeRange(key, end)} is not inside a range this replica follows`,
    )
  }

  /**
   * A range read on the local copy. `linearizable` (default): when online, one quorum round trip and then the answer
   * once the copy reflects it; offline (or not answered within readTimeoutMs) the local copy with stale: true.
   * `linearizable-only`: the same, but an error instead of a stale answer. `local`: the copy now, no round trip.
   */
  async read(
    q: LocalQuery,
    consistency: Consistency = 'linearizable',
  ): Promise<LocalAnswer & { revision: number; stale: boolean; lastContact: number | undefined }> {
    if (consistency === 'local') return this.readLocal(q)
    if (this.closed) throw new ReplicaError('ERR_CLOSED', 'replica: closed')
    const f = this.rangeFor(q.key, q.end)
    let stale = true
    try {
      await this.catchUp(f)
      stale = false
    } catch (err) {
      if (err instanceof ReplicaError && err.code === 'ERR_PERMISSION_DENIED') throw err
      if (consistency === 'linearizable-only') throw err
    }
    return this.answer(f, q, stale)
  }

  /**
   * A `local` read, synchronously: the copy now, no round trip (always stale). The hot path of local reads: no
   * promise, no spread of the answer.
   */
  readLocal(q: LocalQuery): LocalAnswer & { revision: number; stale: boolean; lastContact: number | undefined } {
    if (this.closed) throw new ReplicaError('ERR_CLOSED', 'replica: closed')
    const f = this.rangeFor(q.key, q.end)
    return this.answer(f, q, true)
  }

  /** The answer to q from f's local copy, or why there is none (no copy yet, or the range was denied). */
  private answer(f: Followed, q: LocalQuery, stale: boolean) {
    if (f.meta.gen === 0) {
      if (f.state === 'denied') throw f.deniedError!
      throw new ReplicaError('ERR_NOT_READY', `${describeRange(f.meta.key, f.meta.end)}: no local copy yet`)
    }
    const ans = queryTree(f.tree, q)
    return {
      kvs: ans.kvs,
      count: ans.count,
      more: ans.more,
      revision: f.meta.revision,
      stale,
      lastContact: f.meta.lastContact ?? this.lastContact,
    }
  }

  /** Waits until `f` reflects the cluster's current revision (one quorum read, then progress if needed). */
  private async catchUp(f: Followed): Promise<void> {
    if (this.fatal) throw this.fatal
    const source = this.source ?? this.readSource
    if (!source) throw new ReplicaError('ERR_OFFLINE', 'replica: no connection to the cluster')
    const leaderState = this.source ? undefined : this.remoteStatus?.()?.state
    if (leaderState === 'offline' || leaderState === 'error')
      throw new ReplicaError(
        'ERR_OFFLINE',
        `replica: the leading tab is ${leaderState}; a linearizable read is not possible now`,
      )
    if (this.source && f.state !== 'live')
      throw new ReplicaError(
        'ERR_OFFLINE',
        `replica: ${describeRange(f.meta.key, f.meta.end)} is ${f.state}, not live; a linearizable read is not possible now`,
      )
    const deadline = this.now() + this.readTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () =>
          rej(
            new ReplicaError(
              'ERR_OFFLINE',
              `replica: the cluster did not confirm the current revision within ${this.readTimeoutMs} ms`,
            ),
          ),
        this.readTimeoutMs,
      )
    })
    timeout.catch(() => {})
    try {
      let rc: number
      try {
        const page = await Promise.race([source.range({ key: f.meta.key, end: f.meta.end, countOnly: true }), timeout])
        rc = page.revision
        this.contact(rc)
      } catch (err) {
        if (err instanceof ReplicaError) throw err
        const e = classify(err)
        if (e.kind === 'denied' && this.source) {
          await this.deny(f, e)
          throw f.deniedError!
        }
        // A follower tab: the leader (whose own requests are refused too) deletes the range and tells every tab.
        if (e.kind === 'denied')
          throw new ReplicaError('ERR_PERMISSION_DENIED', `${describeRange(f.meta.key, f.meta.end)}: ${e.message}`, {
            cause: err,
          })
        throw new ReplicaError('ERR_OFFLINE', `replica: the cluster is unreachable: ${e.message}`, { cause: err })
      }
      while (f.meta.revision < rc) {
        if (this.fatal) throw this.fatal
        if (f.state === 'denied') throw f.deniedError!
        const reached = this.waitRevision(f, rc)
        if (this.source) {
          await Promise.race([
            reached,
            timeout,
            this.source.progress().then(
              () => {},
              () => sleep(Math.min(50, Math.max(0, deadline - this.now()))),
            ),
          ])
        } else {
          this.opts.askProgress?.()
          await Promise.race([reached, timeout, sleep(100)])
        }
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /** A follower's source for quorum reads (no watches). */
  readSource: ReplicaSource | undefined
  /** A follower's view of the leader's status (its state, contact and cluster revision). */
  remoteStatus: (() => ReplicaStatus | undefined) | undefined

  /** A follower: the leader's status changed. */
  statusChanged(): void {
    this.emitStatus()
  }

  private waitRevision(f: Followed, revision: number): Promise<void> {
    if (f.meta.revision >= revision) return Promise.resolve()
    return new Promise((resolve) => f.waiters.push({ revision, resolve }))
  }

  private wake(f: Followed): void {
    if (f.waiters.length === 0) return
    const keep: Followed['waiters'] = []
    for (const w of f.waiters) f.meta.revision >= w.revision ? w.resolve() : keep.push(w)
    f.waiters = keep
    this.checkReady()
  }

  /** Leader side of a follower's askProgress: one progress request (its result reaches followers as ops). */
  async progressForFollowers(): Promise<void> {
    await this.source?.progress().catch(() => {})
  }

  // ------------------------------------------------------------------ readiness, status, subscriptions

  /**
   * Resolves once every range can answer: a complete copy, and either live or offline (loaded from storage while
   * the cluster is unreachable). Rejects on a permission refusal or storage error, or after `timeoutMs` without.
   */
  ready(timeoutMs: number): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal)
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const w = this.readyWaiters.indexOf(entry)
        if (w >= 0) this.readyWaiters.splice(w, 1)
        const missing = [...this.ranges.values()].filter((f) => f.meta.gen === 0)
        reject(
          new ReplicaError(
            'ERR_OFFLINE',
            `replica: no local copy of ${missing.map((f) => describeRange(f.meta.key, f.meta.end)).join(', ') || 'every range'} and the cluster did not answer within ${timeoutMs} ms`,
          ),
        )
      }, timeoutMs)
      const entry = {
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
        reject: (e: unknown) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.readyWaiters.push(entry)
      this.checkReady()
    })
  }

  private checkReady(): void {
    if (this.readyWaiters.length === 0) return
    for (const f of this.ranges.values()) {
      if (f.state === 'denied') {
        for (const w of this.readyWaiters.splice(0)) w.reject(f.deniedError)
        return
      }
    }
    const ok = [...this.ranges.values()].every(
      (f) => f.meta.gen > 0 && (f.state === 'live' || f.state === 'offline' || (!this.source && f.state !== 'loading')),
    )
    const followerOk = !this.source && [...this.ranges.values()].every((f) => f.meta.gen > 0)
    if (ok || followerOk) for (const w of this.readyWaiters.splice(0)) w.resolve()
  }

  private setState(f: Followed, s: ReplicaState): void {
    if (f.state === s || f.state === 'denied' || f.state === 'error') return
    f.state = s
    this.emitStatus()
    this.checkReady()
  }

  private rangeStatus(f: Followed): RangeStatus {
    const s: RangeStatus = {
      id: f.meta.id,
      range: describeRange(f.meta.key, f.meta.end),
      state: f.state,
      revision: f.meta.revision,
    }
    if (f.meta.copy) {
      s.copied = f.meta.copy.copied
      s.total = f.meta.copy.total
    }
    return s
  }

  status(): ReplicaStatus {
    const ranges = this.order.map((id) => this.rangeStatus(this.ranges.get(id)!))
    const rank: ReplicaState[] = ['closed', 'error', 'offline', 'loading', 'resyncing', 'syncing', 'live', 'denied']
    let state: ReplicaState = this.closed ? 'closed' : this.fatal ? 'error' : 'live'
    if (!this.closed && !this.fatal)
      for (const r of ranges) if (rank.indexOf(r.state) < rank.indexOf(state)) state = r.state
    const live = ranges.filter((r) => r.state !== 'denied')
    const revision = live.length ? Math.min(...live.map((r) => r.revision)) : 0
    const remote = this.source ? undefined : this.remoteStatus?.()
    if (remote && !this.closed && !this.fatal) {
      const cluster = Math.max(remote.clusterRevision, revision)
      return {
        state: remote.state === 'live' && revision < remote.revision ? 'syncing' : remote.state,
        revision,
        clusterRevision: cluster,
        lag: cluster - revision,
        lastContact: remote.lastContact,
        leader: false,
        error: remote.error,
        ranges,
      }
    }
    const cluster = Math.max(this.clusterRevision, revision)
    return {
      state,
      revision,
      clusterRevision: cluster,
      lag: cluster - revision,
      lastContact: this.lastContact,
      leader: this.source !== undefined,
      error: this.fatal ?? ranges.map((r) => this.ranges.get(r.id)!.deniedError).find((e) => e !== undefined),
      ranges,
    }
  }

  private emitStatus(): void {
    if (this.statusListeners.size === 0) return
    const s = this.status()
    const key = `${s.state}|${s.revision}|${s.ranges.map((r) => r.state).join(',')}`
    if (key === this.lastStatusKey) return
    this.lastStatusKey = key
    for (const l of this.statusListeners) l(s)
  }

  onStatus(fn: Listener<ReplicaStatus>): () => void {
    this.statusListeners.add(fn)
    return () => this.statusListeners.delete(fn)
  }

  onProgress(fn: Listener<RangeStatus>): () => void {
    this.progressListeners.add(fn)
    return () => this.progressListeners.delete(fn)
  }

  /** Calls fn with every change to keys in [key, end) of the local copy. */
  subscribe(key: string, end: string, fn: Listener<ChangeBatch>): () => void {
    this.rangeFor(key, end)
    const s = { key, end, fn }
    this.subscribers.add(s)
    return () => this.subscribers.delete(s)
  }

  private notify(f: Followed, batch: ChangeBatch): void {
    for (const s of this.subscribers) {
      if (!within(s.key, s.end, f.meta.key, f.meta.end)) continue
      // A subscription to the whole followed range (the usual one) sees the batch as it is.
      if (s.key === f.meta.key && s.end === f.meta.end) {
        s.fn(batch)
        continue
      }
      const changes = batch.changes.filter((c) =>
        s.end === '' ? c.kv.key === s.key : c.kv.key >= s.key && (s.end === '\0' || c.kv.key < s.end),
      )
      if (changes.length) s.fn({ ...batch, changes })
    }
  }

  /** Tells subscribers what differs between the old and the current tree (after a swap, reload or drop). */
  private emitDiff(f: Followed, old: KvTree, cause: ChangeBatch['cause']): void {
    if (this.subscribers.size === 0) return
    const changes: LocalChange[] = []
    const a = old.entries()
    const b = f.tree.entries()
    let x = a.next()
    let y = b.next()
    while (!x.done || !y.done) {
      if (y.done || (!x.done && x.value[0] < y.value[0])) {
        changes.push({ type: 'DELETE', kv: { ...x.value[1], value: new Uint8Array(0), modRevision: f.meta.revision } })
        x = a.next()
      } else if (x.done || y.value[0] < x.value[0]) {
        changes.push({ type: 'PUT', kv: y.value[1] })
        y = b.next()
      } else {
        if (x.value[1].modRevision !== y.value[1].modRevision) changes.push({ type: 'PUT', kv: y.value[1] })
        x = a.next()
        y = b.next()
      }
    }
    if (changes.length) this.notify(f, { revision: f.meta.revision, changes, cause })
  }

  /** Every key of a range's copy in order, with the revision it reflects (tests compare it with the server). */
  snapshot(id?: string): { revision: number; kvs: StoredKv[] } {
    const f = id ? this.ranges.get(id) : this.ranges.get(this.order[0]!)
    if (!f) throw new ReplicaError('ERR_NOT_FOLLOWED', `replica: no range ${id}`)
    return { revision: f.meta.revision, kvs: [...f.tree.values()] }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.closeSignal()
    for (const f of this.ranges.values()) {
      f.watchToken = undefined
      f.watch?.cancel()
      f.watch = undefined
      for (const w of f.waiters) w.resolve()
      f.waiters = []
    }
    for (const w of this.readyWaiters.splice(0)) w.reject(new ReplicaError('ERR_CLOSED', 'replica: closed'))
    this.source?.close()
    await this.flushed().catch(() => {})
    await this.opts.storage.close()
    this.emitStatus()
  }
}
