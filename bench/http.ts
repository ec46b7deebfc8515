/**
 * HTTP throughput and latency of a member through etcd's JSON gateway, optionally side by side with Debian's etcd on
 * the same machine under the same load. Closed loop: N clients, each on its own keep-alive connection, each sending
 * its next request when the previous answer is read; 256-byte values over 10,000 keys (preloaded before the first
 * run). Workloads: put, linearizable range, serializable range, and a 90/10 mix of linearizable ranges and puts, each
 * with 1 and 64 clients. Every server is a child process (its own temp data dir on the same filesystem, loopback port,
 * fsync on as by default), the load generator is this process.
 *
 *   npm run bench -- http [--etcd] [--quick] [--members 1] [--clients 1,64] [--seconds 5]
 *                         [--rounds 1] [--workloads put,range-linearizable,...] [--trivial] [--profile <dir>]
 *   node --import tsx bench/http.ts --etcd        (the same, standalone)
 *
 *   --etcd       also run the load against etcd and print the ratio edgecd/etcd per workload
 *   --trivial    also run it against a node:http server answering a fixed body: the generator's own ceiling
 *   --rounds n   run every workload n times per server, interleaved, and report the median run (a shared machine)
 *   --warmup-seconds s  unmeasured puts (64 clients) sent to each server after the preload (default 3, 0.3 with
 *                --quick): a fresh member's JIT is cold for its first few thousand puts
 *   --quick      CI smoke: put 1 and 64 clients, the rest with 64, 0.5 s each (a few seconds per server)
 *   --profile d  start edgecd with `node --cpu-prof --cpu-prof-dir d` (open the .cpuprofile in Chrome DevTools); with
 *                --runtime workerd, a profile of the workerd member's workers through V8's inspector instead
 *                (EDGECD_WORKERD_INSPECTOR_PORT, bench/lib/workerd-profile.ts), recorded after the preload, written
 *                to d and summarised (top functions by self time) at the end
 *   --edgecd-flag=--snapshot-count=100000   an extra `edgecd serve` flag (repeatable), for what-if runs
 *   --runtime r  run the edgecd member with `edgecd serve --runtime r` (node, deno or workerd); CPU per op counts the
 *                launcher and its child (deno, workerd)
 *   --members n  1 (default) or 3: three members against three members (bench/cluster.ts)
 *   --auth       a second member with auth on, every request carrying `Authorization: Bearer <jwt>` of a non-root
 *                user with READWRITE on the bench's keys, next to the first with auth off: prints auth/off per
 *                workload (default workloads put and range-linearizable; --workloads picks others)
 *
 * Each run is bounded by time (warm-up plus measured seconds) and by a request count; servers are stopped and their
 * directories removed at the end, also on failure.
 */
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { freePort } from '../test/support/index.js'
import { benchToken, enableBenchAuth } from './lib/auth.js'
import { Bodies, type LoadResult, openPool, preload, runLoad, type Workload, type WorkloadKind } from './lib/load.js'
import { type BenchServer, startEdgecd, startEtcd, startTrivial, treeCpuSecs } from './lib/servers.js'
import { startWorkerdProfile, summarise } from './lib/workerd-profile.js'
import type { BenchOptions, BenchResult } from './types.js'

const allKinds: WorkloadKind[] = ['put', 'range-linearizable', 'range-serializable', 'mix-90-10']
/** Writers used to preload the key space. */
const preloadClients = 64

interface Plan {
  workloads: Workload[]
  measureMs: number
  warmupMs: number
  /** Puts with 64 clients sent to each server after the preload, not measured (`--warmup-seconds`). */
  serverWarmupMs: number
  /** Each workload runs this many times per server (interleaved); the run with the median ops/s is reported. */
  rounds: number
  etcd: boolean
  trivial: boolean
  /** Also a member with auth on (named `auth`), compared with the one without. */
  auth: boolean
  profileDir?: string
  /** The edgecd member's runtime (`--runtime`). */
  runtime: string
  /** Extra `edgecd serve` flags (what-if runs, e.g. --snapshot-count=100000); none by default. */
  edgecdFlags: string[]
}

