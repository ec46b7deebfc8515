/**
 * The flags of `edgecd serve` and their EDGECD_* variables, parsed into a ServerConfig. Shared by every runtime's
 * entry (src/cli/serve.ts on Node, src/runtime/deno/main.ts on Deno): it needs only node:util's parseArgs, which
 * Deno provides too.
 */
import { parseArgs } from 'node:util'
import { ConfigError, type ServerConfig, serverDefaults } from '../etcdserver/config.js'

type Conv = (v: string, flag: string) => unknown
const str: Conv = (v) => v
const list: Conv = (v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
const bool: Conv = (v, flag) => {
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

/** flag name -> [config field, converter, help]. */
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
  'heartbeat-interval': ['heartbeatIntervalMs', int, 'time (in milliseconds) of a heartbeat interval'],
  'election-timeout': ['electionTimeoutMs', int, 'time (in milliseconds) for an election to timeout'],
  'snapshot-count': ['snapshotCount', int, 'number of committed transactions to trigger a snapshot to disk'],
  'quota-backend-bytes': ['quotaBackendBytes', int, 'raise alarms when the store size exceeds the given quota (bytes)'],
  'max-request-bytes': ['maxRequestBytes', int, 'maximum client request size in bytes the server will accept'],
  'max-txn-ops': ['maxTxnOps', int, 'maximum number of operations permitted in a transaction'],
  'max-watchers': ['maxWatchers', int, 'maximum number of watchers open at once on this member'],
  'max-watch-streams': ['maxWatchStreams', int, 'maximum number of concurrent watch streams on this member'],
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

/** The flags' help; `command` is how the user started this entry. */
export function serveUsage(command = 'edgecd serve'): string {
  const w = Math.max(...Object.keys(serveFlags).map((f) => f.length)) + 4
  const lines = Object.entries(serveFlags).map(([flag, [field, , help]]) => {
    const d = serverDefaults[field]
    return `  --${flag.padEnd(w)}${help} (default ${JSON.stringify(Array.isArray(d) ? d.join(',') : d)})`
  })
  return [
    `Usage: ${command} [flags]`,
    '',
    'Runs one member. Every flag may also be set as EDGECD_<FLAG>, e.g. EDGECD_DATA_DIR.',
    '',
    'Flags:',
    ...lines,
  ].join('\n')
}

/**
 * etcd's flags as people type them: Go's flag package takes `-flag` as well as `--flag` (`-data-dir=x`, `-name x`).
 * A single dash before a word becomes two; `-h` stays the short help.
 */
function normalizeDashes(argv: string[]): string[] {
  return argv.map((a) => {
    // Any single-dash word of two or more letters is a long flag to Go (a mistyped one then gets its suggestion).
    return /^-[a-z][a-z0-9-]+(=.*)?$/.test(a) ? `-${a}` : a
  })
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]!
}

/** The known flag closest to a mistyped one, when it is close enough to be what was meant. */
export function suggestFlag(typed: string): string | undefined {
  const name = typed.replace(/^-+/, '').replace(/=.*$/, '')
  let best: string | undefined
  let bestD = Number.POSITIVE_INFINITY
  for (const f of [...Object.keys(serveFlags), 'help']) {
    const d = editDistance(name, f)
    if (d < bestD) {
      best = f
      bestD = d
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 4)) ? `--${best}` : undefined
}

/** Builds the configuration from argv and the environment; throws ConfigError or parseArgs' errors. */
export function serveConfig(argv: string[], env: Record<string, string | undefined>): ServerConfig | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const flag of Object.keys(serveFlags)) options[flag] = { type: 'string' }
  // Boolean flags as Go's flag package takes them: `--client-cert-auth` alone means true, or `--flag=true|false`.
  const args = normalizeDashes(argv).map((a) =>
    /^--?[a-z-]+$/.test(a) && serveFlags[a.replace(/^--?/, '')]?.[1] === bool ? `${a}=true` : a,
  )
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values as typeof values
  } catch (err) {
    const e = err as Error & { code?: string }
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const typed = /'([^']+)'/.exec(e.message)?.[1] ?? ''
      const hint = suggestFlag(typed)
      throw new ConfigError(`unknown flag ${typed}${hint ? ` (did you mean ${hint}?)` : ''}`)
    }
    throw err
  }
  if (values.help) return 'help'
  const c: ServerConfig = { ...serverDefaults }
  for (const [flag, [field, conv]] of Object.entries(serveFlags)) {
    const envName = `EDGECD_${flag.toUpperCase().replace(/-/g, '_')}`
    const raw = (values[flag] as string | undefined) ?? env[envName]
    if (raw !== undefined) (c as unknown as Record<string, unknown>)[field] = conv(raw, flag)
  }
  // As etcd: advertising defaults follow the listen URLs when only those are given.
  if (values['listen-client-urls'] !== undefined || env.EDGECD_LISTEN_CLIENT_URLS !== undefined) {
    if (values['advertise-client-urls'] === undefined && env.EDGECD_ADVERTISE_CLIENT_URLS === undefined)
      c.advertiseClientUrls = c.listenClientUrls
    if (values['initial-advertise-peer-urls'] === undefined && env.EDGECD_INITIAL_ADVERTISE_PEER_URLS === undefined)
      c.initialAdvertisePeerUrls = c.advertiseClientUrls
  }
  return c
}
