/**
 * The Node entry point of a member: opens the data dir, derives ids as etcd does, starts the member and serves the
 * Hono app on every --listen-client-urls address (HTTP and the WebSocket watch). SIGTERM and SIGINT stop it
 * cleanly: listeners close, in-flight requests are answered, the WAL is synced.
 */

import { readFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { type ServerType, serve, upgradeWebSocket } from '@hono/node-server'
import { WebSocketServer } from 'ws'
import { bootMember, createMemberApp } from '../../embed/bootstrap.js'
import { type ServerConfig, validateServerConfig } from '../../etcdserver/config.js'
import type { Member } from '../../etcdserver/member.js'
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

/**
 * Starts a member from a configuration; resolves once it listens. As etcd, it binds its listeners first: a taken port
 * fails the start before the data dir is locked or Raft runs. Any failure on the way (a port, the data dir's lock,
 * its identity, a flag's file) releases whatever was taken (listeners, lock, timers) and rejects with the cause.
 */
export async function startNodeMember(
  config: ServerConfig,
  log: Logger = createLogger(config.logLevel),
  hooks: { onFatal?: (err: unknown) => void; nowMs?: () => number } = {},
): Promise<RunningMember> {
  validateServerConfig(config)
  const tls = loadNodeTls(config)
  let stopping: Promise<void> | undefined
  // Requests that arrive between the bind and the member's start wait for the app (the member then holds them until
  // it has published itself, as every request before that).
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
  const servers: ServerType[] = []
  const socketServers: WebSocketServer[] = []
  const urls: string[] = []
  const closeListeners = async () => {
    const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))
    for (const wss of socketServers) for (const ws of wss.clients) ws.terminate()
    for (const s of servers) (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
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
      // One WebSocket server per listener serves both the client watch and /raft, so its frame limit is the peers'.
      const wss = new WebSocketServer({ noServer: true, maxPayload: peerFrameBytesMax, perMessageDeflate: false })
      socketServers.push(wss)
      const server = await new Promise<ServerType>((resolve, reject) => {
        const https = url.protocol === 'https:' ? { createServer: createHttpsServer, serverOptions: tls.server } : {}
        const s = serve(
          {
            fetch,
            hostname: url.hostname,
            port: Number(url.port),
            websocket: { server: wss as never },
            ...https,
          },
          (info) => {
            if (flag === 'listen-client-urls') urls.push(`${url.protocol}//${url.hostname}:${info.port}`)
            resolve(s)
          },
        )
        s.once('error', (err: Error) => {
          // A server that failed to bind is not listening: nothing to close but the handle.
          s.close()
          reject(new Error(`cannot listen on ${u} (--${flag}): ${err.message}`))
        })
        // As etcd's "rejected connection" warnings: plain HTTP, a missing or untrusted client certificate.
        s.on('tlsClientError', (err: Error, socket: Socket) =>
          log.warn('rejected connection: TLS handshake failed', {
            address: socket.remoteAddress,
            error: (err as { code?: string }).code ?? err.message,
          }),
        )
      })
      servers.push(server)
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
    nodeProcessStats(),
    replicaScript,
  )
  resolveApp(app)
  log.info('serving client requests', { name: config.name, memberId, clusterId, urls, dataDir: config.dataDir })

  async function stop(): Promise<void> {
    stopping ??= (async () => {
      log.info('stopping', { name: config.name })
      // Stop accepting; idle keep-alive connections go now, busy ones once their response is written.
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))
      for (const s of servers) (s as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.()
      // Hand leadership over and checkpoint leases while peers are still connected, then sync and stop.
      await member.stop()
      // Sockets (watch streams, peers) never finish on their own: end them.
      for (const wss of socketServers) for (const ws of wss.clients) ws.terminate()
      for (const s of servers) (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
      await Promise.all(closed)
      log.info('stopped', { name: config.name })
    })()
    return stopping
  }
  return { member, urls, stop }
}
