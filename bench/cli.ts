/**
 * `npm run bench -- cli`: wall time of one CLI call from process start to exit, as a user typing at a shell feels it.
 *   - `edgecd --version` and `edgecd get foo` as an installed package runs them: the bin itself executed (its sh
 *     launcher, then Node), from a directory with the package's bin/, dist/ and package.json and no src/ (so no
 *     staleness check), the bundled dist/cli/edgecd.cjs (the bench builds first) with its V8 code cache (made by the
 *     warm-up run, in a temporary EDGECD_CACHE_DIR); once more without the cache (NODE_DISABLE_COMPILE_CACHE=1, what
 *     a first call costs), once through the full CLI rather than the quick path of `get` (EDGECD_CLI_NO_QUICK=1: the
 *     bundle every other command loads), and once from this checkout, where bin/edgecd.js also walks src/ to check
 *     dist/ is fresh;
 *   - each with and without NODE_EXTRA_CA_CERTS (Node 20 parses that whole file while it starts; the launcher keeps it
 *     from Node until an https call needs it): this process's value, else the system CA bundle where there is one;
 *   - the same on Node 22 (its directory first in PATH, as a user with Node 22 has it) when
 *     scripts/setup-node22.mjs has provided one;
 *   - `etcdctl version` and `etcdctl get foo` (Debian's etcdctl 3.4) against etcd 3.4, when installed;
 *   - a bare `node -e 0`, the floor under any Node CLI.
 * The calls run interleaved, one of each per round, so a change in the machine's load shifts every row alike. Each row
 * is the median of N rounds (default 15, --quick 5) after one warm-up, with p90, the median CPU time (user + system, of
 * the child, from bash's `times`, to the ms) and the load average at the start in the note: on a loaded machine
 * wall time mostly measures the wait for a core, CPU time what the command costs. The target is `edgecd get foo`
 * under 100 ms on this machine.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { node22Binary } from '../scripts/setup-node22.mjs'
import { startEdgecd, startEtcd } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

const repoRoot = dirname(dirname(fileURLToPath(import.meta.url)))
const bin = join(repoRoot, 'bin/edgecd.js')
const systemCaBundle = '/etc/ssl/certs/ca-certificates.crt'

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

interface Call {
  name: string
  cmd: string
  args: string[]
  env: NodeJS.ProcessEnv
}

interface Timing {
  median: number
  p90: number
  cpuMedian: number
}

/** One run of a call: wall ms and CPU ms (user + system of the child, from bash's `times`; NaN without bash). */
function once(c: Call): { ms: number; cpu: number } {
  const bash = existsSync('/bin/bash')
  const t0 = process.hrtime.bigint()
  const r = bash
    ? spawnSync('/bin/bash', ['-c', '"$@"; s=$?; times >&2; exit $s', 'bash', c.cmd, ...c.args], {
        encoding: 'utf8',
        env: c.env,
      })
    : spawnSync(c.cmd, c.args, { encoding: 'utf8', env: c.env })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0) throw new Error(`${c.name}: ${c.cmd} ${c.args.join(' ')} exited ${r.status}: ${r.stderr}`)
  // `times` prints the shell's own times, then its children's: "0m0.043s 0m0.012s".
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stderr ?? '')
  const secs = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : Number.NaN
  return { ms, cpu: secs * 1000 }
}

/** Median and p90 wall time and median CPU time of each call over `runs` interleaved rounds, after one warm-up. */
function timeAll(calls: Call[], runs: number): Map<Call, Timing> {
  for (const c of calls) once(c)
  const all = new Map(calls.map((c) => [c, [] as { ms: number; cpu: number }[]]))
  for (let round = 0; round < runs; round++) {
    // Rotate the order each round, so no call always runs right after the same other one.
    for (let i = 0; i < calls.length; i++) {
      const c = calls[(i + round) % calls.length]!
      all.get(c)!.push(once(c))
    }
  }
  const out = new Map<Call, Timing>()
  for (const [c, xs] of all) {
    const t = xs.map((x) => x.ms).sort((a, b) => a - b)
    const cpu = xs.map((x) => x.cpu).sort((a, b) => a - b)
    out.set(c, {
      median: t[Math.floor(t.length / 2)]!,
      p90: t[Math.min(t.length - 1, Math.ceil(t.length * 0.9) - 1)]!,
      cpuMedian: cpu[Math.floor(cpu.length / 2)]!,
    })
  }
  return out
}

/**
 * A directory laid out as an installed package (bin/, package.json, dist/ linked to this checkout's), so
 * bin/edgecd.js runs dist/ without walking src/: what `npm install edgecd` users run. Its code cache goes to a
 * temporary EDGECD_CACHE_DIR.
 */
