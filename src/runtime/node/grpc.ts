/**
 * One listener per client URL on Node, as etcd's: HTTP/1.1 (the Hono app: JSON gateway, WebSocket watch, /raft,
 * /metrics) and HTTP/2 (gRPC, and the app for any other HTTP/2 request) on the same port. In plain text the two are
 * told apart by the connection preface (`PRI * HTTP/2.0`, h2c with prior knowledge, which is how gRPC clients
 * speak); over TLS by ALPN (`h2` or `http/1.1`). The gRPC services themselves are runtime-agnostic
 * (src/api/grpc/services.ts); this file only adapts Node's http2 streams to them and enforces etcd's transport
 * limits: message size, concurrent streams and keep-alive.
 */

import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http'
import {
  createServer as createH2Server,
  type Http2Server,
  Http2ServerRequest,
  Http2ServerResponse,
  constants as h2constants,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls'
import { createContextValues, type HandlerContext } from '@connectrpc/connect'
import { connectNodeAdapter } from '@connectrpc/connect-node'
import { decodeMessage, encodeFrame } from '../../api/grpc/codec.js'
import * as election from '../../api/grpc/gen/etcd/etcdserver/api/v3election/v3electionpb/v3election_pb.js'
import * as lock from '../../api/grpc/gen/etcd/etcdserver/api/v3lock/v3lockpb/v3lock_pb.js'
import * as pb from '../../api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import {
  type GrpcOptions,
  type GrpcPeer,
  grpcError,
  grpcPeerKey,
  grpcServices,
  type RawUnary,
  rawWatchOf,
  type UnaryMeter,
  unaryTable,
} from '../../api/grpc/services.js'
import type { RawWatch, RawWatchCall } from '../../api/grpc/watch-session.js'
import { grpcRecvBytesMax } from '../../api/http/app.js'
import type { MemberApi } from '../../etcdserver/api.js'
import type { ServerConfig } from '../../etcdserver/config.js'
import { respondOkNow, sendOkTrailersNow } from './h2-trailers.js'
import { authorityRewritingSocket, probeH2c } from './h2c-authority.js'

const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

type H2Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void

export interface GrpcListenerOptions {
  config: ServerConfig
  member: MemberApi
  /** The app's listener for HTTP/2 requests that are not gRPC (curl --http2, h2 JSON clients). */
  appListener: H2Handler
  /** The CN of a connection's verified client certificate for `use`, or undefined. */
  verifiedCn(socket: Socket | undefined, use: 'client' | 'peer'): string | undefined
  /** The count of open watch streams, shared with the HTTP front door. */
  watchStreams: { n: number }
  /** The member's grpc_server_* counters, shared with the HTTP front door. */
  metrics?: GrpcOptions['metrics']
}

