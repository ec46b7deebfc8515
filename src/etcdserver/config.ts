/**
 * A member's configuration: etcd's flag names, their defaults, and every limit with its unit, checked in one place
 * (`validateServerConfig`). The CLI fills it from flags and `EDGECD_*` environment variables (src/cli/serve.ts).
 */
import { type ExternalIssuerFlags, externalIssuerDefaults, externalIssuerProblem } from '../auth/config.js'
import { raftNodeLimitsDefault } from '../raftnode/raft-node.js'
import { type TlsConfig, tlsConfigProblem, tlsDefaults } from './tls-config.js'

export interface ServerConfig extends TlsConfig, ExternalIssuerFlags {
  /** --name: human-readable name of this member. */
  name: string
  /** --data-dir: where the WAL and snapshots live. */
  dataDir: string
  /** --listen-client-urls: where clients (and peers, on /raft) connect. One URL per listener. */
  listenClientUrls: string[]
  /** --advertise-client-urls: what this member tells others its client URLs are. */
  advertiseClientUrls: string[]
  /** --initial-advertise-peer-urls: this member's peer URLs (edgecd serves peers on the client port, /raft). */
  initialAdvertisePeerUrls: string[]
  /**
   * --listen-peer-urls: more addresses to listen on. Peers share the client listener (GET /raft), so these are
   * optional; each listener serves the whole app (peers, and clients too), as etcd's peer port answers clients' HTTP.
   */
  listenPeerUrls: string[]
  /** --initial-cluster: name=peerURL,... of the cluster at bootstrap. */
  initialCluster: string
  /** --initial-cluster-state: new | existing. */
  initialClusterState: 'new' | 'existing'
  /** --initial-cluster-token: part of the member and cluster ids (as etcd's). Not a secret: see peerSecret. */
  initialClusterToken: string
  /**
   * --peer-secret: the secret peers prove on /raft (challenge-response, docs/security.md); at least 16 characters,
   * the same on every member. Prefer --peer-secret-file or EDGECD_PEER_SECRET: a flag shows in the process list.
   */
  peerSecret: string
  /** --peer-secret-file: a file whose content (trailing newline trimmed) is the peer secret. */
  peerSecretFile: string
  /** --heartbeat-interval, in ms. */
  heartbeatIntervalMs: number
  /** --election-timeout, in ms; a multiple of the heartbeat interval. */
  electionTimeoutMs: number
  /** --snapshot-count: applied entries between snapshots. */
  snapshotCount: number
  /** --quota-backend-bytes: storage quota; past it the NOSPACE alarm refuses writes. */
  quotaBackendBytes: number
  /** --max-request-bytes: the largest request a client may send. */
  maxRequestBytes: number
  /** --max-txn-ops: operations per txn. */
  maxTxnOps: number
  /** --max-watchers: watchers per member. */
  maxWatchers: number
  /** --max-watch-streams: concurrent watch streams (HTTP and WebSocket) per member. */
  maxWatchStreams: number
  /** --max-watchers-per-stream: watchers open at once on one watch stream (edgecd's; etcd has no such bound). */
  maxWatchersPerStream: number
  /** --request-timeout: ms before a proposal or read fails with "request timed out". */
  requestTimeoutMs: number
  /** --watch-progress-notify-interval: ms between progress notifications to watchers that asked for them. */
  watchProgressNotifyIntervalMs: number
  /**
   * --watch-batch-interval: ms a busy gRPC Watch stream holds and merges its events (the first after a quiet interval
   * goes at once); 0: each apply batch at once. etcd: no flag; etcd batches victims every 10 ms.
   */
  watchBatchIntervalMs: number
  /**
   * --watch-batch-interval-max: a stream busy window after window doubles its window up to this many ms (etcd syncs
   * its unsynced watchers every 100 ms); 0 (or at most --watch-batch-interval): the window does not grow.
   */
  watchBatchIntervalMaxMs: number
  /** --log-level: debug | info | warn | error. */
  logLevel: 'debug' | 'info' | 'warn' | 'error'
  /** --auth-token: etcd's syntax, `jwt,pub-key=FILE,priv-key=FILE,sign-method=ES256|EdDSA,ttl=5m`; `simple` = JWTs with a generated, replicated key. */
  authToken: string
  /** --auth-password-iterations: PBKDF2-SHA256 iterations for new password hashes. */
  authPasswordIterations: number
  /**
   * Proposals (writes, lease and membership changes) in flight on this member, waiting to be applied; past it a new
   * one fails at once with "etcdserver: too many requests" (no etcd flag: etcd bounds them by its gRPC stream limits).
   */
  proposalsPendingCountMax: number
  /** Linearizable reads in flight on this member (waiting for a ReadIndex or for apply); past it, the same error. */
  readsPendingCountMax: number
  /** --max-concurrent-streams: concurrent HTTP/2 streams per gRPC client connection (etcd's default: 2^32-1). */
  maxConcurrentStreams: number
  /** --grpc-keepalive-min-time: ms a client should wait between pings; more frequent pings close the connection. */
  grpcKeepaliveMinTimeMs: number
  /** --grpc-keepalive-interval: ms of silence on a gRPC connection after which the server pings the client. */
  grpcKeepaliveIntervalMs: number
  /** --grpc-keepalive-timeout: ms the server waits for that ping's answer before closing the connection. */
  grpcKeepaliveTimeoutMs: number
}

