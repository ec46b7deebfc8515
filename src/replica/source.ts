/**
 * What the sync engine needs from a cluster: paginated ranges (optionally pinned to a revision), a watch per range
 * that resumes by itself after disconnects, and a progress request. ClientSource implements it over edgecd's client
 * (the JSON gateway and the client's one shared WebSocket watch stream); tests implement it with a scripted server.
 */
import { fromBase64 } from '../client/bytes.js'
import type { Client } from '../client/client.js'
import { EtcdClientError, GrpcCode } from '../client/errors.js'
import type { Raw } from '../client/types.js'
import type { StreamWatch } from '../client/watch-stream.js'
import type { StoredKv } from './local-index.js'

export interface SourceRange {
  /** First key and range end as binary strings ('\0' end: every key from key up). */
  key: string
  end: string
  /** Read at this revision (pinned copy pages); undefined: now, linearizable. */
  revision?: number | undefined
  limit?: number | undefined
  countOnly?: boolean | undefined
  /** Answer from the member's applied state (no ReadIndex round): enough for a page at a revision already known. */
  serializable?: boolean | undefined
}

export interface SourcePage {
  /** The revision the answer reflects (the header's). */
  revision: number
  kvs: StoredKv[]
  more: boolean
  count: number
}

export interface SourceEvent {
  type: 'PUT' | 'DELETE'
  kv: StoredKv
}

/** How a source call or watch failed. */
export type SourceErrorKind = 'compacted' | 'denied' | 'unavailable' | 'canceled' | 'other'

export class SourceError extends Error {
  override readonly name = 'SourceError'
  constructor(
    readonly kind: SourceErrorKind,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts)
  }
}

/** Callbacks of one range watch. The source resumes the watch after disconnects from the revision after the last one delivered. */
export interface WatchSink {
  /** The watch was (re)created; the header revision of the answer. */
  created(revision: number): void
  /** Events of one watch response, in revision order. */
  events(events: SourceEvent[], headerRevision: number): void
  /** Every event up to `revision` has been delivered. */
  progress(revision: number): void
  /** The connection is down; the source keeps trying to resume. */
  disconnected(): void
  /** The watch ended for good (compacted, permission denied, canceled). */
  failed(err: SourceError): void
}

export interface SourceWatch {
  cancel(): void
}

export interface ReplicaSource {
  range(r: SourceRange): Promise<SourcePage>
  watch(key: string, end: string, startRevision: number, sink: WatchSink): SourceWatch
  /** Asks for progress on the watch connection: resolves with a revision every live watch has been brought up to. */
  progress(): Promise<number>
  close(): void
}

const encoder = new TextEncoder()

/** Binary string (one char per byte) of standard base64. */
export const binFromBase64 = (s: string | undefined): string => (s ? atob(s) : '')
/** Standard base64 of a binary string. */
export const base64FromBin = (s: string): string => btoa(s)

export function decodeStoredKv(k: Raw): StoredKv {
  return {
    key: binFromBase64(k.key),
    value: fromBase64(k.value),
    createRevision: Number(k.create_revision ?? 0),
    modRevision: Number(k.mod_revision ?? 0),
    version: Number(k.version ?? 0),
    lease: k.lease === undefined ? '0' : String(k.lease),
  }
}

/**
 * A watch event's kv whose value stays the member's base64 text until it is first read (`value` decodes it once):
 * a replica applies every change of its range but reads few of them, and the value's Uint8Array (an off-heap buffer
 * the garbage collector tracks) cost more than the rest of applying a change. The base64 text is in a private field,
 * so a spread (`{ ...kv, value }`) copies only StoredKv's fields. Not a plain object: `value` is an accessor on the
 * prototype, which a structured clone (IndexedDB, BroadcastChannel) or JSON would not see, so the engine hands a
 * storage lazy kvs only when it keeps the objects as given (ReplicaStorage.keepsObjects) and `plainKv` copies them
 * otherwise.
 */
export class LazyKv implements StoredKv {
  #value: string | Uint8Array
  constructor(
    readonly key: string,
    value: string,
    readonly createRevision: number,
    readonly modRevision: number,
    readonly version: number,
    readonly lease: string,
  ) {
    this.#value = value
  }

  get value(): Uint8Array {
    const v = this.#value
    if (typeof v !== 'string') return v
    const bytes = fromBase64(v)
    this.#value = bytes
    return bytes
  }
}

/** A watch event's kv, its value decoded on first read (see LazyKv). */
export function lazyStoredKv(k: Raw): StoredKv {
  return new LazyKv(
    binFromBase64(k.key),
    typeof k.value === 'string' ? k.value : '',
    Number(k.create_revision ?? 0),
    Number(k.mod_revision ?? 0),
    Number(k.version ?? 0),
    k.lease === undefined ? '0' : String(k.lease),
  )
}

