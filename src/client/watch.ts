/**
 * Watches over the client's shared WebSocket watch stream (watch-stream.ts). A Watcher is an async iterator of
 * WatchResponses. After a disconnect the stream reconnects (next endpoint, bounded backoff) and creates the watch
 * again from the revision after the last one this watcher delivered, so no event is lost or repeated; if that
 * revision was compacted meanwhile, iteration fails with etcd's compacted error (ERR_COMPACTED, grpcCode 11).
 *
 * Flow control: a browser WebSocket cannot apply backpressure, so when more than `maxQueuedResponses` answers wait
 * unread the watcher cancels its watch on the server (the shared socket stays open for the others) and, once the
 * reader catches up, creates it again from its next revision: memory stays bounded and nothing is lost.
 */
import { type Bytes, toBase64 } from './bytes.js'
import { compactedMessage, EtcdClientError, GrpcCode } from './errors.js'
import { rangeEndOf } from './requests.js'
import { decodeEvent, decodeHeader, type Raw, type WatchResponse } from './types.js'
import type { StreamWatch, WatchStream } from './watch-stream.js'

export type { WebSocketConstructor, WebSocketLike } from './watch-stream.js'

/** What to watch: one key, or a range. */
export type WatchTarget =
  | Bytes
  | { key: Bytes; prefix?: boolean; rangeEnd?: Bytes; fromKey?: boolean }
  | { prefix: Bytes }

/** Options of a watch. */
export interface WatchOptions {
  /** First revision to deliver (default: the revision after the watch is created). */
  startRevision?: number
  /** Include the previous key-value in each event. */
  prevKv?: boolean
  /** Leave out these event types. */
  filters?: ('NOPUT' | 'NODELETE')[]
  /** Ask the server for periodic progress notifications (event-less responses). */
  progressNotify?: boolean
  /**
   * edgecd extension (etcd ignores it): ask the member to send this watch's events at most once per this many ms,
   * several revisions in one response (`edgecd_coalesce_ms`, at most 1,000). Default: none, etcd's behaviour.
   */
  coalesceMs?: number
  /** Answers kept waiting for the reader before the socket is paused (default 1,000). */
  maxQueuedResponses?: number
  /** Consecutive failed reconnects before the watch gives up with ERR_UNAVAILABLE (default 100). */
  reconnectAttemptsMax?: number
}

/** A running watch. Iterate it (`for await (const r of watcher)`), or `events()` for single events. */
export class Watcher implements AsyncIterable<WatchResponse>, StreamWatch {
  /** The next revision this watcher will deliver (undefined until the first create is answered). */
  nextRevision: number | undefined
  /** Resolves once the server first confirmed the watch (rejects if it could not be created). */
  readonly ready: Promise<void>
  /** How many times the watch was created again after its socket closed. */
  reconnects = 0

  private readonly queue: WatchResponse[] = []
  private waiter: (() => void) | undefined
  private failure: EtcdClientError | undefined
  private closed = false
  private paused = false
  private failedAttempts = 0
  private disconnected = false
  private readyResolve!: () => void
  private readyReject!: (e: unknown) => void
  private isReady = false
  private readonly key: string
  private readonly rangeEnd: string | undefined

