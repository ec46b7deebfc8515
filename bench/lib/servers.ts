/**
 * The servers bench/http.ts drives, each a child process on loopback with its own temp data dir: an edgecd member,
 * Debian's etcd (default flags apart from the addresses), and a trivial node:http server that answers a fixed body
 * (to show the load generator's own ceiling). Every start waits for /health (or a first answer) with a deadline, and
 * `stop()` ends the child and removes its directory.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = dirname(dirname(dirname(fileURLToPath(import.meta.url))))
/** How long a server may take to answer /health after it is spawned. */
const startTimeoutMs = 30_000
/** How long a server may take to exit after SIGTERM before it is killed. */
const stopTimeoutMs = 10_000
/** Ports others use on this machine; never taken here. */
const reservedPorts = new Set([2379, 2380, 23790])

export interface BenchServer {
  name: string
  url: string
  /** The child's pid, for a profile or a look with top. */
  pid: number
  stop(): Promise<void>
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const userHz = 100

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN where that is not available. */
export function processCpuSecs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start at state, field 3; utime and stime are 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / userHz
  } catch {
    return Number.NaN
  }
}

/** A free loopback port chosen by the OS (outside the reserved ones). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer()
      s.once('error', reject)
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port
        s.close(() => resolve(p))
      })
    })
    if (!reservedPorts.has(port)) return port
  }
  throw new Error('no free port')
}

export async function waitHealthy(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = performance.now() + startTimeoutMs
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: exited with ${child.exitCode}: ${stderr()}`)
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
      const text = await res.text()
      if (res.status === 200 && text.includes('true')) return
    } catch {}
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${url}: not healthy after ${startTimeoutMs} ms: ${stderr()}`)
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

export async function startChild(
  name: string,
  cmd: string,
  args: string[],
  url: string,
  dir: string | undefined,
): Promise<BenchServer> {
  const child = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  // BENCH_SERVER_STDERR=1 passes the servers' stderr through (a member's debug output while tuning).
  const echo = process.env.BENCH_SERVER_STDERR === '1'
  child.stderr!.on('data', (d: Buffer) => {
    if (echo) process.stderr.write(d)
    if (err.length < 4096) err += d.toString()
  })
  const stop = async () => {
    await stopChild(child)
    if (dir) await rm(dir, { recursive: true, force: true })
  }
  try {
    await waitHealthy(url, child, () => err)
  } catch (e) {
    await stop()
    throw e
  }
  return { name, url, pid: child.pid!, stop }
}

export interface EdgecdOptions {
  /** Extra node flags for the member, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: string[]
  /** Parent of the temp data dir (default the OS temp dir). */
  baseDir?: string
  /** Extra `edgecd serve` flags, after the bench's own. */
  serveArgs?: string[]
}

/** One edgecd member: `node --import tsx src/cli/main.ts serve` on a temp data dir and a free loopback port. */
export async function startEdgecd(opts: EdgecdOptions = {}): Promise<BenchServer> {
  const dir = await mkdtemp(join(opts.baseDir ?? tmpdir(), 'edgecd-http-bench-'))
  const url = `http://127.0.0.1:${await freePort()}`
  const args = [
    ...(opts.nodeArgs ?? []),
    '--import',
    'tsx',
    'src/cli/main.ts',
    'serve',
    '--data-dir',
    join(dir, 'data'),
    '--listen-client-urls',
    url,
    '--log-level',
    'error',
    ...(opts.serveArgs ?? []),
  ]
  return startChild('edgecd', process.execPath, args, url, dir)
}

/** Debian's etcd 3.4 (`etcd` on PATH, see scripts/setup-etcd.sh) with default flags, on temp dir and loopback ports. */
export async function startEtcd(opts: { baseDir?: string } = {}): Promise<BenchServer> {
  const dir = await mkdtemp(join(opts.baseDir ?? tmpdir(), 'etcd-http-bench-'))
  const url = `http://127.0.0.1:${await freePort()}`
  const peer = `http://127.0.0.1:${await freePort()}`
  const args = [
    '--name',
    'bench',
    '--data-dir',
    join(dir, 'data'),
    '--listen-client-urls',
    url,
    '--advertise-client-urls',
    url,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `bench=${peer}`,
    '--logger',
    'zap',
    '--log-level',
    'error',
  ]
  return startChild('etcd', 'etcd', args, url, dir)
}

/** A node:http server answering every request with a fixed etcd-shaped body: the load generator's own ceiling. */
export async function startTrivial(): Promise<BenchServer> {
  const url = `http://127.0.0.1:${await freePort()}`
  const port = new URL(url).port
  const src = `
    const http = require('node:http')
    const body = '{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"}}'
    http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.url === '/health') return res.end('{"health":"true"}')
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length })
        res.end(body)
      })
    }).listen(${port}, '127.0.0.1')
    process.on('SIGTERM', () => process.exit(0))
  `
  return startChild('trivial', process.execPath, ['-e', src], url, undefined)
}
