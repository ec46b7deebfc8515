/**
 * `npm run bench -- cli`: wall time of one CLI call from process start to exit, as a user typing at a shell feels it.
 *   - `edgecd --version` and `edgecd get foo` as an installed package runs them: bin/edgecd.js in a directory with the
 *     package's dist/ and package.json and no src/ (so no staleness check), the bundled dist/cli/edgecd.js (the bench
 *     builds first); and once more from this checkout, where bin/edgecd.js also walks src/ to check dist/ is fresh;
 *   - the same two on Node 22 when scripts/setup-node22.mjs has provided one;
 *   - `etcdctl version` and `etcdctl get foo` (Debian's etcdctl 3.4) against etcd 3.4, when installed;
 *   - a bare `node -e 0`, the floor under any Node CLI.
 * Each row is the median of N runs (default 15, --quick 5) after one warm-up, with p90 and the median CPU time
 * (user + system, of the child) in the note, and the machine's load average at the start: on a loaded machine wall
 * time mostly measures the wait for a core, CPU time what the command costs. The target is `edgecd get foo` under
 * 100 ms on this machine.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { node22Binary } from '../scripts/setup-node22.mjs'
import { startEdgecd, startEtcd } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

const repoRoot = dirname(dirname(fileURLToPath(import.meta.url)))
const bin = join(repoRoot, 'bin/edgecd.js')

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

interface Timing {
  median: number
  p90: number
  cpuMedian: number
}

/**
 * Median and p90 wall time of `runs` calls of the command, after one warm-up, and the median CPU time of a call
 * (measured with /usr/bin/time where present); throws if a call fails.
 */
function time(cmd: string, args: string[], runs: number): Timing {
  const gnuTime = existsSync('/usr/bin/time')
  const once = () => {
    const t0 = process.hrtime.bigint()
    const r = gnuTime
      ? spawnSync('/usr/bin/time', ['-f', '@cpu %U %S', cmd, ...args], {
          encoding: 'utf8',
          env: { ...process.env, ETCDCTL_API: '3' },
        })
      : spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } })
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
    const m = /@cpu ([\d.]+) ([\d.]+)/.exec(r.stderr ?? '')
    return { ms, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : Number.NaN }
  }
  once()
  const all = Array.from({ length: runs }, once)
  const t = all.map((x) => x.ms).sort((a, b) => a - b)
  const c = all.map((x) => x.cpu).sort((a, b) => a - b)
  return {
    median: t[Math.floor(t.length / 2)]!,
    p90: t[Math.min(t.length - 1, Math.ceil(t.length * 0.9) - 1)]!,
    cpuMedian: c[Math.floor(c.length / 2)]!,
  }
}

/**
 * A directory laid out as an installed package (bin/edgecd.js, package.json, dist/ linked to this checkout's), so
 * bin/edgecd.js runs dist/ without walking src/: what `npm install edgecd` users run.
 */
function installedLayout(): { bin: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-bench-cli-'))
  mkdirSync(join(dir, 'bin'))
  copyFileSync(join(repoRoot, 'bin/edgecd.js'), join(dir, 'bin/edgecd.js'))
  copyFileSync(join(repoRoot, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(repoRoot, 'dist'), join(dir, 'dist'))
  return { bin: join(dir, 'bin/edgecd.js'), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const runs = opts.quick ? 5 : 15
  execFileSync(process.execPath, [join(repoRoot, 'scripts/build.mjs')], { stdio: 'ignore' })
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')
  const rows: BenchResult[] = []
  const row = (name: string, t: Timing) =>
    rows.push({
      name,
      value: Math.round(t.median * 10) / 10,
      unit: 'ms',
      note: `median of ${runs}, p90 ${t.p90.toFixed(1)} ms, CPU ${Number.isNaN(t.cpuMedian) ? '?' : t.cpuMedian.toFixed(0)} ms; load ${load}`,
    })
  const node22 = node22Binary()
  const installed = installedLayout()
  try {
    row('node -e 0 (floor)', time(process.execPath, ['-e', '0'], runs))
    if (node22) row('node 22: node -e 0 (floor)', time(node22, ['-e', '0'], runs))
    const edgecd = await startEdgecd()
    try {
      const get = ['--endpoints', edgecd.url, 'get', 'foo']
      execFileSync(process.execPath, [bin, '--endpoints', edgecd.url, 'put', 'foo', 'bar'])
      row('edgecd --version', time(process.execPath, [installed.bin, '--version'], runs))
      row('edgecd get foo', time(process.execPath, [installed.bin, ...get], runs))
      row('edgecd get foo (checkout: + src/ freshness walk)', time(process.execPath, [bin, ...get], runs))
      if (node22) {
        row('node 22: edgecd --version', time(node22, [installed.bin, '--version'], runs))
        row('node 22: edgecd get foo', time(node22, [installed.bin, ...get], runs))
      }
    } finally {
      await edgecd.stop()
    }
  } finally {
    installed.remove()
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
