/**
 * Does a cluster's put throughput drift as its history grows? (issue 13: the fan-out bench's runs without replicas
 * fell from 4,270 to 3,208 puts/s within one bench run.) Starts one three-member cluster (edgecd, or etcd with
 * `--etcd`), preloads the 10,000 keys as the fan-out part does, then runs the same 64-client put load RUNS times in
 * a row on it (SECONDS each, 500 ms warm-up) and prints per run: puts/s, the members' CPU per put, the revision
 * reached, and the members' resident memory. With COMPACT=1 the cluster is compacted to its current revision before
 * every run (history dropped), so a trend that vanishes then is the cost of history.
 *
 *   node --import tsx bench/put-trend.ts [--etcd]        # RUNS=6 SECONDS=8 COMPACT=0
 *
 * A machine whose speed moves during the run shows up as noise in both puts/s and CPU per put without a monotone
 * trend in the revision; a store that slows with history shows CPU per put rising with the revision.
 */
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { type BenchCluster, startEdgecdCluster, startEtcdCluster } from './lib/clusters.js'
import { Bodies, openPool, preload, runLoad } from './lib/load.js'

const RUNS = Number(process.env.RUNS ?? 6)
const SECONDS = Number(process.env.SECONDS ?? 8)
const COMPACT = process.env.COMPACT === '1'
const etcd = process.argv.includes('--etcd')
/** More `edgecd serve` flags, e.g. EXTRA='--snapshot-count 10000000'. */
const EXTRA = process.env.EXTRA?.split(' ').filter(Boolean) ?? []

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** A member's JavaScript heap in use (edgecd's) in MB and the Raft snapshots it saved so far, from /metrics. */
async function metrics(url: string): Promise<{ heapMb: number; snapshots: number }> {
  try {
    const t = await (await fetch(`${url}/metrics`)).text()
    const heap = /^edgecd_runtime_heap_used_bytes (\S+)/m.exec(t)
    const snaps = /^etcd_debugging_snap_save_total_duration_seconds_count (\S+)/m.exec(t)
    return { heapMb: heap ? Number(heap[1]) / 2 ** 20 : Number.NaN, snapshots: snaps ? Number(snaps[1]) : Number.NaN }
  } catch {
    return { heapMb: Number.NaN, snapshots: Number.NaN }
  }
}

/** The leader's Raft index (maintenance status). */
async function raftIndex(url: string): Promise<number> {
  const r = await fetch(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}' })
  return Number(((await r.json()) as { raftIndex: string }).raftIndex)
}

async function revision(url: string): Promise<number> {
  const r = await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: 'AA==', limit: 1 }) })
  return Number(((await r.json()) as { header: { revision: string } }).header.revision)
}

const cluster: BenchCluster = etcd ? await startEtcdCluster(3) : await startEdgecdCluster(3, EXTRA)
try {
  const { leader } = await cluster.roles()
  const bodies = new Bodies()
  const pool = openPool(leader, 64)
  await preload(pool, bodies, 64)
  console.log(
    `${cluster.name}: ${RUNS} runs of ${SECONDS} s, 64 clients putting on the leader${COMPACT ? ', compacted before each' : ''}`,
  )
  for (let i = 0; i < RUNS; i++) {
    if (COMPACT) {
      const rev = await revision(leader)
      const r = await fetch(`${leader}/v3/kv/compaction`, {
        method: 'POST',
        body: JSON.stringify({ revision: String(rev), physical: true }),
      })
      await r.arrayBuffer()
    }
    const l0 = loadavg()[0]!
    const r = await runLoad(pool, bodies, { kind: 'put', clients: 64 }, SECONDS * 1000, 500, () => cluster.cpuSecs())
    const rev = await revision(leader)
    const rss = cluster.members.map((m) => rssMb(m.pid).toFixed(0)).join('/')
    const m = await metrics(leader)
    console.log(
      `run ${i}: ${r.opsPerSec.toFixed(0)} puts/s, members' CPU ${r.serverCpuUsPerOp.toFixed(0)} µs/put, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(0)} ms, revision ${rev} (Raft index ${await raftIndex(leader)}), leader's snapshots ${m.snapshots}, RSS ${rss} MB, leader heap ${m.heapMb.toFixed(0)} MB, errors ${r.errors}, load ${l0.toFixed(1)}-${loadavg()[0]!.toFixed(1)}`,
    )
  }
  await pool.close()
} finally {
  await cluster.stop()
}
process.exit(0)
