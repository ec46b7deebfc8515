/**
 * etcd's gRPC services over `fetch`: the same routes as the gRPC front door (./services.ts, one implementation of
 * each behaviour over the member's MemberApi), served with the gRPC-Web and Connect protocols from a fetch-style
 * handler, so a browser (`@connectrpc/connect-web`) or a Worker can call them. Plain gRPC needs HTTP/2 trailers,
 * which a fetch `Response` cannot carry; gRPC-Web and Connect put the status in the body (or in headers).
 *
 * What a request must look like to be taken here: `POST` (or a CORS preflight `OPTIONS`) to `/<package.Service>/<Method>`
 * (a dotted service name: no JSON gateway path has one) with a gRPC-Web (`application/grpc-web`,
 * `application/grpc-web+proto`, `+json`) or Connect (`application/proto`, `application/json`,
 * `application/connect+proto`, `+json`) content type. Anything else is left to the JSON API.
 *
 * Limits and texts as the gRPC door: a message over etcd's gRPC receive limit (--max-request-bytes + 512 KiB) is
 * ResourceExhausted `grpc: received message larger than max (N vs. M)`, a malformed one Internal `grpc: error
 * unmarshalling request: ...`, an unknown method Unimplemented `unknown service S` / `unknown method M for service
 * S`; auth is the `token` metadata (an HTTP header here); the member's errors keep etcd's code and message.
 *
 * Streams: unary and server-streaming calls (Snapshot, Observe) work with any gRPC-Web/Connect client. Watch and
 * LeaseKeepAlive are bidirectional: over fetch the request body is sent whole before the answer is read (half
 * duplex), so a client that writes its requests up front (one WatchCreateRequest, some keep-alives) gets the
 * responses streamed back, the watches running until it goes away; a client that wants to send while it reads
 * (`connect-web` refuses bidi calls outright) needs the gRPC door or the WebSocket watch (docs/api.md).
 *
 * Web-standard only: each runtime's Hono app asks this handler first (src/api/http/app.ts `rpc`).
 */

import { Code, createConnectRouter, createContextValues } from '@connectrpc/connect'
import {
  type UniversalHandler,
  type UniversalServerResponse,
  universalServerRequestFromFetch,
  universalServerResponseToFetch,
} from '@connectrpc/connect/protocol'
import { codeToHttpStatus, codeToString } from '@connectrpc/connect/protocol-connect'
import type { MemberApi } from '../../etcdserver/api.js'
import { decodeMessage, encodeMessage } from './codec.js'
import {
  type GrpcOptions,
  type GrpcPeer,
  grpcError,
  grpcPeerKey,
  grpcServices,
  type RawUnary,
  unaryTable,
} from './services.js'

/** What the HTTP layer knows about the caller of one request. */
export interface RpcCaller extends GrpcPeer {
  /** --client-cert-auth and the request carries no certificate of the client or peer CA: refused. */
  certMissing?: boolean
}

/** The fetch door of the RPCs: a cheap test on path, method and content type, then the call itself. */
export interface RpcFetchHandler {
  accepts(path: string, method: string, contentType: string | undefined): boolean
  handle(req: Request, caller: RpcCaller): Promise<Response>
}

export interface RpcFetchOptions extends GrpcOptions {
  /** etcd's gRPC receive limit in bytes (--max-request-bytes + 512 KiB: grpcRecvBytesMax). */
  recvBytesMax: number
}

/** `/etcdserverpb.KV/Range`: a dotted service name and a method name. */
const rpcPath = /^\/([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)\/([^/]*)$/
const grpcWebType = /^application\/grpc-web/i
const connectType = /^application\/(connect\+)?(proto|json)\b/i
const binaryGrpcWeb = /^application\/grpc-web(\+proto)?$/i
const binaryConnectUnary = /^application\/proto$/i

/**
 * The CORS answer of an RPC path: any origin (as every answer of the member), the request headers gRPC-Web and
 * Connect clients send (and etcd's `token` metadata), and the response headers a browser client must be let to read
 * (gRPC-Web's status and message come as headers on a trailers-only answer).
 */
export const rpcCorsHeaders: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, OPTIONS',
  'Access-Control-Allow-Headers':
    'content-type, connect-protocol-version, connect-timeout-ms, x-grpc-web, x-user-agent, grpc-timeout, token, hasleader, authorization',
  'Access-Control-Expose-Headers': 'grpc-status, grpc-message, grpc-status-details-bin, content-encoding',
  'Access-Control-Max-Age': '7200',
}

