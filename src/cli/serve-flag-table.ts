/**
 * The table of `edgecd serve` flags (etcd's names) with their converters, and how EDGECD_* variables map onto it.
 * Free of `node:*` so that a member without a command line (a Durable Object, src/runtime/workers) reads the same
 * variables the same way; serve-flags.ts adds the command-line parsing.
 */
import { ConfigError, type ServerConfig, serverDefaults } from '../etcdserver/config.js'

export type Conv = (v: string, flag: string) => unknown
const str: Conv = (v) => v
const list: Conv = (v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
export const bool: Conv = (v, flag) => {
  const t = v.trim().toLowerCase()
  if (t === 'true' || t === '1') return true
  if (t === 'false' || t === '0') return false
  throw new ConfigError(`--${flag} must be true or false, got ${JSON.stringify(v)}`)
}
const int: Conv = (v, flag) => {
  if (!/^\d+$/.test(v.trim()))
    throw new ConfigError(`--${flag} must be a non-negative integer, got ${JSON.stringify(v)}`)
  return Number(v)
}

/** A Go duration as etcd's flags take them ("5s", "2h0m0s", "500ms", "1.5m"), in ms. */
const goDurationUnits: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}
export const duration: Conv = (v, flag) => {
  const t = v.trim()
  const parts = [...t.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)]
  if (t === '' || parts.map((p) => p[0]).join('') !== t)
    throw new ConfigError(`--${flag} must be a duration such as 5s, 2h or 500ms, got ${JSON.stringify(v)}`)
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * goDurationUnits[p[2]!]!, 0))
}