/** The HTTP/2 server gRPC calls reach (never listens itself: the front listener hands it connections). */
export function createGrpcServer(opts: GrpcListenerOptions): {
  server: Http2Server
  sessions: Set<ServerHttp2Session>
} {
  const { config } = opts
  const mtls = config.clientCertAuth
  const services = grpcServices(opts.member, {
    maxWatchStreams: config.maxWatchStreams,
    maxRequestBytes: config.maxRequestBytes,
    maxTxnOps: config.maxTxnOps,
    watchStreams: opts.watchStreams,
    // etcd checks WithRequireLeader streams every election timeout.
    leaderCheckMs: config.electionTimeoutMs,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  })
  const recvMax = grpcRecvBytesMax(config.maxRequestBytes)
  const unary = unaryTable(services)
  const watch = rawWatchOf(services)
  // A connection's address, read once: `session.socket` is a Proxy and each call asked it again (~0.5% of a put's
  // busy time in a profile). The certificate's CN is checked on every call, as before.
  const addresses = new WeakMap<ServerHttp2Session, string>()
  const peerOf = (session: ServerHttp2Session | undefined): GrpcPeer => {
    if (session === undefined) return { address: '', certUser: undefined }
    let address = addresses.get(session)
    if (address === undefined) {
      address = (session.socket as Socket | undefined)?.remoteAddress ?? ''
      if (address !== '') addresses.set(session, address)
    }
    return {
      address,
      certUser: mtls ? opts.verifiedCn(session.socket as Socket | undefined, 'client') : undefined,
    }
  }
  const grpc = connectNodeAdapter({
    routes: (router) => {
      for (const [desc, impl] of services) router.service(desc, impl)
    },
    grpc: true,
    connect: false,
    grpcWeb: false,
    // etcd's gRPC receive limit: --max-request-bytes plus 512 KiB (grpcOverheadBytes); sends are unbounded.
    readMaxBytes: grpcRecvBytesMax(config.maxRequestBytes),
    fallback: unknownMethod as never,
    // etcd's server compresses nothing; gzip of large ranges would only cost CPU on a loopback or LAN link.
    acceptCompression: [],
    contextValues: (req) =>
      createContextValues().set(
        grpcPeerKey,
        peerOf((req as Http2ServerRequest).stream?.session as ServerHttp2Session | undefined),
      ),
  })
  const compat = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[], h: H2Handler) => {
    // What node:http2's own compatibility layer does for a 'request' listener, here only for the calls that need it.
    const req = new Http2ServerRequest(stream, headers, undefined as never, rawHeaders)
    const res = new Http2ServerResponse(stream)
    h(req, res)
  }
  const countBytes = opts.metrics?.clientBytes ? opts.metrics : undefined
  /** A gRPC call through ConnectRPC (streams): its message bytes counted as they cross the wire. */
  const grpcCompat = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) => {
    if (!countBytes) return compat(stream, headers, rawHeaders, viaConnect)
    const req = new CountingRequest(stream, headers, undefined as never, rawHeaders)
    req.counter = countBytes
    const res = new CountingResponse(stream)
    res.counter = countBytes
    viaConnect(req, res)
  }
  const viaConnect: H2Handler = (req, res) => {
    specGrpcMessage(res)
    grpc(req as never, res as never)
  }
  // Calls are taken as raw streams: the compatibility layer (request and response objects, their listeners) costs
  // more than a unary call's own work, so only streams (ConnectRPC) and non-gRPC HTTP/2 requests get it.
  const server = createH2Server({
    settings: { maxConcurrentStreams: config.maxConcurrentStreams },
    // The peer's frames may carry a message up to the receive limit; sessions hold a few of them.
    maxSessionMemory: 64,
  })
  server.on(
    'stream',
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      const ct = headers['content-type']
      // gRPC-Web (a browser on an https:// member negotiates h2) is the app's, as on HTTP/1.1: src/api/grpc/fetch.ts.
      if (typeof ct !== 'string' || !ct.startsWith('application/grpc') || ct.startsWith('application/grpc-web')) {
        compat(stream, headers, rawHeaders, opts.appListener)
        return
      }
      // --client-cert-auth: a gRPC call needs a certificate from --trusted-ca-file (or a peer's), as the JSON routes.
      if (mtls) {
        stream.on('error', ignore)
        const socket = stream.session?.socket as Socket | undefined
        if (opts.verifiedCn(socket, 'client') === undefined && opts.verifiedCn(socket, 'peer') === undefined) {
          grpcStatus(stream, 16, 'client certificate required')
          return
        }
      }
      const fast = unary.get(headers[':path'] as string)
      const encoding = headers['grpc-encoding']
      if (fast && (encoding === undefined || encoding === 'identity')) {
        // A client's reset (RST_STREAM with an error code) is an 'error' on the stream, which readUnaryBody's
        // listener takes (never an uncaught one); unaryCall never rejects (a failure ends that stream).
        readUnaryBody(stream, new UnaryCall(fast, stream, headers, recvMax, peerOf))
        return
      }
      if (watch && headers[':path'] === watchPath && (encoding === undefined || encoding === 'identity')) {
        serveWatch(watch, stream, headers, recvMax, peerOf)
        return
      }
      grpcCompat(stream, headers, rawHeaders)
    },
  )
  const sessions = new Set<ServerHttp2Session>()
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    session.on('error', () => undefined)
    enforceKeepalive(session, config)
  })
  return { server, sessions }
}

type ByteCounter = { clientBytes?(received: number, sent: number): void }