/** The fetch handler of every etcd service over `member`, with the gRPC-Web and Connect protocols. */
export function createRpcFetchHandler(member: MemberApi, opts: RpcFetchOptions): RpcFetchHandler {
  const router = createConnectRouter({
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: opts.recvBytesMax,
    // As the gRPC door: etcd's server compresses nothing.
    acceptCompression: [],
  })
  const services = grpcServices(member, opts)
  for (const [desc, impl] of services) router.service(desc, impl)
  const fast = unaryTable(services)
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]))
  const serviceNames = new Set(router.handlers.map((h) => h.service.typeName))

  const singleRequest = new Set(
    router.handlers
      .filter((h) => h.method.methodKind === 'unary' || h.method.methodKind === 'server_streaming')
      .map((h) => h.requestPath),
  )
  return {
    accepts(path, method, contentType) {
      if (!rpcPath.test(path)) return false
      if (method === 'OPTIONS') return true
      return contentType !== undefined && (grpcWebType.test(contentType) || connectType.test(contentType))
    },
    async handle(req, caller) {
      const path = pathOf(req.url)
      const m = rpcPath.exec(path)
      if (!m) throw new Error(`not an RPC path: ${path}`)
      if (req.method === 'OPTIONS') return new Response(null, { status: 204, headers: rpcCorsHeaders })
      const ct = req.headers.get('content-type') ?? ''
      const kind = grpcWebType.test(ct) ? 'grpc-web' : 'connect'
      if (caller.certMissing) return refuse(kind, ct, Code.Unauthenticated, 'client certificate required')
      const h = handlers.get(path)
      if (!h) {
        const message = serviceNames.has(m[1]!)
          ? `unknown method ${m[2]} for service ${m[1]}`
          : `unknown service ${m[1]}`
        return refuse(kind, ct, Code.Unimplemented, message)
      }
      // A one-message call whose body is declared too large is refused unread, and the connection is not kept
      // (the client is still sending it): as the JSON API's 429.
      const length = Number(req.headers.get('content-length') ?? Number.NaN)
      const envelope = kind === 'grpc-web' || /^application\/connect\+/i.test(ct) ? 5 : 0
      if (singleRequest.has(path) && length - envelope > opts.recvBytesMax) {
        const res = refuse(
          kind,
          ct,
          Code.ResourceExhausted,
          `grpc: received message larger than max (${length - envelope} vs. ${opts.recvBytesMax})`,
        )
        res.headers.set('Connection', 'close')
        return res
      }
      const peer: GrpcPeer = { address: caller.address, certUser: caller.certUser }
      // Unary calls in binary protobuf skip ConnectRPC's generic layers, as on the gRPC door (docs/grpc.md).
      const raw = fast.get(path)
      const encoding = req.headers.get('grpc-encoding')
      const identity = (encoding === null || encoding === 'identity') && !req.headers.has('content-encoding')
      if (raw && identity && (binaryGrpcWeb.test(ct) || binaryConnectUnary.test(ct)))
        return unaryCall(raw, req, kind, peer, opts.recvBytesMax)
      const uReq = {
        ...universalServerRequestFromFetch(req, {}),
        contextValues: createContextValues().set(grpcPeerKey, peer),
      }
      const uRes = await h(uReq)
      return withCors(universalServerResponseToFetch(await etcdTexts(kind, uRes)))
    },
  }
}

/** Reads a body up to `max` bytes; past that, its size (or one past 4 * max). */
async function readBody(req: Request, max: number): Promise<Uint8Array | number> {
  if (req.body === null) return new Uint8Array(0)
  const reader = req.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const r = await reader.read()
    if (r.done) break
    size += r.value.length
    if (size > max) {
      // Counted on (not kept) to name the size in etcd's text, up to a bound; then the read stops.
      while (size <= 4 * max) {
        const more = await reader.read()
        if (more.done) return size
        size += more.value.length
      }
      await reader.cancel().catch(() => undefined)
      return size
    }
    chunks.push(r.value)
  }
  return concat(chunks)
}

