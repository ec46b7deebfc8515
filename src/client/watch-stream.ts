/**
 * One WebSocket watch stream per client (`GET /v3/watch`, one JSON text frame per message, as etcd's
 * grpc-websocket-proxy), shared by all its watchers the way etcd's clientv3 multiplexes watchers over one gRPC
 * stream: each create_request carries a client-chosen `watch_id` (etcd 3.4+) and every answer is routed by it.
 *
 * Every create uses a fresh id, never reused on the stream, so a late answer for a cancelled or replaced watch can
 * never be taken for its successor. A refused create is answered with watch_id -1 (etcd's shape); creates are
 * answered in the order they were sent, so it belongs to the oldest create still unanswered.
 *
 * When the socket closes (member restart, network, fail-over) the stream reconnects (next endpoint, bounded
 * exponential backoff) and creates every live watch again from its own next revision (see Watcher), so each resumes
 * without losing or repeating events. The socket is closed when no watch is left and opened again on demand.
 */
import { grpcStatusText } from '../protocol/errors.js'
import { EtcdClientError, GrpcCode } from './errors.js'
import type { Transport } from './transport.js'
import type { Raw } from './types.js'

/**
 * cancel_reasons of a refused create that mean "this token will not do" (etcd 3.5's watch server answers them for
 * ErrInvalidAuthToken and ErrAuthOldRevision, and its clientv3 then renews the token and opens the stream again).
 */
const tokenRefusedReasons = new Set(
  (['ErrInvalidAuthToken', 'ErrAuthOldRevision'] as const).map((c) => grpcStatusText(c)),
)

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

/** What the stream needs from a watch it carries (implemented by Watcher). */
export interface StreamWatch {
  /** The create_request body to send now (resuming from the watch's next revision). */
  createRequest(): Record<string, unknown>
  /** Its create was answered (`created` without `canceled`). */
  onCreated(r: Raw): void
  /** Events, a progress notification, or a cancel, for its current id. */
  onResult(r: Raw): void
  /** The stream will create it again on a new socket (the old one closed). */
  onDisconnected(): void
  /** A reconnect attempt failed; return false to be dropped (the watch has failed itself). */
  onReconnectFailed(): boolean
  /** The stream cannot carry it any more (bad frame from the server). */
  onStreamError(e: EtcdClientError): void
  /**
   * Optional: a progress answer (watch_id -1) to requestProgress() arrived on the socket this watch was created on:
   * every event of this watch up to `revision` has been delivered before it (the member defers the answer until
   * every watch of the stream is synced and drained).
   */
  onProgress?(revision: number): void
}

/**
 * A watch_id as its exact decimal text: the gateway writes int64 as strings (omitted for 0); a number is taken as
 * written when it is a safe integer.
 */
function watchIdText(v: unknown): string {
  if (v === undefined || v === null) return '0'
  if (typeof v === 'bigint') return v.toString()
  const s = String(v).trim()
  return /^-?\d+$/.test(s) ? BigInt(s).toString() : s
}

/** One socket shared by every watch of a client. */
export class WatchStream {
  private ws: WebSocketLike | undefined
  private open = false
  private endpoint: string
  /**
   * The next watch_id to choose. etcd's watch_id is an int64: ids are bigints here and keyed by their decimal text,
   * so an id past 2^53 is carried exactly both ways (a double would take a neighbour's answers).
   */
  private nextId: bigint
  /** Live watches by their current id (decimal text) on this socket. */
  private readonly byId = new Map<string, StreamWatch>()
  /** Ids of creates sent and not answered yet, oldest first (a -1 answer is for the head). */
  private readonly pending: string[] = []
  /** Watches to create once the socket is open. */
  private readonly waiting = new Set<StreamWatch>()
  private failedAttempts = 0
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private connecting = false
  /** The token the open socket was upgraded with (to forget when the member refuses it). */
  private socketToken: string | undefined
  /** How many sockets were opened after the first (for tests and status). */
  reconnects = 0
  /** Callers of requestProgress() waiting for the answer on the open socket, oldest first. */
  private progressWaiters: { resolve: (rev: number) => void; reject: (e: unknown) => void }[] = []

