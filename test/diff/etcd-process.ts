import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0))
    })
  })
}

export interface EtcdProcess {
  url: string
  stop(): Promise<void>
}

/** Starts a throwaway single-member etcd on loopback ports, with its data in a temp dir; resolves once healthy. */
export async function startEtcd(extraArgs: string[] = []): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-etcd-'))
  const cport = await freePort()
  const pport = await freePort()
  const url = `http://127.0.0.1:${cport}`
  const peer = `http://127.0.0.1:${pport}`
  const child: ChildProcess = spawn(
    'etcd',
    [
      '--data-dir',
      dir,
      '--name',
      'default',
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `default=${peer}`,
      '--log-level',
      'error',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (d) => {
    stderr += String(d)
  })
  const deadline = Date.now() + 15_000
  for (;;) {
    try {
      const r = await fetch(`${url}/health`)
      if (r.ok) break
    } catch {}
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL')
      throw new Error(`etcd did not become healthy: ${stderr.slice(-2000)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM')
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
