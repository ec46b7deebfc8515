/**
 * Three members against three members: the same closed-loop HTTP load (bench/lib/load.ts) against a three-member
 * edgecd cluster and, with --etcd, a three-member Debian etcd 3.4 cluster on this machine, through the leader and
 * through a follower, side by side with the ratio. Server CPU is summed over the three members.
 *
 *   npm run bench -- cluster --etcd [--quick] [--seconds 3]     (also: npm run bench -- http --members 3 --etcd)
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
      json: { type: 'boolean' },
    },
    strict: false,
    allowPositionals: true,
  })
  const quick = opts.quick || values.quick === true
  const measureMs = (values.seconds ? Number(values.seconds) : quick ? 0.5 : 3) * 1000
  const warmupMs = quick ? 200 : 1000
  const bodies = new Bodies()
  const clusters: BenchCluster[] = []
  const results = new Map<string, LoadResult[]>()
  try {
    clusters.push(await startEdgecdCluster(3))
    if (values.etcd) clusters.push(await startEtcdCluster(3))
    for (const c of clusters) {
      const { leader } = await c.roles()
      const pool = openPool(leader, 16)
      try {
        await preload(pool, bodies, 16)
      } finally {
        await pool.close()
      }
      results.set(c.name, [])
    }
    for (const cs of cases) {
      for (const c of clusters) {
        const r = await c.roles()
        const pool = openPool(cs.via === 'leader' ? r.leader : r.follower, cs.w.clients)
        try {
          const res = await runLoad(pool, bodies, cs.w, measureMs, warmupMs, () => c.cpuSecs())
          results.get(c.name)!.push(res)
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
  const out: BenchResult[] = []
  for (const [i, cs] of cases.entries()) {
    const e = results.get('edgecd')![i]!
    out.push({
      name: `3 members edgecd ${label(cs)}`,
      value: Math.round(e.opsPerSec),
      unit: 'ops/s',
      note: `p50 ${e.p50Ms.toFixed(2)} ms, p99 ${e.p99Ms.toFixed(1)} ms, ${e.errors} errors`,
    })
    const t = results.get('etcd')?.[i]
    if (t) {
      out.push({
        name: `3 members etcd ${label(cs)}`,
        value: Math.round(t.opsPerSec),
        unit: 'ops/s',
        note: `p50 ${t.p50Ms.toFixed(2)} ms, p99 ${t.p99Ms.toFixed(1)} ms, ${t.errors} errors`,
      })
      out.push({
        name: `3 members edgecd/etcd ${label(cs)}`,
        value: Number((e.opsPerSec / t.opsPerSec).toFixed(2)),
        unit: 'x',
      })
    }
  }
  return out
}
