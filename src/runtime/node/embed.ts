/**
 * Embedding a member in your own Node process, as etcd's `embed` package allows: `import { startMember } from
 * 'edgecd/server'`. The options are the member's configuration under the same names `edgecd serve` reads from its
 * flags (`--data-dir` is `dataDir`, `--listen-client-urls` is `listenClientUrls`, ...), with etcd's defaults for the
 * rest. The handle gives the URL clients use and a `stop()` that hands leadership over, syncs the WAL and closes the
 * listeners.
 */
import { createServer } from 'node:net'
import { type ServerConfig, serverDefaults } from '../../etcdserver/config.js'
import type { Logger, LogLevel } from '../../etcdserver/log.js'
import type { Member } from '../../etcdserver/member.js'
import { createLogger } from './log.js'
import { startNodeMember } from './serve.js'

/** What `startMember` takes: any member setting by its configuration name; unset ones take etcd's defaults. */
export interface StartMemberOptions extends Partial<ServerConfig> {
  /**
   * Where the member's JSON log lines go: a Logger, a function taking each line, or 'silent'. Default: stderr at
   * `logLevel` (default 'warn' when embedded, so the host's output stays its own).
   */
  log?: Logger | ((line: string) => void) | 'silent'
  /** Called when the member stops itself (a failed fsync, or it was removed from the cluster). */
  onFatal?: (err: unknown) => void
}

/** A running embedded member. */
export interface MemberHandle {
  /** The member's name. */
  readonly name: string
  /** The first client URL it listens on (with the real port when 0 was asked for). */
  readonly url: string
  /** Every client URL it listens on. */
  readonly urls: readonly string[]
  /** The member itself (status, leadership, the API the front doors call). */
  readonly member: Member
  /** Stops it: hands leadership over when it leads, syncs the WAL, closes its listeners. Idempotent. */
  stop(): Promise<void>
}

/** A free TCP port on `host`, for URLs that ask for port 0 (the member's id is derived from its peer URLs). */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Replaces port 0 in `urls` by a free port, the same one for the same host:0 wherever it appears. */
async function resolvePorts(urls: string[], chosen: Map<string, string>): Promise<string[]> {
  const out: string[] = []
  for (const u of urls) {
    const url = new URL(u)
    if (url.port === '0') {
      let port = chosen.get(url.hostname)
      if (port === undefined) {
        port = String(await freePort(url.hostname))
        chosen.set(url.hostname, port)
      }
      url.port = port
      out.push(url.origin)
    } else out.push(u)
  }
  return out
}

/**
 * Starts a member in this process and resolves once it listens. A single member by default; pass `initialCluster`
 * (and the peer URLs) for a member of a cluster, exactly as the flags of `edgecd serve`.
 */
export async function startMember(opts: StartMemberOptions = {}): Promise<MemberHandle> {
  const { log: logOpt, onFatal, ...settings } = opts
  const chosen = new Map<string, string>()
  const listenClientUrls = await resolvePorts(settings.listenClientUrls ?? serverDefaults.listenClientUrls, chosen)
  const advertiseClientUrls = await resolvePorts(settings.advertiseClientUrls ?? listenClientUrls, chosen)
  const initialAdvertisePeerUrls = await resolvePorts(settings.initialAdvertisePeerUrls ?? listenClientUrls, chosen)
  const logLevel: LogLevel = settings.logLevel ?? 'warn'
  const config: ServerConfig = {
    ...serverDefaults,
    ...settings,
    logLevel,
    listenClientUrls,
    advertiseClientUrls,
    initialAdvertisePeerUrls,
  }
  const logger =
    logOpt === 'silent'
      ? createLogger(logLevel, () => {})
      : typeof logOpt === 'function'
        ? createLogger(logLevel, logOpt)
        : (logOpt ?? createLogger(logLevel))
  const running = await startNodeMember(config, logger, onFatal ? { onFatal } : {})
  return {
    name: config.name,
    url: running.urls[0]!,
    urls: running.urls,
    member: running.member,
    stop: () => running.stop(),
  }
}