/** A request whose body chunks (gRPC messages with their envelopes) count as received bytes as they arrive. */
class CountingRequest extends Http2ServerRequest {
  counter: ByteCounter | undefined
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk instanceof Uint8Array && chunk.byteLength > 0) this.counter?.clientBytes?.(chunk.byteLength, 0)
    return super.push(chunk, encoding)
  }
}

/** A response whose body writes (end(chunk) writes through write) count as sent bytes. */
class CountingResponse extends Http2ServerResponse {
  counter: ByteCounter | undefined
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    const n =
      chunk instanceof Uint8Array
        ? chunk.byteLength
        : typeof chunk === 'string'
          ? Buffer.byteLength(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8')
          : 0
    if (n > 0) this.counter?.clientBytes?.(0, n)
    return (super.write as (...a: unknown[]) => boolean)(chunk, ...rest)
  }
}

const okHeaders = { ':status': 200, 'content-type': 'application/grpc' }
const okTrailers = { 'grpc-status': '0' }
const respondOptions = { waitForTrailers: true, sendDate: false }

const kUnaryBody = Symbol('edgecd unary body')

/**
 * One raw unary call: its one enveloped message being read (refused as soon as its declared length is over the
 * receive limit), then the HandlerContext a service implementation reads: metadata (`requestHeader.get`, answered
 * by this object itself), the peer (`values.get(grpcPeerKey)`), a signal. The only object made per call here; the
 * stream's listeners are module functions that find it on the stream (`this`), not closures made per call: a put's
 * per-call allocations and (under tsx, whose esbuild keepNames names every closure) defineProperty calls are part of
 * its CPU (docs/benchmarks.md, "One put, taken apart"; gRPC "Session 11").
 */
class UnaryCall {
  first: Buffer | undefined = undefined
  chunks: Buffer[] | undefined = undefined
  size = 0
  checked = false
  done = false
  /** The call's grpc_server_* counting, once started (RawUnary.meter). */
  meter: UnaryMeter | undefined = undefined
  private controller: AbortController | undefined = undefined
  constructor(
    readonly u: RawUnary,
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    readonly recvMax: number,
    readonly peerOf: (session: ServerHttp2Session | undefined) => GrpcPeer,
  ) {}
  /** The call's metadata: `get` below. */
  get requestHeader(): { get(name: string): string | null } {
    return this
  }
  /** A metadata value. */
  get(name: string): string | null {
    const v = this.headers[name.toLowerCase()]
    return typeof v === 'string' ? v : (v?.[0] ?? null)
  }
  get values(): { get(key: { id: symbol }): unknown } {
    return new PeerValues(this.stream, this.peerOf)
  }
  timeoutMs(): undefined {
    return undefined
  }
  /** Lock and Campaign wait: they end when the caller goes away. */
  get signal(): AbortSignal {
    if (!this.controller) {
      const c = new AbortController()
      this.controller = c
      if (this.stream.closed) c.abort()
      else this.stream.once('close', () => c.abort())
    }
    return this.controller.signal
  }
}

class PeerValues {
  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly peerOf: (session: ServerHttp2Session | undefined) => GrpcPeer,
  ) {}
  get(key: { id: symbol }): unknown {
    return key.id === grpcPeerKey.id ? this.peerOf(this.stream.session as ServerHttp2Session | undefined) : undefined
  }
}

type BodyStream = ServerHttp2Stream & { [kUnaryBody]?: UnaryCall }

/** Reads the stream's message, then serves the call (unaryCall) unless it was refused or the stream failed. */
function readUnaryBody(stream: ServerHttp2Stream, r: UnaryCall): void {
  ;(stream as BodyStream)[kUnaryBody] = r
  stream.on('data', onUnaryData)
  stream.on('end', onUnaryEnd)
  stream.on('error', onUnaryError)
}

function finishUnaryBody(r: UnaryCall, body: Buffer | undefined): void {
  if (r.done) return
  r.done = true
  r.first = undefined
  r.chunks = undefined
  if (body !== undefined) unaryCall(r, body)
}