/**
 * A unary call in binary gRPC-Web or Connect: the one message decoded by ./codec.ts straight into the member's
 * request, the same implementation ConnectRPC calls (`rawUnary`), the answer encoded straight to the body; errors
 * and texts as ConnectRPC's path gives them after etcdTexts.
 */
async function unaryCall(
  u: RawUnary,
  req: Request,
  kind: 'grpc-web' | 'connect',
  peer: GrpcPeer,
  recvMax: number,
): Promise<Response> {
  const ct = req.headers.get('content-type') ?? ''
  const envelope = kind === 'grpc-web' ? 5 : 0
  const body = await readBody(req, recvMax + envelope)
  if (typeof body === 'number')
    return refuse(
      kind,
      ct,
      Code.ResourceExhausted,
      `grpc: received message larger than max (${body - envelope} vs. ${recvMax})`,
    )
  let bytes = body
  if (envelope > 0) {
    const declared = body.length >= 5 ? new DataView(body.buffer, body.byteOffset).getUint32(1) : -1
    if (body.length < 5 || body.length !== 5 + declared)
      return refuse(kind, ct, Code.Internal, 'grpc: error unmarshalling request: unexpected EOF')
    if ((body[0]! & 1) !== 0)
      return refuse(kind, ct, Code.Internal, 'grpc: compressed flag set with identity or empty encoding')
    bytes = body.subarray(5)
  }
  let msg: unknown
  try {
    msg = decodeMessage(u.input, bytes)
  } catch (err) {
    const m = (err as Error).message.replace(/^premature EOF$/, 'unexpected EOF')
    return refuse(kind, ct, Code.Internal, `grpc: error unmarshalling request: ${m}`)
  }
  const ctx = {
    requestHeader: req.headers,
    values: { get: (key: { id: symbol }) => (key.id === grpcPeerKey.id ? peer : undefined) },
    signal: req.signal,
    timeoutMs: () => undefined,
  }
  let out: Uint8Array
  const meter = u.meter(body.length)
  try {
    out = encodeMessage(u.output, await u.call(msg, ctx as never, bytes.length), envelope)
    meter?.sent(out.length)
    meter?.end(0)
  } catch (err) {
    const e = grpcError(err)
    meter?.end(e.code)
    return refuse(kind, ct, e.code, e.rawMessage)
  }
  if (kind === 'connect')
    return withCors(
      new Response(out as Uint8Array<ArrayBuffer>, { status: 200, headers: { 'content-type': 'application/proto' } }),
    )
  const len = out.length - 5
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
  out[0] = 0
  dv.setUint32(1, len)
  const res = new Uint8Array(out.length + okTrailerFrame.length)
  res.set(out)
  res.set(okTrailerFrame, out.length)
  return withCors(new Response(res, { status: 200, headers: { 'content-type': 'application/grpc-web+proto' } }))
}

const okTrailerFrame = (() => {
  const t = new TextEncoder().encode('grpc-status: 0\r\n')
  const f = new Uint8Array(5 + t.length)
  f[0] = 0x80
  new DataView(f.buffer).setUint32(1, t.length)
  f.set(t, 5)
  return f
})()

function pathOf(url: string): string {
  // A Request's URL is absolute: the path starts at the first '/' after the authority; no query on RPCs.
  const start = url.indexOf('/', url.indexOf('//') + 2)
  if (start < 0) return '/'
  const q = url.indexOf('?', start)
  return q < 0 ? url.slice(start) : url.slice(start, q)
}

function withCors(res: Response): Response {
  for (const [k, v] of Object.entries(rpcCorsHeaders)) res.headers.set(k, v)
  return res
}

/** An error answer before any call: trailers-only for gRPC-Web, the error JSON (or end-stream) for Connect. */
function refuse(kind: 'grpc-web' | 'connect', ct: string, code: Code, message: string): Response {
  if (kind === 'grpc-web') {
    const type = /\+json/i.test(ct) ? 'application/grpc-web+json' : 'application/grpc-web+proto'
    return withCors(
      new Response(null, {
        status: 200,
        headers: { 'content-type': type, 'grpc-status': String(code), 'grpc-message': grpcPercentEncode(message) },
      }),
    )
  }
  const error = JSON.stringify({ code: codeToString(code), message })
  if (/^application\/connect\+/i.test(ct)) {
    // A Connect stream ends with an end-stream message (flag 2) that carries the error.
    const json = new TextEncoder().encode(`{"error":${error}}`)
    const frame = new Uint8Array(5 + json.length)
    frame[0] = 2
    new DataView(frame.buffer).setUint32(1, json.length)
    frame.set(json, 5)
    return withCors(new Response(frame, { status: 200, headers: { 'content-type': ct } }))
  }
  return withCors(
    new Response(error, { status: codeToHttpStatus(code), headers: { 'content-type': 'application/json' } }),
  )
}

