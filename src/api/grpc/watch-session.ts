/**
 * etcd's gRPC Watch stream served on raw bytes (etcd's api/v3rpc/watch.go: recvLoop and sendLoop), for a runtime that
 * hands over the HTTP/2 stream itself (src/runtime/node/grpc.ts): gRPC messages are read from the request body as
 * they arrive and decoded straight into the member's WatchRequest (./codec.ts); the member's WatchResponses are
 * encoded straight into gRPC messages (./watch-proto.ts), and every message produced in one turn (one apply batch:
 * one event to many watchers) goes out as ONE write. ConnectRPC's adapter wrote each message on its own and passed
 * each through async iterables, which cost more than the member's own work per event (docs/benchmarks.md, "Watch
 * fan-out").
 *
 * Flow control is the member's (src/kv/watch.ts): while the transport has not yet written the previous turn's chunk
 * (its `written` callback not called), past `sendBufferBytesMax` bytes not yet taken by the network, or past
 * `sendLagBytesMax` still untaken when a turn ends, the hub holds the stream's events back (queued, each watcher's
 * merged into one message; past the queue limits etcd's victim/unsynced watchers, caught up from history) and the
 * stream is resumed, in one write, when the transport has written everything and drained. A message of 64 KiB or
 * more ends its turn's write the same way (grpc-go's per-stream write quota). A stream whose last write is done sends
 * the next apply batch at once. Web-standard only.
 */

import type { AuthInfo } from '../../auth/store.js'
import type { MemberApi, WatchStream } from '../../etcdserver/api.js'
import { EtcdError, GrpcCode } from '../../protocol/errors.js'
import type { WatchId, WatchRequest, WatchResponse } from '../../protocol/types.js'
import { decodeMessage } from './codec.js'
import * as pb from './gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { appendWatchResponse, GrpcFrames } from './watch-proto.js'

/** What the runtime knows about a Watch call when it opens. */
export interface RawWatchMeta {
  /** The `token` metadata (auth), if any. */
  token: string | undefined
  /** clientv3's WithRequireLeader (`hasleader: true` metadata). */
  hasLeader: boolean
  /** The CN of the verified client certificate (--client-cert-auth). */
  certUser: string | undefined
  /**
   * gRPC's receive limit (etcd: --max-request-bytes plus 512 KiB): a larger request message ends the call. etcd's
   * watch server splits the events of a watcher created with `fragment: true` past the same figure.
   */
  recvBytesMax: number
}

/** The runtime's side of one Watch call (an HTTP/2 stream). */
export interface RawWatchTransport {
  /**
   * Writes one chunk of enveloped gRPC messages (the response headers go first, once); `written`, when given, is
   * called once the transport no longer holds the chunk (its buffer is then reused; the call's events held back
   * meanwhile go out then). It must be called for every chunk unless the call is closed (`closed()`); it may be
   * called from inside `write`.
   */
  write(chunk: Uint8Array, written?: (chunk: Uint8Array) => void): void
  /** Bytes written and not yet taken by the network (HTTP/2 flow control included). */
  readonly bufferedBytes: number
  /** Ends the call with a gRPC status in the trailers (a trailers-only answer when nothing was written). */
  end(code: number, message: string): void
}

/** The call's events, which the runtime reports. */
export interface RawWatchCall {
  /** Bytes of the request body as they arrive. */
  data(chunk: Uint8Array): void
  /** The transport took what was buffered (after `bufferedBytes` had passed the limit). */
  drained(): void
  /** The client went away (reset, connection closed): every watcher of the call is cancelled. */
  closed(): void
}

/** Opens a Watch call: see GrpcWatchSession. */
export type RawWatch = (meta: RawWatchMeta, transport: RawWatchTransport) => RawWatchCall

