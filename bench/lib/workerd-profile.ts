/**
 * A CPU profile of a workerd member (`edgecd serve --runtime workerd`), where `node --cpu-prof` cannot reach: the
 * member is started with EDGECD_WORKERD_INSPECTOR_PORT, so workerd serves V8's inspector on that loopback port, and
 * this records a profile of each worker through the DevTools protocol (Profiler.start / Profiler.stop), written as
 * `.cpuprofile` files (open them in Chrome DevTools, or summarise them with `summarise` below).
 *
 * Workers in a member's workerd: `core:user:` is edgecd's Worker and its Durable Object (one isolate), `core:entry`
 * Miniflare's entry Worker in front of it.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
export interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

/** One DevTools protocol session on a worker's inspector WebSocket. */
class Session {
  private next = 1
  private readonly waiting = new Map<number, { ok(v: any): void; fail(e: Error): void }>()
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } }
      const w = m.id === undefined ? undefined : this.waiting.get(m.id)
      if (!w) return
      this.waiting.delete(m.id!)
      if (m.error) w.fail(new Error(m.error.message))
      else w.ok(m.result)
    })
    ws.on('close', () => {
      for (const w of this.waiting.values()) w.fail(new Error('inspector closed'))
      this.waiting.clear()
    })
  }

  static open(url: string): Promise<Session> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: 10_000 })
      ws.once('open', () => resolve(new Session(ws)))
      ws.once('error', reject)
    })
  }

  send<T = any>(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.next++
    return new Promise<T>((ok, fail) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        fail(new Error(`inspector: ${method} timed out`))
      }, timeoutMs)
      this.waiting.set(id, {
        ok: (v) => {
          clearTimeout(timer)
          ok(v as T)
        },
        fail: (e) => {
          clearTimeout(timer)
          fail(e)
        },
      })
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  close(): void {
    this.ws.close()
  }
}

/** The workers worth profiling in a member's workerd. */
export const memberWorkers = ['core:user:', 'core:entry']

/**
 * Starts a CPU profile (sampling every `intervalUs`) of each worker; the returned function stops them and writes
 * `<dir>/workerd-<worker>-<time>.cpuprofile`, returning the paths and profiles.
 */
export async function startWorkerdProfile(
  inspectorPort: number,
  dir: string,
  workers = memberWorkers,
  intervalUs = 200,
): Promise<() => Promise<{ worker: string; path: string; profile: CpuProfile }[]>> {
  const sessions: { worker: string; s: Session }[] = []
  for (const worker of workers) {
    const s = await Session.open(`ws://127.0.0.1:${inspectorPort}/${worker}`)
    await s.send('Profiler.enable')
    await s.send('Profiler.setSamplingInterval', { interval: intervalUs })
    await s.send('Profiler.start')
    sessions.push({ worker, s })
  }
  return async () => {
    const out: { worker: string; path: string; profile: CpuProfile }[] = []
    for (const { worker, s } of sessions) {
      try {
        const { profile } = await s.send<{ profile: CpuProfile }>('Profiler.stop')
        const path = join(dir, `workerd-${worker.replace(/[^a-z0-9]+/gi, '-')}-${Date.now()}.cpuprofile`)
        writeFileSync(path, JSON.stringify(profile))
        out.push({ worker, path, profile })
      } finally {
        s.close()
      }
    }
    return out
  }
}

/**
 * The top entries of a profile by self time, grouped by function and file (the bundle's function names survive:
 * esbuild does not minify the member's Worker), as `share%  function  file` lines; idle and program time first.
 */
export function summarise(p: CpuProfile, top = 15): string[] {
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++)
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0))
  const byName = new Map<string, number>()
  let total = 0
  for (const n of p.nodes) {
    const t = self.get(n.id) ?? 0
    if (t === 0) continue
    total += t
    const f = n.callFrame
    const file = f.url.replace(/^.*\//, '') || ''
    const key = `${f.functionName || '(anonymous)'}  ${file}${file ? `:${f.lineNumber + 1}` : ''}`
    byName.set(key, (byName.get(key) ?? 0) + t)
  }
  return [...byName]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`)
}