/** A plain object of the kv (a LazyKv's value decoded), for storages and channels that clone or serialize it. */
export function plainKv(kv: StoredKv): StoredKv {
  if (!(kv instanceof LazyKv)) return kv
  return {
    key: kv.key,
    value: kv.value,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  }
}

/**
 * The kvs of a range answer, their values decoded into one buffer (views into it): one allocation per page instead
 * of one per key, which keeps a large copy light on the garbage collector.
 */
export function decodeStoredKvs(raw: Raw[]): StoredKv[] {
  if (setFromBase64) return decodeNative(raw)
  const bins: string[] = new Array(raw.length)
  let total = 0
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!.value as string | undefined
    const b = v ? atob(v) : ''
    bins[i] = b
    total += b.length
  }
  const buf = new Uint8Array(total)
  const out: StoredKv[] = new Array(raw.length)
  let o = 0
  for (let i = 0; i < raw.length; i++) {
    const k = raw[i]!
    const b = bins[i]!
    const start = o
    // ASCII (most values): TextEncoder copies it natively; a byte above 0x7f stops it short, then the loop copies.
    if (encoder.encodeInto(b, buf.subarray(start, start + b.length)).read === b.length) o += b.length
    else for (let j = 0; j < b.length; j++) buf[o++] = b.charCodeAt(j)
    out[i] = storedKv(k, buf.subarray(start, o))
  }
  return out
}

/** One stored key-value of a range answer's kv, with its value already decoded. */
function storedKv(k: Raw, value: Uint8Array): StoredKv {
  return {
    key: binFromBase64(k.key),
    value,
    createRevision: Number(k.create_revision ?? 0),
    modRevision: Number(k.mod_revision ?? 0),
    version: Number(k.version ?? 0),
    lease: k.lease === undefined ? '0' : String(k.lease),
  }
}

/** Uint8Array.prototype.setFromBase64 (native base64 decoding into a buffer: Chromium 140+, Firefox 133+, Safari 18.2+). */
const setFromBase64 = (
  Uint8Array.prototype as unknown as {
    setFromBase64?: (this: Uint8Array, s: string) => { read: number; written: number }
  }
).setFromBase64

/** decodeStoredKvs with the native decoder: each value written straight into the page's buffer. */
function decodeNative(raw: Raw[]): StoredKv[] {
  let capacity = 0
  for (const k of raw) capacity += (((k.value as string | undefined)?.length ?? 0) >> 2) * 3
  const buf = new Uint8Array(capacity)
  const out: StoredKv[] = new Array(raw.length)
  let o = 0
  for (let i = 0; i < raw.length; i++) {
    const k = raw[i]!
    const v = k.value as string | undefined
    const start = o
    if (v) o += setFromBase64!.call(buf.subarray(o), v).written
    out[i] = storedKv(k, buf.subarray(start, o))
  }
  return out
}

/**
 * etcd's refusals for want of a valid token (etcd 3.4.23's cancel reasons for a watch create, and its answers to a
 * range): the caller may not read the range any more than on a permission refusal, so the engine treats them alike
 * (the range stops and its local copy is deleted). A client with a user name and password renews its token on these
 * before they reach the replica.
 */
const authRefusal = /user name is empty|invalid auth token/

/** Classifies a client error for the engine. */
export function classify(err: unknown): SourceError {
  if (err instanceof SourceError) return err
  if (err instanceof EtcdClientError) {
    if (err.code === 'ERR_COMPACTED' || (err.grpcCode === GrpcCode.OutOfRange && /compacted/.test(err.message)))
      return new SourceError('compacted', err.message, { cause: err })
    if (
      err.grpcCode === GrpcCode.PermissionDenied ||
      err.grpcCode === GrpcCode.Unauthenticated ||
      authRefusal.test(err.message)
    )
      return new SourceError('denied', err.message, { cause: err })
    if (err.code === 'ERR_UNAVAILABLE' || err.code === 'ERR_TIMEOUT' || err.grpcCode === GrpcCode.Unavailable)
      return new SourceError('unavailable', err.message, { cause: err })
    return new SourceError('other', err.message, { cause: err })
  }
  return new SourceError('unavailable', String((err as Error)?.message ?? err), { cause: err })
}

/** One range watch on the client's shared stream, resuming from its own next revision. */
class ClientWatch implements StreamWatch {
  private done = false
  constructor(
    private readonly key: string,
    private readonly end: string,
    private next: number,
    private readonly sink: WatchSink,
    private readonly onDone: (w: ClientWatch) => void,
    private readonly coalesceMs: number,
  ) {}

