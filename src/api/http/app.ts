/**
 * Layer: src/api/http, the HTTP front door (etcd's grpc-gateway JSON API plus /health, /metrics, /version and the
 * /raft peer socket upgrade). Owns the Hono app, the JSON codec (codec/), the streaming JSON splitter for watch
 * bodies (json-stream.ts), the Prometheus text rendering (metrics.ts) and the mapping of EtcdError to HTTP status and
 * body (errors.ts). It talks to the member only through MemberApi (src/etcdserver/api.ts).
 * May import: src/protocol, src/etcdserver (the API interface, version), src/auth, src/kv, hono. Web-standard APIs
 * only; nothing below it imports this folder.
 */
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { UpgradeWebSocket } from 'hono/ws'
import type { AuthInfo } from '../../auth/store.js'
import { tokenFromSubprotocols } from '../../auth/token.js'
import type { MemberApi } from '../../etcdserver/api.js'
import { etcdVersion } from '../../etcdserver/version.js'
import * as M from '../../protocol/descriptors.js'
import { EtcdError, etcdError, GrpcCode, httpStatus } from '../../protocol/errors.js'
import type { WatchRequest, WatchResponse } from '../../protocol/types.js'
import { decodeMessage } from './codec/decode.js'
import { encodeMessage } from './codec/encode.js'
import { checkRequestSize, protoSize } from './codec/proto-size.js'
import { watchResultJson, watchResultParts } from './codec/watch-json.js'
import { installConsole } from './console.js'
import { errorBody, toEtcdError } from './errors.js'
import { JsonValueSplitter } from './json-stream.js'
import { HttpMetrics, type ProcessStats } from './metrics.js'

export interface AppOptions {
  /** etcd's --max-request-bytes (default 1.5 MiB): a write request larger than this is refused. */
  maxRequestBytes: number
  /** etcd's --max-txn-ops (default 128): checked before the size of a too large txn, as etcd. */
  maxTxnOps?: number
  /** Runtime's WebSocket upgrade helper (hono/ws), for GET /v3/watch. Without it, the WebSocket watch is off. */
  upgradeWebSocket?: UpgradeWebSocket<any>
  /** Upper bound of concurrent watch streams (HTTP and WebSocket) per member. */
  maxWatchStreams: number
  /** Called when a /raft upgrade is refused (not a member, another cluster, no peer certificate), for the log. */
  onPeerRefused?: (claimedId: string, address: string, reason?: string) => void
  /**
   * Mutual TLS, read by the runtime from the connection: the CN of the request's client certificate when it chains
   * to the CA set of `use` ('client': --trusted-ca-file, 'peer': --peer-trusted-ca-file), else undefined. `client` /
   * `peer`: client routes / /raft require such a certificate; with `client` and auth on, a request without a token
   * acts as the user its CN names (etcd's AuthInfoFromTLS).
   */
  mtls?: { client: boolean; peer: boolean; verifiedCn(c: Context, use: 'client' | 'peer'): string | undefined }
  /** The runtime's process figures for process_* in /metrics (resident memory, CPU seconds, start time). */
  processStats?: () => ProcessStats
  /** The browser replica's ES module for GET /ui/replica.js (docs/replica.md); without it the route answers 404. */
  uiReplicaScript?: () => Promise<string>
  /** The gRPC and gateway counters, when the runtime shares them with its gRPC front door; else the app makes its own. */
  metrics?: HttpMetrics
  /**
   * etcd's gRPC services over fetch (gRPC-Web and Connect, src/api/grpc/fetch.ts), asked first for every request:
   * answers undefined for one that is not an RPC (any JSON API request), which then goes on unchanged.
   */
  rpc?: {
    /** Whether the request is a gRPC-Web or Connect call (or its preflight), from its path, method and type alone. */
    accepts(path: string, method: string, contentType: string | undefined): boolean
    handle(
      req: Request,
      caller: { address: string; certUser: string | undefined; certMissing: boolean },
    ): Promise<Response>
  }
}

/** gRPC's receive limit in etcd: the request limit plus 512 KiB of overhead (2 MiB by default). */
/** Sends an error frame; a socket that is gone (send throws) is left to its close event. */
function trySend(ws: { send(data: string): void }, text: string): void {
  try {
    ws.send(text)
  } catch {}
}

/** The frame a WebSocket watch client gets for a message over the receive limit (etcd's ResourceExhausted). */
export function oversizeWatchFrame(size: number, recvMax: number): string {
  const e = etcdError(GrpcCode.ResourceExhausted, `grpc: received message larger than max (${size} vs. ${recvMax})`)
  return `{"error":{"grpc_code":${e.grpcCode},"http_code":${httpStatus(e.grpcCode)},"message":${JSON.stringify(e.message)},"http_status":"Too Many Requests"}}`
}

export function grpcRecvBytesMax(maxRequestBytes: number): number {
  return maxRequestBytes + 512 * 1024
}

const corsHeaders: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
}

const jsonHeaders = { 'Content-Type': 'application/json', 'Grpc-Metadata-Content-Type': 'application/grpc' }