function plan(opts: BenchOptions): Plan {
  const { values } = parseArgs({
    args: opts.args,
    options: {
      etcd: { type: 'boolean' },
      trivial: { type: 'boolean' },
      auth: { type: 'boolean' },
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      members: { type: 'string', default: '1' },
      clients: { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      workloads: { type: 'string' },
      profile: { type: 'string' },
      'edgecd-flag': { type: 'string', multiple: true },
      runtime: { type: 'string', default: 'node' },
      'warmup-seconds': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  })
  if (values.members !== '1' && values.members !== '3') throw new Error(`--members: 1 or 3, got ${values.members}`)
  const quick = opts.quick || values.quick === true
  const defaultKinds: WorkloadKind[] = values.auth ? ['put', 'range-linearizable'] : allKinds
  const kinds = values.workloads ? (values.workloads.split(',') as WorkloadKind[]) : defaultKinds
  for (const k of kinds) if (!allKinds.includes(k)) throw new Error(`unknown workload ${k} (${allKinds.join(', ')})`)
  const clients = values.clients ? values.clients.split(',').map(Number) : [1, 64]
  for (const c of clients)
    if (!Number.isInteger(c) || c < 1 || c > 1024) throw new Error(`--clients: 1..1024, got ${c}`)
  const workloads: Workload[] = []
  for (const kind of kinds) {
    for (const c of clients) {
      // Quick mode keeps the targets' runs (put with 1 and 64 clients, everything else with 64) and drops the rest.
      if (quick && !values.clients && c === 1 && kind !== 'put') continue
      workloads.push({ kind, clients: c })
    }
  }
  const seconds = values.seconds ? Number(values.seconds) : quick ? 0.5 : 5
  if (!(seconds > 0 && seconds <= 600)) throw new Error(`--seconds: (0, 600], got ${values.seconds}`)
  const serverWarmup = values['warmup-seconds'] ? Number(values['warmup-seconds']) : quick ? 0.3 : 3
  if (!(serverWarmup >= 0 && serverWarmup <= 600))
    throw new Error(`--warmup-seconds: [0, 600], got ${values['warmup-seconds']}`)
  const rounds = values.rounds ? Number(values.rounds) : 1
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`--rounds: 1..20, got ${values.rounds}`)
  return {
    workloads,
    rounds,
    measureMs: seconds * 1000,
    warmupMs: quick ? 200 : 1000,
    serverWarmupMs: serverWarmup * 1000,
    etcd: values.etcd === true,
    trivial: values.trivial === true,
    auth: values.auth === true,
    ...(values.profile ? { profileDir: values.profile } : {}),
    runtime: values.runtime!,
    edgecdFlags: [
      ...(values.runtime !== 'node' ? ['--runtime', values.runtime!] : []),
      ...(values['edgecd-flag'] ?? []),
    ],
  }
}

const label = (w: Workload) => `${w.kind}, ${w.clients} client${w.clients === 1 ? '' : 's'}`
const us = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-')
const ms = (v: number) => (Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1))

/**
 * `num`/`den` (edgecd/etcd, auth/edgecd) per workload: the median over rounds of the ratio within each round. The two
 * runs of a round are back to back and share the machine's state, so on a busy machine this is steadier than the
 * ratio of the two medians.
 */
function pairedRatios(p: Plan, runs: Map<string, LoadResult[][]>, num = 'edgecd', den = 'etcd'): number[] {
  const a = runs.get(num)
  const b = runs.get(den)
  if (!a || !b) return []
  return p.workloads.map((_, i) => {
    const ratios = a[i]!.map((r, round) => r.opsPerSec / b[i]![round]!.opsPerSec).sort((x, y) => x - y)
    return ratios[Math.floor((ratios.length - 1) / 2)]!
  })
}