  /** `firstWatchId`: the first id chosen (1 by default, as clientv3 numbers its streams' watches from 0 up). */
  constructor(
    private readonly t: Transport,
    private readonly WS: WebSocketConstructor,
    firstWatchId = 1n,
  ) {
    this.endpoint = t.current()
    this.nextId = firstWatchId
  }

  /** Starts carrying a watch: creates it now if the socket is open, else once it is. */
  add(w: StreamWatch): void {
    if (this.open && this.ws) this.sendCreate(w)
    else {
      this.waiting.add(w)
      this.connect()
    }
  }

  /** Stops carrying a watch: cancels it on the server if it was created; closes the socket if none is left. */
  remove(w: StreamWatch): void {
    this.waiting.delete(w)
    for (const [id, x] of this.byId)
      if (x === w) {
        this.byId.delete(id)
        // Creates and cancels are handled in order on the server, so a create still unanswered is cancelled too.
        if (this.open) this.send({ cancel_request: { watch_id: id } })
      }
    if (this.byId.size === 0 && this.waiting.size === 0) this.closeSocket()
  }

  /**
   * etcd's progress_request on the open socket: resolves with the revision of the answer, once every watch created
   * on the socket has been told of every event up to it (see StreamWatch.onProgress). Rejects when the socket is not
   * open or closes before the answer.
   */
  requestProgress(): Promise<number> {
    if (!this.open || !this.ws)
      return Promise.reject(
        new EtcdClientError('ERR_UNAVAILABLE', GrpcCode.Unavailable, 'watch: the stream is not open'),
      )
    return new Promise<number>((resolve, reject) => {
      this.progressWaiters.push({ resolve, reject })
      this.send({ progress_request: {} })
    })
  }

  /** Whether the socket is open now. */
  get isOpen(): boolean {
    return this.open
  }

  private failProgress(): void {
    const ws = this.progressWaiters
    this.progressWaiters = []
    for (const w of ws)
      w.reject(new EtcdClientError('ERR_UNAVAILABLE', GrpcCode.Unavailable, 'watch: the stream closed before progress'))
  }

  private send(msg: unknown): void {
    try {
      this.ws?.send(JSON.stringify(msg))
    } catch {
      // The socket is closing: onclose re-creates every watch.
    }
  }

  private sendCreate(w: StreamWatch): void {
    const id = String(this.nextId++)
    this.byId.set(id, w)
    this.pending.push(id)
    this.send({ create_request: { ...w.createRequest(), watch_id: id } })
  }

  private connect(): void {
    if (this.ws || this.connecting || this.retryTimer !== undefined) return
    this.connecting = true
    // A browser cannot set Authorization on a WebSocket: a token goes as the subprotocol `bearer.<jwt>`, offered
    // after `edgecd`, which the member answers with (docs/auth.md).
    this.t.authToken().then(
      (token) => {
        this.connecting = false
        this.openSocket(token, token ? ['edgecd', `bearer.${token}`] : undefined)
      },
      () => {
        this.connecting = false
        this.retry()
      },
    )
  }