function onUnaryData(this: BodyStream, c: Buffer): void {
  const r = this[kUnaryBody]!
  if (r.done) return
  if (r.first === undefined) r.first = c
  else {
    r.chunks ??= [r.first]
    r.chunks.push(c)
  }
  r.size += c.length
  if (!r.checked && r.size >= 5) {
    r.checked = true
    const head = r.chunks === undefined ? r.first : Buffer.concat(r.chunks)
    const declared = head.readUInt32BE(1)
    if (declared > r.recvMax) {
      this.off('data', onUnaryData)
      fail(this, 8, `grpc: received message larger than max (${declared} vs. ${r.recvMax})`)
      finishUnaryBody(r, undefined)
    }
  }
}

function onUnaryEnd(this: BodyStream): void {
  const r = this[kUnaryBody]!
  finishUnaryBody(r, r.chunks === undefined ? (r.first ?? Buffer.alloc(0)) : Buffer.concat(r.chunks))
}

function onUnaryError(this: BodyStream): void {
  finishUnaryBody(this[kUnaryBody]!, undefined)
}

function fail(stream: ServerHttp2Stream, code: number, message: string): void {
  if (!stream.destroyed && !stream.headersSent) grpcStatus(stream, code, message)
}

/**
 * A unary gRPC call served directly on the HTTP/2 stream: read the one message, decode it straight into the
 * member's request object (src/api/grpc/codec.ts), call the same implementation ConnectRPC would, encode the
 * member's answer, respond with message and trailers. ConnectRPC's Node adapter, node:http2's compatibility layer
 * and protobuf-es' reflective codec each cost more than the member's own work per call (see docs/grpc.md); streams
 * still go through ConnectRPC. Errors as grpc-go words them. Not an async function: the member's promise is the
 * only one, and its two handlers never throw (a member must not crash on one call: a failure ends that stream).
 */
function unaryCall(c: UnaryCall, body: Buffer): void {
  const { u, stream } = c
  let answer: object
  try {
    if (body.length < 5 || body.length !== 5 + body.readUInt32BE(1) || (body[0]! & 1) !== 0) {
      fail(stream, 13, 'grpc: error unmarshalling request: unexpected EOF')
      return
    }
    let msg: unknown
    try {
      msg = decodeMessage(u.input, body, 5)
    } catch (err) {
      const m = (err as Error).message.replace(/^premature EOF$/, 'unexpected EOF')
      fail(stream, 13, `grpc: error unmarshalling request: ${m}`)
      return
    }
    c.meter = u.meter(body.length)
    answer = u.call(msg, c as unknown as HandlerContext, body.length - 5)
  } catch (err) {
    unaryFailed(c, err)
    return
  }
  if (answer instanceof Promise)
    answer.then(
      (out: object) => unaryAnswer(c, out),
      (err: unknown) => unaryFailed(c, err),
    )
  else unaryAnswer(c, answer)
}

/** The member's answer, encoded and sent: HEADERS, the message's DATA, then `grpc-status: 0` in the trailers. */
function unaryAnswer(c: UnaryCall, out: object): void {
  const stream = c.stream
  try {
    let frame: Buffer
    try {
      frame = encodeFrame(c.u.output, out, Buffer.allocUnsafe)
    } catch (err) {
      unaryFailed(c, err)
      return
    }
    const meter = c.meter
    if (meter !== undefined) {
      meter.sent(frame.length)
      meter.end(0)
    }
    if (stream.destroyed || stream.closed) return
    serverSends(stream)
    if (!respondOkNow(stream)) stream.respond(okHeaders, respondOptions)
    // 'wantTrailers' comes once: `on` spares once()'s wrapper.
    stream.on('wantTrailers', sendOkTrailers)
    stream.end(frame)
  } catch {
    stream.destroy()
  }
}

/** A failed call: etcd's status and message in a trailers-only answer (grpcError: unknown failures are code 13). */
function unaryFailed(c: UnaryCall, err: unknown): void {
  try {
    const e = grpcError(err)
    c.meter?.end(e.code)
    fail(c.stream, e.code, e.rawMessage)
  } catch {
    c.stream.destroy()
  }
}

function ignore(): void {}

const watchPath = '/etcdserverpb.Watch/Watch'
const kRawStream = Symbol('edgecd raw stream')
type RawStream = ServerHttp2Stream & { [kRawStream]?: true }

