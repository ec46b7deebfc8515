/**
 * The watch side of `npm run bench -- watch`: opens a scenario's watch streams (the JSON gateway's WebSocket watch or
 * the gRPC Watch stream), creates every watcher, and counts every event and event message that arrives.
 *
 * The bench runs it in its own process by default (`Followers.start()` forks this file): the watchers are remote
 * clients in reality, and in one Node process with the writers their sockets and counting share the writers' event
 * loop, so the watch side's work delayed the writers' next requests, against edgecd and etcd alike (issue 17,
 * docs/benchmarks.md "session 9"). `--watchers inline` keeps them in the bench process, as before.
 *
 * The child speaks over the fork IPC channel: `{ op: 'open', url, scenario }` answers `{ op: 'created' }` once all
 * watchers are created (or `{ op: 'error', message }`); `{ op: 'counts' }` answers the counts so far; `{ op: 'close' }`
 * closes the streams and answers `{ op: 'closed' }`. Times cross processes as epoch milliseconds
 * (`performance.timeOrigin + performance.now()`).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { setPriority } from 'node:os'
import { fileURLToPath } from 'node:url'
import { create } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import WebSocket from 'ws'
import { Watch, WatchRequestSchema } from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')
export const watchKey = b64('bench/watch/k')
const eventsMark = Buffer.from('"events"')
const createdMark = Buffer.from('"created":true')
const kvMark = Buffer.from('"kv":')

/**
 * What the watchers watch and what the writers put: `one-key` every watcher on the one key every put writes; the
 * others give watcher i (of streams x watchersPerStream) its own key i, range or prefix, and the writers put key 0, 1,
 * ... in turn (each put reaches one watcher); `keys` with no watcher is the baseline of those.
 */
export type Shape = 'one-key' | 'keys' | 'ranges' | 'prefixes'

/** What the watch side needs of a scenario. */
export interface WatchSpec {
  streams: number
  watchersPerStream: number
  shape: Shape
  /** The watch door: the JSON gateway's WebSocket (default) or the gRPC Watch stream. */
  grpc?: boolean
}

/** Key i of the keyed shapes: fixed width, so ranges and prefixes of different i are disjoint. */
export const keyAt = (i: number) => `bench/watch/${String(i).padStart(6, '0')}/k`

/** The create_request of watcher i for a shape (base64 fields, the gateway's JSON). */
function createRequest(shape: Shape, i: number): string {
  const dir = `bench/watch/${String(i).padStart(6, '0')}/`
  switch (shape) {
    case 'one-key':
      return JSON.stringify({ create_request: { key: watchKey } })
    case 'keys':
      return JSON.stringify({ create_request: { key: b64(keyAt(i)) } })
    case 'ranges':
      // [dir + "a", dir + "z"): an arbitrary range (not a prefix), holding key i.
      return JSON.stringify({ create_request: { key: b64(`${dir}a`), range_end: b64(`${dir}z`) } })
    case 'prefixes':
      // etcd's prefix end: the last byte of "dir/" ('/', 0x2f) plus one.
      return JSON.stringify({ create_request: { key: b64(dir), range_end: b64(`${dir.slice(0, -1)}0`) } })
  }
}

/** Epoch milliseconds, comparable across the bench's processes. */
export const epochMs = () => performance.timeOrigin + performance.now()

/** Counts so far: events (one per kv), event messages, and when the last event came (epoch ms, 0 if none). */
export interface Counts {
  events: number
  messages: number
  lastEventAt: number
}

/** Watchers of one scenario, opened in this process. */
export interface OpenWatchers {
  counts(): Counts
  close(): void
}

