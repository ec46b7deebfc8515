/**
 * A member as a Durable Object: one object is one member, named by the member name (`idFromName(name)`). It runs the
 * same Member, Raft loop, KV store and Hono app as the Node and Deno entries through the shared bootstrap; only
 * these differ:
 *
 * - storage: the object's SQLite database (sql-storage.ts), the member identity in the same database;
 * - time: Raft ticks, heartbeats and lease checks run on the object's timers while it is in memory, and an alarm
 *   every `keepAliveAlarmMs` wakes an object the platform evicted (or restarted for a deploy): `alarm()` starts the
 *   member again from its storage, exactly as a restarted process recovers from its data dir, and it rejoins;
 * - sockets: `/raft` and the watch are accepted WebSockets (websocket.ts), and peers are dialed with `fetch` +
 *   `Upgrade: websocket`; a peer that is another object of this Worker (its URL is this Worker's origin and
 *   `/m/<name>`) is reached through the MEMBER binding;
 * - configuration: the EDGECD_* variables (wrangler.toml `[vars]` and secrets) read as the CLI reads them, or
 *   EDGECD_CONFIG, the whole configuration as JSON, which `edgecd serve --runtime workerd` passes.
 *
 * No `node:*` here: this file runs in workerd.
 */
import type { Hono } from 'hono'
import { configFromEnv } from '../../cli/serve-flag-table.js'
import { bootMember, checkMemberIdentity, createMemberApp } from '../../embed/bootstrap.js'
import {
  ConfigError,
  parseInitialCluster,
  type ServerConfig,
  serverDefaults,
  validateServerConfig,
} from '../../etcdserver/config.js'
import { createJsonLogger, type Logger } from '../../etcdserver/log.js'
import type { Member } from '../../etcdserver/member.js'
import type { DurableObjectNamespace, DurableObjectState } from './cf-api.js'
import { openSqlStorage, sqlTextFiles } from './sql-storage.js'
import { workersPeerDialer, workersUpgradeWebSocket } from './websocket.js'

/** The request header by which the Worker tells an object which member it is (its `idFromName` name). */
export const memberNameHeader = 'x-edgecd-member-name'

/** How often an alarm wakes the object: an evicted member is back within this long. */
export const keepAliveAlarmMs = 10_000

/** The bindings and variables a member object reads. */
export interface MemberEnv {
  /** This Worker's member objects (wrangler.toml: durable_objects.bindings name = "MEMBER"). */
  MEMBER?: DurableObjectNamespace
  /** The whole ServerConfig as JSON (set by `edgecd serve --runtime workerd`); EDGECD_* variables override it. */
  EDGECD_CONFIG?: string
  /** Files named by flags (JWT keys, a JWKS) as JSON {"name": "contents"}: a Worker has no file system. */
  EDGECD_FILES?: string
  [variable: string]: unknown
}

interface Running {
  member: Member
  app: Hono
  config: ServerConfig
}

/** The configuration of member `name` from the Worker's variables; ConfigError when they do not describe it. */
export function memberConfig(env: MemberEnv, name: string): ServerConfig {
  let base: ServerConfig = { ...serverDefaults }
  if (typeof env.EDGECD_CONFIG === 'string' && env.EDGECD_CONFIG !== '') {
    try {
      base = { ...serverDefaults, ...(JSON.parse(env.EDGECD_CONFIG) as Partial<ServerConfig>) }
    } catch {
      throw new ConfigError('EDGECD_CONFIG is not valid JSON')
    }
  }
  const c = configFromEnv(env, base)
  if (typeof env.EDGECD_CONFIG !== 'string' || env.EDGECD_CONFIG === '') {
    // One Worker, many members: each member's URLs are its entry in --initial-cluster (this Worker's /m/<name>).
    c.name = name
    const mine = parseInitialCluster({ ...c, name }).get(name)
    if (!mine) throw new ConfigError(`no member named ${JSON.stringify(name)} in EDGECD_INITIAL_CLUSTER`)
    c.initialAdvertisePeerUrls = mine
    c.advertiseClientUrls = mine
    // An object listens on nothing itself (the Worker's URL is the platform's, which also terminates TLS): the
    // listen URLs only pass validation, so they say http (an https listener would ask for --cert-file).
    c.listenClientUrls = mine.map((u) => u.replace(/^https:/, 'http:'))
    c.dataDir = `durable-object:${name}`
  }
  if (c.name !== name)
    throw new ConfigError(
      `this object is member ${JSON.stringify(name)}, the configuration names ${JSON.stringify(c.name)}`,
    )
  for (const flag of [
    'certFile',
    'keyFile',
    'trustedCaFile',
    'peerCertFile',
    'peerKeyFile',
    'peerTrustedCaFile',
  ] as const)
    if (c[flag] !== '')
      throw new ConfigError(
        'TLS flags do not apply to a member on Workers: the Worker is served over HTTPS by the platform (or the local listener)',
      )
  if (c.clientCertAuth || c.peerClientCertAuth)
    throw new ConfigError('--client-cert-auth and --peer-client-cert-auth are not available on Workers')
  return validateServerConfig(c)
}

