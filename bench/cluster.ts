/**
 * Three members against three members: the same closed-loop HTTP load (bench/lib/load.ts) against a three-member
 * edgecd cluster and, with --etcd, a three-member Debian etcd 3.4 cluster on this machine, through the leader and
 * through a follower, side by side with the ratio. Server CPU is summed over the three members.
 *
 *   npm run bench -- cluster --etcd [--quick] [--seconds 3] [--rounds 3]   (also: npm run bench -- http --members 3 --etcd)
 *
 * --warmup-seconds s: unmeasured 64-client puts through the leader and then through a follower of every cluster
 * after the preload, s seconds each (default 2, 0.2 with --quick): a fresh edgecd member's JIT is cold for its first
 * few thousand puts (docs/benchmarks.md, "One put, taken apart").
 *
 * With --rounds N every case runs N times, edgecd and etcd back to back each time, and the ratio reported is the median
 * of the N per-round ratios (this VM's disk speed drifts over minutes, so pairs measured together compare best).
 */
import { parseArgs } from 'node:util'
import { type BenchCluster, startEdgecdCluster, startEtcdCluster } from './lib/clusters.js'
import { Bodies, type LoadResult, openPool, preload, runLoad, type Workload } from './lib/load.js'
import type { BenchOptions, BenchResult } from './types.js'

interface Case {
  w: Workload
  via: 'leader' | 'follower'
}

const cases: Case[] = [
  { w: { kind: 'put', clients: 1 }, via: 'leader' },
  { w: { kind: 'put', clients: 64 }, via: 'leader' },
  { w: { kind: 'put', clients: 1 }, via: 'follower' },
  { w: { kind: 'put', clients: 64 }, via: 'follower' },
  { w: { kind: 'range-linearizable', clients: 64 }, via: 'leader' },
  { w: { kind: 'range-linearizable', clients: 64 }, via: 'follower' },
]

const label = (c: Case) => `${c.w.kind}, ${c.w.clients} client${c.w.clients === 1 ? '' : 's'}, via ${c.via}`

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const { values } = parseArgs({
    args: opts.args,
    options: {
      etcd: { type: 'boolean' },
      quick: { type: 'boolean' },
      seconds: { type: 'string' },
      members: { type: 'string' },
      rounds: { type: 'string' },
      json: { type: 'boolean' },
      'warmup-seconds': { type: 'string' },
    },
    strict: false,
    allowPositionals: true,
  })
  const quick = opts.quick || values.quick === true
  const measureMs = (values.seconds ? Number(values.seconds) : quick ? 0.5 : 3) * 1000
  const warmupMs = quick ? 200 : 1000
  const serverWarmupMs = (values['warmup-seconds'] ? Number(values['warmup-seconds']) : quick ? 0.2 : 2) * 1000
  if (!(serverWarmupMs >= 0 && serverWarmupMs <= 600_000)) throw new Error('--warmup-seconds: [0, 600]')
  const rounds = values.rounds ? Number(values.rounds) : 1
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer')
  const bodies = new Bodies()
  const clusters: BenchCluster[] = []
  /** results.get(cluster)[case][round] */
  const results = new Map<string, LoadResult[][]>()
  try {
    clusters.push(await startEdgecdCluster(3))
    if (values.etcd) clusters.push(await startEtcdCluster(3))
    for (const c of clusters) {
      const { leader, follower } = await c.roles()
      const pool = openPool(leader, 16)
      try {
        await preload(pool, bodies, 16)
      } finally {
        await pool.close()
      }
      if (serverWarmupMs > 0)
        for (const url of [leader, follower]) {
          const warm = openPool(url, 64)
          try {
            await runLoad(warm, bodies, { kind: 'put', clients: 64 }, serverWarmupMs, 0)
          } finally {
            await warm.close()
          }
        }
      results.set(
        c.name,
        cases.map(() => []),
      )
    }
    for (let round = 0; round < rounds; round++)
      for (const [ci, cs] of cases.entries()) {
        for (const c of clusters) {
          const r = await c.roles()
          const pool = openPool(cs.via === 'leader' ? r.leader : r.follower, cs.w.clients)
          try {
            const res = await runLoad(pool, bodies, cs.w, measureMs, warmupMs, () => c.cpuSecs())
            results.get(c.name)![ci]!.push(res)
            console.log(
              `  ${c.name.padEnd(7)} ${label(cs).padEnd(44)} ${Math.round(res.opsPerSec).toLocaleString('en-US').padStart(7)} ops/s  p50 ${res.p50Ms.toFixed(2)} ms  p99 ${res.p99Ms.toFixed(1)} ms  ${res.errors} errors${res.firstError ? ` (${res.firstError})` : ''}`,
            )
          } finally {
            await pool.close()
          }
        }
      }
  } finally {
    for (const c of clusters) await c.stop()
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const rounded = (xs: number[]) => xs.map((x) => Math.round(x).toLocaleString('en-US')).join(' / ')
  /** One server's row for a case: the median over rounds, with every round (or one run's latency) in the note. */
  const row = (server: string, cs: Case, rs: LoadResult[]): BenchResult => ({
    name: `3 members ${server} ${label(cs)}`,
    value: Math.round(median(rs.map((r) => r.opsPerSec))),
    unit: 'ops/s',
    note:
      rounds > 1
        ? `rounds ${rounded(rs.map((r) => r.opsPerSec))}, ${rs.reduce((n, r) => n + r.errors, 0)} errors`
        : `p50 ${rs[0]!.p50Ms.toFixed(2)} ms, p99 ${rs[0]!.p99Ms.toFixed(1)} ms, ${rs[0]!.errors} errors`,
  })
  const out: BenchResult[] = []
  for (const [i, cs] of cases.entries()) {
    const es = results.get('edgecd')![i]!
    out.push(row('edgecd', cs, es))
    const ts = results.get('etcd')?.[i]
    if (!ts) continue
    out.push(row('etcd', cs, ts))
    const ratios = es.map((e, r) => e.opsPerSec / ts[r]!.opsPerSec)
    out.push({
      name: `3 members edgecd/etcd ${label(cs)}`,
      value: Number(median(ratios).toFixed(2)),
      unit: 'x',
      note: rounds > 1 ? `median of ${ratios.map((x) => x.toFixed(2)).join(', ')}` : undefined,
    })
  }
  return out
}
