/**
 * Watches over the WebSocket watch (`GET /v3/watch`, one JSON text frame per message, as etcd's
 * grpc-websocket-proxy). A Watcher is an async iterator of WatchResponses. After a disconnect it reconnects (to the
 * next endpoint, with bounded backoff) and resumes from the revision after the last one it delivered, so no event
 * is lost or repeated; if that revision was compacted meanwhile, iteration fails with etcd's compacted error
 * (ERR_COMPACTED, grpcCode 11).
 *
 * Flow control: a browser WebSocket cannot apply backpressure, so when more than `maxQueuedResponses` answers wait
 * unread the watcher closes its socket and, once the reader catches up, resumes from the next revision: memory stays
 * bounded and nothing is lost.
 */
import { type Bytes, toBase64 } from './bytes.js'
import { compactedMessage, EtcdClientError, GrpcCode } from './errors.js'
import { rangeEndOf } from './requests.js'
import type { Transport } from './transport.js'
import { decodeEvent, decodeHeader, type Raw, type WatchResponse } from './types.js'

/** The part of the WHATWG WebSocket the client uses (browsers, Deno, Workers, and the `ws` package on Node). */
export interface WebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: any) => void) | null
  onmessage: ((ev: { data: any }) => void) | null
  onclose: ((ev: any) => void) | null
  onerror: ((ev: any) => void) | null
}

/** A WebSocket constructor: globalThis.WebSocket, or `ws`'s on Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike

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
  /** Answers kept waiting for the reader before the socket is paused (default 1,000). */
  maxQueuedResponses?: number
  /** Consecutive failed reconnects before the watch gives up with ERR_UNAVAILABLE (default 100). */
  reconnectAttemptsMax?: number
}

/** A running watch. Iterate it (`for await (const r of watcher)`), or `events()` for single events. */
export class Watcher implements AsyncIterable<WatchResponse> {
  /** The next revision this watcher will deliver (undefined until the first create is answered). */
  nextRevision: number | undefined
  /** Resolves once the server first confirmed the watch (rejects if it could not be created). */
  readonly ready: Promise<void>
  /** How many times the watcher reconnected. */
  reconnects = 0

  private ws: WebSocketLike | undefined
  private readonly queue: WatchResponse[] = []
  private waiter: (() => void) | undefined
  private failure: EtcdClientError | undefined
  private closed = false
  private paused = false
  private failedAttempts = 0
  private endpoint: string
  private readyResolve!: () => void
  private readyReject!: (e: unknown) => void
  private isReady = false
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private readonly key: string
  private readonly rangeEnd: string | undefined

