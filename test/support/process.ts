/**
 * Server processes for tests and benches (edgecd members, etcd, a trivial server): spawn on loopback, wait until a
 * path answers (bounded), keep the tail of stderr, stop with SIGTERM then SIGKILL, remove the temp dir they own.
 * Every process started here is killed when the test process exits, whatever ends the run.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** How long a process may take to exit after SIGTERM before it is killed. */
const stopTimeoutMs = 10_000

const live = new Set<ChildProcess>()
/** How to signal the processes started as a group (ServerOptions.group). */
const groups = new Map<ChildProcess, (sig: NodeJS.Signals) => void>()
process.once('exit', () => {
  for (const p of live) (groups.get(p) ?? ((sig) => p.kill(sig)))('SIGKILL')
})

export interface ServerOptions {
  name: string
  cmd: string
  args: string[]
  /** The client URL the readiness check polls. */
  url: string
  /** A directory this process owns: removed by stop(). */
  dir?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** GET path that must answer 200 for the process to count as ready ('/health' by default); false: no wait. */
  readyPath?: string | false
  /** A readiness check of the caller's instead of readyPath (https with a test CA, ...). */
  ready?: () => Promise<boolean>
  /** Deadline of the readiness wait (default 60 s: tsx start-up on a loaded machine is slow). */
  timeoutMs?: number
  /** Bytes of stderr kept (the tail; default 8000). */
  stderrMax?: number
  /** Pass stderr through to this process's stderr (BENCH_SERVER_STDERR=1 does it too). */
  echoStderr?: boolean
  /**
   * Run in a process group of its own and send every signal to the whole group: for a launcher whose child is the
   * real server (`edgecd serve --runtime deno|workerd`), so kill -9 and SIGSTOP reach both at once.
   */
  group?: boolean
}

export interface ServerProcess {
  name: string
  url: string
  pid: number
  child: ChildProcess
  /** The tail of the process's stderr so far. */
  stderr(): string
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>
  running(): boolean
  /** Polls the readiness check until it passes (bounded; fails at once if the process exits). */
  waitReady(timeoutMs?: number): Promise<void>
  kill(signal: NodeJS.Signals): void
  /** SIGTERM, SIGKILL after 10 s; then removes the directory the process owns. */
  stop(): Promise<void>
}

/** Spawns a server process without waiting for it. */
export function spawnServer(o: ServerOptions): ServerProcess {
  const child = spawn(o.cmd, o.args, {
    cwd: o.cwd ?? repoRoot,
    env: o.env ?? process.env,
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(o.group ? { detached: true } : {}),
  })
  const signal = (sig: NodeJS.Signals) => {
    if (o.group && child.pid !== undefined) {
      try {
        process.kill(-child.pid, sig)
        return
      } catch {}
    }
    child.kill(sig)
  }
  if (o.group) groups.set(child, signal)
  live.add(child)
  const max = o.stderrMax ?? 8000
  const echo = o.echoStderr ?? process.env.BENCH_SERVER_STDERR === '1'
  let err = ''
  child.stderr!.on('data', (d: Buffer) => {
    if (echo) process.stderr.write(d)
    err = (err + d.toString()).slice(-max)
  })
  const exited = new Promise<number | string>((res) =>
    child.once('exit', (code, sig) => {
      live.delete(child)
      groups.delete(child)
      res(code ?? sig ?? -1)
    }),
  )
  const running = () => child.exitCode === null && child.signalCode === null
  const readyPath = o.readyPath ?? '/health'
  const check =
    o.ready ??
    (async () => {
      if (readyPath === false) return true
      // Each probe may take seconds on a loaded machine (/health reads through Raft); the deadline bounds the wait.
      const r = await fetch(o.url + readyPath, { signal: AbortSignal.timeout(5000) })
      const text = await r.text()
      return r.status === 200 && (readyPath !== '/health' || text.includes('true'))
    })
  return {
    name: o.name,
    url: o.url,
    pid: child.pid ?? -1,
    child,
    stderr: () => err,
    exited,
    running,
    async waitReady(timeoutMs = o.timeoutMs ?? 60_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        if (!running()) throw new Error(`${o.name} (${o.url}) exited with ${await exited}: ${err}`)
        if (await check().catch(() => false)) return
        if (Date.now() > deadline) throw new Error(`${o.name} (${o.url}) not ready after ${timeoutMs} ms: ${err}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    kill: (sig) => {
      if (running()) signal(sig)
    },
    async stop() {
      if (running()) {
        const timer = setTimeout(() => signal('SIGKILL'), stopTimeoutMs)
        signal('SIGTERM')
        await exited
        clearTimeout(timer)
      }
      if (o.dir) rmSync(o.dir, { recursive: true, force: true })
    },
  }
}

/** Spawns a server process and waits until it is ready; a process that does not get ready is stopped. */
export async function startServer(o: ServerOptions): Promise<ServerProcess> {
  const p = spawnServer(o)
  try {
    await p.waitReady()
  } catch (err) {
    p.kill('SIGKILL')
    await p.stop()
    throw err
  }
  return p
}