export const serverDefaults: ServerConfig = {
  name: 'default',
  dataDir: './data',
  listenClientUrls: ['http://127.0.0.1:2379'],
  advertiseClientUrls: ['http://127.0.0.1:2379'],
  initialAdvertisePeerUrls: ['http://127.0.0.1:2379'],
  listenPeerUrls: [],
  initialCluster: '',
  initialClusterState: 'new',
  initialClusterToken: 'etcd-cluster',
  peerSecret: '',
  peerSecretFile: '',
  heartbeatIntervalMs: 100,
  electionTimeoutMs: 1000,
  snapshotCount: 100_000,
  quotaBackendBytes: 2 * 1024 * 1024 * 1024,
  maxRequestBytes: 1.5 * 1024 * 1024,
  maxTxnOps: 128,
  maxWatchers: 10_000,
  maxWatchStreams: 1_000,
  maxWatchersPerStream: 10_000,
  requestTimeoutMs: 7_000,
  watchProgressNotifyIntervalMs: 10 * 60 * 1000,
  watchBatchIntervalMs: 10,
  watchBatchIntervalMaxMs: 100,
  logLevel: 'info',
  authToken: 'simple',
  authPasswordIterations: 600_000,
  ...raftNodeLimitsDefault,
  maxConcurrentStreams: 2 ** 32 - 1,
  grpcKeepaliveMinTimeMs: 5_000,
  grpcKeepaliveIntervalMs: 2 * 60 * 60 * 1000,
  grpcKeepaliveTimeoutMs: 20_000,
  ...externalIssuerDefaults,
  ...tlsDefaults,
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

function checkUrls(flag: string, urls: string[]): void {
  if (urls.length === 0) throw new ConfigError(`--${flag} must name at least one URL`)
  for (const u of urls) {
    let p: URL
    try {
      p = new URL(u)
    } catch {
      throw new ConfigError(`--${flag}: invalid URL ${JSON.stringify(u)}`)
    }
    if (p.protocol !== 'http:' && p.protocol !== 'https:')
      throw new ConfigError(`--${flag}: URL scheme must be http or https, got ${JSON.stringify(u)}`)
    // As etcd: the port is explicit. Read from the text, since URL drops a scheme's default port (https://h:443).
    if (!/^[a-z]+:\/\/(\[[^\]]*\]|[^/:@]*):\d+(\/|$)/i.test(u.trim()))
      throw new ConfigError(`--${flag}: URL must have a port: ${JSON.stringify(u)}`)
  }
}

