/**
 * The Node entry point of a member: opens the data dir, derives ids as etcd does, starts the member and serves the
 * Hono app on every --listen-client-urls address (HTTP and the WebSocket watch). SIGTERM and SIGINT stop it
 * cleanly: listeners close, in-flight requests are answered, the WAL is synced.
 */

import { readFileSync } from 'node:fs'
import type { Server as HttpServer } from 'node:http'
import type { ServerHttp2Session } from 'node:http2'
import type { Server as NetServer, Socket } from 'node:net'
import { createAdaptorServer, getRequestListener, upgradeWebSocket } from '@hono/node-server'
import { WebSocketServer } from 'ws'
import { HttpMetrics } from '../../api/http/metrics.js'
import { bootMember, createMemberApp } from '../../embed/bootstrap.js'
import { type ServerConfig, validateServerConfig } from '../../etcdserver/config.js'
import type { Member } from '../../etcdserver/member.js'
import { createFrontListener, createGrpcServer } from './grpc.js'
import { checkIdentity } from './identity.js'
import { createLogger, type Logger } from './log.js'
import { nodePeerDialer, peerFrameBytesMax } from './peer-dial.js'
import { nodeProcessStats } from './process-stats.js'
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

/** Starts a member from a configuration; resolves once it listens. */
export async function startNodeMember(
  config: ServerConfig,
  log: Logger = createLogger(config.logLevel),
  hooks: { onFatal?: (err: unknown) => void } = {},
): Promise<RunningMember> {
  validateServerConfig(config)
  const tls = loadNodeTls(config)
  let stopping: Promise<void> | undefined
  const { member, memberId, clusterId } = await bootMember(
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
  )
  const metrics = new HttpMetrics(nodeProcessStats())
  const app = createMemberApp(
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
  const servers: HttpServer[] = []
  const fronts: NetServer[] = []
  const h2Sessions: Set<ServerHttp2Session>[] = []
  const socketServers: WebSocketServer[] = []
  const urls: string[] = []
  // The HTTP and gRPC front doors share the member's bound on watch streams.
  const watchStreams = { n: 0 }
  for (const u of config.listenClientUrls) {
    const url = new URL(u)
    // One WebSocket server per listener serves both the client watch and /raft, so its frame limit is the peers'.
    const wss = new WebSocketServer({ noServer: true, maxPayload: peerFrameBytesMax, perMessageDeflate: false })
    socketServers.push(wss)
    // HTTP/1.1: the Hono app (never listens itself; the front listener hands it its connections, TLS already done).
    const h1 = createAdaptorServer({
      fetch: app.fetch,
      hostname: url.hostname,
      websocket: { server: wss as never },
    }) as HttpServer
    const { server: h2, sessions } = createGrpcServer({
      config,
      member,
      appListener: getRequestListener(app.fetch, { hostname: url.hostname }) as never,
      verifiedCn: tls.verifiedCn,
      watchStreams,
      metrics,
    })
    // As etcd's "rejected connection" warnings: plain HTTP, a missing or untrusted client certificate.
    const front = createFrontListener(h1, h2, url.protocol === 'https:' ? tls.server : undefined, (err, socket) =>
      log.warn('rejected connection: TLS handshake failed', {
        address: socket.remoteAddress,
        error: (err as { code?: string }).code ?? err.message,
      }),
    )
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject)
      front.listen(Number(url.port), url.hostname, () => {
        const addr = front.address()
        const port = typeof addr === 'object' && addr ? addr.port : Number(url.port)
        urls.push(`${url.protocol}//${url.hostname}:${port}`)
        resolve()
      })
    })
    servers.push(h1)
    fronts.push(front)
    h2Sessions.push(sessions)
  }
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
      await Promise.all(closed)
      log.info('stopped', { name: config.name })
    })()
    return stopping
  }
  return { member, urls, stop }
}
