import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { freePort, post, silent } from '../support/index.js'

export interface TestCluster {
  names: string[]
  urls: string[]
  dirs: string[]
  members: (RunningMember | undefined)[]
  configs: ServerConfig[]
  start(i: number): Promise<RunningMember>
  stop(i: number): Promise<void>
  close(): Promise<void>
}

/** A cluster of n in-process members on loopback ports, fast timers (heartbeat 20 ms, election 200 ms). */
export async function startCluster(n: number, extra: Partial<ServerConfig> = {}): Promise<TestCluster> {
  const names = Array.from({ length: n }, (_, i) => `m${i}`)
  const ports = await Promise.all(names.map(() => freePort()))
  const urls = ports.map((p) => `http://127.0.0.1:${p}`)
  const dirs = names.map(() => mkdtempSync(join(tmpdir(), 'edgecd-cluster-')))
  const initialCluster = names.map((nm, i) => `${nm}=${urls[i]}`).join(',')
  const configs = names.map((name, i) => ({
    ...serverDefaults,
    name,
    dataDir: dirs[i]!,
    listenClientUrls: [urls[i]!],
    advertiseClientUrls: [urls[i]!],
    initialAdvertisePeerUrls: [urls[i]!],
    initialCluster,
    initialClusterToken: 'test-token',
    peerSecret: 'test-token-peer-secret',
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 200,
    requestTimeoutMs: 3000,
    logLevel: 'error' as const,
    ...extra,
  }))
  const c: TestCluster = {
    names,
    urls,
    dirs,
    configs,
    members: [],
    async start(i) {
      const m = await startNodeMember(configs[i]!, silent)
      c.members[i] = m
      return m
    },
    async stop(i) {
      await c.members[i]?.stop()
      c.members[i] = undefined
    },
    async close() {
      for (let i = 0; i < n; i++) await c.stop(i).catch(() => {})
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    },
  }
  await Promise.all(names.map((_, i) => c.start(i)))
  return c
}

/** Index of the member that currently leads, by asking every running member's status. */
export async function leaderIndex(c: TestCluster): Promise<number | undefined> {
  const leaders = new Set<string>()
  for (let i = 0; i < c.urls.length; i++) {
    if (!c.members[i]) continue
    const r = await post(c.urls[i]!, '/v3/maintenance/status', {}).catch(() => undefined)
    if (r?.status === 200 && r.json.leader) leaders.add(r.json.leader)
  }
  if (leaders.size !== 1) return undefined
  const id = [...leaders][0]
  for (let i = 0; i < c.urls.length; i++) if (c.members[i]?.member.raft.node.raft.id === id) return i
  return undefined
}
