/**
 * The Node entry point of a member: opens the data dir, derives ids as etcd does, starts the member and serves the
 * Hono app on every --listen-client-urls address (HTTP and the WebSocket watch). SIGTERM and SIGINT stop it
 * cleanly: listeners close, in-flight requests are answered, the WAL is synced.
 */

import { readFileSync } from 'node:fs'
import type { Server as HttpServer } from 'node:http'
import type { Http2Server, ServerHttp2Session } from 'node:http2'
import type { Server as NetServer, Socket } from 'node:net'
import { createAdaptorServer, getRequestListener, upgradeWebSocket } from '@hono/node-server'
import type { WebSocketServer } from 'ws'
import { grpcRecvBytesMax } from '../../api/http/app.js'
import { HttpMetrics } from '../../api/http/metrics.js'
import { bootMember, createMemberApp } from '../../embed/bootstrap.js'
import { type ServerConfig, validateServerConfig } from '../../etcdserver/config.js'
import type { Member } from '../../etcdserver/member.js'
import { createFrontListener, createGrpcServer } from './grpc.js'
import { checkIdentity } from './identity.js'
import { createLogger, type Logger } from './log.js'
import { nodePeerDialer, peerFrameBytesMax } from './peer-dial.js'
import { nodeProcessStats } from './process-stats.js'
import { SplitWebSocketServer } from './split-wss.js'
import { openNodeStorage } from './storage.js'
import { loadNodeTls } from './tls.js'
import { replicaScript } from './ui-assets.js'

// Node 20 lacks ErrorEvent/CloseEvent, which hono's WebSocket helpers construct: without them onError never runs.
const g = globalThis as Record<string, unknown>
if (g.ErrorEvent === undefined) {
  g.ErrorEvent = class ErrorEvent extends Event {
    readonly error: unknown
    readonly message: string
    constructor(type: string, init: { error?: unknown; message?: string } = {}) {
      super(type)
      this.error = init.error
      this.message = init.message ?? ''
    }
  }
}
if (g.CloseEvent === undefined) {
  g.CloseEvent = class CloseEvent extends Event {
    readonly code: number
    readonly reason: string
    readonly wasClean: boolean
    constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
      super(type)
      this.code = init.code ?? 0
      this.reason = init.reason ?? ''
      this.wasClean = init.wasClean ?? false
    }
  }
}

export interface RunningMember {
  member: Member
  urls: string[]
  stop(): Promise<void>
}

/**
 * Starts a member from a configuration; resolves once it listens. As etcd, it binds every listener first, so a port
 * in use fails the start before the data dir is locked or a peer dialed; a failure later in the start closes the
 * listeners again. Requests that arrive before the member is up wait for it (HTTP/1.1) or are refused at the
 * connection (gRPC: clients reconnect with backoff, as to an etcd that is not ready yet).
 */
