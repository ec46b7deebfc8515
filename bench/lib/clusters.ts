/**
 * Three-member clusters for the side-by-side bench: edgecd members (`edgecd serve` with --initial-cluster) and Debian
 * etcd 3.4 members (default flags apart from addresses), each a child process on loopback with its own temp data dir.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  startEdgecdCluster as startEdgecdMembers,
  startEtcdCluster as startEtcdMembers,
} from '../../test/support/index.js'
import { type BenchServer, processCpuSecs } from './servers.js'

export interface BenchCluster {
  name: string
  urls: string[]
  members: BenchServer[]
  /** CPU seconds used by every member so far. */
  cpuSecs(): number
  /** The client URL of the current leader, and of one follower. */
  roles(): Promise<{ leader: string; follower: string }>
  stop(): Promise<void>
}

async function roles(urls: string[]): Promise<{ leader: string; follower: string }> {
  const deadline = performance.now() + 30_000
  while (performance.now() < deadline) {
    for (const u of urls) {
      try {
        const r = await fetch(`${u}/v3/maintenance/status`, {
          method: 'POST',
          body: '{}',
          signal: AbortSignal.timeout(1000),
        })
        const j = (await r.json()) as { leader?: string; header?: { member_id?: string } }
        if (j.leader && j.leader === j.header?.member_id) return { leader: u, follower: urls.find((x) => x !== u)! }
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('no leader within 30 s')
}

function cluster(name: string, urls: string[], members: BenchServer[], dir: string): BenchCluster {
  return {
    name,
    urls,
    members,
    cpuSecs: () => members.reduce((sum, m) => sum + processCpuSecs(m.pid), 0),
    roles: () => roles(urls),
    async stop() {
      for (const m of members) await m.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** `extra`: more `edgecd serve` flags for every member (e.g. raised watch limits). */
export async function startEdgecdCluster(n = 3, extra: string[] = []): Promise<BenchCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'edgecd-cluster-bench-'))
  const members = await startEdgecdMembers(n, { baseDir: dir, token: 'bench-cluster', logLevel: 'error', extra })
  return cluster(
    'edgecd',
    members.map((m) => m.url),
    members.map((m, i) => ({ ...m, name: `edgecd-${i}` })),
    dir,
  )
}

export async function startEtcdCluster(n = 3): Promise<BenchCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'etcd-cluster-bench-'))
  const members = await startEtcdMembers(n, { baseDir: dir })
  return cluster(
    'etcd',
    members.map((m) => m.url),
    members,
    dir,
  )
}