/**
 * The Watch call on the raw HTTP/2 stream (src/api/grpc/watch-session.ts holds the call itself): request bytes in as
 * they arrive, one write per turn out, the response headers before the first write, grpc-status in the trailers (or
 * a trailers-only answer when nothing was written). Flow control: the stream's writableLength counts what HTTP/2
 * flow control has not let out yet, and 'drain' says it has.
 */
function serveWatch(
  watch: RawWatch,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  recvBytesMax: number,
  peerOf: (session: ServerHttp2Session | undefined) => GrpcPeer,
): void {
  ;(stream as RawStream)[kRawStream] = true
  stream.on('error', ignore)
  const header = (name: string) => {
    const v = headers[name]
    return typeof v === 'string' ? v : v?.[0]
  }
  let responded = false
  const transport = {
    write(chunk: Uint8Array, written?: (chunk: Uint8Array) => void): void {
      if (stream.destroyed || stream.closed) return
      serverSends(stream)
      if (!responded) {
        responded = true
        stream.respond(okHeaders, respondOptions)
      }
      // The chunk's buffer is reused once written; after a failure it is left alone.
      if (written === undefined) stream.write(chunk)
      else stream.write(chunk, (err) => err || written(chunk))
    },
    get bufferedBytes(): number {
      return stream.writableLength
    },
    end(code: number, message: string): void {
      if (stream.destroyed || stream.closed) return
      if (!responded) {
        grpcStatus(stream, code, message)
        return
      }
      const trailers: Record<string, string> = { 'grpc-status': String(code) }
      if (message !== '') trailers['grpc-message'] = grpcPercentEncode(message)
      stream.once('wantTrailers', () => {
        if (!stream.destroyed && !stream.closed) stream.sendTrailers(trailers)
      })
      stream.end()
    },
  }
  const peer = peerOf(stream.session as ServerHttp2Session | undefined)
  const call: RawWatchCall = watch(
    { token: header('token'), hasLeader: header('hasleader') === 'true', certUser: peer.certUser, recvBytesMax },
    transport,
  )
  stream.on('data', (chunk: Buffer) => call.data(chunk))
  stream.on('drain', () => call.drained())
  stream.on('close', () => call.closed())
}

/** In the send pass that carries the answer's DATA frame where Node allows it (./h2-trailers.ts), else a turn later. */
function sendOkTrailers(this: ServerHttp2Stream): void {
  if (!this.destroyed && !this.closed && !sendOkTrailersNow(this)) this.sendTrailers(okTrailers)
}

/** ConnectRPC's texts for transport-level failures, as grpc-go (etcd's server) words them. */
function etcdTransportMessage(text: string): string {
  const size = /^message size (\d+) is larger than configured readMaxBytes (\d+)$/.exec(text)
  if (size) return `grpc: received message larger than max (${size[1]} vs. ${size[2]})`
  const parse = /^parse binary: (.*)$/.exec(text)
  if (parse) return `grpc: error unmarshalling request: ${parse[1] === 'premature EOF' ? 'unexpected EOF' : parse[1]}`
  return text
}

/** etcd's services and their methods, for grpc-go's answer to an unknown one. */
const knownMethods = new Map<string, Set<string>>(
  [pb.KV, pb.Watch, pb.Lease, pb.Cluster, pb.Maintenance, pb.Auth, lock.Lock, election.Election].map((s) => [
    s.typeName,
    new Set(s.methods.map((m) => m.name)),
  ]),
)

/** Percent-encoding as the gRPC spec says: bytes outside printable ASCII, and '%'. */
function grpcPercentEncode(text: string): string {
  return Array.from(new TextEncoder().encode(text), (b) =>
    b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
  ).join('')
}

/** A trailers-only gRPC answer (one HEADERS frame that ends the stream). */
function grpcStatus(stream: ServerHttp2Stream, code: number, message: string): void {
  serverSends(stream)
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(code),
      'grpc-message': grpcPercentEncode(message),
    },
    { endStream: true },
  )
}

