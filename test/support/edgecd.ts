/**
 * The one launcher of `edgecd serve` processes, on Node (`node --import tsx src/cli/main.ts serve`) or on Deno
 * (src/runtime/deno/main.ts): single members, restarts on the same data dir, and clusters on loopback.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { denoBinary, denoEnv, denoMainArgs } from './deno.js'
import { freePort } from './ports.js'
import { type ServerOptions, type ServerProcess, spawnServer, startServer } from './process.js'

export type Runtime = 'node' | 'deno'

export interface ServeFlags {
  name?: string
  dataDir: string
  clientUrl: string
  /** Advertised peer URL when it differs from the client URL (e.g. a fault-injecting proxy in front of it). */
  peerUrl?: string
  initialCluster?: string
  token?: string
  /** --peer-secret (default derived from the token when a token is given). */
  peerSecret?: string
  /** --log-level (default warn). */
  logLevel?: string
  extra?: string[]
}

/** The `edgecd serve` flags of one member. */
export function serveFlags(o: ServeFlags): string[] {
  return [
    ...(o.name ? ['--name', o.name] : []),
    '--data-dir',
    o.dataDir,
    '--listen-client-urls',
    o.clientUrl,
    ...(o.peerUrl ? ['--advertise-client-urls', o.clientUrl, '--initial-advertise-peer-urls', o.peerUrl] : []),
    ...(o.initialCluster ? ['--initial-cluster', o.initialCluster] : []),
    ...(o.token ? ['--initial-cluster-token', o.token] : []),
    // The peers' secret (docs/security.md): loopback would do without one, but launchers pass it as a real cluster must.
    ...(o.peerSecret || o.token ? ['--peer-secret', o.peerSecret ?? `${o.token}-peer-secret-for-tests`] : []),
    '--log-level',
    o.logLevel ?? 'warn',
    ...(o.extra ?? []),
  ]
}

/** The command and arguments that run `edgecd serve` with `flags` on a runtime. */
export function serveCommand(
  flags: string[],
  runtime: Runtime = 'node',
  nodeArgs: string[] = [],
): { cmd: string; args: string[]; env?: NodeJS.ProcessEnv } {
  if (runtime === 'deno') {
    const deno = denoBinary()
    if (!deno) throw new Error('no Deno binary in node_modules (npm ci)')
    return { cmd: deno, args: denoMainArgs(['serve', ...flags]), env: denoEnv() }
  }
  // Under Deno (test/deno runs this file there) process.execPath is deno: EDGECD_NODE (or PATH) names node.
  const node = process.env.EDGECD_NODE || ('Deno' in globalThis ? 'node' : process.execPath)
  return { cmd: node, args: [...nodeArgs, '--import', 'tsx', 'src/cli/main.ts', 'serve', ...flags] }
}

export interface EdgecdOptions extends Partial<ServeFlags> {
  runtime?: Runtime
  /** Extra node flags, e.g. ['--cpu-prof']. */
  nodeArgs?: string[]
  /** Parent of the temp data dir when dataDir is not given (default the OS temp dir). */
  baseDir?: string
  /** Readiness: see ServerOptions (default GET /health answers true). */
  readyPath?: ServerOptions['readyPath']
  ready?: ServerOptions['ready']
  timeoutMs?: number
  stderrMax?: number
}

export interface EdgecdProcess extends ServerProcess {
  dataDir: string
}

function edgecdServer(o: EdgecdOptions & { clientUrl: string }): ServerOptions & { dataDir: string } {
  // A data dir made here is the process's own (removed by stop()); a given one is the caller's (restarts reuse it).
  const own = o.dataDir === undefined ? mkdtempSync(join(o.baseDir ?? tmpdir(), 'edgecd-member-')) : undefined
  const dataDir = o.dataDir ?? join(own!, 'data')
  const { cmd, args, env } = serveCommand(
    serveFlags({ ...o, dataDir, logLevel: o.logLevel ?? 'error' }),
    o.runtime,
    o.nodeArgs,
  )
  return {
    name: o.name ?? 'edgecd',
    cmd,
    args,
    ...(env ? { env } : {}),
    url: o.clientUrl,
    dataDir,
    ...(own ? { dir: own } : {}),
    ...(o.readyPath !== undefined ? { readyPath: o.readyPath } : {}),
    ...(o.ready ? { ready: o.ready } : {}),
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.stderrMax ? { stderrMax: o.stderrMax } : {}),
  }
}

/** Spawns a member without waiting for it (clientUrl is required: the caller planned the cluster). */
export function spawnEdgecd(o: EdgecdOptions & { clientUrl: string }): EdgecdProcess {
  const s = edgecdServer(o)
  return { ...spawnServer(s), dataDir: s.dataDir }
}

/** Starts a member (on a free port and a temp data dir unless given) and waits until it is ready. */
export async function startEdgecd(o: EdgecdOptions = {}): Promise<EdgecdProcess> {
  const clientUrl = o.clientUrl ?? `http://127.0.0.1:${await freePort()}`
  const s = edgecdServer({ ...o, clientUrl })
  return { ...(await startServer(s)), dataDir: s.dataDir }
}

/** `name=url,...` for --initial-cluster. */
export function initialCluster(names: string[], peerUrls: string[]): string {
  return names.map((n, i) => `${n}=${peerUrls[i]}`).join(',')
}

/** Starts an n-member cluster (members m0..m{n-1}) on free ports, and waits until every member is ready. */
export async function startEdgecdCluster(
  n: number,
  o: Omit<EdgecdOptions, 'name' | 'clientUrl' | 'dataDir' | 'initialCluster'> & { baseDir?: string } = {},
): Promise<EdgecdProcess[]> {
  const names = Array.from({ length: n }, (_, i) => `m${i}`)
  const urls: string[] = []
  for (let i = 0; i < n; i++) urls.push(`http://127.0.0.1:${await freePort()}`)
  const initial = initialCluster(names, urls)
  const members = names.map((name, i) =>
    spawnEdgecd({ ...o, name, clientUrl: urls[i]!, initialCluster: initial, token: o.token ?? 'edgecd-test' }),
  )
  try {
    await Promise.all(members.map((m) => m.waitReady()))
  } catch (err) {
    for (const m of members) m.kill('SIGKILL')
    await Promise.all(members.map((m) => m.stop()))
    throw err
  }
  return members
}