  constructor(
    private readonly stream: WatchStream,
    target: WatchTarget,
    private readonly opts: WatchOptions = {},
  ) {
    let key: Bytes
    let end: Uint8Array | undefined
    if (typeof target === 'string' || target instanceof Uint8Array) key = target
    else if ('key' in target) {
      key = target.key
      end = rangeEndOf(key, target)
    } else {
      key = target.prefix
      end = rangeEndOf(key, { prefix: true })
    }
    this.key = toBase64(typeof key === 'string' && key === '' && end ? new Uint8Array([0]) : key)
    this.rangeEnd = end === undefined ? undefined : toBase64(end)
    this.nextRevision = opts.startRevision && opts.startRevision > 0 ? opts.startRevision : undefined
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyResolve = resolve
      this.readyReject = reject
    })
    this.ready.catch(() => {})
    stream.add(this)
  }

  /** @internal The create_request, from the next revision to deliver. */
  createRequest(): Record<string, unknown> {
    const c: Record<string, unknown> = { key: this.key }
    if (this.rangeEnd !== undefined) c.range_end = this.rangeEnd
    if (this.nextRevision !== undefined) c.start_revision = String(this.nextRevision)
    if (this.opts.prevKv) c.prev_kv = true
    if (this.opts.filters?.length) c.filters = this.opts.filters
    if (this.opts.progressNotify) c.progress_notify = true
    if (this.opts.coalesceMs) c.edgecd_coalesce_ms = this.opts.coalesceMs
    return c
  }

  /** @internal */
  onCreated(r: Raw): void {
    this.failedAttempts = 0
    if (this.disconnected) {
      this.disconnected = false
      this.reconnects++
    }
    if (this.nextRevision === undefined) this.nextRevision = decodeHeader(r.header).revision + 1
    if (!this.isReady) {
      this.isReady = true
      this.readyResolve()
    }
  }

  /** @internal */
  onDisconnected(): void {
    this.disconnected = true
  }

  /** @internal */
  onReconnectFailed(): boolean {
    this.failedAttempts++
    if (this.failedAttempts <= (this.opts.reconnectAttemptsMax ?? 100)) return true
    this.fail(
      new EtcdClientError(
        'ERR_UNAVAILABLE',
        GrpcCode.Unavailable,
        `watch: no endpoint reachable after ${this.failedAttempts - 1} attempts`,
      ),
    )
    return false
  }

  /** @internal */
  onStreamError(e: EtcdClientError): void {
    this.fail(e)
  }

  /** @internal Events, progress notifications and cancels for this watch. */
  onResult(r: Raw): void {
    const header = decodeHeader(r.header)
    if (r.canceled) {
      if (r.compact_revision !== undefined && Number(r.compact_revision) > 0) {
        this.fail(
          new EtcdClientError('ERR_COMPACTED', GrpcCode.OutOfRange, compactedMessage, {
            compactRevision: Number(r.compact_revision),
          }),
        )
        return
      }
      this.fail(
        new EtcdClientError(
          'ERR_WATCH_CANCELED',
          GrpcCode.Canceled,
          String(r.cancel_reason ?? 'watch canceled by the server'),
        ),
      )
      return
    }
    if (this.paused) return
    const raw = (r.events ?? []) as Raw[]
    if (raw.length === 0) {
      // A progress notification: nothing below header.revision is left to deliver (the server sends it caught up).
      if (this.nextRevision !== undefined && header.revision + 1 > this.nextRevision)
        this.nextRevision = header.revision + 1
      this.push({ header, events: [] })
      return
    }
    const from = this.nextRevision ?? 0
    // Never repeat: a resumed watch starts at nextRevision, but drop anything older defensively.
    const events = raw.map(decodeEvent).filter((e) => e.kv.modRevision >= from)
    if (events.length === 0) return
    this.nextRevision = events[events.length - 1]!.kv.modRevision + 1
    this.push({ header, events })
  }

  private push(r: WatchResponse): void {
    this.queue.push(r)
    if (this.queue.length >= (this.opts.maxQueuedResponses ?? 1000) && !this.paused) {
      // Pause: cancel on the server; resume from nextRevision when the reader has caught up.
      this.paused = true
      this.stream.remove(this)
    }
    this.wake()
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  private fail(e: EtcdClientError): void {
    if (this.failure || this.closed) return
    this.failure = e
    if (!this.isReady) this.readyReject(e)
    this.stream.remove(this)
    this.wake()
  }

  /** The next response; undefined once the watcher is closed. Throws the watch's terminal error. */
  async next(): Promise<WatchResponse | undefined> {
    for (;;) {
      if (this.queue.length > 0) return this.queue.shift()
      if (this.failure) throw this.failure
      if (this.closed) return undefined
      if (this.paused) {
        this.paused = false
        this.stream.add(this)
      }
      await new Promise<void>((r) => (this.waiter = r))
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchResponse> {
    try {
      for (;;) {
        const r = await this.next()
        if (r === undefined) return
        yield r
      }
    } finally {
      this.cancel()
    }
  }

  /** The events one by one (progress notifications are skipped). */
  async *events() {
    for await (const r of this) for (const e of r.events) yield e
  }

  /** Stops the watch (cancel_request on the shared socket); iteration ends after the responses already queued. */
  cancel(): void {
    if (this.closed) return
    this.closed = true
    this.stream.remove(this)
    if (!this.isReady) this.readyReject(new EtcdClientError('ERR_CLOSED', GrpcCode.Canceled, 'watch canceled'))
    this.wake()
  }
}
