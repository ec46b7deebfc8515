/**
 * `npm run bench -- cli`: wall time of one CLI call from process start to exit, as a user typing at a shell feels it.
 *   - `edgecd --version` and `edgecd get foo` through bin/edgecd.js (compiled dist/ after `npm run build`; the bench
 *     builds first so it never times the tsx path), against an edgecd member;
 *   - `etcdctl version` and `etcdctl get foo` (Debian's etcdctl 3.4) against etcd 3.4, when installed;
 *   - a bare `node -e 0`, the floor under any Node CLI.
 * Each row is the median of N runs (default 15, --quick 5) after one warm-up, with p90 in the note. The target is
 * `edgecd get foo` under 100 ms on this machine.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startEdgecd, startEtcd } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

const repoRoot = dirname(dirname(fileURLToPath(import.meta.url)))
const bin = join(repoRoot, 'bin/edgecd.js')

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** Median and p90 wall time of `runs` calls of the command, after one warm-up; throws if a call fails. */
function time(cmd: string, args: string[], runs: number): { median: number; p90: number } {
  const once = () => {
    const t0 = process.hrtime.bigint()
    const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } })
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
    return ms
  }
  once()
  const t = Array.from({ length: runs }, once).sort((a, b) => a - b)
  return { median: t[Math.floor(t.length / 2)]!, p90: t[Math.min(t.length - 1, Math.ceil(t.length * 0.9) - 1)]! }
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const runs = opts.quick ? 5 : 15
  execFileSync(process.execPath, [join(repoRoot, 'scripts/build.mjs')], { stdio: 'ignore' })
  const rows: BenchResult[] = []
  const row = (name: string, t: { median: number; p90: number }) =>
    rows.push({
      name,
      value: Math.round(t.median * 10) / 10,
      unit: 'ms',
      note: `median of ${runs}, p90 ${t.p90.toFixed(1)} ms`,
    })

  row('node -e 0 (floor)', time(process.execPath, ['-e', '0'], runs))
  const edgecd = await startEdgecd()
  try {
    execFileSync(process.execPath, [bin, '--endpoints', edgecd.url, 'put', 'foo', 'bar'])
    row('edgecd --version', time(process.execPath, [bin, '--version'], runs))
    row('edgecd get foo', time(process.execPath, [bin, '--endpoints', edgecd.url, 'get', 'foo'], runs))
  } finally {
    await edgecd.stop()
  }
  const etcdctl = which('etcdctl')
  if (etcdctl && existsSync('/usr/bin/etcd')) {
    const etcd = await startEtcd()
    try {
      execFileSync(etcdctl, ['--endpoints', etcd.url, 'put', 'foo', 'bar'], {
        env: { ...process.env, ETCDCTL_API: '3' },
      })
      row('etcdctl version', time(etcdctl, ['version'], runs))
      row('etcdctl get foo (vs etcd 3.4)', time(etcdctl, ['--endpoints', etcd.url, 'get', 'foo'], runs))
    } finally {
      await etcd.stop()
    }
  }
  return rows
}
