/**
 * The replica in a browser: the copy in IndexedDB, and one sync shared by every tab of the origin. Each tab opens
 * the same database and loads the stored copy; one tab leads (it holds the Web Lock `edgecd-replica:<name>`): it
 * syncs with the cluster, stores each change and posts it on the BroadcastChannel `edgecd-replica:<name>`; the other
 * tabs apply what it posts to their in-memory copy. When the leading tab closes, the browser releases its lock and
 * another tab takes it: it reloads the store and resumes the watch from the stored revision (no re-copy).
 *
 * A follower's linearizable read makes its own quorum round trip and asks the leader (over the channel) for a
 * progress request, then waits until the leader's changes bring its copy to that revision.
 */
import {
  type ReplicaOptions as BaseOptions,
  clientOf,
  openReplica as openPlain,
  Replica,
  rangesOf,
} from '../../replica/api.js'
import { rangeId } from '../../replica/keys.js'
import { ReplicaEngine, type ReplicaStatus } from '../../replica/replica.js'
import { ClientSource } from '../../replica/source.js'
import { ReplicaError, type ReplicaErrorCode, type ReplicaStorage, type StorageOp } from '../../replica/storage.js'
import { IndexedDbReplicaStorage, requestPersistentStorage, storageEstimate } from './replica-storage.js'

export interface BrowserReplicaOptions extends BaseOptions {
  /**
   * Names the IndexedDB database, Web Lock and BroadcastChannel (default: derived from the endpoints and ranges, so
   * pages following the same ranges of the same cluster share one copy).
   */
  name?: string
  /** Share one sync between the tabs of the origin (default true where Web Locks and BroadcastChannel exist). */
  shareTabs?: boolean
  /** Ask the browser for persistent storage (navigator.storage.persist; default true). */
  persist?: boolean
}

type WireStatus = Omit<ReplicaStatus, 'error'> & { error?: { code: ReplicaErrorCode; message: string } }
type Message =
  | { type: 'ops'; ops: StorageOp[] }
  | { type: 'progress' }
  | { type: 'status'; status: WireStatus }
  | { type: 'hello' }

/** A browser replica: the Replica API plus what the browser adds. */
export class BrowserReplica extends Replica {
  /** Whether the browser granted persistent storage. */
  persisted = false
  /** The database name. */
  name = ''
  /** The origin's storage usage and quota. */
  estimate(): Promise<{ usage: number; quota: number } | undefined> {
    return storageEstimate()
  }
  /** Whether this tab leads the sync now. */
  get leader(): boolean {
    return this.engine.isLeader
  }
}

function defaultName(opts: BrowserReplicaOptions): string {
  const endpoints = opts.endpoints ?? (opts.endpoint ? [opts.endpoint] : [])
  const ids = rangesOf(opts)
    .map((r) => rangeId(r.key, r.end))
    .sort()
  return `edgecd-replica:${endpoints.join(',')}:${ids.join(',')}`
}

/**
 * Opens a replica in the browser and resolves once it can answer: synced, or loaded from IndexedDB when the cluster
 * is unreachable. `await r.get(key)` answers `{ value, revision, stale }`.
 */
export async function openReplica(opts: BrowserReplicaOptions): Promise<BrowserReplica> {
  const name = opts.name ?? defaultName(opts)
  // Asked in parallel: some browsers take a while (or ask the user) before answering.
  const persisting = opts.persist === false ? Promise.resolve(false) : requestPersistentStorage()
  const storage: ReplicaStorage = opts.storage ?? (await IndexedDbReplicaStorage.open(name))
  const g = globalThis as { navigator?: { locks?: LockManager }; BroadcastChannel?: typeof BroadcastChannel }
  const share = opts.shareTabs !== false && g.navigator?.locks !== undefined && g.BroadcastChannel !== undefined
  if (!share || opts.source) {
    const r = await openPlain({ ...opts, storage, estimate: opts.estimate ?? storageEstimate })
    const b = new BrowserReplica(r.engine, { consistency: opts.consistency ?? 'linearizable' }, () => r.close())
    void persisting.then((p) => {
      b.persisted = p
    })
    b.name = name
    return b
  }

  const ranges = rangesOf(opts)
  const client = clientOf(opts)
  const channel = new BroadcastChannel(name)
  let leaderStatus: ReplicaStatus | undefined
  const engine = new ReplicaEngine({
    storage,
    ranges,
    pageSize: opts.pageSize,
    maxPageSize: opts.maxPageSize,
    estimate: opts.estimate ?? storageEstimate,
    readTimeoutMs: opts.readTimeoutMs,
    backoffMs: opts.backoffMs,
    onCommitted: (ops) => channel.postMessage({ type: 'ops', ops } satisfies Message),
    askProgress: () => channel.postMessage({ type: 'progress' } satisfies Message),
  })
  engine.readSource = new ClientSource(client)
  engine.remoteStatus = () => leaderStatus
  const postStatus = (s: ReplicaStatus) => {
    const error = s.error ? { code: s.error.code, message: s.error.message } : undefined
    try {
      channel.postMessage({ type: 'status', status: { ...s, error } } satisfies Message)
    } catch {}
  }
  channel.onmessage = (ev: MessageEvent<Message>) => {
    const m = ev.data
    if (m.type === 'ops') engine.applyRemote(m.ops)
    else if (m.type === 'hello' && engine.isLeader) postStatus(engine.status())
    else if (m.type === 'progress') void engine.progressForFollowers()
    else if (m.type === 'status' && !engine.isLeader) {
      const e = m.status.error
      leaderStatus = { ...m.status, error: e ? new ReplicaError(e.code, e.message) : undefined }
      engine.statusChanged()
    }
  }
  engine.onStatus((s) => {
    if (engine.isLeader) postStatus(s)
  })

  let release!: () => void
  const held = new Promise<void>((r) => {
    release = r
  })
  let closed = false
  const replica = new BrowserReplica(engine, { consistency: opts.consistency ?? 'linearizable' }, async () => {
    closed = true
    release()
    channel.close()
    client.close()
  })
  void persisting.then((p) => {
    replica.persisted = p
  })
  replica.name = name
  try {
    const locks = g.navigator!.locks!
    // Lead now if no other tab does (loading the store once, as the leader); else follow: load the store, ask the
    // leader for its status, and lead once it goes away (reloading the store it left).
    let promoted: Promise<void> | undefined
    const lead = async (lock: Lock | null, got?: (led: boolean) => void) => {
      if (!lock || closed) return got?.(false)
      promoted = engine.promote(new ClientSource(client, opts.coalesceMs))
      got?.(true)
      await promoted.catch(() => {})
      await held
    }
    const led = await new Promise<boolean>((resolve) => {
      locks.request(name, { ifAvailable: true }, (lock) => lead(lock, resolve)).catch(() => resolve(false))
    })
    if (led) await promoted
    else {
      await engine.start()
      channel.postMessage({ type: 'hello' } satisfies Message)
      void locks.request(name, (lock) => lead(lock)).catch(() => {})
    }
    await engine.ready(opts.openTimeoutMs ?? 30_000)
  } catch (err) {
    await replica.close().catch(() => {})
    throw err
  }
  return replica
}
