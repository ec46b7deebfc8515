/**
 * Helpers for the HTTP API tests: an in-process member on a free loopback port with a temp data dir, JSON calls,
 * a bounded reader for `{"result":...}\n` streams, and a WebSocket watch client. Every wait has a deadline.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { freePort, silent } from '../support/index.js'

export interface TestMember {
  url: string
  dir: string
  /** The in-process Node member (on workerd there is none: reading it throws). */
  readonly running: RunningMember
  stop(): Promise<void>
}

/** Where startTestMember runs the member: 'node' in this process, 'workerd' as a Durable Object in a local workerd. */
export type TestRuntime = 'node' | 'workerd'

/** The runtime of the API tests: EDGECD_TEST_RUNTIME (default node), so one suite runs against several runtimes. */
export function testRuntime(): TestRuntime {
  return process.env.EDGECD_TEST_RUNTIME === 'workerd' ? 'workerd' : 'node'
}

/** A test's `skip` option: the reason when the suite runs on workerd (docs/workers.md lists the differences). */
export function notOnWorkerd(why: string): string | false {
  return testRuntime() === 'workerd' ? why : false
}

/**
 * Starts a member on a free port, data in a fresh temp dir (removed by stop()): in this process, or in workerd.
 * `nowMs` injects the member's lease clock (Node only).
 */
export async function startTestMember(
  overrides: Partial<ServerConfig> = {},
  hooks: { nowMs?: () => number; runtime?: TestRuntime } = {},
): Promise<TestMember> {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-api-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const config: ServerConfig = {
    ...serverDefaults,
    dataDir: dir,
    listenClientUrls: [url],
    advertiseClientUrls: [url],
    initialAdvertisePeerUrls: [url],
    logLevel: 'error',
    ...overrides,
  }
  if ((hooks.runtime ?? testRuntime()) === 'workerd') {
    if (hooks.nowMs) throw new Error('a workerd test member takes no injected clock (nowMs): skip the test there')
    const { startWorkerdMember } = await import('../../src/runtime/node/workerd-member.js')
    const w = await startWorkerdMember(config, silent)
    let stopped = false
    return {
      url: w.urls[0]!,
      dir,
      get running(): RunningMember {
        throw new Error('a workerd test member has no in-process member: this test runs on Node only')
      },
      async stop() {
        if (stopped) return
        stopped = true
        await w.stop()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  }
  const { runtime: _runtime, ...nodeHooks } = hooks
  const running = await startNodeMember(config, silent, nodeHooks)
  let stopped = false
  return {
    url: running.urls[0]!,
    dir,
    running,
    async stop() {
      if (stopped) return
      stopped = true
      await running.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * An open `{"result":...}\n` stream (POST /v3/watch or /v3/lease/keepalive). `next()` returns the next parsed
 * line within a deadline; `close()` aborts the request.
 */
export class LineStream {
  private buf = ''
  private readonly lines: unknown[] = []
  private done = false
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>
  private pending: Promise<void> | undefined
  private readonly decoder = new TextDecoder()

  constructor(
    readonly status: number,
    body: ReadableStream<Uint8Array>,
    private readonly ac: AbortController,
  ) {
    this.reader = body.getReader()
  }

  static async open(base: string, path: string, body: string | ReadableStream<Uint8Array>): Promise<LineStream> {
    const ac = new AbortController()
    const init: RequestInit & { duplex?: string } = { method: 'POST', body, signal: ac.signal }
    if (typeof body !== 'string') init.duplex = 'half'
    const r = await fetch(base + path, init)
    return new LineStream(r.status, r.body!, ac)
  }

  private pump(): Promise<void> {
    this.pending ??= this.reader.read().then(
      ({ value, done }) => {
        this.pending = undefined
        if (done) {
          this.done = true
          return
        }
        this.buf += this.decoder.decode(value, { stream: true })
        for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
          this.lines.push(JSON.parse(this.buf.slice(0, i)))
          this.buf = this.buf.slice(i + 1)
        }
      },
      () => {
        this.pending = undefined
        this.done = true
      },
    )
    return this.pending
  }

  /** The next line, or throws after `ms` (generous: a wait for what comes, not a bound on how soon). */
  async next(ms = 30_000): Promise<any> {
    const deadline = Date.now() + ms
    while (this.lines.length === 0) {
      if (this.done) throw new Error('stream ended')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no stream message within ${ms} ms`)
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([this.pump(), new Promise((r) => (timer = setTimeout(r, left)))])
      clearTimeout(timer)
    }
    return this.lines.shift()
  }

  /** Asserts that nothing arrives within `ms` (returns the unexpected message, or undefined). */
  /**
   * Undefined when no line arrives within `ms` while the stream stays open; a line if one arrives. A stream the
   * server ended is not quiet: it throws (a test asserting silence must not pass on a dead stream).
   */
  async quiet(ms = 300): Promise<unknown> {
    try {
      return await this.next(ms)
    } catch (err) {
      if ((err as Error).message.startsWith('no stream message within')) return undefined
      throw err
    }
  }

  /** Reads every line until the server ends the stream (bounded). */
  async rest(ms = 30_000): Promise<unknown[]> {
    const out: unknown[] = []
    const deadline = Date.now() + ms
    for (;;) {
      try {
        out.push(await this.next(Math.max(1, deadline - Date.now())))
      } catch (err) {
        if ((err as Error).message === 'stream ended') return out
        throw err
      }
    }
  }

  close(): void {
    this.ac.abort()
    this.reader.cancel().catch(() => {})
  }
}

/** A WebSocket watch client: GET /v3/watch upgraded; request and response frames are JSON text. */
export class WsWatch {
  private readonly frames: unknown[] = []
  private waiter: (() => void) | undefined
  closed = false

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      this.frames.push(isBinary ? { binary: true } : JSON.parse(String(data)))
      this.waiter?.()
    })
    ws.on('close', () => {
      this.closed = true
      this.waiter?.()
    })
  }

  static open(base: string, path = '/v3/watch'): Promise<WsWatch> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(base.replace(/^http/, 'ws') + path)
      const timer = setTimeout(() => {
        ws.terminate()
        reject(new Error('WebSocket did not open within 30 s'))
      }, 30_000)
      ws.once('open', () => {
        clearTimeout(timer)
        resolve(new WsWatch(ws))
      })
      ws.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
    })
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
  }

  async next(ms = 30_000): Promise<any> {
    const deadline = Date.now() + ms
    while (this.frames.length === 0) {
      if (this.closed) throw new Error('socket closed')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no WebSocket frame within ${ms} ms`)
      let timer: ReturnType<typeof setTimeout> | undefined
      await new Promise<void>((r) => {
        this.waiter = r
        timer = setTimeout(r, left)
      })
      clearTimeout(timer)
      this.waiter = undefined
    }
    return this.frames.shift()
  }

  /** Undefined when no frame arrives within `ms` while the socket stays open; a closed socket throws. */
  async quiet(ms = 300): Promise<unknown> {
    try {
      return await this.next(ms)
    } catch (err) {
      if ((err as Error).message.startsWith('no WebSocket frame within')) return undefined
      throw err
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate()
        resolve()
      }, 2000)
      this.ws.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      this.ws.close()
    })
  }
}