function errorResponse(c: Context, err: unknown): Response {
  const e = toEtcdError(err)
  return c.body(errorBody(e), httpStatus(e.grpcCode) as 400, { 'Content-Type': 'application/json' })
}

type Handler = (
  body: string,
  authorization: string | undefined,
  address: string,
  certUser: string | undefined,
) => Promise<string>

/**
 * The client's address for authenticate's failure limits: @hono/node-server puts the socket in c.env.incoming, the
 * Deno entry passes Deno.serve's handler info (remoteAddr) as c.env.
 */
function clientAddress(c: Context): string {
  const env = c.env as
    | { incoming?: { socket?: { remoteAddress?: string } }; remoteAddr?: { hostname?: string } }
    | undefined
  return env?.incoming?.socket?.remoteAddress ?? env?.remoteAddr?.hostname ?? ''
}

/** The size in bytes of a WebSocket message (UTF-8 for text; encoded only when it could be large). */
function frameBytes(data: unknown): number {
  if (typeof data === 'string') return data.length * 3 < 64 * 1024 ? data.length : new TextEncoder().encode(data).length
  if (data instanceof ArrayBuffer) return data.byteLength
  if (ArrayBuffer.isView(data)) return data.byteLength
  if (data instanceof Blob) return data.size
  return 0
}

/** Messages of one tick an HTTP watch stream still sends as one chunk each (etcd flushes per message). */
const perMessageChunksMax = 64
/** Bytes an HTTP watch stream holds for a client that does not read, before the hub holds events back. */
const watchStreamHighWaterBytes = 1024 * 1024
/** Bytes buffered on a watch WebSocket before the client counts as slow. */
const watchSocketHighWaterBytes = 1024 * 1024

/**
 * The runtime-agnostic Hono app: etcd's v3 JSON gateway (unary RPCs, streaming watch and keepalive, the WebSocket
 * watch), /health, /version, /metrics. Each runtime's entry point serves `app.fetch`.
 */
/** What the middleware hands the WebSocket handlers: the watch caller and the authenticated peer. */
type AppEnv = { Variables: { authInfo: AuthInfo | undefined; peer: string } }