function sideBySide(
  p: Plan,
  names: string[],
  results: Map<string, LoadResult[]>,
  ratios: number[],
  authRatios: number[],
): string {
  const head = ['workload']
  for (const n of names) head.push(`${n} ops/s`, 'p50 ms', 'p99 ms', 'µs cpu/op', 'errors')
  if (names.includes('etcd')) head.push('edgecd/etcd')
  if (names.includes('auth')) head.push('auth/edgecd')
  head.push('gen cpu')
  const rows = p.workloads.map((w, i) => {
    const row = [label(w)]
    for (const n of names) {
      const r = results.get(n)![i]!
      row.push(
        Math.round(r.opsPerSec).toLocaleString('en-US'),
        ms(r.p50Ms),
        ms(r.p99Ms),
        us(r.serverCpuUsPerOp),
        String(r.errors),
      )
    }
    if (names.includes('etcd')) row.push(ratios[i]!.toFixed(2))
    if (names.includes('auth')) row.push(authRatios[i]!.toFixed(2))
    row.push(`${Math.round(results.get('edgecd')![i]!.clientCpuCores * 100)}%`)
    return row
  })
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
  const line = (r: string[]) => r.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ')
  return [line(head), line(widths.map((x) => '-'.repeat(x))), ...rows.map(line)].join('\n')
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  // Three members against three members lives in bench/cluster.ts.
  if (opts.args.some((a, i) => (a === '--members' && opts.args[i + 1] === '3') || a === '--members=3'))
    return (await import('./cluster.js')).run(opts)
  const p = plan(opts)
  const say = opts.args.includes('--json') ? (l: string) => console.error(l) : (l: string) => console.log(l)
  const bodies = new Bodies()
  const servers: BenchServer[] = []
  const results = new Map<string, LoadResult[]>()
  const runs = new Map<string, LoadResult[][]>()
  const load0 = loadavg()[0]!
  // workerd: no --cpu-prof; its V8 inspector on a loopback port instead (the member inherits the variable).
  const workerdInspector = p.profileDir && p.runtime === 'workerd' ? await freePort() : undefined
  let stopWorkerdProfile: Awaited<ReturnType<typeof startWorkerdProfile>> | undefined
  try {
    if (workerdInspector !== undefined) process.env.EDGECD_WORKERD_INSPECTOR_PORT = String(workerdInspector)
    servers.push(
      await startEdgecd({
        ...(p.profileDir && workerdInspector === undefined
          ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', p.profileDir] }
          : {}),
        serveArgs: p.edgecdFlags,
      }),
    )
    delete process.env.EDGECD_WORKERD_INSPECTOR_PORT
    if (p.auth)
      servers.push({
        ...(await startEdgecd({ serveArgs: [...p.edgecdFlags, '--auth-password-iterations', '1000'] })),
        name: 'auth',
      })
    if (p.etcd) servers.push(await startEtcd())
    if (p.trivial) servers.push(await startTrivial())
    for (const s of servers) {
      runs.set(
        s.name,
        p.workloads.map(() => []),
      )
      if (s.name === 'trivial') continue
      const pool = openPool(s.url, preloadClients)
      try {
        await preload(pool, bodies, preloadClients)
        // A fresh edgecd member's JIT is cold: single puts cost it about twice the CPU for its first few thousand
        // (docs/benchmarks.md, "One put, taken apart"), which the 1-client put run's 1 s warm-up does not cover.
        // Every server gets the same unmeasured puts.
        if (p.serverWarmupMs > 0)
          await runLoad(pool, bodies, { kind: 'put', clients: preloadClients }, p.serverWarmupMs, 0)
      } finally {
        await pool.close()
      }
      // The key space is written with auth off; then auth goes on for every run against this member.
      if (s.name === 'auth') await enableBenchAuth(s.url)
      if (s.name === 'edgecd' && workerdInspector !== undefined)
        stopWorkerdProfile = await startWorkerdProfile(workerdInspector, p.profileDir!)
    }
    // Interleaved: each workload runs on every server before the next, so a machine that gets busier or quieter
    // during the run shifts both columns alike.
    for (let round = 0; round < p.rounds; round++) {
      for (const [i, w] of p.workloads.entries()) {
        // Alternate who goes first, so that neither server always runs right after the other's writes.
        for (const s of round % 2 === 0 ? servers : [...servers].reverse()) {
          const pool = openPool(s.url, w.clients)
          try {
            // A fresh token per run (they live 300 s), sent as most clients do: `Authorization: Bearer <jwt>`.
            const headers: Record<string, string> =
              s.name === 'auth' ? { authorization: `Bearer ${await benchToken(s.url)}` } : {}
            const r = await runLoad(
              pool,
              bodies,
              w,
              p.measureMs,
              p.warmupMs,
              () => treeCpuSecs(s.pid),
              undefined,
              headers,
            )
            runs.get(s.name)![i]!.push(r)
            say(
              `  ${s.name.padEnd(7)} ${label(w).padEnd(32)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(8)} ops/s  p50 ${ms(r.p50Ms)} ms  p99 ${ms(r.p99Ms)} ms  ${us(r.serverCpuUsPerOp)} µs cpu/op  ${r.errors} errors${r.firstError ? ` (${r.firstError})` : ''}`,
            )
          } finally {
            await pool.close()
          }
        }
      }
    }
    if (stopWorkerdProfile) {
      for (const { worker, path, profile } of await stopWorkerdProfile()) {
        say(`workerd profile of ${worker === 'core:user:' ? "edgecd's Worker and Durable Object" : worker}: ${path}`)
        for (const line of summarise(profile)) say(`  ${line}`)
      }
    }
  } finally {
    delete process.env.EDGECD_WORKERD_INSPECTOR_PORT
    for (const s of servers.reverse()) await s.stop()
  }

  // The median run by throughput; its latencies are reported with it, errors are those of every run.
  for (const [name, perWorkload] of runs) {
    results.set(
      name,
      perWorkload.map((rs) => {
        const sorted = [...rs].sort((a, b) => a.opsPerSec - b.opsPerSec)
        return { ...sorted[Math.floor((sorted.length - 1) / 2)]!, errors: rs.reduce((n, r) => n + r.errors, 0) }
      }),
    )
  }
  const names = [...results.keys()]
  const ratios = pairedRatios(p, runs)
  const authRatios = pairedRatios(p, runs, 'auth', 'edgecd')
  say('')
  say(sideBySide(p, names, results, ratios, authRatios))
  say("(edgecd/etcd, auth/edgecd: the median over rounds of each round's ratio; auth: a member with auth on, Bearer")
  say(" JWT of a non-root user on every request; gen cpu: the load generator's own CPU during the")
  say(" edgecd run, share of one core; µs cpu/op: the server's CPU per request, user + system from /proc, which a busy")
  say(' machine disturbs less than ops/s)')
  say(
    `(load average before ${load0.toFixed(2)}, after ${loadavg()[0]!.toFixed(2)} on ${cpus().length} cores: well above the` +
      " bench's own ~2 means others were busy too)",
  )
  say('')

  const rows: BenchResult[] = []
  p.workloads.forEach((w, i) => {
    for (const n of names) {
      const r = results.get(n)![i]!
      rows.push({
        name: `${n} ${label(w)}`,
        value: Math.round(r.opsPerSec),
        unit: 'ops/s',
        note: `p50 ${ms(r.p50Ms)} ms, p99 ${ms(r.p99Ms)} ms, server ${us(r.serverCpuUsPerOp)} µs cpu/op, ${r.errors} errors, generator ${Math.round(r.clientCpuCores * 100)}% cpu`,
      })
    }
    if (results.has('auth')) {
      rows.push({
        name: `auth/edgecd ${label(w)}`,
        value: Number(authRatios[i]!.toFixed(2)),
        unit: 'x',
        note: `auth on (Bearer JWT, non-root user) over auth off${p.rounds > 1 ? `, median of ${p.rounds} paired rounds` : ''}`,
      })
    }
    if (results.has('etcd')) {
      const ratio = ratios[i]!
      rows.push({
        name: `edgecd/etcd ${label(w)}`,
        value: Number(ratio.toFixed(2)),
        unit: 'x',
        ...(p.rounds > 1 ? { note: `median of ${p.rounds} paired rounds` } : {}),
      })
    }
  })
  return rows
}

if (process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  await run({ quick: args.includes('--quick'), args })
}
