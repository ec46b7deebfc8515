/**
 * Real `edgecd serve` processes behind chaos proxies: member i listens for clients on its own port and advertises
 * its proxy's URL as its peer URL, so every Raft link into it crosses proxies[i]. Faults: link rules on the proxies
 * (isolate, delay, cut), SIGSTOP/SIGCONT, and kill -9 with a restart on the same data dir.
 *
 * With `runtimes`, member i runs on runtimes[i] (`edgecd serve --runtime node|deno|workerd`, started as users start
 * it): a mixed cluster of Node, Deno and workerd (Durable Object) members over the same peer protocol. Each such
 * member is a process group (the launcher and its deno or workerd child), so kill -9 and SIGSTOP hit the whole member.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { computeMemberId } from '../../src/etcdserver/ids.js'
import { type EdgecdProcess, freePort, serveFlags, spawnEdgecd, spawnServer } from '../support/index.js'
import { ChaosProxy } from './proxy.js'

/** A runtime `edgecd serve --runtime` takes. */
export type ServeRuntime = 'node' | 'deno' | 'workerd'

export interface ChaosClusterOptions {
  size: number
  heartbeatMs: number
  electionMs: number
  /** Extra `serve` flags. */
  extra?: string[]
  /** The runtime of each member (`edgecd serve --runtime`); default every member on Node through the test launcher. */
  runtimes?: ServeRuntime[]
}