  constructor(
    private readonly t: Transport,
    private readonly WS: WebSocketConstructor,
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
    this.endpoint = t.current()
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyResolve = resolve
      this.readyReject = reject
    })
    this.ready.catch(() => {})
    this.connect()
  }

  private createRequest(): string {
    const c: Record<string, unknown> = { key: this.key }
    if (this.rangeEnd !== undefined) c.range_end = this.rangeEnd
    if (this.nextRevision !== undefined) c.start_revision = String(this.nextRevision)
    if (this.opts.prevKv) c.prev_kv = true
    if (this.opts.filters?.length) c.filters = this.opts.filters
    if (this.opts.progressNotify) c.progress_notify = true
    return JSON.stringify({ create_request: c })
  }

  private connect(): void {
    if (this.closed || this.failure) return
    // A browser cannot set Authorization on a WebSocket: a token goes as the subprotocol `bearer.<jwt>`, offered
    // after `edgecd`, which the member answers with (docs/auth.md).
    this.t.authToken().then(
      (token) => this.open(token ? ['edgecd', `bearer.${token}`] : undefined),
      () => this.retry(),
    )
  }

  private open(protocols: string[] | undefined): void {
    if (this.closed || this.failure) return
    this.endpoint = this.t.current()
    const url = `${this.endpoint.replace(/^http/, 'ws')}/v3/watch`
    let ws: WebSocketLike
    try {
      ws = new this.WS(url, protocols)
    } catch (err) {
      this.fail(
        new EtcdClientError(
          'ERR_UNAVAILABLE',
          GrpcCode.Unavailable,
          `watch: cannot open ${url}: ${(err as Error).message}`,
          { cause: err },
        ),
      )
      return
    }
    this.ws = ws
    let opened = false
    const openTimer = setTimeout(() => {
      if (!opened) ws.close()
    }, this.t.dialTimeoutMs)
    ws.onopen = () => {
      opened = true
      clearTimeout(openTimer)
      ws.send(this.createRequest())
    }
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      let msg: Raw
      try {
        msg = JSON.parse(String(ev.data)) as Raw
      } catch {
        return this.fail(new EtcdClientError('ERR_BAD_RESPONSE', GrpcCode.Internal, 'watch: a frame is not JSON'))
      }
      if (msg.error)
        return this.fail(
          new EtcdClientError(
            'ERR_SERVER',
            Number(msg.error.grpc_code ?? GrpcCode.Unknown),
            String(msg.error.message),
            { endpoint: this.endpoint },
          ),
        )
      this.onResult((msg.result ?? {}) as Raw)
    }
    ws.onerror = () => {}
    ws.onclose = () => {
      clearTimeout(openTimer)
      if (this.ws !== ws) return
      this.ws = undefined
      if (this.closed || this.failure || this.paused) return
      this.retry()
    }
  }

  private retry(): void {
    this.failedAttempts++
    if (this.failedAttempts > (this.opts.reconnectAttemptsMax ?? 100)) {
      this.fail(
        new EtcdClientError(
          'ERR_UNAVAILABLE',
          GrpcCode.Unavailable,
          `watch: no endpoint reachable after ${this.failedAttempts - 1} attempts`,
        ),
      )
      return
    }
    this.t.rotate(this.endpoint)
    this.retryTimer = setTimeout(
      () => {
        this.reconnects++
        this.connect()
      },
      this.t.backoffMs(this.failedAttempts - 1),
    )
  }

  private onResult(r: Raw): void {
    const header = decodeHeader(r.header)
    if (r.canceled) {
      if (r.compact_revision !== undefined) {
        this.fail(
          new EtcdClientError('ERR_COMPACTED', GrpcCode.OutOfRange, compactedMessage, {
            compactRevision: Number(r.compact_revision),
            endpoint: this.endpoint,
          }),
        )
        return
      }
      this.fail(
        new EtcdClientError(
          'ERR_WATCH_CANCELED',
          GrpcCode.Canceled,
          String(r.cancel_reason ?? 'watch canceled by the server'),
          { endpoint: this.endpoint },
        ),
      )
      return
    }
    if (r.created) {
      this.failedAttempts = 0
      if (this.nextRevision === undefined) this.nextRevision = header.revision + 1
      if (!this.isReady) {
        this.isReady = true
        this.readyResolve()
      }
      return
    }
    const raw = (r.events ?? []) as Raw[]
    if (raw.length === 0) {
      // A progress notification: nothing below header.revision is left to deliver (the server sends it caught up).
      if (this.nextRevision !== undefined && header.revision + 1 > this.nextRevision)
        this.nextRevision = header.revision + 1
      this.push({ header, events: [] })
      return
    }
    const from = this.nextRevision ?? 0
    // Never repeat: a resumed stream starts at nextRevision, but drop anything older defensively.
    const events = raw.map(decodeEvent).filter((e) => e.kv.modRevision >= from)
    if (events.length === 0) return
    this.nextRevision = events[events.length - 1]!.kv.modRevision + 1
    this.push({ header, events })
  }

  private push(r: WatchResponse): void {
    this.queue.push(r)
    if (this.queue.length >= (this.opts.maxQueuedResponses ?? 1000) && this.ws) {
      // Pause: drop the socket, resume from nextRevision when the reader has caught up.
      this.paused = true
      const ws = this.ws
      this.ws = undefined
      ws.close()
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
    const ws = this.ws
    this.ws = undefined
    ws?.close()
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
        this.connect()
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

  /** Stops the watch and closes its socket; iteration ends after the responses already queued. */
  cancel(): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.retryTimer)
    const ws = this.ws
    this.ws = undefined
    ws?.close()
    if (!this.isReady) this.readyReject(new EtcdClientError('ERR_CLOSED', GrpcCode.Canceled, 'watch canceled'))
    this.wake()
  }
}
