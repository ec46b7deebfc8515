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
  type Http2ServerRequest,
  type Http2ServerResponse,
  constants as h2constants,
  type ServerHttp2Session,
} from 'node:http2'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls'
import { create, type DescMethod, fromBinary, toBinary } from '@bufbuild/protobuf'
import { createContextValues, type HandlerContext } from '@connectrpc/connect'
import { connectNodeAdapter } from '@connectrpc/connect-node'
import * as election from '../../api/grpc/gen/etcd/etcdserver/api/v3election/v3electionpb/v3election_pb.js'
import * as lock from '../../api/grpc/gen/etcd/etcdserver/api/v3lock/v3lockpb/v3lock_pb.js'
import * as pb from '../../api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import {
  type GrpcOptions,
  type GrpcPeer,
  type GrpcService,
  grpcError,
  grpcPeerKey,
  grpcServices,
} from '../../api/grpc/services.js'
import { grpcRecvBytesMax } from '../../api/http/app.js'
import type { MemberApi } from '../../etcdserver/api.js'
import type { ServerConfig } from '../../etcdserver/config.js'
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
    watchStreams: opts.watchStreams,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  })
  const recvMax = grpcRecvBytesMax(config.maxRequestBytes)
  const unary = unaryTable(services)
  const peerOf = (socket: Socket | undefined): GrpcPeer => ({
    address: socket?.remoteAddress ?? '',
    certUser: mtls ? opts.verifiedCn(socket, 'client') : undefined,
  })
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
        peerOf((req as Http2ServerRequest).stream?.session?.socket as Socket | undefined),
      ),
  })
  const handler: H2Handler = (req, res) => {
    const ct = req.headers['content-type'] ?? ''
    if (!ct.startsWith('application/grpc')) {
      opts.appListener(req, res)
      return
    }
    // --client-cert-auth: a gRPC call needs a certificate from --trusted-ca-file (or a peer's), as the JSON routes.
    if (mtls) {
      const socket = req.stream?.session?.socket as Socket | undefined
      if (opts.verifiedCn(socket, 'client') === undefined && opts.verifiedCn(socket, 'peer') === undefined) {
        grpcStatus(res, 16, 'client certificate required')
        return
      }
    }
    const fast = unary.get(req.url)
    const encoding = req.headers['grpc-encoding']
    if (fast && (encoding === undefined || encoding === 'identity')) {
      // Never an unhandled rejection (a member must not crash on one call): a failure ends that stream.
      unaryCall(fast, req, res, recvMax, () => peerOf(req.stream?.session?.socket as Socket | undefined)).catch(() =>
        res.stream.destroy(),
      )
      return
    }
    specGrpcMessage(res)
    grpc(req as never, res as never)
  }
  const server = createH2Server(
    {
      settings: { maxConcurrentStreams: config.maxConcurrentStreams },
      // The peer's frames may carry a message up to the receive limit; sessions hold a few of them.
      maxSessionMemory: 64,
    },
    handler,
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

type UnaryFn = (req: unknown, ctx: HandlerContext) => Promise<unknown>
interface UnaryMethod {
  method: DescMethod
  fn: UnaryFn
}

/** The unary methods by path (`/etcdserverpb.KV/Range`). */
function unaryTable(services: GrpcService[]): Map<string, UnaryMethod> {
  const table = new Map<string, UnaryMethod>()
  for (const [desc, impl] of services)
    for (const m of desc.methods) {
      const fn = (impl as Record<string, unknown>)[m.localName]
      if (m.methodKind === 'unary' && typeof fn === 'function')
        table.set(`/${desc.typeName}/${m.name}`, { method: m, fn: fn as UnaryFn })
    }
  return table
}

/**
 * A unary gRPC call served directly on the HTTP/2 stream: read the one message, decode, call the same service
 * implementation ConnectRPC would, answer message and trailers. ConnectRPC's Node adapter costs several times the
 * member's own work per call (web Headers, an AbortController, async-iterable pipelines for a single message; see
 * docs/grpc.md); streams still go through it. Errors as grpc-go words them.
 */
async function unaryCall(
  u: UnaryMethod,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  recvMax: number,
  peer: () => GrpcPeer,
): Promise<void> {
  const stream = res.stream
  const fail = (code: number, message: string) => {
    if (!stream.destroyed && !stream.headersSent) grpcStatus(res, code, message)
  }
  // The body: one enveloped message; refused as soon as its declared length is over the receive limit.
  const body = await new Promise<Buffer | undefined>((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (c: Buffer) => {
      chunks.push(c)
      size += c.length
      if (size >= 5) {
        const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
        const declared = head.readUInt32BE(1)
        if (declared > recvMax) {
          req.off('data', onData)
          fail(8, `grpc: received message larger than max (${declared} vs. ${recvMax})`)
          resolve(undefined)
        }
      }
    }
    req.on('data', onData)
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    req.once('error', () => resolve(undefined))
  })
  if (body === undefined) return
  if (body.length < 5 || body.length !== 5 + body.readUInt32BE(1) || (body[0]! & 1) !== 0) {
    fail(13, 'grpc: error unmarshalling request: unexpected EOF')
    return
  }
  let msg: unknown
  try {
    msg = fromBinary(u.method.input, body.subarray(5))
  } catch (err) {
    const m = (err as Error).message.replace(/^premature EOF$/, 'unexpected EOF')
    fail(13, `grpc: error unmarshalling request: ${m}`)
    return
  }
  let controller: AbortController | undefined
  const ctx = {
    method: u.method,
    service: u.method.parent,
    requestMethod: 'POST',
    url: req.url,
    peer: { addr: req.socket?.remoteAddress ?? '' },
    requestHeader: { get: (name: string) => (req.headers[name.toLowerCase()] as string | undefined) ?? null },
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    timeoutMs: () => undefined,
    values: { get: (key: { id: symbol }) => (key.id === grpcPeerKey.id ? peer() : undefined) },
    // Lock and Campaign wait: they end when the caller goes away.
    get signal() {
      if (!controller) {
        const c = new AbortController()
        controller = c
        stream.once('close', () => c.abort())
      }
      return controller.signal
    },
  } as unknown as HandlerContext
  let out: Uint8Array
  try {
    const answer = (await u.fn(msg, ctx)) as object
    const m = '$typeName' in answer ? answer : create(u.method.output, answer as never)
    out = toBinary(u.method.output, m as never)
  } catch (err) {
    const e = grpcError(err)
    fail(e.code, e.rawMessage)
    return
  }
  if (stream.destroyed || stream.closed) return
  const frame = Buffer.allocUnsafe(5 + out.length)
  frame[0] = 0
  frame.writeUInt32BE(out.length, 1)
  frame.set(out, 5)
  // Through the compatibility response, which owns the stream's trailers.
  res.writeHead(200, { 'content-type': 'application/grpc' })
  res.addTrailers({ 'grpc-status': '0' })
  res.end(frame)
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
function grpcStatus(res: Http2ServerResponse, code: number, message: string): void {
  res.stream.respond(
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
  grpcStatus(res, 12, message)
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

/**
 * etcd's keep-alive (grpc-go's ServerParameters and EnforcementPolicy with PermitWithoutStream false): pings from a
 * client more often than --grpc-keepalive-min-time earn a strike, and past two strikes the server says GOAWAY
 * ENHANCE_YOUR_CALM "too_many_pings"; a connection silent for --grpc-keepalive-interval is pinged and closed when
 * the answer does not come within --grpc-keepalive-timeout.
 */
function enforceKeepalive(session: ServerHttp2Session, config: ServerConfig): void {
  let lastPing = 0
  let strikes = 0
  let lastActivity = performance.now()
  session.on('ping', () => {
    const now = performance.now()
    if (lastPing !== 0 && now - lastPing < config.grpcKeepaliveMinTimeMs) {
      strikes++
      if (strikes > 2) {
        session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from('too_many_pings'))
        session.close()
      }
    }
    lastPing = now
  })
  // A new call is activity (a stream's data is not observed here: a 'data' listener would take it from the handler).
  session.on('stream', () => {
    lastActivity = performance.now()
    strikes = 0
  })
  const interval = Math.min(config.grpcKeepaliveIntervalMs, 2 ** 31 - 1)
  const timer = setInterval(
    () => {
      if (session.closed || session.destroyed) return clearInterval(timer)
      if (performance.now() - lastActivity < interval) return
      const deadline = setTimeout(() => session.destroy(), config.grpcKeepaliveTimeoutMs)
      deadline.unref?.()
      const ok = session.ping((err) => {
        clearTimeout(deadline)
        if (err) session.destroy()
        else lastActivity = performance.now()
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