/** Polls with a per-request deadline, so a paused member cannot hang the caller. */
async function postJson(url: string, path: string, body: unknown, timeoutMs: number): Promise<any> {
  const r = await fetch(url + path, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
  return r.ok ? r.json() : undefined
}

export class ChaosCluster {
  readonly procs: (EdgecdProcess | undefined)[] = []
  readonly paused: boolean[] = []
  private constructor(
    readonly names: string[],
    readonly clientUrls: string[],
    readonly proxies: ChaosProxy[],
    readonly dirs: string[],
    private readonly opts: ChaosClusterOptions,
    private readonly token: string,
  ) {}

  static async start(opts: ChaosClusterOptions): Promise<ChaosCluster> {
    if (opts.runtimes && opts.runtimes.length !== opts.size)
      throw new Error(`chaos: ${opts.runtimes.length} runtimes for ${opts.size} members`)
    const names = Array.from({ length: opts.size }, (_, i) => (opts.runtimes ? `${opts.runtimes[i]}${i}` : `n${i}`))
    const clientPorts = await Promise.all(names.map(() => freePort()))
    const clientUrls = clientPorts.map((p) => `http://127.0.0.1:${p}`)
    const token = `chaos-${process.pid}-${Date.now()}`
    // Ids derive from the advertised (proxy) URLs; the proxies need them to name the source of a connection.
    const proxyPorts = await Promise.all(names.map(() => freePort()))
    const ids = await Promise.all(proxyPorts.map((p) => computeMemberId([`http://127.0.0.1:${p}`], token)))
    const idNames = new Map(ids.map((id, i) => [id, names[i]!]))
    const proxies = await Promise.all(clientPorts.map((cp, i) => ChaosProxy.start(cp, idNames, proxyPorts[i])))
    const dirs = names.map(() => mkdtempSync(join(tmpdir(), 'edgecd-chaos-')))
    const c = new ChaosCluster(names, clientUrls, proxies, dirs, opts, token)
    try {
      for (let i = 0; i < opts.size; i++) c.spawn(i)
      await Promise.all(names.map((_, i) => c.waitHealthy(i)))
    } catch (err) {
      await c.close()
      throw err
    }
    return c
  }

  get size(): number {
    return this.names.length
  }

  peerUrl(i: number): string {
    return `http://127.0.0.1:${this.proxies[i]!.port}`
  }

  spawn(i: number): void {
    const initialCluster = this.names.map((nm, j) => `${nm}=${this.peerUrl(j)}`).join(',')
    const member = {
      name: this.names[i]!,
      dataDir: this.dirs[i]!,
      clientUrl: this.clientUrls[i]!,
      peerUrl: this.peerUrl(i),
      initialCluster,
      token: this.token,
      extra: [
        '--heartbeat-interval',
        String(this.opts.heartbeatMs),
        '--election-timeout',
        String(this.opts.electionMs),
        ...(this.opts.extra ?? []),
      ],
      logLevel: 'warn',
      stderrMax: 8000,
    }
    const runtime = this.opts.runtimes?.[i]
    if (runtime === undefined) this.procs[i] = spawnEdgecd(member)
    else
      this.procs[i] = {
        ...spawnServer({
          name: member.name,
          cmd: process.execPath,
          args: ['--import', 'tsx', 'src/cli/main.ts', 'serve', ...serveFlags(member), '--runtime', runtime],
          url: member.clientUrl,
          env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
          stderrMax: member.stderrMax,
          group: true,
          // workerd: bundling the Worker and starting the runtime take ~10 s on a loaded 2-core machine.
          timeoutMs: 120_000,
        }),
        dataDir: member.dataDir,
      }
    this.paused[i] = false
  }

  /** The tail of member i's stderr (kept across a kill -9 until the restart). */
  log(i: number): string {
    return this.procs[i]?.stderr() ?? this.lastLogs[i] ?? ''
  }

  private readonly lastLogs: string[] = []

  async waitHealthy(i: number, ms = this.opts.runtimes ? 120_000 : 60_000): Promise<void> {
    await this.procs[i]!.waitReady(ms)
  }

  isUp(i: number): boolean {
    return this.procs[i] !== undefined
  }

  kill9(i: number): void {
    const p = this.procs[i]
    if (!p) return
    p.kill('SIGKILL')
    this.lastLogs[i] = p.stderr()
    this.procs[i] = undefined
    this.paused[i] = false
  }

  /** Starts a killed member again on the same data dir. */
  async restart(i: number): Promise<void> {
    if (this.procs[i]) return
    this.spawn(i)
    await this.waitHealthy(i)
  }

  pause(i: number): void {
    const p = this.procs[i]
    if (!p || this.paused[i]) return
    p.kill('SIGSTOP')
    this.paused[i] = true
  }

  resume(i: number): void {
    const p = this.procs[i]
    if (!p || !this.paused[i]) return
    p.kill('SIGCONT')
    this.paused[i] = false
  }

  /** Blackholes every Raft link into and out of member i (a symmetric partition that keeps TCP up). */
  isolate(i: number): void {
    this.proxies[i]!.set('*', 'both', { mode: 'blackhole' })
    for (let j = 0; j < this.size; j++) if (j !== i) this.proxies[j]!.set(this.names[i]!, 'both', { mode: 'blackhole' })
  }

  /** Delays every Raft link into member i by ms. */
  delayInto(i: number, ms: number): void {
    this.proxies[i]!.set('*', 'both', { delayMs: ms })
  }

  /** Destroys every Raft connection into member i and refuses new ones (its peers cannot reach it). */
  cutInto(i: number): void {
    this.proxies[i]!.cut()
  }

  /** Lifts every link rule and resumes paused members (killed members stay down: see restart). */
  healLinks(): void {
    for (const p of this.proxies) p.heal()
  }

  /** The member that answers status as leader of itself, among running unpaused members. */
  async leader(timeoutMs = 1000): Promise<number | undefined> {
    for (let i = 0; i < this.size; i++) {
      if (!this.procs[i] || this.paused[i]) continue
      const j = await postJson(this.clientUrls[i]!, '/v3/maintenance/status', {}, timeoutMs).catch(() => undefined)
      if (j?.leader && j.leader === j.header?.member_id) return i
    }
    return undefined
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.size; i++) {
      const p = this.procs[i]
      if (!p) continue
      p.kill('SIGKILL')
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 2000))])
      this.procs[i] = undefined
    }
    await Promise.all(this.proxies.map((p) => p.close().catch(() => {})))
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true })
  }
}
