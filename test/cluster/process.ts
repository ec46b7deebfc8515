import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { b64, type EdgecdProcess, freePort, post, spawnEdgecd } from '../support/index.js'

/** A cluster of real `edgecd serve` processes on loopback, for kill -9 tests. */
export class ProcessCluster {
  readonly procs: (EdgecdProcess | undefined)[] = []
  private constructor(
    readonly names: string[],
    readonly urls: string[],
    readonly dirs: string[],
    private readonly extra: string[],
  ) {}

  static async start(n: number, extra: string[] = []): Promise<ProcessCluster> {
    const names = Array.from({ length: n }, (_, i) => `p${i}`)
    const urls = await Promise.all(names.map(async () => `http://127.0.0.1:${await freePort()}`))
    const dirs = names.map(() => mkdtempSync(join(tmpdir(), 'edgecd-proc-')))
    const c = new ProcessCluster(names, urls, dirs, extra)
    for (let i = 0; i < n; i++) c.spawn(i)
    try {
      await Promise.all(names.map((_, i) => c.waitHealthy(i)))
    } catch (err) {
      await c.close()
      throw err
    }
    return c
  }

  spawn(i: number): void {
    const initialCluster = this.names.map((nm, j) => `${nm}=${this.urls[j]}`).join(',')
    this.procs[i] = spawnEdgecd({
      name: this.names[i]!,
      dataDir: this.dirs[i]!,
      clientUrl: this.urls[i]!,
      initialCluster,
      token: 'proc-test',
      logLevel: 'warn',
      extra: this.extra,
      readyPath: '/version',
      stderrMax: 4000,
    })
  }

  /** The tail of member i's stderr. */
  log(i: number): string {
    return this.procs[i]?.stderr() ?? ''
  }

  async waitHealthy(i: number, ms = 60_000): Promise<void> {
    await this.procs[i]!.waitReady(ms)
  }

  kill9(i: number): void {
    this.procs[i]?.kill('SIGKILL')
    this.procs[i] = undefined
  }

  async leader(): Promise<number | undefined> {
    for (let i = 0; i < this.urls.length; i++) {
      if (!this.procs[i]) continue
      const r = await post(this.urls[i]!, '/v3/maintenance/status', {}).catch(() => undefined)
      if (r?.status !== 200 || !r.json.leader) continue
      if (r.json.leader === r.json.header.member_id) return i
    }
    return undefined
  }

  /**
   * Milliseconds from t0 until a write through one of `members` succeeds, as a client that keeps trying sees it: a
   * fresh write every 50 ms, alternating members (a write that reached a dying leader waits out etcd's request
   * timeout, ambiguous as in etcd, so waiting on it alone would measure the timeout, not the fail-over).
   */
  timeToFirstWrite(members: number[], t0: number, limitMs = 15_000): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let n = 0
      const timer = setInterval(() => {
        if (Date.now() - t0 > limitMs) {
          clearInterval(timer)
          reject(new Error(`no write succeeded within ${limitMs} ms`))
        }
        const i = members[n++ % members.length]!
        post(this.urls[i]!, '/v3/kv/put', { key: b64('failover-probe'), value: b64('x') })
          .then((r) => {
            if (r.status === 200) {
              clearInterval(timer)
              resolve(Date.now() - t0)
            }
          })
          .catch(() => {})
      }, 50)
    })
  }

  async close(): Promise<void> {
    for (const p of this.procs) p?.kill('SIGKILL')
    await Promise.all(this.procs.map((p) => p?.exited))
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true })
  }
}
