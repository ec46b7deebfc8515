/**
 * The Deno entry point of a member, the counterpart of src/runtime/node/serve.ts: opens the data dir with Deno's file
 * API, starts the member through the shared bootstrap (src/embed/bootstrap.ts), and serves the same Hono app with
 * one Deno.serve per --listen-client-urls address (https with --cert-file/--key-file). The WebSocket watch and /raft
 * go through hono/deno's upgradeWebSocket; peers are dialed with Deno's WebSocket. stop() closes the listeners, stops
 * the member (the WAL is synced) and closes the sockets still open.
 */

import { upgradeWebSocket as denoUpgradeWebSocket } from 'hono/deno'
import { defineWebSocketHelper, type UpgradeWebSocket } from 'hono/ws'
import { bootMember, checkMemberIdentity, createMemberApp, type MemberIdentity } from '../../embed/bootstrap.js'
import { type ServerConfig, validateServerConfig } from '../../etcdserver/config.js'
import { createJsonLogger, type Logger } from '../../etcdserver/log.js'
import type { Member } from '../../etcdserver/member.js'
import { identityFileName } from '../../storage/file-names.js'
import { type DenoHttpServer, deno, writeAllSync } from './deno-api.js'
import { denoPeerDialer } from './peer-dial.js'
import { openDenoStorage } from './storage.js'
import { loadDenoTls } from './tls.js'

/** A logger writing JSON lines to stderr, as the Node entry's. */
export function createDenoLogger(level: ServerConfig['logLevel'] = 'info'): Logger {
  return createJsonLogger(level, (line) => writeAllSync(deno.stderr, line))
}

/** Checks (on the first start: records) which member of which cluster a data dir belongs to. */
function checkDenoIdentity(dataDir: string, want: MemberIdentity): Promise<void> {
  return checkMemberIdentity(
    {
      async readText(path) {
        try {
          return await deno.readTextFile(path)
        } catch (err) {
          if ((err as Error).name === 'NotFound') return undefined
          throw err
        }
      },
      async writeText(path, text) {
        // As the Node entry: a temporary file, synced, then renamed over the name.
        const tmp = `${path}.tmp-${deno.pid}`
        const f = await deno.open(tmp, { write: true, create: true, truncate: true })
        try {
          const bytes = new TextEncoder().encode(text)
          let off = 0
          while (off < bytes.byteLength) off += await f.write(bytes.subarray(off))
          await f.syncData()
        } finally {
          f.close()
        }
        await deno.rename(tmp, path)
      },
    },
    `${dataDir.replace(/\/+$/, '')}/${identityFileName}`,
    dataDir,
    want,
  )
}

/**
 * hono/deno's upgradeWebSocket, remembering every open socket so that stop() can close them: Deno.serve's shutdown
 * does not wait for (nor end) upgraded connections.
 */
function trackedUpgrade(open: Set<WebSocket>): UpgradeWebSocket<WebSocket> {
  return defineWebSocketHelper<WebSocket>((c, events, options) =>
    denoUpgradeWebSocket(
      c,
      {
        ...events,
        onOpen(evt, ws) {
          if (ws.raw) open.add(ws.raw)
          events.onOpen?.(evt, ws)
        },
        onClose(evt, ws) {
          if (ws.raw) open.delete(ws.raw)
          events.onClose?.(evt, ws)
        },
      },
      options,
    ),
  )
}

export interface RunningDenoMember {
  member: Member
  urls: string[]
  stop(): Promise<void>
}

/** Starts a member from a configuration on Deno; resolves once it listens on every --listen-client-urls. */
export async function startDenoMember(
  config: ServerConfig,
  log: Logger = createDenoLogger(config.logLevel),
  hooks: { onFatal?: (err: unknown) => void } = {},
): Promise<RunningDenoMember> {
  validateServerConfig(config)
  const tls = loadDenoTls(config)
  let stopping: Promise<void> | undefined
  const { member, memberId, clusterId } = await bootMember(
    config,
    log,
    {
      openStorage: (dir) => openDenoStorage(dir),
      checkIdentity: checkDenoIdentity,
      readText: (path) => deno.readTextFileSync(path),
      dial: denoPeerDialer(tls.client),
      fetch: tls.fetch,
    },
    (err) => {
      hooks.onFatal?.(err)
      void stop()
    },
  )
  const sockets = new Set<WebSocket>()
  const startTimeSeconds = Date.now() / 1000 - performance.now() / 1000
  const app = createMemberApp(
    member,
    config,
    log,
    trackedUpgrade(sockets),
    undefined,
    () => {
      const m = deno.memoryUsage()
      return { residentMemoryBytes: m.rss, heapBytes: m.heapUsed, startTimeSeconds }
    },
    denoReplicaScript,
  )
  const servers: DenoHttpServer[] = []
  const urls: string[] = []

  async function stop(): Promise<void> {
    stopping ??= (async () => {
      log.info('stopping', { name: config.name })
      // Stop accepting; requests in flight are answered.
      const closed = servers.map((s) => s.shutdown())
      // Hand leadership over and checkpoint leases while peers are still connected, then sync and stop.
      await member.stop()
      // Sockets (watch streams, peers) never finish on their own: end them.
      for (const ws of sockets) ws.close(1001, 'member stopping')
      sockets.clear()
      await Promise.all(closed)
      log.info('stopped', { name: config.name })
    })()
    return stopping
  }

  // --listen-peer-urls adds listeners (peers are served on every listener), as on Node.
  const key = (u: string) => {
    const x = new URL(u)
    return `${x.protocol}//${x.hostname}:${x.port}`
  }
  const clientKeys = new Set(config.listenClientUrls.map(key))
  for (const u of [...config.listenClientUrls, ...config.listenPeerUrls.filter((p) => !clientKeys.has(key(p)))]) {
    const url = new URL(u)
    const https = url.protocol === 'https:'
    try {
      const server = deno.serve(
        {
          // Deno wants an IPv6 address without URL brackets.
          hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: Number(url.port || (https ? 443 : 80)),
          ...(https && tls.server ? tls.server : {}),
          onListen: () => {},
        },
        (req, info) => app.fetch(req, info),
      )
      servers.push(server)
      urls.push(`${url.protocol}//${url.hostname}:${server.addr.port}`)
    } catch (err) {
      // An address in use or not ours: stop what started, and say which URL.
      await stop()
      const e = err as Error & { code?: string }
      throw new Error(`--listen-client-urls ${u}: cannot listen (${e.code ?? e.name}: ${e.message})`)
    }
  }
  log.info('serving client requests', { name: config.name, memberId, clusterId, urls, dataDir: config.dataDir })
  return { member, urls, stop }
}

/** GET /ui/replica.js on Deno: the prebuilt dist/browser/replica.js (`node scripts/build-replica.mjs`), read once. */
let replicaScriptText: Promise<string> | undefined
function denoReplicaScript(): Promise<string> {
  const p =
    replicaScriptText ??
    deno.readTextFile(new URL('../../../dist/browser/replica.js', import.meta.url).pathname).catch((err: unknown) => {
      replicaScriptText = undefined
      throw new Error(
        `dist/browser/replica.js was not built (node scripts/build-replica.mjs): ${(err as Error).message}`,
      )
    })
  replicaScriptText = p
  return p
}