export async function startNodeMember(
  config: ServerConfig,
  log: Logger = createLogger(config.logLevel),
  hooks: { onFatal?: (err: unknown) => void; nowMs?: () => number } = {},
): Promise<RunningMember> {
  validateServerConfig(config)
  const tls = loadNodeTls(config)
  let stopping: Promise<void> | undefined
  type App = ReturnType<typeof createMemberApp>
  let resolveApp!: (app: App) => void
  let rejectApp!: (err: unknown) => void
  const appReady = new Promise<App>((resolve, reject) => {
    resolveApp = resolve
    rejectApp = reject
  })
  appReady.catch(() => {})
  let app: App | undefined
  const fetch = async (req: Request, env: unknown) => (app ?? (await appReady)).fetch(req, env as never)
  const metrics = new HttpMetrics(nodeProcessStats())
  const servers: HttpServer[] = []
  const fronts: NetServer[] = []
  const h2Sessions: Set<ServerHttp2Session>[] = []
  const socketServers: WebSocketServer[] = []
  const urls: string[] = []
  /** Per listener: installs its gRPC server once the member exists. */
  const installGrpc: ((member: Member, app: App) => void)[] = []
  // The HTTP and gRPC front doors share the member's bound on watch streams.
  const watchStreams = { n: 0 }
  /**
   * Every connection the front listeners accepted. The HTTP/1.1 servers never listen themselves (the front listener
   * hands them their connections), and Node tracks an http.Server's connections only from its 'listening' event, so
   * their closeAllConnections() sees none: stop() ends these sockets itself.
   */
  const accepted = new Set<Socket>()
  const destroyAccepted = () => {
    for (const socket of accepted) socket.destroy()
    accepted.clear()
  }
  const closeListeners = async () => {
    const closed = fronts.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))
    for (const wss of socketServers) for (const ws of wss.clients) ws.terminate()
    for (const s of servers) s.closeAllConnections()
    destroyAccepted()
    for (const set of h2Sessions) for (const session of set) session.destroy()
    await Promise.all(closed)
  }
  let member: Member
  let memberId: string
  let clusterId: string
  try {
    // --listen-peer-urls adds listeners (peers are served on every listener, the client ones included).
    const same = (a: string, b: string) => {
      const x = new URL(a)
      const y = new URL(b)
      return x.protocol === y.protocol && x.hostname === y.hostname && x.port === y.port
    }
    const listeners: [string, string][] = [
      ...config.listenClientUrls.map((u): [string, string] => [u, 'listen-client-urls']),
      ...config.listenPeerUrls
        .filter((u) => !config.listenClientUrls.some((c) => same(c, u)))
        .map((u): [string, string] => [u, 'listen-peer-urls']),
    ]
    for (const [u, flag] of listeners) {
      const url = new URL(u)
      // One WebSocket server per listener serves the client watch and /raft, each with its own frame limit.
      const wss = new SplitWebSocketServer(peerFrameBytesMax, grpcRecvBytesMax(config.maxRequestBytes))
      socketServers.push(wss, wss.clients2)
      // HTTP/1.1: the Hono app (never listens itself; the front listener hands it its connections, TLS already done).
      const h1 = createAdaptorServer({
        fetch,
        hostname: url.hostname,
        websocket: { server: wss as never },
      }) as HttpServer
      // HTTP/2 (gRPC): the real server exists once the member does; until then a connection is refused.
      let h2: Http2Server | undefined
      const h2Gate = {
        emit: (event: string, socket: Socket) => (h2 ? h2.emit(event, socket) : (socket.destroy(), false)),
      } as unknown as Http2Server
      installGrpc.push((m, a) => {
        const g = createGrpcServer({
          config,
          member: m,
          appListener: getRequestListener(a.fetch, { hostname: url.hostname }) as never,
          verifiedCn: tls.verifiedCn,
          watchStreams,
          metrics,
        })
        h2Sessions.push(g.sessions)
        h2 = g.server
      })
      // As etcd's "rejected connection" warnings: plain HTTP, a missing or untrusted client certificate.
      const front = createFrontListener(h1, h2Gate, url.protocol === 'https:' ? tls.server : undefined, (err, socket) =>
        log.warn('rejected connection: TLS handshake failed', {
          address: socket.remoteAddress,
          error: (err as { code?: string }).code ?? err.message,
        }),
      )
      front.on('connection', (socket: Socket) => {
        accepted.add(socket)
        socket.once('close', () => accepted.delete(socket))
      })
      servers.push(h1)
      fronts.push(front)
      await new Promise<void>((resolve, reject) => {
        front.once('error', (err: Error) => {
          // A server that failed to bind is not listening: nothing to close but the handle.
          front.close()
          reject(new Error(`cannot listen on ${u} (--${flag}): ${err.message}`))
        })
        front.listen(Number(url.port), url.hostname, () => {
          const addr = front.address()
          const port = typeof addr === 'object' && addr ? addr.port : Number(url.port)
          if (flag === 'listen-client-urls') urls.push(`${url.protocol}//${url.hostname}:${port}`)
          resolve()
        })
      })
    }
    ;({ member, memberId, clusterId } = await bootMember(
      config,
      log,
      {
        openStorage: openNodeStorage,
        checkIdentity,
        readText: (path) => readFileSync(path, 'utf8'),
        dial: nodePeerDialer(tls.peer),
        fetch: tls.fetch,
      },
      (err) => {
        hooks.onFatal?.(err)
        void stop()
      },
      hooks.nowMs,
    ))
  } catch (err) {
    rejectApp(err)
    await closeListeners()
    throw err
  }
  app = createMemberApp(
    member,
    config,
    log,
    upgradeWebSocket as never,
    config.clientCertAuth || config.peerClientCertAuth
      ? {
          client: config.clientCertAuth,
          peer: config.peerClientCertAuth,
          verifiedCn: (c, use) =>
            tls.verifiedCn((c.env as { incoming?: { socket?: Socket } } | undefined)?.incoming?.socket, use),
        }
      : undefined,
    undefined,
    replicaScript,
    // One set of grpc_server_* counters for the JSON gateway's calls and the gRPC front door's.
    metrics,
  )
  for (const install of installGrpc) install(member, app)
  resolveApp(app)
  log.info('serving client requests', { name: config.name, memberId, clusterId, urls, dataDir: config.dataDir })

  async function stop(): Promise<void> {
    stopping ??= (async () => {
      log.info('stopping', { name: config.name })
      // Stop accepting; idle keep-alive connections go now, busy ones once their response is written.
      const closed = fronts.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))
      for (const s of servers) s.closeIdleConnections()
      for (const set of h2Sessions) for (const session of set) session.close()
      // Hand leadership over and checkpoint leases while peers are still connected, then sync and stop.
      await member.stop()
      // Sockets (watch streams, peers) never finish on their own: end them.
      for (const wss of socketServers) for (const ws of wss.clients) ws.terminate()
      for (const s of servers) s.closeAllConnections()
      for (const set of h2Sessions) for (const session of set) session.destroy()
      destroyAccepted()
      await Promise.all(closed)
      log.info('stopped', { name: config.name })
    })()
    return stopping
  }
  return { member, urls, stop }
}