/** flag name -> [config field, converter, help]. */
/** Milliseconds as Go's time.Duration prints them (etcd's help): 5s, 2h0m0s, 500ms, 1m30s. */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`
  const h = Math.floor(ms / 3_600_000)
  const m = Math.floor((ms % 3_600_000) / 60_000)
  const s = `${(ms % 60_000) / 1000}s`
  if (h > 0) return `${h}h${m}m${s}`
  if (m > 0) return `${m}m${s}`
  return s
}

export const serveFlags: Record<string, [keyof ServerConfig, Conv, string]> = {
  name: ['name', str, 'human-readable name for this member'],
  'data-dir': ['dataDir', str, 'path to the data directory (WAL and snapshots)'],
  'listen-client-urls': ['listenClientUrls', list, 'URLs to listen on for client (and peer) traffic'],
  'listen-peer-urls': [
    'listenPeerUrls',
    list,
    'more URLs to listen on; peers (GET /raft) are served on every listener, the client ones included',
  ],
  'advertise-client-urls': ['advertiseClientUrls', list, "this member's client URLs to advertise to the cluster"],
  'initial-advertise-peer-urls': [
    'initialAdvertisePeerUrls',
    list,
    "this member's peer URLs to advertise to the cluster",
  ],
  'initial-cluster': ['initialCluster', str, 'initial cluster configuration for bootstrapping: name=url,...'],
  'initial-cluster-state': ['initialClusterState', str, 'initial cluster state: new or existing'],
  'initial-cluster-token': ['initialClusterToken', str, 'initial cluster token for the cluster during bootstrap'],
  'peer-secret': [
    'peerSecret',
    str,
    'secret (16+ characters, the same on every member) peers prove on /raft; prefer EDGECD_PEER_SECRET or --peer-secret-file',
  ],
  'peer-secret-file': ['peerSecretFile', str, 'file holding the peer secret (required to serve peers off loopback)'],
  'heartbeat-interval': ['heartbeatIntervalMs', int, 'time (in milliseconds) of a heartbeat interval'],
  'election-timeout': ['electionTimeoutMs', int, 'time (in milliseconds) for an election to timeout'],
  'snapshot-count': ['snapshotCount', int, 'number of committed transactions to trigger a snapshot to disk'],
  'quota-backend-bytes': ['quotaBackendBytes', int, 'raise alarms when the store size exceeds the given quota (bytes)'],
  'max-request-bytes': ['maxRequestBytes', int, 'maximum client request size in bytes the server will accept'],
  'max-txn-ops': ['maxTxnOps', int, 'maximum number of operations permitted in a transaction'],
  'max-watchers': ['maxWatchers', int, 'maximum number of watchers open at once on this member'],
  'max-watch-streams': ['maxWatchStreams', int, 'maximum number of concurrent watch streams on this member'],
  'max-watchers-per-stream': [
    'maxWatchersPerStream',
    int,
    'maximum number of watchers open at once on one watch stream',
  ],
  'max-concurrent-streams': [
    'maxConcurrentStreams',
    int,
    'maximum number of concurrent HTTP/2 streams (gRPC calls) per client connection',
  ],
  'grpc-keepalive-min-time': [
    'grpcKeepaliveMinTimeMs',
    duration,
    'minimum duration a client should wait before pinging the server (e.g. 5s)',
  ],
  'grpc-keepalive-interval': [
    'grpcKeepaliveIntervalMs',
    duration,
    'frequency of server-to-client pings to check if a connection is alive (e.g. 2h)',
  ],
  'grpc-keepalive-timeout': [
    'grpcKeepaliveTimeoutMs',
    duration,
    'additional wait before closing a non-responsive connection (e.g. 20s)',
  ],
  'request-timeout': [
    'requestTimeoutMs',
    int,
    'time (in milliseconds) before a write or read fails with request timed out',
  ],
  'watch-progress-notify-interval': [
    'watchProgressNotifyIntervalMs',
    int,
    'time (in milliseconds) between watch progress notifications',
  ],
  'watch-batch-interval': [
    'watchBatchIntervalMs',
    int,
    'time (in milliseconds, 0 to 1000; 0: off) a busy gRPC Watch stream holds and merges its events',
  ],
  'watch-batch-interval-max': [
    'watchBatchIntervalMaxMs',
    int,
    'longest time (in milliseconds, 0 to 1000) a Watch stream busy window after window holds its events (0: no growth)',
  ],
  'log-level': ['logLevel', str, 'log level: debug, info, warn or error'],
  'auth-token': [
    'authToken',
    str,
    'auth tokens: simple (JWT, generated key) or jwt,pub-key=FILE,priv-key=FILE,sign-method=ES256|EdDSA,ttl=5m',
  ],
  'auth-password-iterations': ['authPasswordIterations', int, 'PBKDF2-SHA256 iterations for new password hashes'],
  'auth-jwks-file': ['authJwksFile', str, 'JWKS file of an outside token issuer, whose tokens are accepted too'],
  'auth-jwks-url': ['authJwksUrl', str, 'JWKS URL of an outside token issuer (https, or http on loopback)'],
  'auth-jwt-issuer': ['authJwtIssuer', str, 'iss of outside tokens (required with a JWKS)'],
  'auth-jwt-audience': ['authJwtAudience', str, 'a value the aud of outside tokens must hold (required with a JWKS)'],
  'auth-jwt-user-claim': ['authJwtUserClaim', str, 'claim of outside tokens naming the edgecd user'],
  'cert-file': ['certFile', str, 'path to the client server TLS cert file (needed by https listen URLs)'],
  'key-file': ['keyFile', str, 'path to the client server TLS key file'],
  'trusted-ca-file': ['trustedCaFile', str, 'path to the client server TLS trusted CA cert file'],
  'client-cert-auth': ['clientCertAuth', bool, 'enable client cert authentication (the CN is the user with auth on)'],
  'peer-cert-file': ['peerCertFile', str, 'path to the peer TLS cert file (presented when dialing peers)'],
  'peer-key-file': ['peerKeyFile', str, 'path to the peer TLS key file'],
  'peer-trusted-ca-file': ['peerTrustedCaFile', str, 'path to the peer TLS trusted CA file'],
  'peer-client-cert-auth': ['peerClientCertAuth', bool, 'enable peer client cert authentication on /raft'],
}

/** The variable that sets `flag`: EDGECD_<FLAG>, upper case, dashes as underscores. */
export function envName(flag: string): string {
  return `EDGECD_${flag.toUpperCase().replace(/-/g, '_')}`
}

/**
 * A configuration from EDGECD_* variables alone (no command line), with the same defaults and the same rule as the
 * CLI for advertised URLs: they follow the listen URLs when only those are given.
 */
export function configFromEnv(env: Record<string, unknown>, base: ServerConfig = serverDefaults): ServerConfig {
  const c: ServerConfig = { ...base }
  const str = (k: string) => (typeof env[k] === 'string' ? (env[k] as string) : undefined)
  for (const [flag, [field, conv]] of Object.entries(serveFlags)) {
    const raw = str(envName(flag))
    if (raw !== undefined) (c as unknown as Record<string, unknown>)[field] = conv(raw, flag)
  }
  if (str('EDGECD_LISTEN_CLIENT_URLS') !== undefined) {
    if (str('EDGECD_ADVERTISE_CLIENT_URLS') === undefined) c.advertiseClientUrls = c.listenClientUrls
    if (str('EDGECD_INITIAL_ADVERTISE_PEER_URLS') === undefined) c.initialAdvertisePeerUrls = c.advertiseClientUrls
  }
  return c
}