/** The name=url pairs of --initial-cluster, or this member alone when empty. */
export function parseInitialCluster(c: ServerConfig): Map<string, string[]> {
  const out = new Map<string, string[]>()
  if (c.initialCluster.trim() === '') {
    out.set(c.name, c.initialAdvertisePeerUrls)
    return out
  }
  for (const part of c.initialCluster.split(',')) {
    const eq = part.indexOf('=')
    if (eq <= 0) throw new ConfigError(`--initial-cluster: expected name=url, got ${JSON.stringify(part)}`)
    const name = part.slice(0, eq).trim()
    const url = part.slice(eq + 1).trim()
    checkUrls('initial-cluster', [url])
    out.set(name, [...(out.get(name) ?? []), url])
  }
  if (!out.has(c.name))
    throw new ConfigError(`--initial-cluster does not include this member's --name ${JSON.stringify(c.name)}`)
  return out
}

/** Checks every field; throws ConfigError naming the flag. Returns the config for chaining. */
export function validateServerConfig(c: ServerConfig): ServerConfig {
  if (c.name.trim() === '') throw new ConfigError('--name must not be empty')
  if (c.dataDir.trim() === '') throw new ConfigError('--data-dir must not be empty')
  checkUrls('listen-client-urls', c.listenClientUrls)
  checkUrls('advertise-client-urls', c.advertiseClientUrls)
  checkUrls('initial-advertise-peer-urls', c.initialAdvertisePeerUrls)
  if (c.listenPeerUrls.length > 0) checkUrls('listen-peer-urls', c.listenPeerUrls)
  if (c.initialClusterState !== 'new' && c.initialClusterState !== 'existing')
    throw new ConfigError(
      `--initial-cluster-state must be "new" or "existing", got ${JSON.stringify(c.initialClusterState)}`,
    )
  const posInt = (flag: string, v: number, min = 1) => {
    if (!Number.isSafeInteger(v) || v < min) throw new ConfigError(`--${flag} must be an integer >= ${min}, got ${v}`)
  }
  posInt('heartbeat-interval', c.heartbeatIntervalMs)
  posInt('election-timeout', c.electionTimeoutMs)
  if (c.electionTimeoutMs < 5 * c.heartbeatIntervalMs)
    throw new ConfigError(
      `--election-timeout[${c.electionTimeoutMs}ms] should be at least 5 times as --heartbeat-interval[${c.heartbeatIntervalMs}ms]`,
    )
  if (c.electionTimeoutMs > 50_000)
    throw new ConfigError(
      `--election-timeout[${c.electionTimeoutMs}ms] is too long, and should be set less than 50000ms`,
    )
  posInt('snapshot-count', c.snapshotCount)
  posInt('auth-password-iterations', c.authPasswordIterations, 1000)
  posInt('quota-backend-bytes', c.quotaBackendBytes)
  posInt('max-request-bytes', c.maxRequestBytes)
  if (c.maxRequestBytes > 64 * 1024 * 1024) throw new ConfigError('--max-request-bytes must be at most 64 MiB')
  posInt('max-txn-ops', c.maxTxnOps)
  posInt('max-watchers', c.maxWatchers)
  posInt('max-watch-streams', c.maxWatchStreams)
  posInt('max-watchers-per-stream', c.maxWatchersPerStream)
  posInt('request-timeout', c.requestTimeoutMs, 100)
  posInt('max-concurrent-streams', c.maxConcurrentStreams)
  if (c.maxConcurrentStreams > 2 ** 32 - 1) throw new ConfigError('--max-concurrent-streams must be at most 4294967295')
  posInt('grpc-keepalive-min-time', c.grpcKeepaliveMinTimeMs)
  posInt('grpc-keepalive-interval', c.grpcKeepaliveIntervalMs)
  posInt('grpc-keepalive-timeout', c.grpcKeepaliveTimeoutMs)
  posInt('watch-progress-notify-interval', c.watchProgressNotifyIntervalMs, 100)
  if (!Number.isSafeInteger(c.watchBatchIntervalMs) || c.watchBatchIntervalMs < 0 || c.watchBatchIntervalMs > 1000)
    throw new ConfigError(`--watch-batch-interval must be between 0 and 1000 (ms), got ${c.watchBatchIntervalMs}`)
  const maxMs = c.watchBatchIntervalMaxMs
  if (!Number.isSafeInteger(maxMs) || maxMs < 0 || maxMs > 1000)
    throw new ConfigError(`--watch-batch-interval-max must be between 0 and 1000 (ms), got ${maxMs}`)
  // Every queue of the Ready loop has a bound, checked here with the flags (TigerBeetle's habit: a limit per queue).
  for (const [name, v] of [
    ['proposalsPendingCountMax', c.proposalsPendingCountMax],
    ['readsPendingCountMax', c.readsPendingCountMax],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`${name} must be an integer >= 1, got ${v}`)
  if (!['debug', 'info', 'warn', 'error'].includes(c.logLevel))
    throw new ConfigError(`--log-level must be debug, info, warn or error, got ${JSON.stringify(c.logLevel)}`)
  if (c.peerSecret !== '' && c.peerSecretFile !== '')
    throw new ConfigError('--peer-secret and --peer-secret-file are exclusive: give one')
  if (c.peerSecret !== '') checkPeerSecret('--peer-secret', c.peerSecret)
  const tls = tlsConfigProblem(c, c.listenClientUrls)
  if (tls) throw new ConfigError(tls)
  const external = externalIssuerProblem(c)
  if (external) throw new ConfigError(external)
  parseInitialCluster(c)
  return c
}

/** The shortest peer secret accepted, in characters. */
export const peerSecretMinLength = 16

function checkPeerSecret(flag: string, secret: string): void {
  if (secret.length < peerSecretMinLength)
    throw new ConfigError(`${flag} must be at least ${peerSecretMinLength} characters (it is the peers' only secret)`)
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)
}

