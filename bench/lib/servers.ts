/**
 * The servers bench/http.ts drives, each a child process on loopback with its own temp data dir: an edgecd member,
 * Debian's etcd (default flags apart from the addresses), and a trivial node:http server that answers a fixed body
 * (to show the load generator's own ceiling). Every start waits for /health (or a first answer) with a deadline, and
 * `stop()` ends the child and removes its directory.
 */
import { readdirSync, readFileSync } from 'node:fs'
import {
  freePort,
  startEdgecd as startEdgecdMember,
  startEtcd as startEtcdMember,
  startServer,
} from '../../test/support/index.js'

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

/**
 * CPU seconds of a process and its children (Linux /proc): `edgecd serve --runtime workerd|deno` runs the member in
 * a child (workerd, deno), whose CPU belongs to the member.
 */
export function treeCpuSecs(pid: number): number {
  let total = processCpuSecs(pid)
  let entries: string[] = []
  try {
    entries = readdirSync('/proc')
  } catch {
    return total
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += processCpuSecs(Number(e))
    } catch {}
  }
  return total
}

export interface EdgecdOptions {
  /** Extra node flags for the member, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: string[]
  /** Parent of the temp data dir (default the OS temp dir). */
  baseDir?: string
  /** Extra `edgecd serve` flags, after the bench's own. */
  serveArgs?: string[]
}

/** One edgecd member (test/support's launcher) on a temp data dir and a free loopback port. */
export function startEdgecd(opts: EdgecdOptions = {}): Promise<BenchServer> {
  return startEdgecdMember({
    ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}),
    ...(opts.baseDir ? { baseDir: opts.baseDir } : {}),
    extra: opts.serveArgs ?? [],
    logLevel: 'error',
    stderrMax: 4096,
  })
}

/** Debian's etcd 3.4 (`etcd` on PATH, see scripts/setup-etcd.sh) with default flags, on temp dir and loopback ports. */
export function startEtcd(opts: { baseDir?: string } = {}): Promise<BenchServer> {
  return startEtcdMember(opts)
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
  return startServer({ name: 'trivial', cmd: process.execPath, args: ['-e', src], url })
}