/** What a session needs from the gRPC services (./services.ts), shared with the other front doors. */
export interface WatchSessionDeps {
  member: MemberApi
  /** WithRequireLeader: true when asked (throws ErrNoLeader while the member knows none). */
  requiresLeader(hasLeader: boolean): boolean
  /** Registers a WithRequireLeader stream's cancel with the periodic leader check; returns its removal. */
  monitorLeader(cancel: () => void): () => void
  authorize(
    token: string | undefined,
    certUser: string | undefined,
  ): AuthInfo | undefined | Promise<AuthInfo | undefined>
  maxWatchStreams: number
  /** The count of open watch streams, shared with the HTTP front door. */
  watchStreams: { n: number }
  metrics?: {
    start(method: string): { received(bytes: number): void; sent(bytes: number): void; end(code: number): void }
  }
  /**
   * Bytes a call may have written and not yet sent before its sink answers "congested" (the hub then holds events
   * back). Default 4 MiB: one put to 10,000 watchers of one stream is ~1 MB.
   */
  sendBufferBytesMax?: number
  /**
   * Bytes of earlier turns the transport may still hold when a turn ends before the call counts as lagging: the sink
   * answers "congested" to the next turn's messages until the transport drains, and the hub merges each watcher's
   * events of the turns in between into one message (etcd's victim batches). Default 64 KiB, HTTP/2's initial
   * window; at most sendBufferBytesMax, at least the transport's high-water mark (Node: 16 KiB), so that a lagging
   * call is reported drained.
   */
  sendLagBytesMax?: number
  /**
   * Whether the next turns' events wait, merged per watcher, while the transport has not yet written the previous
   * chunk (default true): a client that reads slower than the member applies gets one message per watcher per write
   * instead of one per apply batch (etcd 3.4's victims; issue 17, docs/benchmarks.md session 8). False: only the
   * byte thresholds above hold a call back (session 7).
   */
  holdWhileWriting?: boolean
}

const defaultSendBufferBytesMax = 4 * 1024 * 1024
const defaultSendLagBytesMax = 64 * 1024
/** grpc-go's per-stream write quota (defaultWriteQuota): Send blocks while this much of a stream is not yet written. */
const writeQuotaBytes = 64 * 1024

/** One Watch call. */
export class GrpcWatchSession implements RawWatchCall {
  private readonly call: ReturnType<NonNullable<WatchSessionDeps['metrics']>['start']> | undefined
  private readonly frames = new GrpcFrames()
  private readonly sendMax: number
  private readonly lagMax: number
  private readonly holdWhileWriting: boolean
  /** Chunks given to the transport whose `written` has not come yet. */
  private writing = 0
  /** Holding while writing, for a member stream without `hold`: the sink answers "congested" instead. */
  private holdBySend = false
  /** The member's stream once the call is authorized; requests before that wait in `early`. */
  private stream: WatchStream | undefined
  private early: WatchRequest[] | undefined = []
  private input: Uint8Array = new Uint8Array(0)
  private ended = false
  private counted = false
  private flushQueued = false
  /** The sink answered "congested": resume the member's stream when the transport has room again. */
  private held = false
  /** The transport's buffer is over the limit: wait for `drained`. */
  private congested = false
  private unmonitor: (() => void) | undefined
  /** Watch ids created with `fragment: true` (etcd's sws.fragment). */
  private readonly fragmented = new Set<WatchId>()
  /** A create_request with `fragment: true` is being handled: its `created` answer names the id. */
  private creatingFragmented = false

  constructor(
    private readonly deps: WatchSessionDeps,
    private readonly meta: RawWatchMeta,
    private readonly transport: RawWatchTransport,
  ) {
    this.sendMax = deps.sendBufferBytesMax ?? defaultSendBufferBytesMax
    this.lagMax = Math.min(deps.sendLagBytesMax ?? defaultSendLagBytesMax, this.sendMax)
    this.holdWhileWriting = deps.holdWhileWriting ?? true
    this.call = deps.metrics?.start('Watch')
    let requireLeader: boolean
    let info: AuthInfo | undefined | Promise<AuthInfo | undefined>
    try {
      // clientv3's WithRequireLeader (etcdctl watch sends it): no stream while the member knows no leader, and the
      // stream is cancelled with `no leader` when a later check finds none (etcd's monitorLeader).
      requireLeader = deps.requiresLeader(meta.hasLeader)
      info = deps.authorize(meta.token, meta.certUser)
    } catch (err) {
      this.fail(err)
      return
    }
    if (info instanceof Promise)
      info.then(
        (i) => this.open(i, requireLeader),
        (err) => this.fail(err),
      )
    else this.open(info, requireLeader)
  }