/**
 * The secret this member's peers prove on /raft, and what to tell the operator. Peers share the client listener, so
 * a listener on a non-loopback address is open to the internet's Raft messages unless the peers hold a secret:
 * - --peer-secret / --peer-secret-file: that secret;
 * - peer mutual TLS (--peer-client-cert-auth): the certificate authenticates the peer, the proof keyed with
 *   --initial-cluster-token still binds the connection to the cluster and the member ids;
 * - neither, every listener on loopback: --initial-cluster-token, with a warning (the default is public);
 * - neither, a listener elsewhere, peers configured (--initial-cluster of more than this member, or joining): a
 *   ConfigError naming the flag, so the member does not start;
 * - neither, a listener elsewhere, a single member: no peers at all (/raft refuses everyone), with a warning.
 */
export function resolvePeerSecret(
  c: ServerConfig,
  readText: (path: string) => string,
): { secret: string | undefined; warning?: string } {
  if (c.peerSecret !== '') return { secret: c.peerSecret }
  if (c.peerSecretFile !== '') {
    let text: string
    try {
      text = readText(c.peerSecretFile)
    } catch (err) {
      throw new ConfigError(`--peer-secret-file ${c.peerSecretFile}: ${(err as Error).message}`)
    }
    const secret = text.replace(/\r?\n$/, '')
    checkPeerSecret(`--peer-secret-file ${c.peerSecretFile}`, secret)
    return { secret }
  }
  if (c.peerClientCertAuth) return { secret: c.initialClusterToken }
  const exposed = [...c.listenClientUrls, ...c.listenPeerUrls].filter((u) => !isLoopbackHost(new URL(u).hostname))
  if (exposed.length === 0)
    return {
      secret: c.initialClusterToken,
      warning:
        'no --peer-secret: peers prove --initial-cluster-token, which is not a secret (safe on loopback only; set --peer-secret-file before listening elsewhere)',
    }
  const peers = c.initialClusterState === 'existing' || parseInitialCluster(c).size > 1
  if (peers)
    throw new ConfigError(
      `${exposed[0]} serves peers (/raft) on a non-loopback address, but no peer secret is set: ` +
        'set --peer-secret-file (or EDGECD_PEER_SECRET) to the same secret of at least 16 characters on every member, ' +
        'or use peer mutual TLS (--peer-client-cert-auth); see docs/security.md',
    )
  return {
    secret: undefined,
    warning:
      'no --peer-secret: this single member refuses every /raft connection; set --peer-secret-file on every member before adding one',
  }
}