/** The gRPC Watch streams of a scenario (etcd's own door): created like the WebSocket ones. */
async function openGrpc(url: string, s: WatchSpec, c: Counts): Promise<() => void> {
  const abort = new AbortController()
  const watch = createClient(Watch, createGrpcTransport({ baseUrl: url }))
  let created = 0
  const want = s.streams * s.watchersPerStream
  const enc = new TextEncoder()
  for (let i = 0; i < s.streams; i++) {
    const first = i * s.watchersPerStream
    async function* requests() {
      for (let j = 0; j < s.watchersPerStream; j++) {
        const key = enc.encode(s.shape === 'one-key' ? 'bench/watch/k' : keyAt(first + j))
        yield create(WatchRequestSchema, { requestUnion: { case: 'createRequest', value: { key } } })
      }
      await new Promise<void>((r) => abort.signal.addEventListener('abort', () => r()))
    }
    void (async () => {
      try {
        for await (const r of watch.watch(requests(), { signal: abort.signal })) {
          if (r.created) created++
          if (r.events.length > 0) {
            c.messages++
            c.events += r.events.length
            c.lastEventAt = epochMs()
          }
        }
      } catch {}
    })()
  }
  const deadline = Date.now() + 120_000
  while (created < want) {
    if (Date.now() > deadline) throw new Error(`only ${created} of ${want} gRPC watchers created`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return () => abort.abort()
}

/** The WebSocket watch streams of a scenario; resolves once every watcher is created. */
async function openWs(url: string, s: WatchSpec, c: Counts): Promise<() => void> {
  const wsUrl = `${url.replace(/^http/, 'ws')}/v3/watch`
  const sockets: WebSocket[] = []
  let created = 0
  const want = s.streams * s.watchersPerStream
  const close = () => {
    for (const ws of sockets) ws.terminate()
  }
  try {
    for (let i = 0; i < s.streams; i++) {
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false })
      sockets.push(ws)
      ws.on('message', (data: Buffer) => {
        // A catching-up watcher gets several events in one message: count each event's "kv".
        if (data.indexOf(eventsMark) >= 0) {
          c.messages++
          for (let i = data.indexOf(kvMark); i >= 0; i = data.indexOf(kvMark, i + kvMark.length)) c.events++
          c.lastEventAt = epochMs()
        } else if (data.indexOf(createdMark) >= 0) created++
      })
      ws.on('error', () => {})
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve())
        ws.once('error', reject)
      })
      const req = s.shape === 'one-key' ? createRequest('one-key', 0) : undefined
      for (let j = 0; j < s.watchersPerStream; j++) ws.send(req ?? createRequest(s.shape, i * s.watchersPerStream + j))
    }
    const deadline = Date.now() + 120_000
    while (created < want) {
      if (Date.now() > deadline) throw new Error(`only ${created} of ${want} watchers created`)
      await new Promise((r) => setTimeout(r, 20))
    }
  } catch (err) {
    close()
    throw err
  }
  return close
}

/** Opens a scenario's watchers in this process; resolves once all are created. */
export async function openWatchers(url: string, s: WatchSpec): Promise<OpenWatchers> {
  const c: Counts = { events: 0, messages: 0, lastEventAt: 0 }
  const close = s.grpc ? await openGrpc(url, s, c) : await openWs(url, s, c)
  return { counts: () => ({ ...c }), close }
}

type Request = { op: 'open'; url: string; scenario: WatchSpec } | { op: 'counts' } | { op: 'close' }
type Reply = { op: 'created' } | { op: 'error'; message: string } | ({ op: 'counts' } & Counts) | { op: 'closed' }

/**
 * The watch side in a child process: one per server, reused across scenarios. Its replies come in the order of the
 * requests (the child answers each in turn), so one queue of waiting callers is enough.
 */
export class Followers {
  private waiting: ((r: Reply) => void)[] = []
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (r: Reply) => this.waiting.shift()?.(r))
    child.on('exit', (code) => {
      for (const w of this.waiting.splice(0)) w({ op: 'error', message: `watch process exited (${code})` })
    })
  }

  static async start(): Promise<Followers> {
    const child = fork(fileURLToPath(import.meta.url), ['--followers'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve())
      child.once('error', reject)
    })
    // WATCH_FOLLOWERS_NICE=n: the watch process at nice n (an experiment of issue 17, docs/benchmarks.md "Session 9":
    // on a shared 2-core machine, each frame the server writes wakes this process, which then takes a core from it).
    const nice = Number(process.env.WATCH_FOLLOWERS_NICE ?? 0)
    if (nice !== 0 && child.pid !== undefined) setPriority(child.pid, nice)
    return new Followers(child)
  }

  get pid(): number {
    return this.child.pid!
  }

  private ask(req: Request): Promise<Reply> {
    return new Promise((resolve) => {
      this.waiting.push(resolve)
      this.child.send(req)
    })
  }

  /** Opens the scenario's watchers in the child; resolves once all are created. */
  async open(url: string, scenario: WatchSpec): Promise<{ counts(): Promise<Counts>; close(): void }> {
    const r = await this.ask({ op: 'open', url, scenario })
    if (r.op === 'error') throw new Error(r.message)
    return {
      counts: async () => {
        const c = await this.ask({ op: 'counts' })
        if (c.op !== 'counts') throw new Error(c.op === 'error' ? c.message : `unexpected ${c.op}`)
        return { events: c.events, messages: c.messages, lastEventAt: c.lastEventAt }
      },
      close: () => void this.ask({ op: 'close' }),
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()))
    this.child.kill()
    await exited
  }
}

/** The child's side: serves one scenario at a time. */
function serve(): void {
  let open: OpenWatchers | undefined
  const reply = (r: Reply) => process.send!(r)
  // Requests are handled one after another, so replies keep the requests' order.
  let chain = Promise.resolve()
  process.on('message', (req: Request) => {
    chain = chain.then(async () => {
      switch (req.op) {
        case 'open':
          try {
            open?.close()
            open = await openWatchers(req.url, req.scenario)
            reply({ op: 'created' })
          } catch (err) {
            reply({ op: 'error', message: String((err as Error).message) })
          }
          return
        case 'counts':
          reply({ op: 'counts', ...(open?.counts() ?? { events: 0, messages: 0, lastEventAt: 0 }) })
          return
        case 'close':
          open?.close()
          open = undefined
          reply({ op: 'closed' })
      }
    })
  })
  process.on('disconnect', () => process.exit(0))
}

if (process.argv.includes('--followers') && process.send !== undefined) serve()