function installedLayout(): { bin: string; cacheDir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-bench-cli-'))
  mkdirSync(join(dir, 'bin'))
  copyFileSync(join(repoRoot, 'bin/edgecd.js'), join(dir, 'bin/edgecd.js'))
  copyFileSync(join(repoRoot, 'bin/package.json'), join(dir, 'bin/package.json'))
  copyFileSync(join(repoRoot, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(repoRoot, 'dist'), join(dir, 'dist'))
  return {
    bin: join(dir, 'bin/edgecd.js'),
    cacheDir: join(dir, 'cache'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const runs = opts.quick ? 5 : 15
  execFileSync(process.execPath, [join(repoRoot, 'scripts/build.mjs')], { stdio: 'ignore' })
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')
  const node22 = node22Binary()
  const installed = installedLayout()
  const extraCa = process.env.NODE_EXTRA_CA_CERTS || (existsSync(systemCaBundle) ? systemCaBundle : undefined)
  const { NODE_EXTRA_CA_CERTS: _, ...base } = process.env
  const baseEnv = { ...base, ETCDCTL_API: '3', EDGECD_CACHE_DIR: installed.cacheDir }
  /** Environments to run each edgecd call in: without, and with NODE_EXTRA_CA_CERTS. */
  const caEnvs: [string, NodeJS.ProcessEnv][] = [['', baseEnv]]
  if (extraCa) caEnvs.push([', NODE_EXTRA_CA_CERTS set', { ...baseEnv, NODE_EXTRA_CA_CERTS: extraCa }])
  /** Node 20 (this process's) and Node 22: the launcher's `exec node` takes the first in PATH. */
  const nodes: [string, string][] = [['', process.execPath]]
  if (node22) nodes.push(['node 22: ', node22])
  const withNode = (env: NodeJS.ProcessEnv, node: string) => ({
    ...env,
    PATH: `${dirname(node)}${delimiter}${env.PATH ?? ''}`,
  })

  const calls: Call[] = []
  const etcdctl = which('etcdctl')
  const edgecd = await startEdgecd()
  const etcd = etcdctl && existsSync('/usr/bin/etcd') ? await startEtcd() : undefined
  let times: Map<Call, Timing>
  try {
    const get = ['--endpoints', edgecd.url, 'get', 'foo']
    execFileSync(process.execPath, [bin, '--endpoints', edgecd.url, 'put', 'foo', 'bar'])
    for (const [nodeName, node] of nodes) {
      for (const [caName, caEnv] of caEnvs) {
        const env = withNode(caEnv, node)
        calls.push({ name: `${nodeName}node -e 0 (floor)${caName}`, cmd: node, args: ['-e', '0'], env })
        calls.push({ name: `${nodeName}edgecd --version${caName}`, cmd: installed.bin, args: ['--version'], env })
        calls.push({ name: `${nodeName}edgecd get foo${caName}`, cmd: installed.bin, args: get, env })
      }
    }
    const [caName, caEnv] = caEnvs[caEnvs.length - 1]!
    calls.push({
      name: `edgecd get foo without the code cache (a first call)${caName}`,
      cmd: installed.bin,
      args: get,
      env: { ...caEnv, NODE_DISABLE_COMPILE_CACHE: '1' },
    })
    calls.push({
      name: 'edgecd get foo through the full CLI (EDGECD_CLI_NO_QUICK=1: what other commands load)',
      cmd: installed.bin,
      args: get,
      env: { ...baseEnv, EDGECD_CLI_NO_QUICK: '1' },
    })
    calls.push({ name: 'edgecd get foo from the checkout (+ src/ freshness walk)', cmd: bin, args: get, env: baseEnv })
    if (etcd && etcdctl) {
      execFileSync(etcdctl, ['--endpoints', etcd.url, 'put', 'foo', 'bar'], { env: baseEnv })
      calls.push({ name: 'etcdctl version', cmd: etcdctl, args: ['version'], env: baseEnv })
      calls.push({
        name: 'etcdctl get foo (vs etcd 3.4)',
        cmd: etcdctl,
        args: ['--endpoints', etcd.url, 'get', 'foo'],
        env: baseEnv,
      })
    }
    times = timeAll(calls, runs)
  } finally {
    await edgecd.stop()
    await etcd?.stop()
    installed.remove()
  }
  return calls.map((c) => {
    const t = times.get(c)!
    return {
      name: c.name,
      value: Math.round(t.median * 10) / 10,
      unit: 'ms',
      note: `median of ${runs}, p90 ${t.p90.toFixed(1)} ms, CPU ${Number.isNaN(t.cpuMedian) ? '?' : t.cpuMedian.toFixed(0)} ms; load ${load}`,
    }
  })
}