/** The Durable Object class of a member (wrangler.toml: class_name = "EdgecdMember"). */
export class EdgecdMember {
  private running: Promise<Running> | undefined
  private readonly sockets = new Set<WebSocket>()
  private log: Logger = createJsonLogger('info', (line) => console.log(line.trimEnd()))

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: MemberEnv,
  ) {}

  async fetch(req: Request): Promise<Response> {
    let r: Running
    try {
      const booting = this.running === undefined
      r = await this.start(req.headers.get(memberNameHeader) ?? undefined)
      // An object starts with its first request (after `wrangler dev`, a deploy or an eviction): give the cluster
      // a few election timeouts to find a leader before answering it, rather than "no leader" at once.
      if (booting) await untilHealthy(r.member, 3 * r.config.electionTimeoutMs)
    } catch (err) {
      const e = err as Error
      return new Response(`edgecd: member cannot start: ${e.message}\n`, {
        status: e instanceof ConfigError ? 404 : 503,
        headers: { 'Content-Type': 'text/plain; charset=utf-8' },
      })
    }
    return r.app.fetch(req)
  }

  /** The keep-alive alarm: starts an evicted member again and arms the next alarm. */
  async alarm(): Promise<void> {
    try {
      await this.start(undefined)
    } finally {
      await this.ctx.storage.setAlarm(Date.now() + keepAliveAlarmMs)
    }
  }

  /** Starts the member once (concurrent callers share the start); a failed start is retried by the next call. */
  private start(nameHint: string | undefined): Promise<Running> {
    this.running ??= this.boot(nameHint).catch((err) => {
      this.running = undefined
      throw err
    })
    return this.running
  }

  private async boot(nameHint: string | undefined): Promise<Running> {
    const files = sqlTextFiles(this.ctx.storage)
    // The object learns its name from the Worker's first request and keeps it, so an alarm can start it alone.
    const stored = await files.readText('name')
    const name = stored ?? nameHint
    if (name === undefined) throw new Error('the object does not know which member it is yet')
    if (nameHint !== undefined && stored !== undefined && stored !== nameHint)
      throw new ConfigError(`this object is member ${JSON.stringify(stored)}, not ${JSON.stringify(nameHint)}`)
    const config = memberConfig(this.env, name)
    if (stored === undefined) await files.writeText('name', name)
    this.log = createJsonLogger(config.logLevel, (line) => console.log(line.trimEnd()))
    const log = this.log
    const fileMap = parseFiles(this.env.EDGECD_FILES)
    const route = this.router(config)
    const { member, memberId, clusterId } = await bootMember(
      config,
      log,
      {
        openStorage: () => openSqlStorage(this.ctx.storage),
        checkIdentity: (dataDir, want) => checkMemberIdentity(files, 'identity', dataDir, want),
        readText: (path) => {
          const text = fileMap[path]
          if (text === undefined)
            throw new Error(`${path}: no such file in EDGECD_FILES (a Worker reads the files flags name from there)`)
          return text
        },
        dial: workersPeerDialer(route),
        fetch: route as typeof fetch,
      },
      (err) => {
        // The member stopped itself (a failed write, or it was removed): drop this instance; the next request or
        // alarm starts a fresh one from storage.
        log.error('member stopped; resetting the object', { error: String((err as Error)?.message ?? err) })
        this.running = undefined
        for (const ws of this.sockets) ws.close(1001, 'member stopping')
        this.sockets.clear()
      },
    )
    const app = createMemberApp(member, config, log, workersUpgradeWebSocket(this.sockets)) as unknown as Hono
    await this.ctx.storage.setAlarm(Date.now() + keepAliveAlarmMs)
    log.info('member object started', { name, memberId, clusterId, urls: config.advertiseClientUrls })
    return { member, app, config }
  }

  /**
   * fetch for peers and leader forwarding: a URL of this Worker's origin with the path /m/<name>/... goes to that
   * member's object through the MEMBER binding (a Worker cannot rely on fetching its own public URL); anything
   * else (Node and Deno members, other Workers) is a plain fetch.
   */
  private router(config: ServerConfig): (url: string | URL | Request, init?: RequestInit) => Promise<Response> {
    const ns = this.env.MEMBER
    const origins = new Set(config.advertiseClientUrls.map((u) => new URL(u).origin))
    return (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input))
      const m = /^\/m\/([^/]+)(\/.*)?$/.exec(url.pathname)
      if (ns && m && origins.has(url.origin)) {
        const name = decodeURIComponent(m[1]!)
        const req = new Request(`http://member${m[2] ?? '/'}${url.search}`, input instanceof Request ? input : init)
        req.headers.set(memberNameHeader, name)
        return ns.get(ns.idFromName(name)).fetch(req)
      }
      return fetch(input, init)
    }
  }
}

async function untilHealthy(member: Member, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!member.healthy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
}

function parseFiles(raw: unknown): Record<string, string> {
  if (typeof raw !== 'string' || raw === '') return {}
  try {
    return JSON.parse(raw) as Record<string, string>
  } catch {
    throw new ConfigError('EDGECD_FILES is not valid JSON ({"name": "contents", ...})')
  }
}