  private open(info: AuthInfo | undefined, requireLeader: boolean): void {
    if (this.ended) return
    const deps = this.deps
    if (deps.watchStreams.n >= deps.maxWatchStreams) {
      this.fail(new EtcdError('ErrTooManyWatchStreams'))
      return
    }
    deps.watchStreams.n++
    this.counted = true
    this.stream = deps.member.openWatchStream((resp) => this.send(resp), info, { busy: true })
    if (requireLeader) this.unmonitor = deps.monitorLeader(() => this.fail(new EtcdError('ErrNoLeader')))
    const early = this.early!
    this.early = undefined
    for (const req of early) {
      if (this.ended) return
      this.request(req)
    }
  }

  // ---------------------------------------------------------------- requests (etcd's recvLoop)

  data(chunk: Uint8Array): void {
    if (this.ended) return
    let b: Uint8Array
    if (this.input.length === 0) b = chunk
    else {
      b = new Uint8Array(this.input.length + chunk.length)
      b.set(this.input)
      b.set(chunk, this.input.length)
    }
    let at = 0
    while (b.length - at >= 5 && !this.ended) {
      const len = ((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0
      // grpc-go refuses a message as soon as its declared length is over the limit.
      if (len > this.meta.recvBytesMax) {
        this.fail(
          new StatusError(
            GrpcCode.ResourceExhausted,
            `grpc: received message larger than max (${len} vs. ${this.meta.recvBytesMax})`,
          ),
        )
        return
      }
      if (b.length - at < 5 + len) break
      const flags = b[at]!
      const body = b.subarray(at + 5, at + 5 + len)
      at += 5 + len
      // The runtime takes only identity-encoded calls (others go to the ConnectRPC path): grpc-go's check.
      if ((flags & 1) !== 0) {
        this.fail(new StatusError(GrpcCode.Internal, 'grpc: compressed flag set with identity or empty encoding'))
        return
      }
      let req: WatchRequest
      try {
        req = decodeMessage<WatchRequest>(pb.WatchRequestSchema, body)
      } catch (err) {
        const m = (err as Error).message.replace(/^premature EOF$/, 'unexpected EOF')
        this.fail(new StatusError(GrpcCode.Internal, `grpc: failed to unmarshal the received message ${m}`))
        return
      }
      this.call?.received(5 + len)
      if (this.early !== undefined) this.early.push(req)
      else this.request(req)
    }
    // What is left is the start of a message: copied, as the runtime may reuse its chunk.
    this.input = at === b.length ? new Uint8Array(0) : b.slice(at)
  }

  private request(req: WatchRequest): void {
    const fragment = req.create_request?.fragment === true
    if (fragment) this.creatingFragmented = true
    try {
      this.stream!.request(req)
    } finally {
      this.creatingFragmented = false
    }
  }

  // ---------------------------------------------------------------- responses (etcd's sendLoop)

  /**
   * The member's sink: the message is encoded into this turn's chunk; false while the transport is congested (or,
   * for a member stream without `hold`, still writing an earlier chunk).
   */
  private send(resp: WatchResponse): boolean {
    if (this.ended) return true
    if (resp.canceled) this.fragmented.delete(resp.watch_id)
    else if (resp.created && this.creatingFragmented) this.fragmented.add(resp.watch_id)
    const before = this.frames.count
    const fragmentMax =
      this.fragmented.size > 0 && this.fragmented.has(resp.watch_id) ? this.meta.recvBytesMax : undefined
    const bytes = appendWatchResponse(this.frames, resp, fragmentMax)
    if (this.call) {
      this.call.sent(bytes)
      for (let i = before + 1; i < this.frames.count; i++) this.call.sent(0)
    }
    if (!this.flushQueued) {
      this.flushQueued = true
      queueMicrotask(() => this.flush())
    }
    // A message of grpc-go's per-stream write quota (64 KiB) or more is taken, and the call then answers "congested"
    // until it is written: etcd's sendLoop blocks in Send on such a message until HTTP/2 flow control has let most
    // of it out, and only then reads the next message's prev_kv (a range at mod_revision - 1, which fails once a
    // compaction passed it: diff seed 9108, session 11). Small messages (a fan-out's) still fill one write up to sendMax.
    const ok =
      !this.congested &&
      !this.holdBySend &&
      bytes < writeQuotaBytes &&
      this.frames.size + this.transport.bufferedBytes < this.sendMax
    if (!ok) this.held = true
    return ok
  }

  /** The transport wrote a chunk: its buffer is reused; once it holds none, the events held back meanwhile go out. */
  private readonly written = (chunk: Uint8Array): void => {
    this.frames.release(chunk)
    this.writing--
    // Everything given was written: nothing of this call waits in the transport (Node's 'drain' comes only past
    // its high-water mark).
    if (this.writing === 0 && this.transport.bufferedBytes < this.lagMax) {
      this.congested = false
      this.resumeIfHeld()
    }
  }

  /**
   * Writes the turn's messages as one chunk. One turn may write up to sendMax (a put to 10,000 watchers is ~1 MB).
   * Until the transport has written it, the next turns' events wait in the hub, merged per watcher (hold), and go
   * out together once it has, in one write: a client that reads as fast as the member applies finds each write done
   * before the next apply batch and gets every batch at once; one that reads slower gets fewer, larger messages, as
   * many as it takes (etcd 3.4's stream falls behind the same way when its 128-message send buffer fills, and then
   * sends a victim everything it missed in one message). When the network has not taken lagMax of it by the end of
   * the turn, the call also waits for 'drain'.
   */
  private flush(): void {
    this.flushQueued = false
    if (this.ended || this.frames.size === 0) return
    this.writing++
    this.transport.write(this.frames.take(), this.written)
    if (this.ended) return
    if (this.transport.bufferedBytes >= this.lagMax) {
      this.congested = true
      // Backed up: the member's busy window may grow (WatchStream.backedUp).
      this.stream?.backedUp?.()
    }
    // (`written` may have come from inside write: then nothing is held for it.)
    if (this.writing > 0 && this.holdWhileWriting) {
      if (!this.held) {
        this.held = true
        if (this.stream?.hold) this.stream.hold()
        else this.holdBySend = true
      }
    } else this.resumeIfHeld()
  }

  drained(): void {
    if (this.ended) return
    this.congested = false
    this.resumeIfHeld()
  }

  private resumeIfHeld(): void {
    if (!this.held || this.congested || this.ended) return
    if (this.writing > 0 && this.holdWhileWriting) return
    this.held = false
    this.holdBySend = false
    this.stream?.resume()
  }

  // ---------------------------------------------------------------- the end

  /** The call fails with err's gRPC status: what the turn produced goes first, then the trailers. */
  private fail(err: unknown): void {
    if (this.ended) return
    if (this.frames.size > 0) this.transport.write(this.frames.take())
    const { code, message } = statusOf(err)
    this.finish(code)
    this.transport.end(code, message)
  }

  closed(): void {
    this.finish(GrpcCode.Canceled)
  }

  private finish(code: number): void {
    if (this.ended) return
    this.ended = true
    this.early = undefined
    this.unmonitor?.()
    this.unmonitor = undefined
    this.stream?.close()
    this.stream = undefined
    if (this.counted) {
      this.counted = false
      this.deps.watchStreams.n--
    }
    this.call?.end(code)
  }
}

/** A transport-level failure (grpc-go's own status, not an etcd error). */
class StatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message)
  }
}

function statusOf(err: unknown): { code: number; message: string } {
  if (err instanceof StatusError) return { code: err.code, message: err.message }
  if (err instanceof EtcdError) return { code: err.grpcCode as number, message: err.message }
  // A ConnectError (its code and message without ConnectRPC's "[code]" prefix).
  const c = err as { code?: unknown; rawMessage?: unknown } | undefined
  if (typeof c?.code === 'number' && typeof c.rawMessage === 'string') return { code: c.code, message: c.rawMessage }
  return { code: GrpcCode.Internal, message: 'etcdserver: internal error' }
}