  createRequest(): Record<string, unknown> {
    const c: Record<string, unknown> = {
      key: base64FromBin(this.key),
      range_end: base64FromBin(this.end),
      start_revision: String(this.next),
    }
    if (this.coalesceMs > 0) c.edgecd_coalesce_ms = this.coalesceMs
    return c
  }

  onCreated(r: Raw): void {
    this.sink.created(Number(r.header?.revision ?? 0))
  }

  onResult(r: Raw): void {
    if (this.done) return
    if (r.canceled) {
      const compactRev = Number(r.compact_revision ?? 0)
      const reason = String(r.cancel_reason ?? '')
      const err =
        compactRev > 0
          ? new SourceError('compacted', 'etcdserver: mvcc: required revision has been compacted')
          : /permission denied/.test(reason) || authRefusal.test(reason)
            ? new SourceError('denied', reason)
            : new SourceError('canceled', reason || 'watch canceled by the server')
      this.finish()
      this.sink.failed(err)
      return
    }
    const raw = (r.events ?? []) as Raw[]
    if (raw.length === 0) {
      const rev = Number(r.header?.revision ?? 0)
      if (rev + 1 > this.next) this.next = rev + 1
      this.sink.progress(rev)
      return
    }
    const events: SourceEvent[] = []
    for (const e of raw) {
      const kv = lazyStoredKv(e.kv ?? {})
      if (kv.modRevision < this.next) continue
      events.push({ type: e.type === 'DELETE' || e.type === 1 ? 'DELETE' : 'PUT', kv })
    }
    if (events.length === 0) return
    this.next = events[events.length - 1]!.kv.modRevision + 1
    this.sink.events(events, Number(r.header?.revision ?? 0))
  }

  onProgress(revision: number): void {
    if (this.done) return
    if (revision + 1 > this.next) this.next = revision + 1
    this.sink.progress(revision)
  }

  onDisconnected(): void {
    if (!this.done) this.sink.disconnected()
  }

  onReconnectFailed(): boolean {
    if (this.done) return false
    this.sink.disconnected()
    return true
  }

  onStreamError(e: EtcdClientError): void {
    if (this.done) return
    this.finish()
    this.sink.failed(classify(e))
  }

  finish(): void {
    this.done = true
    this.onDone(this)
  }
}

/**
 * The coalescing window a replica asks the member for by default (`edgecd_coalesce_ms`, an edgecd extension that
 * etcd ignores): under a steady stream of changes its range's events come at most twice a second, several revisions
 * per message, so that a member serving many replicas writes fewer frames and each replica reads fewer (issue 13:
 * a replica's cost is about 30-40 µs per message against 3 µs per change, so 1,000 replicas of a range changing 35
 * times a second cost ~125 µs of CPU per put at 100 ms and ~50 at 500 ms; docs/replica.md "Fan-out"). After a quiet
 * window the next change comes at once; a linearizable read asks for progress, which sends what is held; after the
 * writes stop the last changes come within one window.
 */
export const defaultCoalesceMs = 500

/** The engine's source over an edgecd (or etcd gateway) client. */
export class ClientSource implements ReplicaSource {
  private readonly watches = new Set<ClientWatch>()
  /** `coalesceMs`: the watches' coalescing window (0: none, every apply batch its own message). */
  constructor(
    private readonly client: Client,
    private readonly coalesceMs = defaultCoalesceMs,
  ) {}

  async range(r: SourceRange): Promise<SourcePage> {
    const body: Record<string, unknown> = { key: base64FromBin(r.key), range_end: base64FromBin(r.end) }
    if (r.revision) body.revision = String(r.revision)
    if (r.limit) body.limit = String(r.limit)
    if (r.countOnly) body.count_only = true
    if (r.serializable) body.serializable = true
    let ans: Raw
    try {
      ans = await this.client.transport.call('/v3/kv/range', body, { idempotent: true, what: 'replica range' })
    } catch (err) {
      throw classify(err)
    }
    return {
      revision: Number(ans.header?.revision ?? 0),
      kvs: decodeStoredKvs((ans.kvs ?? []) as Raw[]),
      more: ans.more === true,
      count: Number(ans.count ?? 0),
    }
  }

  watch(key: string, end: string, startRevision: number, sink: WatchSink): SourceWatch {
    const stream = this.client.sharedWatchStream()
    const w = new ClientWatch(
      key,
      end,
      startRevision,
      sink,
      (x) => {
        this.watches.delete(x)
        stream.remove(x)
      },
      this.coalesceMs,
    )
    this.watches.add(w)
    stream.add(w)
    return { cancel: () => w.finish() }
  }

  async progress(): Promise<number> {
    try {
      return await this.client.sharedWatchStream().requestProgress()
    } catch (err) {
      throw classify(err)
    }
  }

  close(): void {
    for (const w of [...this.watches]) w.finish()
  }
}