/** grpc-go's answer to a path no service serves: Unimplemented, naming the unknown service or method. */
function unknownMethod(req: Http2ServerRequest, res: Http2ServerResponse): void {
  const [, service = '', method = ''] = /^\/([^/]*)\/([^/]*)$/.exec(req.url ?? '') ?? []
  const methods = knownMethods.get(service)
  const message = methods ? `unknown method ${method} for service ${service}` : `unknown service ${service}`
  grpcStatus(res.stream, 12, message)
}

/**
 * grpc-message as the gRPC spec encodes it: only bytes outside printable ASCII and '%' are percent-encoded.
 * ConnectRPC encodes it with encodeURIComponent (': ' as '%3A%20'), which Go clients decode but grpc-js (decodeURI)
 * leaves as '%3A': the `etcd3` client then no longer recognises "etcdserver: requested lease not found".
 */
function specGrpcMessage(res: Http2ServerResponse): void {
  const fix = (h: Record<string, unknown> | undefined) => {
    const v = h?.['grpc-message']
    if (typeof v !== 'string') return
    let text: string
    try {
      text = etcdTransportMessage(decodeURIComponent(v))
    } catch {
      return
    }
    h!['grpc-message'] = Array.from(new TextEncoder().encode(text), (b) =>
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    ).join('')
  }
  const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => Http2ServerResponse
  res.writeHead = ((status: number, ...rest: unknown[]) => {
    fix(rest[rest.length - 1] as Record<string, unknown> | undefined)
    return writeHead(status, ...rest)
  }) as never
  const addTrailers = res.addTrailers.bind(res)
  res.addTrailers = (t) => {
    fix(t as Record<string, unknown>)
    addTrailers(t)
  }
}

/** One HTTP/2 session's keep-alive bookkeeping (enforceKeepalive), shared by its streams. */
class KeepaliveState {
  lastPing = 0
  strikes = 0
  /** The server sent a header or data frame since the last ping: the next ping passes and clears the strikes. */
  resetStrikes = false
  activeStreams = 0
  lastActivity = performance.now()
}

const kKeepalive = Symbol('edgecd keepalive')
type KeepaliveStream = ServerHttp2Stream & { [kKeepalive]?: KeepaliveState }

/** The server is sending a header or data frame on `stream` (see enforceKeepalive). */
function serverSends(stream: ServerHttp2Stream): void {
  const k = (stream as KeepaliveStream)[kKeepalive]
  if (k !== undefined) k.resetStrikes = true
}

function onKeepaliveStreamClose(this: KeepaliveStream): void {
  const k = this[kKeepalive]
  if (k !== undefined) k.activeStreams--
}

/** Streams answered by ConnectRPC or the app: every respond and write counts as the server sending. */
function watchSends(stream: ServerHttp2Stream, k: KeepaliveState): void {
  const respond = stream.respond
  stream.respond = (...args: Parameters<typeof respond>) => {
    k.resetStrikes = true
    return respond.apply(stream, args)
  }
  const write = stream.write
  stream.write = ((...args: Parameters<typeof write>) => {
    k.resetStrikes = true
    return write.apply(stream, args)
  }) as typeof write
}

/**
 * etcd's keep-alive (grpc-go's ServerParameters and EnforcementPolicy with PermitWithoutStream false): pings from a
 * client more often than --grpc-keepalive-min-time (while it has calls open; two hours while it has none) earn a
 * strike, and past two strikes the server says GOAWAY ENHANCE_YOUR_CALM "too_many_pings"; a connection silent for
 * --grpc-keepalive-interval is pinged and closed when the answer does not come within --grpc-keepalive-timeout.
 * As grpc-go, every response header or data frame the server sends resets the strikes and lets the next ping pass
 * unchecked: gRPC C-core clients (Python, Ruby, PHP, C++) send a BDP ping with the data they receive, several per
 * second on a busy watch stream, and etcd accepts them.
 */