  private openSocket(token: string | undefined, protocols: string[] | undefined): void {
    if (this.waiting.size === 0 && this.byId.size === 0) return
    this.socketToken = token
    this.endpoint = this.t.current()
    const url = `${this.endpoint.replace(/^http/, 'ws')}/v3/watch`
    let ws: WebSocketLike
    try {
      ws = new this.WS(url, protocols)
    } catch (err) {
      this.streamError(
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
    const openTimer = setTimeout(() => {
      if (!this.open) ws.close()
    }, this.t.dialTimeoutMs)
    ws.onopen = () => {
      if (this.ws !== ws) return
      clearTimeout(openTimer)
      this.open = true
      const all = [...this.waiting]
      this.waiting.clear()
      for (const w of all) this.sendCreate(w)
    }
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      let msg: Raw
      try {
        msg = JSON.parse(String(ev.data)) as Raw
      } catch {
        return this.streamError(
          new EtcdClientError('ERR_BAD_RESPONSE', GrpcCode.Internal, 'watch: a frame is not JSON'),
        )
      }
      if (msg.error)
        return this.streamError(
          new EtcdClientError(
            'ERR_SERVER',
            Number(msg.error.grpc_code ?? GrpcCode.Unknown),
            String(msg.error.message),
            { endpoint: this.endpoint },
          ),
        )
      this.dispatch((msg.result ?? {}) as Raw)
    }
    ws.onerror = () => {}
    ws.onclose = () => {
      clearTimeout(openTimer)
      if (this.ws !== ws) return
      const wasOpen = this.open
      this.ws = undefined
      this.open = false
      this.pending.length = 0
      this.failProgress()
      // Every live watch goes back to waiting, to be created again (from its own next revision) on a new socket.
      for (const w of this.byId.values()) {
        w.onDisconnected()
        this.waiting.add(w)
      }
      this.byId.clear()
      if (this.waiting.size === 0) return
      // Refused at the upgrade with a token from credentials: it may have expired, so authenticate again.
      if (!wasOpen && this.t.hasCredentials) this.t.invalidateToken(token)
      this.retry()
    }
  }

  private dispatch(r: Raw): void {
    // The member writes ids as decimal strings: a live watch's events find it without parsing the id.
    const wid = r.watch_id
    if (typeof wid === 'string' && !r.created && !r.canceled) {
      const w = this.byId.get(wid)
      if (w !== undefined) {
        w.onResult(r)
        return
      }
    }
    const id = watchIdText(r.watch_id)
    if (id === '-1' && !r.created) {
      // A progress answer: for every watch created on this socket (not those whose create is still unanswered).
      const rev = Number(r.header?.revision ?? 0)
      for (const [wid, w] of this.byId) if (!this.pending.includes(wid)) w.onProgress?.(rev)
      this.progressWaiters.shift()?.resolve(rev)
      return
    }
    if (r.created) {
      // Answers to creates come in the order the creates were sent; -1 is a refusal of the oldest one.
      const key = id === '-1' ? this.pending[0] : id
      const at = key === undefined ? -1 : this.pending.indexOf(key)
      if (at < 0) return
      this.pending.splice(at, 1)
      const w = this.byId.get(key!)
      if (w === undefined) return
      if (r.canceled && this.t.hasCredentials && tokenRefusedReasons.has(String(r.cancel_reason ?? ''))) {
        // The member took the socket's token at the upgrade but refused it for this create (it is older than the
        // auth store, or no longer valid): as etcd's clientv3 (shouldRetryWatch), get a new token and open the
        // stream again; every watch on it resumes from its own next revision. Bounded by the watches' attempts.
        this.t.invalidateToken(this.socketToken)
        this.ws?.close()
        return
      }
      if (!r.canceled) this.failedAttempts = 0
      if (r.canceled) {
        this.byId.delete(key!)
        w.onResult(r)
      } else w.onCreated(r)
      return
    }
    const w = this.byId.get(id)
    if (w === undefined) return
    if (r.canceled) this.byId.delete(id)
    w.onResult(r)
  }

  private retry(): void {
    this.failedAttempts++
    for (const w of [...this.waiting]) if (!w.onReconnectFailed()) this.waiting.delete(w)
    if (this.waiting.size === 0) return
    this.t.rotate(this.endpoint)
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined
        this.reconnects++
        this.connect()
      },
      this.t.backoffMs(this.failedAttempts - 1),
    )
  }

  private streamError(e: EtcdClientError): void {
    const all = [...this.byId.values(), ...this.waiting]
    this.byId.clear()
    this.waiting.clear()
    this.closeSocket()
    for (const w of all) w.onStreamError(e)
  }

  private closeSocket(): void {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    const ws = this.ws
    this.ws = undefined
    this.open = false
    this.pending.length = 0
    this.failProgress()
    ws?.close()
  }

  /** Closes the socket and forgets every watch (Client.close). */
  close(): void {
    this.byId.clear()
    this.waiting.clear()
    this.closeSocket()
  }
}