/** Percent-encoding as the gRPC spec says: bytes outside printable ASCII, and '%'. */
function grpcPercentEncode(text: string): string {
  return Array.from(new TextEncoder().encode(text), (b) =>
    b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
  ).join('')
}

/** ConnectRPC's texts for transport-level failures, as grpc-go (etcd's server) words them; others unchanged. */
export function etcdTransportText(text: string): string {
  const size = /^message size (?:(\d+) )?is larger than configured readMaxBytes (\d+)$/.exec(text)
  if (size) return `grpc: received message larger than max (${size[1] ?? `> ${size[2]}`} vs. ${size[2]})`
  const parse = /^parse binary: (.*)$/.exec(text)
  if (parse) return `grpc: error unmarshalling request: ${parse[1] === 'premature EOF' ? 'unexpected EOF' : parse[1]}`
  return text
}

/**
 * The response with ConnectRPC's transport texts in grpc-go's words: in a gRPC-Web trailer frame (flag 0x80), a
 * Connect end-stream message (flag 2) or a Connect unary error body. Every other chunk passes untouched.
 */
async function etcdTexts(kind: 'grpc-web' | 'connect', res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const body = res.body
  if (body === undefined || Symbol.iterator in body) return res
  const ct = new Headers(res.header).get('content-type') ?? ''
  if (kind === 'connect' && res.status !== 200 && /^application\/json/i.test(ct)) {
    const chunks: Uint8Array[] = []
    for await (const c of body) chunks.push(c)
    const text = new TextDecoder().decode(concat(chunks))
    let out = text
    try {
      const e = JSON.parse(text) as { message?: unknown }
      if (typeof e.message === 'string') out = JSON.stringify({ ...e, message: etcdTransportText(e.message) })
    } catch {}
    const header = new Headers(res.header)
    header.delete('content-length')
    return { ...res, header, body: once(new TextEncoder().encode(out)) }
  }
  const flag = kind === 'grpc-web' ? 0x80 : 0x02
  return { ...res, body: mapChunks(body, (c) => (c.length >= 5 && c[0] === flag ? rewriteEndFrame(kind, c) : c)) }
}

async function* once(b: Uint8Array): AsyncIterable<Uint8Array> {
  yield b
}

async function* mapChunks(
  body: AsyncIterable<Uint8Array>,
  fn: (c: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array> {
  for await (const c of body) yield fn(c)
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let off = 0
  for (const c of chunks) {
    out.set(c, off)
    off += c.length
  }
  return out
}

/** One end frame (the whole envelope in `c`) with the message in etcd's words; `c` itself when nothing changes. */
function rewriteEndFrame(kind: 'grpc-web' | 'connect', c: Uint8Array): Uint8Array {
  const len = new DataView(c.buffer, c.byteOffset, c.byteLength).getUint32(1)
  if (c.length !== 5 + len) return c
  const text = new TextDecoder().decode(c.subarray(5))
  let out = text
  if (kind === 'grpc-web') {
    out = text.replace(/^(grpc-message:\s*)(.*?)(\r?)$/im, (all, head: string, value: string, cr: string) => {
      let decoded: string
      try {
        decoded = decodeURIComponent(value)
      } catch {
        return all
      }
      return `${head}${grpcPercentEncode(etcdTransportText(decoded))}${cr}`
    })
  } else {
    try {
      const end = JSON.parse(text) as { error?: { message?: unknown } }
      if (typeof end.error?.message === 'string')
        out = JSON.stringify({ ...end, error: { ...end.error, message: etcdTransportText(end.error.message) } })
    } catch {}
  }
  if (out === text) return c
  const json = new TextEncoder().encode(out)
  const frame = new Uint8Array(5 + json.length)
  frame[0] = c[0]!
  new DataView(frame.buffer).setUint32(1, json.length)
  frame.set(json, 5)
  return frame
}