export function createApp(member: MemberApi, opts: AppOptions): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const metrics = opts.metrics ?? new HttpMetrics(opts.processStats)
  let watchStreams = 0

  // gRPC-Web and Connect calls (`POST /etcdserverpb.KV/Range`, a gRPC-Web or Connect content type) and their CORS
  // preflights: before the JSON API's middleware, so its answers and headers stay as they are.
  const rpcDoor = opts.rpc
  if (rpcDoor)
    app.use('*', (c, next) => {
      // Decided on the path and headers: c.req.raw would make @hono/node-server build a full web Request.
      if (!rpcDoor.accepts(c.req.path, c.req.method, c.req.header('content-type'))) return next()
      const m = opts.mtls
      const client = m?.client ? m.verifiedCn(c, 'client') : undefined
      return rpcDoor.handle(c.req.raw, {
        address: clientAddress(c),
        certUser: client,
        certMissing: m?.client === true && client === undefined && m.verifiedCn(c, 'peer') === undefined,
      })
    })
  app.use('*', async (c, next) => {
    await next()
    for (const [k, v] of Object.entries(corsHeaders)) c.res.headers.set(k, v)
  })
  app.options('*', (c) => c.body(null, 200, { 'Content-Length': '0' }))
  // Mutual TLS: client routes need a certificate from --trusted-ca-file, or a peer's (members forward some calls to
  // the leader's client URL; a peer can propose anything through /raft already). /raft checks the peer set below.
  const mtls = opts.mtls
  if (mtls?.client)
    app.use('*', async (c, next) => {
      if (
        c.req.path === '/raft' ||
        mtls.verifiedCn(c, 'client') !== undefined ||
        mtls.verifiedCn(c, 'peer') !== undefined
      )
        return next()
      return c.body('client certificate required\n', 401, { 'Content-Type': 'text/plain; charset=utf-8' })
    })
  const certUser = (c: Context) => (mtls?.client ? mtls.verifiedCn(c, 'client') : undefined)

  // etcd serves clients only once the member has published its name and client URLs through the log (ReadyNotify),
  // so a member that answers is in the member list with its client URLs. Peers (/raft) and the member's own
  // /health, /version and /metrics do not wait. etcd leaves the connection waiting; here it waits at most the
  // request timeout, then gets etcd's "request timed out".
  const clientReady: MiddlewareHandler = async (c, next) => {
    if (member.isReady === undefined || member.isReady()) return next()
    const p = c.req.path
    if (p === '/raft' || p === '/health' || p === '/version' || p === '/metrics' || c.req.method === 'OPTIONS')
      return next()
    if (await member.whenReady!()) return next()
    return errorResponse(c, new EtcdError('ErrTimeout'))
  }
  app.use('*', clientReady)

  app.get('/version', (c) => c.json(etcdVersion))
  // etcd 3.4 writes a healthy answer without a content type (Go sniffs text/plain), an unhealthy one with http.Error
  // (a newline, nosniff), and says why in neither: false without a leader heard from within an election timeout,
  // with an active alarm, and before the member has published itself.
  app.get('/health', (c) => {
    if (member.healthy()) {
      metrics.healthSuccess.inc()
      return c.body('{"health":"true"}', 200, { 'Content-Type': 'text/plain; charset=utf-8' })
    }
    metrics.healthFailures.inc()
    return c.body('{"health":"false"}\n', 503, {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
    })
  })
  app.get('/metrics', (c) =>
    c.text(member.metrics() + metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }),
  )
  installHealthChecks(app, member, metrics)
  installConsole(app)

  // The browser replica (docs/replica.md): one self-contained ES module, provided by the runtime.
  app.get('/ui/replica.js', async (c) => {
    if (!opts.uiReplicaScript)
      return c.body('404 page not found\n', 404, { 'Content-Type': 'text/plain; charset=utf-8' })
    try {
      const js = await opts.uiReplicaScript()
      return c.body(js, 200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-cache' })
    } catch (err) {
      return c.body(`replica.js is not available: ${(err as Error)?.message ?? err}\n`, 500, {
        'Content-Type': 'text/plain; charset=utf-8',
      })
    }
  })

  const recvMax = grpcRecvBytesMax(opts.maxRequestBytes)
  // etcd limits the protobuf message, which the gateway builds from any JSON body; here the decoded request is
  // measured the same way (protoSize below), and the body itself is bounded, for memory, at three times the limit
  // (base64 makes a message's bytes 4/3 as long in JSON). A body past that is refused unread.
  const bodyMax = 3 * recvMax
  const tooLarge = (c: Context) => {
    const n = Number(c.req.header('content-length') ?? bodyMax + 1)
    const e = etcdError(GrpcCode.ResourceExhausted, `grpc: received message larger than max (${n} vs. ${recvMax})`)
    return c.body(errorBody(e), 429, { 'Content-Type': 'application/json', Connection: 'close' })
  }
  const streamedLimit = bodyLimit({ maxSize: bodyMax, onError: tooLarge })
  // hono's bodyLimit decides the same way for a body with a Content-Length, but first asks for `c.req.raw.body`,
  // which makes @hono/node-server build a full web Request (a web stream over the socket, an AbortController) for
  // every call: a quarter of the CPU of a small request. Reading the headers instead keeps its lightweight request,
  // whose text() reads the body directly. Chunked bodies still go through bodyLimit, which counts as it reads.
  const limit: MiddlewareHandler = async (c, next) => {
    const length = c.req.header('content-length')
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number.parseInt(length, 10) > bodyMax) return tooLarge(c)
      await next()
      return
    }
    return streamedLimit(c, next)
  }

  const unary = (path: string, method: string, handler: Handler) => {
    for (const prefix of ['/v3', '/v3beta']) {
      app.post(prefix + path, limit, async (c) => {
        const call = metrics.start(method)
        try {
          const body = await c.req.text()
          call.received(body.length)
          const out = await handler(body, c.req.header('authorization'), clientAddress(c), certUser(c))
          call.sent(out.length)
          call.end(0)
          return c.body(out, 200, jsonHeaders)
        } catch (err) {
          const e = toEtcdError(err)
          call.end(e.grpcCode)
          return errorResponse(c, e)
        }
      })
    }
  }
  /** A body this short cannot come near either limit: not measured. */
  const smallBody = Math.min(opts.maxRequestBytes, 1024) / 2
  const limits = { maxRequestBytes: opts.maxRequestBytes, maxTxnOps: opts.maxTxnOps ?? 128 }
  // Auth: `authorize` checks the call on this member (a no-op while auth is off) and names the caller, which writes
  // carry into the log for the apply-time check (src/auth/service.ts).
  const rpc = <Req, Res>(
    path: string,
    method: string,
    req: M.MessageDesc<Req>,
    res: M.MessageDesc<Res>,
    fn: (
      r: Req,
      info: AuthInfo | undefined,
      address: string,
      authorization: string | undefined,
    ) => Promise<NoInfer<Res>>,
  ) =>
    unary(path, method, async (body, authorization, address, cn) => {
      const r = decodeMessage<Req>(req, body)
      // gRPC's receive limit, on the request's protobuf length (etcd: ResourceExhausted, before anything else).
      let size = 0
      try {
        size = body.length > smallBody ? protoSize(req, r as Record<string, unknown>) : 0
      } catch (err) {
        // Nested past the sizer's stack: only a txn nests, and one nested that deep has more ops than etcd allows
        // (each level counts against the one above); etcd answers it so.
        if (err instanceof RangeError) throw new EtcdError('ErrTooManyOps')
        throw err
      }
      if (size > recvMax)
        throw etcdError(GrpcCode.ResourceExhausted, `grpc: received message larger than max (${size} vs. ${recvMax})`)
      const a = member.authorize?.(method, r, authorization, cn)
      const info = a instanceof Promise ? await a : a
      // --max-request-bytes, on the raft request etcd would propose for a write (its header names the user).
      if (size > 0) checkRequestSize(method, r, size, limits, info ? { name: info.user, rev: info.rev } : undefined)
      return encodeMessage(res, await fn(r, info, address, authorization))
    })

  rpc('/kv/range', 'Range', M.RangeRequest, M.RangeResponse, (r) => member.range(r))
  rpc('/kv/put', 'Put', M.PutRequest, M.PutResponse, (r, i) => member.put(r, i))
  rpc('/kv/deleterange', 'DeleteRange', M.DeleteRangeRequest, M.DeleteRangeResponse, (r, i) => member.deleteRange(r, i))
  rpc('/kv/txn', 'Txn', M.TxnRequest, M.TxnResponse, (r, i) => member.txn(r, i))
  rpc('/kv/compaction', 'Compact', M.CompactionRequest, M.HeaderOnlyResponse, (r, i) => member.compact(r, i))
  rpc('/lease/grant', 'LeaseGrant', M.LeaseGrantRequest, M.LeaseGrantResponse, (r) => member.leaseGrant(r))
  for (const p of ['/lease/revoke', '/kv/lease/revoke'])
    rpc(p, 'LeaseRevoke', M.LeaseRevokeRequest, M.HeaderOnlyResponse, (r, i) => member.leaseRevoke(r, i))
  for (const p of ['/lease/timetolive', '/kv/lease/timetolive'])
    rpc(p, 'LeaseTimeToLive', M.LeaseTimeToLiveRequest, M.LeaseTimeToLiveResponse, (r, _i, _a, authorization) =>
      member.leaseTimeToLive(r, authorization),
    )
  for (const p of ['/lease/leases', '/kv/lease/leases'])
    rpc(p, 'LeaseLeases', M.LeaseLeasesRequest, M.LeaseLeasesResponse, () => member.leaseLeases())
  rpc('/maintenance/status', 'Status', M.StatusRequest, M.StatusResponse, () => member.status())
  // etcd 3.4's maintenance server answers alarms without a header (`{}` when none is active).
  rpc('/maintenance/alarm', 'Alarm', M.AlarmRequest, M.AlarmResponse, (r) =>
    member.alarm(r).then((x) => ({ alarms: x.alarms })),
  )
  rpc('/maintenance/hash', 'Hash', M.HashRequest, M.HashResponse, () => member.hash())
  // Nothing to defragment (no bolt file): etcd 3.4's answer to a defragment, `{}` (no header). Root only under auth.
  rpc('/maintenance/defragment', 'Defragment', M.HashRequest, M.HeaderOnlyResponse, async () => ({}) as never)
  rpc('/maintenance/hashkv', 'HashKV', M.HashKVRequest, M.HashKVResponse, (r) => member.hashKV(r))
  rpc('/cluster/member/list', 'MemberList', M.MemberListRequest, M.MemberListResponse, () => member.memberList())
  rpc('/cluster/member/add', 'MemberAdd', M.MemberAddRequest, M.MemberAddResponse, (r) => member.memberAdd(r))
  rpc('/cluster/member/remove', 'MemberRemove', M.MemberRemoveRequest, M.MembersResponse, (r) => member.memberRemove(r))
  rpc('/cluster/member/update', 'MemberUpdate', M.MemberUpdateRequest, M.MembersResponse, (r) => member.memberUpdate(r))
  rpc('/cluster/member/promote', 'MemberPromote', M.MemberPromoteRequest, M.MembersResponse, (r) =>
    member.memberPromote(r),
  )
  rpc('/maintenance/transfer-leadership', 'MoveLeader', M.MoveLeaderRequest, M.HeaderOnlyResponse, (r) =>
    member.moveLeader(r),
  )

  // ---- auth: etcd 3.4's /v3/auth/* (plus 3.5's status), and the token verification key ----
  const auth = member.auth
  if (auth) {
    rpc('/auth/enable', 'AuthEnable', M.AuthEnableRequest, M.HeaderOnlyResponse, (_r, i) => auth.enable(i))
    rpc('/auth/disable', 'AuthDisable', M.AuthDisableRequest, M.HeaderOnlyResponse, (_r, i) => auth.disable(i))
    rpc('/auth/status', 'AuthStatus', M.AuthStatusRequest, M.AuthStatusResponse, () => auth.status())
    rpc('/auth/authenticate', 'Authenticate', M.AuthenticateRequest, M.AuthenticateResponse, (r, _i, address) =>
      auth.authenticate(r, address),
    )
    rpc('/auth/user/add', 'UserAdd', M.AuthUserAddRequest, M.HeaderOnlyResponse, (r, i) => auth.userAdd(r, i))
    rpc('/auth/user/get', 'UserGet', M.AuthUserGetRequest, M.AuthUserGetResponse, (r, i) => auth.userGet(r, i))
    rpc('/auth/user/list', 'UserList', M.AuthUserListRequest, M.AuthUserListResponse, (_r, i) => auth.userList(i))
    rpc('/auth/user/delete', 'UserDelete', M.AuthUserDeleteRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.userDelete(r, i),
    )
    rpc('/auth/user/changepw', 'UserChangePassword', M.AuthUserChangePasswordRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.userChangePassword(r, i),
    )
    rpc('/auth/user/grant', 'UserGrantRole', M.AuthUserGrantRoleRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.userGrantRole(r, i),
    )
    rpc('/auth/user/revoke', 'UserRevokeRole', M.AuthUserRevokeRoleRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.userRevokeRole(r, i),
    )
    rpc('/auth/role/add', 'RoleAdd', M.AuthRoleAddRequest, M.HeaderOnlyResponse, (r, i) => auth.roleAdd(r, i))
    rpc('/auth/role/get', 'RoleGet', M.AuthRoleGetRequest, M.AuthRoleGetResponse, (r, i) => auth.roleGet(r, i))
    rpc('/auth/role/list', 'RoleList', M.AuthRoleListRequest, M.AuthRoleListResponse, (_r, i) => auth.roleList(i))
    rpc('/auth/role/delete', 'RoleDelete', M.AuthRoleDeleteRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.roleDelete(r, i),
    )
    rpc('/auth/role/grant', 'RoleGrantPermission', M.AuthRoleGrantPermissionRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.roleGrantPermission(r, i),
    )
    rpc('/auth/role/revoke', 'RoleRevokePermission', M.AuthRoleRevokePermissionRequest, M.HeaderOnlyResponse, (r, i) =>
      auth.roleRevokePermission(r, i),
    )
    app.get('/.well-known/jwks.json', async (c) => {
      const jwks = await auth.jwks()
      return jwks ? c.json(jwks) : c.json({ keys: [] })
    })
  }

  /** Keepalives in one POST /v3/lease/keepalive body (edgecd's bound; etcd's gateway has none). */
  const leaseKeepAlivesPerRequestMax = 1000

  // ---- streams: etcd's gateway answers `{"result":...}\n` lines, chunked ----

  /** Reads a request body incrementally, calling onValue for each JSON value; resolves at end of body. */
  async function readValues(req: Request, onValue: (text: string, index: number) => boolean): Promise<string> {
    const splitter = new JsonValueSplitter()
    let n = 0
    let bytes = 0
    if (!req.body) return ''
    const reader = req.body.pipeThrough(new TextDecoderStream()).getReader()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      bytes += value.length
      if (bytes > recvMax * 64) break // a stream is many messages, but not unbounded
      for (const v of splitter.push(value)) if (!onValue(v, n++)) return ''
    }
    return splitter.rest()
  }

  for (const prefix of ['/v3', '/v3beta']) {
    app.post(prefix + '/lease/keepalive', async (c) => {
      // Answers each {ID} of the body, then ends (etcd-api.md §5).
      const enc = new TextEncoder()
      const pending: Promise<string>[] = []
      let firstError: EtcdError | undefined
      const call = metrics.start('LeaseKeepAlive')
      const authorization = c.req.header('authorization')
      const rest = await readValues(c.req.raw, (text, i) => {
        if (i >= leaseKeepAlivesPerRequestMax) {
          // A body of a million ids would hold a million renewals in flight: refuse it with a clear error.
          firstError = new EtcdError('ErrTooManyLeaseKeepAlives')
          return false
        }
        try {
          call.received(text.length)
          const r = decodeMessage(M.LeaseKeepAliveRequest, text)
          pending.push(
            member
              .leaseKeepAlive(r, authorization)
              .then((res) => `{"result":${encodeMessage(M.LeaseKeepAliveResponse, res)}}\n`),
          )
          return true
        } catch (err) {
          if (i === 0) firstError = etcdError(GrpcCode.Unknown, toEtcdError(err).message)
          return false
        }
      })
      if (!firstError && pending.length === 0 && rest !== '') {
        try {
          decodeMessage(M.LeaseKeepAliveRequest, rest)
        } catch (err) {
          firstError = etcdError(GrpcCode.Unknown, toEtcdError(err).message)
        }
      }
      if (firstError || (pending.length === 0 && rest !== '')) {
        const e = firstError ?? etcdError(GrpcCode.Unknown, 'unexpected EOF')
        call.end(e.grpcCode)
        const status = e.grpcCode === GrpcCode.ResourceExhausted ? 429 : 500
        return c.body(errorBody(e), status, { 'Content-Type': 'application/json' })
      }
      const lines = await Promise.allSettled(pending)
      for (const l of lines) if (l.status === 'fulfilled') call.sent(l.value.length)
      call.end(0)
      const out = lines.map((l) => (l.status === 'fulfilled' ? l.value : '')).join('')
      return c.body(enc.encode(out), 200, { 'Content-Type': 'application/json' })
    })

    app.post(prefix + '/watch', async (c) => {
      if (watchStreams >= opts.maxWatchStreams) return errorResponse(c, new EtcdError('ErrTooManyWatchStreams'))
      let info: AuthInfo | undefined
      try {
        info = await member.authorize?.('Watch', undefined, c.req.header('authorization'), certUser(c))
      } catch (err) {
        return errorResponse(c, err)
      }
      const enc = new TextEncoder()
      let controller!: ReadableStreamDefaultController<Uint8Array>
      let closed = false
      watchStreams++
      const call = metrics.start('Watch')
      // Messages of one tick (one event to many watchers) go out as one chunk: the stream's queue counts bytes, and a
      // burst of 10,000 messages is one enqueue, not 10,000 (each a write of its own).
      let pending: string[] = []
      let pendingBytes = 0
      let flushQueued = false
      let held = false
      const flush = () => {
        flushQueued = false
        if (closed || pending.length === 0) return
        // etcd's gateway flushes each message: one HTTP chunk per message, which clients that parse a chunk as one
        // JSON value depend on (python3-etcd3gw, OpenStack's). A large burst goes out as one chunk.
        const chunks = pending.length <= perMessageChunksMax ? pending : [pending.join('')]
        pending = []
        pendingBytes = 0
        try {
          for (const text of chunks) controller.enqueue(enc.encode(text))
        } catch {
          finish()
          return
        }
        if (held && (controller.desiredSize ?? 1) > 0) {
          held = false
          stream.resume()
        }
      }
      const stream = member.openWatchStream((resp: WatchResponse) => {
        if (closed) return true
        const text = `${watchResultJson(resp)}\n`
        pending.push(text)
        pendingBytes += text.length
        call.sent(text.length)
        if (!flushQueued) {
          flushQueued = true
          queueMicrotask(flush)
        }
        // Past the stream's high-water mark the client is slow: the hub holds events back until it drains.
        const ok = (controller.desiredSize ?? 1) - pendingBytes > 0
        if (!ok) held = true
        return ok
      }, info)
      const finish = (code = GrpcCode.Canceled as number) => {
        if (closed) return
        closed = true
        watchStreams--
        call.end(code)
        stream.close()
      }
      c.req.raw.signal?.addEventListener('abort', () => finish())
      // The first message must decode, or the whole call fails (HTTP 500, code 2), as etcd's gateway does. The answer
      // waits for that message, or for the end of the body: a body that ends inside its first value (truncated) or
      // holds no JSON value at all gets Go's error for it at once.
      const body = c.req.raw
      const firstTexts: string[] = []
      let firstSeen!: () => void
      const first = new Promise<void>((r) => {
        firstSeen = r
      })
      let values = 0
      void readValues(body, (text, i) => {
        values++
        let req: WatchRequest
        try {
          req = decodeMessage(M.WatchRequest, text)
        } catch (err) {
          if (i === 0) firstTexts.push(toEtcdError(err).message)
          firstSeen()
          return false
        }
        call.received(text.length)
        stream.request(req)
        firstSeen()
        return true
      }).then(
        (rest) => {
          if (values === 0 && rest !== '') {
            try {
              decodeMessage(M.WatchRequest, rest)
            } catch (err) {
              firstTexts.push(toEtcdError(err).message)
            }
          }
          firstSeen()
          return rest
        },
        () => {
          // The body failed (not ended): the connection is gone. A client that keeps its request body open (as a
          // bidirectional watch client does) is seen leaving here at once, also on workerd, where the response
          // side only notices at its next write (docs/workers.md).
          firstSeen()
          finish()
          return ''
        },
      )
      const rs = new ReadableStream<Uint8Array>(
        {
          start(ctl) {
            controller = ctl
          },
          pull() {
            if (closed) return
            held = false
            stream.resume()
          },
          cancel() {
            finish()
          },
        },
        { highWaterMark: watchStreamHighWaterBytes, size: (chunk) => chunk.byteLength },
      )
      await first
      if (firstTexts.length > 0) {
        finish(GrpcCode.Unknown)
        return c.body(errorBody(etcdError(GrpcCode.Unknown, firstTexts[0]!)), 500, {
          'Content-Type': 'application/json',
        })
      }
      return c.body(rs, 200, { 'Content-Type': 'application/json' })
    })

    app.post(prefix + '/maintenance/snapshot', async (c) => {
      const call = metrics.start('Snapshot')
      try {
        await member.authorize?.('Snapshot', undefined, c.req.header('authorization'), certUser(c))
        const { header, data } = await member.snapshot()
        const chunk = 32 * 1024
        let out = ''
        for (let off = 0; off < data.length || off === 0; off += chunk) {
          const blob = data.subarray(off, Math.min(off + chunk, data.length))
          out += `{"result":${encodeMessage(M.SnapshotResponse, { header, remaining_bytes: data.length - off - blob.length, blob })}}\n`
          if (data.length === 0) break
        }
        call.sent(out.length)
        call.end(0)
        return c.body(out, 200, { 'Content-Type': 'application/json' })
      } catch (err) {
        call.end(toEtcdError(err).grpcCode)
        return errorResponse(c, err)
      }
    })
  }

  // ---- the WebSocket watch: one text frame per request and per response (grpc-websocket-proxy's shape) ----
  if (opts.upgradeWebSocket) {
    const upgrade = opts.upgradeWebSocket
    for (const prefix of ['/v3', '/v3beta']) {
      app.get(
        prefix + '/watch',
        async (c, next) => {
          if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return methodNotAllowed(c)
          if (watchStreams >= opts.maxWatchStreams) return errorResponse(c, new EtcdError('ErrTooManyWatchStreams'))
          try {
            // A browser cannot set Authorization on a WebSocket: it offers the token as a subprotocol instead.
            const authorization =
              c.req.header('authorization') ?? tokenFromSubprotocols(c.req.header('sec-websocket-protocol'))
            // While auth is off the token is not read: etcd 3.4's grpc-websocket-proxy does not pass Authorization
            // on, so etcd never sees one there (a POST watch's is read: AuthService.authorize).
            if (member.authEnabled?.() !== false)
              c.set('authInfo', await member.authorize?.('Watch', undefined, authorization, certUser(c)))
          } catch (err) {
            return errorResponse(c, err)
          }
          await next()
        },
        upgrade((c) => {
          const info: AuthInfo | undefined = c.get('authInfo')
          let stream: ReturnType<MemberApi['openWatchStream']> | undefined
          const call = metrics.start('Watch')
          return {
            onOpen(_evt, ws) {
              watchStreams++
              let drainTimer: ReturnType<typeof setInterval> | undefined
              const buffered = () => (ws.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0
              // A socket that is closing or closed (or whose send throws: the runtime found it gone) ends the watch
              // stream at once: its watchers are removed and cost nothing more. A sink that throws closes its stream
              // (WatchSink); answering "sent" instead would let the stream replay its whole backlog into a dead
              // socket, whose bufferedAmount no longer grows (issue 17: a member busy for seconds after the close).
              const open = () => ws.readyState !== 2 && ws.readyState !== 3
              // A runtime's socket may take a large message in parts (Node: split-wss.ts), its events by reference.
              const sendParts = (
                ws.raw as { sendTextParts?: (h: string, b: Uint8Array, t: string) => void } | undefined
              )?.sendTextParts
              stream = member.openWatchStream((resp) => {
                if (!open()) throw new Error('watch socket closed')
                if (sendParts !== undefined) {
                  const m = watchResultParts(resp)
                  if (typeof m === 'string') {
                    ws.send(m)
                    call.sent(m.length)
                  } else {
                    sendParts(m.head, m.events, m.tail)
                    call.sent(m.head.length + m.events.byteLength + m.tail.length)
                  }
                } else {
                  const text = watchResultJson(resp)
                  ws.send(text)
                  call.sent(text.length)
                }
                if (buffered() < watchSocketHighWaterBytes) return true
                // Congested: poll the socket's buffer and resume the stream once it drained.
                drainTimer ??= setInterval(() => {
                  if (!stream) return clearInterval(drainTimer)
                  if (!open()) {
                    clearInterval(drainTimer)
                    drainTimer = undefined
                    stream.close()
                    return
                  }
                  if (buffered() < watchSocketHighWaterBytes / 2) {
                    clearInterval(drainTimer)
                    drainTimer = undefined
                    stream.resume()
                  }
                }, 20)
                return false
              }, info)
            },
            onMessage(evt, ws) {
              // A watch request is a client request: --max-request-bytes applies (as gRPC's receive limit in etcd),
              // not the peers' frame limit of the shared WebSocket server. Too large: etcd's error, then close.
              const size = frameBytes(evt.data)
              if (size > recvMax) {
                trySend(ws, oversizeWatchFrame(size, recvMax))
                ws.close(1009, 'message too big')
                return
              }
              if (typeof evt.data !== 'string') {
                trySend(
                  ws,
                  `{"error":{"grpc_code":3,"http_code":400,"message":"binary frames are not supported","http_status":"Bad Request"}}`,
                )
                return
              }
              call.received(evt.data.length)
              try {
                stream?.request(decodeMessage(M.WatchRequest, evt.data))
              } catch (err) {
                const e = toEtcdError(err)
                trySend(
                  ws,
                  `{"error":{"grpc_code":${e.grpcCode},"http_code":${httpStatus(e.grpcCode)},"message":${JSON.stringify(e.message)}}}`,
                )
              }
            },
            onClose() {
              call.end(GrpcCode.Canceled)
              if (stream) {
                stream.close()
                stream = undefined
                watchStreams--
              }
            },
            onError() {
              call.end(GrpcCode.Unavailable)
              if (stream) {
                stream.close()
                stream = undefined
                watchStreams--
              }
            },
          }
        }),
      )
    }
  }

  // ---- peers: Raft over a WebSocket on the client port; the sender must be a member, then prove the peer secret ----
  if (opts.upgradeWebSocket && member.admitPeer && member.acceptPeer) {
    const upgrade = opts.upgradeWebSocket
    const refuse = (c: Context, reason: string) => {
      opts.onPeerRefused?.(c.req.header('x-edgecd-from') ?? '', clientAddress(c), reason)
      return c.body('peer authentication failed\n', 401, { 'Content-Type': 'text/plain; charset=utf-8' })
    }
    app.get(
      '/raft',
      async (c, next) => {
        if (mtls?.peer && mtls.verifiedCn(c, 'peer') === undefined) return refuse(c, 'no valid peer certificate')
        if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return refuse(c, 'not a WebSocket upgrade')
        const admitted = member.admitPeer!({
          from: c.req.header('x-edgecd-from'),
          to: c.req.header('x-edgecd-to'),
          cluster: c.req.header('x-edgecd-cluster'),
          nonce: c.req.header('x-edgecd-nonce'),
        })
        if ('refused' in admitted) return refuse(c, admitted.refused)
        c.set('peer', admitted.from)
        await next()
      },
      upgrade((c) => {
        const from: string = c.get('peer')
        const nonce = c.req.header('x-edgecd-nonce') ?? ''
        let session: ReturnType<NonNullable<MemberApi['acceptPeer']>> | undefined
        return {
          onOpen(_evt, ws) {
            session = member.acceptPeer!(from, nonce, {
              send: (data) => ws.send(data as Uint8Array<ArrayBuffer>),
              close: (code, reason) => ws.close(code, reason),
              get bufferedAmount() {
                return (ws.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0
              },
            })
          },
          async onMessage(evt) {
            let d: unknown = evt.data
            if (typeof d === 'string') return
            if (d instanceof Blob) d = await d.arrayBuffer()
            const bytes = d instanceof Uint8Array ? d : new Uint8Array(d as ArrayBuffer)
            session?.onMessage(bytes)
          },
          onClose() {
            session?.onClose()
          },
          onError() {
            session?.onClose()
          },
        }
      }),
    )
  }

  // ---- anything else: etcd's 405 / 404 ----
  const methodNotAllowed = (c: Context) =>
    c.body('Method Not Allowed\n', 405, {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
    })
  const rpcPaths = new Set(app.routes.filter((r) => r.method === 'POST').map((r) => r.path))
  app.all('*', (c) => {
    const path = new URL(c.req.url).pathname
    if (rpcPaths.has(path)) return methodNotAllowed(c)
    if (path.startsWith('/v3/') || path.startsWith('/v3beta/'))
      return c.body('Not Found\n', 404, {
        'Content-Type': 'text/plain; charset=utf-8',
        'X-Content-Type-Options': 'nosniff',
      })
    return c.body('404 page not found\n', 404, {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
    })
  })
  return app
}

/** etcd 3.5's /livez and /readyz checks (etcdhttp/health.go): name -> the check, which throws its failure. */
function healthChecks(member: MemberApi): Record<'livez' | 'readyz', Record<string, () => Promise<void>>> {
  // etcd reads as root (auth does not apply): keys only, one key, serializable or linearizable.
  const read = (serializable: boolean) => async () => {
    const req = decodeMessage(
      M.RangeRequest,
      `{"key":"AA==","keys_only":true,"limit":1,"serializable":${serializable}}`,
    )
    await member.range(req as never)
  }
  const corruption = async () => {
    const { alarms } = await member.alarm({ action: 0, memberID: '0', alarm: 0 } as never)
    if (alarms.some((a) => a.alarm === 2)) throw new Error('alarm activated: CORRUPT')
  }
  return {
    livez: { serializable_read: read(true) },
    readyz: { data_corruption: corruption, linearizable_read: read(false), serializable_read: read(true) },
  }
}

/**
 * GET /livez and /readyz, and one path per check (/readyz/linearizable_read): 200 "ok" when every check passes
 * (`?verbose` lists them, `?exclude=name` skips one), else 503 with the list, as etcd 3.5 answers them.
 */
function installHealthChecks(app: Hono<any>, member: MemberApi, metrics: HttpMetrics): void {
  const text = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }
  const run = async (type: string, checks: Record<string, () => Promise<void>>, names: string[]) => {
    let ok = true
    let reason = ''
    for (const name of names) {
      try {
        await checks[name]!()
        reason += `[+]${name} ok\n`
        metrics.healthChecked(type, name, true)
      } catch (err) {
        ok = false
        reason += `[-]${name} failed: ${(err as Error).message}\n`
        metrics.healthChecked(type, name, false)
      }
    }
    return { ok, reason }
  }
  const handler = (type: string, checks: Record<string, () => Promise<void>>, only?: string) => async (c: Context) => {
    if (c.req.method !== 'GET') return c.body('Method Not Allowed\n', 405, { ...text, Allow: 'GET' })
    let names = only ? [only] : Object.keys(checks).sort()
    if (!only) {
      const excluded = new Set((c.req.queries('exclude') ?? []).filter((x) => x !== ''))
      names = names.filter((n) => !excluded.has(n))
    }
    const { ok, reason } = await run(type, checks, names)
    if (!ok) return c.body(reason + '\n', 503, text)
    const verbose = new URL(c.req.url).searchParams.has('verbose')
    return c.body((verbose ? reason : '') + 'ok\n', 200, text)
  }
  for (const [type, checks] of Object.entries(healthChecks(member))) {
    app.all('/' + type, handler(type, checks))
    for (const name of Object.keys(checks)) app.all(`/${type}/${name}`, handler(type, checks, name))
  }
}
