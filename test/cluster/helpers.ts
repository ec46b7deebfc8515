import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { freePort } from '../diff/etcd-process.js'

export const silent = { debug() {}, info() {}, warn() {}, error() {} }
export const b64 = (s: string) => Buffer.from(s).toString('base64')
export const unb64 = (s: string) => Buffer.from(s, 'base64').toString()

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

export async function post(url: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) })
  const text = await r.text()
  let json: unknown
  try {
    json = JSON.parse(text.split('\n')[0] || 'null')
  } catch {
    json = text
  }
  return { status: r.status, json }
}

/** Polls fn until it returns a value other than undefined, or throws after ms. */
export async function eventually<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, 25))
  }
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
