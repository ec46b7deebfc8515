/** The one launcher of Debian's etcd 3.4 (`etcd` on PATH, see scripts/setup-etcd.sh): single members and clusters. */
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initialCluster } from './edgecd.js'
import { freePort } from './ports.js'
import { type ServerProcess, spawnServer, startServer } from './process.js'

/** Whether Debian's etcd is installed (scripts/setup-etcd.sh installs it; .ci/run calls that). */
export function etcdAvailable(): boolean {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'pipe' })
    return true
  } catch {
    return false
  }
}

export const etcdMissing =
  'Debian etcd-server is not installed: run `bash scripts/setup-etcd.sh` (CI does) to enable the differential tests'

export interface EtcdOptions {
  name?: string
  /** Parent of the temp data dir (default the OS temp dir). */
  baseDir?: string
  /** Extra etcd flags, after these. */
  extra?: string[]
}

export type EtcdProcess = ServerProcess

function etcdArgs(name: string, dataDir: string, url: string, peer: string, cluster: string, token: string): string[] {
  return [
    '--name',
    name,
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    url,
    '--advertise-client-urls',
    url,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    cluster,
    '--initial-cluster-token',
    token,
    '--initial-cluster-state',
    'new',
    '--logger',
    'zap',
    '--log-level',
    'error',
  ]
}

/** A throwaway single-member etcd with default flags on loopback ports and a temp data dir; resolves once healthy. */
export async function startEtcd(o: EtcdOptions = {}): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(o.baseDir ?? tmpdir(), 'edgecd-etcd-'))
  const name = o.name ?? 'default'
  const url = `http://127.0.0.1:${await freePort()}`
  const peer = `http://127.0.0.1:${await freePort()}`
  const args = [...etcdArgs(name, join(dir, 'data'), url, peer, `${name}=${peer}`, 'etcd-test'), ...(o.extra ?? [])]
  return startServer({ name: 'etcd', cmd: 'etcd', args, url, dir })
}

/** An n-member etcd cluster (e0..e{n-1}) on loopback; resolves once every member is healthy. */
export async function startEtcdCluster(n: number, o: EtcdOptions = {}): Promise<EtcdProcess[]> {
  const dir = mkdtempSync(join(o.baseDir ?? tmpdir(), 'edgecd-etcd-cluster-'))
  const names = Array.from({ length: n }, (_, i) => `e${i}`)
  const urls: string[] = []
  const peers: string[] = []
  for (let i = 0; i < n; i++) {
    urls.push(`http://127.0.0.1:${await freePort()}`)
    peers.push(`http://127.0.0.1:${await freePort()}`)
  }
  const cluster = initialCluster(names, peers)
  const members = names.map((name, i) =>
    spawnServer({
      name: `etcd-${i}`,
      cmd: 'etcd',
      args: [...etcdArgs(name, join(dir, name), urls[i]!, peers[i]!, cluster, 'etcd-test'), ...(o.extra ?? [])],
      url: urls[i]!,
      // The last member owns the cluster's directory: its stop() (the last a caller makes) removes it.
      ...(i === n - 1 ? { dir } : {}),
    }),
  )
  try {
    await Promise.all(members.map((m) => m.waitReady()))
  } catch (err) {
    for (const m of members) m.kill('SIGKILL')
    await Promise.all(members.map((m) => m.stop()))
    throw err
  }
  return members
}