function enforceKeepalive(session: ServerHttp2Session, config: ServerConfig): void {
  const k = new KeepaliveState()
  session.on('ping', () => {
    const now = performance.now()
    const last = k.lastPing
    k.lastPing = now
    if (k.resetStrikes) {
      k.resetStrikes = false
      k.strikes = 0
      return
    }
    // grpc-go's defaultPingTimeout: without a call open, keep-alive pings should not come more often than this.
    const minTime = k.activeStreams > 0 ? config.grpcKeepaliveMinTimeMs : 2 * 60 * 60 * 1000
    if (last !== 0 && now - last < minTime) {
      k.strikes++
      if (k.strikes > 2) {
        session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from('too_many_pings'))
        session.close()
      }
    }
  })
  // A new call is activity (a stream's data is not observed here: a 'data' listener would take it from the handler);
  // what the server writes on it (headers through respond, data through write) resets the strikes, as in grpc-go.
  // Per call nothing is allocated here: the stream points at the session's state, its close is a module function,
  // and a unary call on the raw path (which the server's 'stream' listener, called before this one, has taken) says
  // itself when it sends (serverSends); only other streams get their respond and write wrapped.
  session.on('stream', (stream: KeepaliveStream) => {
    k.lastActivity = performance.now()
    k.strikes = 0
    k.activeStreams++
    stream[kKeepalive] = k
    stream.on('close', onKeepaliveStreamClose)
    if ((stream as BodyStream)[kUnaryBody] === undefined && (stream as RawStream)[kRawStream] === undefined)
      watchSends(stream, k)
  })
  const interval = Math.min(config.grpcKeepaliveIntervalMs, 2 ** 31 - 1)
  const timer = setInterval(
    () => {
      if (session.closed || session.destroyed) return clearInterval(timer)
      if (performance.now() - k.lastActivity < interval) return
      const deadline = setTimeout(() => session.destroy(), config.grpcKeepaliveTimeoutMs)
      deadline.unref?.()
      const ok = session.ping((err) => {
        clearTimeout(deadline)
        if (err) session.destroy()
        else k.lastActivity = performance.now()
      })
      if (!ok) clearTimeout(deadline)
    },
    Math.max(1000, Math.min(interval, 60_000)),
  )
  timer.unref?.()
  session.once('close', () => clearInterval(timer))
}

/**
 * The front listener of one client URL: a TCP server that hands each connection to the HTTP/1.1 server or to the
 * HTTP/2 server by its first bytes, or a TLS server that does the same by ALPN. Errors on a connection before it is
 * handed over (a reset, a handshake failure) end that connection only.
 */
export function createFrontListener(
  h1: HttpServer<typeof IncomingMessage, typeof ServerResponse>,
  h2: Http2Server,
  tls: TlsOptions | undefined,
  onTlsError?: (err: Error, socket: Socket) => void,
): NetServer {
  /** Reads the first bytes: the HTTP/2 preface goes to the probe and then to `h2`, anything else to `h1`. */
  const route = (socket: Socket, http1Allowed: boolean) => {
    let head: Buffer = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
      const n = Math.min(head.length, preface.length)
      const isH2 = head.subarray(0, n).equals(preface.subarray(0, n))
      if (isH2 && head.length < preface.length) return
      socket.off('data', onData)
      socket.off('error', onError)
      if (isH2) {
        // Go clients may name the URL as :authority, which Node refuses: see h2c-authority.ts.
        probeH2c(socket, head, ({ bytes, ackCut, authorityOk }) => {
          if (socket.destroyed) return
          if (authorityOk && ackCut) {
            // The HTTP/2 session reads what is buffered on the socket itself, then reads the socket directly.
            socket.pause()
            socket.unshift(bytes)
            h2.emit('connection', socket)
          } else {
            h2.emit('connection', authorityRewritingSocket(socket, bytes, !ackCut))
          }
        })
      } else if (http1Allowed) {
        socket.pause()
        socket.unshift(head)
        h1.emit('connection', socket)
        socket.resume()
      } else {
        socket.destroy()
      }
    }
    const onError = () => socket.destroy()
    socket.on('data', onData)
    socket.on('error', onError)
  }
  if (tls) {
    const server = createTlsServer({ ...tls, ALPNProtocols: ['h2', 'http/1.1'] }, (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') route(socket, false)
      else h1.emit('connection', socket)
    })
    if (onTlsError) server.on('tlsClientError', onTlsError)
    return server
  }
  return createNetServer((socket) => route(socket, true))
}
