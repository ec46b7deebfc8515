/**
 * The gRPC front door's own CPU per unary call, without a member (issue 12, docs/benchmarks.md gRPC "Session 11"):
 * each checkout's src/runtime/node/grpc.ts (createGrpcServer, the raw unary path: read, decode, the services'
 * mapping, encode, respond) in this one process over a stub member whose put answers at once, beside node:http2
 * alone answering the same bytes (the floor, as bench/lib/h2-floor.ts), driven by an HTTP/2 client in the same
 * process with pre-encoded Put frames (bench/lib/put-driver.ts's: 256-byte values over 1,000 keys). The targets take
 * turns, a round of `calls` calls each, the order turned around every round, so that a busy host's swings fall on
 * all of them alike; the CPU of a round (process.cpuUsage, client and server together: the client's share is the
 * same for every target) over its calls, median over the rounds, and each round's ratio to the first target.
 *
 *   node --import tsx bench/lib/grpc-door.ts [--rounds 12] [--calls 3000] [--clients 64] [checkout ...]
 *
 * Checkouts default to the working directory; an A/B names both (`. /work/wt/ab-x`). --alloc adds V8's sampling
 * heap profiler's estimate of bytes allocated per call (a separate pass per target after the timed rounds);
 * GRPC_DOOR_PROFILES=<dir> keeps each target's profile there (door-<n>.heapprofile, for bench/lib/alloc-report.mjs).
 * --internals adds node:http2 answering with its header processing left out (floorInternals: an upper bound, Node 20).
 */

import { writeFileSync } from 'node:fs'
import { type ClientHttp2Session, connect, createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2'
import { Session } from 'node:inspector'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { putCall } from './grpc-put.js'

const args = process.argv.slice(2)
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`)
  if (i < 0) return def
  const v = Number(args[i + 1])
  args.splice(i, 2)
  return v
}
const rounds = opt('rounds', 12)
const calls = opt('calls', 3000)
const clients = opt('clients', 64)
const alloc = args.includes('--alloc')
const internals = args.includes('--internals')
const checkouts = args.filter((a) => a !== '--alloc' && a !== '--internals')
if (checkouts.length === 0) checkouts.push('.')

/** A member with nothing behind it: put answers its header at once, as a member would (ids as decimal strings). */
function stubMember(): unknown {
  let revision = 1
  const header = () => ({
    cluster_id: '14841639068965178418',
    member_id: '10276657743932975437',
    revision: ++revision,
    raft_term: 2,
  })
  return {
    put: async () => ({ header: header() }),
    range: async () => ({ header: header(), kvs: [], more: false, count: 0 }),
    hasLeader: () => true,
    healthy: () => true,
    authorize: async () => undefined,
    authEnabled: () => false,
  }
}

const config = {
  clientCertAuth: false,
  maxWatchStreams: 1000,
  maxRequestBytes: 1.5 * 1024 * 1024,
  maxTxnOps: 128,
  electionTimeoutMs: 1000,
  maxConcurrentStreams: 1000,
  grpcKeepaliveMinTimeMs: 5000,
  grpcKeepaliveIntervalMs: 2 * 60 * 60 * 1000,
  grpcKeepaliveTimeoutMs: 20_000,
}

interface Target {
  name: string
  server: Http2Server
  sessions: ClientHttp2Session[]
  cpu: number[]
}

async function doorOf(dir: string): Promise<Http2Server> {
  const mod = (await import(pathToFileURL(resolve(dir, 'src/runtime/node/grpc.ts')).href)) as {
    createGrpcServer(o: unknown): { server: Http2Server }
  }
  return mod.createGrpcServer({
    config,
    member: stubMember(),
    appListener: () => undefined,
    verifiedCn: () => undefined,
    watchStreams: { n: 0 },
  }).server
}

/** node:http2 alone, answering as h2-floor.ts does (a fixed PutResponse, trailers through sendTrailers). */
/** An HTTP/2 server that reads each call's body and answers it with `onEnd` (the floors' shared wiring). */
function answerOnEnd(onEnd: (this: ServerHttp2Stream) => void): Http2Server {
  const server = createServer({ settings: { maxConcurrentStreams: 1000 } })
  server.on('stream', (stream) => {
    stream.on('data', () => undefined)
    stream.on('end', onEnd)
    stream.on('error', () => {})
  })
  return server
}

function floor(): Http2Server {
  const header = Buffer.from([
    0x08, 0x8f, 0xa4, 0xb9, 0xc2, 0xd5, 0xe8, 0xfb, 0x8e, 0x01, 0x10, 0x9a, 0xcd, 0xf2, 0x96, 0xbb, 0xe0, 0x85, 0xab,
    0x12, 0x18, 0xa0, 0x9c, 0x01, 0x20, 0x02,
  ])
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, header.length + 2, 0x0a, header.length]), header])
  const okHeaders = { ':status': 200, 'content-type': 'application/grpc' }
  const respondOptions = { waitForTrailers: true, sendDate: false }
  function sendTrailers(this: ServerHttp2Stream): void {
    if (!this.destroyed && !this.closed) this.sendTrailers({ 'grpc-status': '0' })
  }
  function onEnd(this: ServerHttp2Stream): void {
    if (this.destroyed || this.closed) return
    this.respond(okHeaders, respondOptions)
    this.on('wantTrailers', sendTrailers)
    this.end(frame)
  }
  return answerOnEnd(onEnd)
}

/**
 * --internals: node:http2 answering the same bytes with its header processing left out, through the stream's native
 * handle (Node 20's internals, found by name): the response headers' nghttp2 list built once and submitted with
 * `respond`'s flags, the trailers submitted in the DATA frame's send pass (src/runtime/node/h2-trailers.ts's way).
 * What a door leaning on those internals could reach at most; not what edgecd serves.
 */
function floorInternals(): Http2Server {
  const header = Buffer.from([
    0x08, 0x8f, 0xa4, 0xb9, 0xc2, 0xd5, 0xe8, 0xfb, 0x8e, 0x01, 0x10, 0x9a, 0xcd, 0xf2, 0x96, 0xbb, 0xe0, 0x85, 0xab,
    0x12, 0x18, 0xa0, 0x9c, 0x01, 0x20, 0x02,
  ])
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, header.length + 2, 0x0a, header.length]), header])
  // mapToHeaders' output for { ':status': 200, 'content-type': 'application/grpc' } and { 'grpc-status': '0' }
  const headersList = [':status\u0000200\u0000\u0000content-type\u0000application/grpc\u0000\u0000', 2]
  const trailersList = ['grpc-status\u00000\u0000\u0000', 1]
  type Internal = Record<symbol, any>
  let kHandle: symbol | undefined
  let kState: symbol | undefined
  let kMaybeDestroy: symbol | undefined
  const find = (stream: object) => {
    const own = Object.getOwnPropertySymbols(stream)
    kHandle = own.find((x) => x.description === 'kHandle')
    kState = own.find((x) => x.description === 'state')
    for (let p = Object.getPrototypeOf(stream); p && !kMaybeDestroy; p = Object.getPrototypeOf(p))
      kMaybeDestroy = Object.getOwnPropertySymbols(p).find((x) => x.description === 'kMaybeDestroy')
    if (!kHandle || !kState || !kMaybeDestroy) throw new Error('--internals: not the Node 20 internals')
  }
  function trailersNow(this: ServerHttp2Stream): void {
    const st = (this as unknown as Internal)[kState!]
    st.flags &= ~0x20 // STREAM_FLAGS_HAS_TRAILERS
    ;(this as unknown as Internal)[kHandle!].trailers(trailersList)
    ;(this as unknown as Internal)[kMaybeDestroy!].call(this)
  }
  function onEnd(this: ServerHttp2Stream): void {
    if (this.destroyed || this.closed) return
    if (!kHandle) find(this)
    ;(this as unknown as Internal)[kState!].flags |= 0x4 | 0x20 // HEADERS_SENT | HAS_TRAILERS
    ;(this as unknown as Internal)[kHandle!].respond(headersList, 0x2) // STREAM_OPTION_GET_TRAILERS
    this.on('wantTrailers', trailersNow)
    this.end(frame)
  }
  return answerOnEnd(onEnd)
}

async function run(t: Target, n: number): Promise<void> {
  let next = 0
  const worker = async (w: number) => {
    const s = t.sessions[w % t.sessions.length]!
    while (next < n) await putCall(s, next++)
  }
  await Promise.all(Array.from({ length: Math.min(clients, n) }, (_, w) => worker(w)))
}

const targets: Target[] = []
for (const dir of checkouts) targets.push({ name: dir, server: await doorOf(dir), sessions: [], cpu: [] })
targets.push({ name: 'node:http2 alone (floor)', server: floor(), sessions: [], cpu: [] })
if (internals)
  targets.push({ name: 'node:http2, headers through its internals', server: floorInternals(), sessions: [], cpu: [] })
for (const t of targets) {
  await new Promise<void>((ok) => t.server.listen(0, '127.0.0.1', ok))
  const port = (t.server.address() as AddressInfo).port
  t.sessions = Array.from({ length: Math.ceil(clients / 16) }, () => connect(`http://127.0.0.1:${port}`))
  await run(t, 2000) // warm-up
}

for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? targets : [...targets].reverse()
  for (const t of order) {
    const c0 = process.cpuUsage()
    await run(t, calls)
    const c = process.cpuUsage(c0)
    t.cpu.push((c.user + c.system) / calls)
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
console.log(`${rounds} rounds of ${calls} puts, ${clients} clients; CPU µs per call (client and server), median:`)
for (const t of targets) {
  const ratio = t.cpu.map((x, i) => x / targets[0]!.cpu[i]!)
  console.log(
    `  ${median(t.cpu).toFixed(1).padStart(6)}  ${t.name}   per round: ${t.cpu.map((x) => x.toFixed(0)).join(' ')}` +
      (t === targets[0] ? '' : `   ratio to ${targets[0]!.name} median ${median(ratio).toFixed(3)}`),
  )
}

if (alloc) {
  const session = new Session()
  session.connect()
  const post = (m: string, p?: object) =>
    new Promise<unknown>((ok, fail) => session.post(m, p ?? {}, (e, r) => (e ? fail(e) : ok(r))))
  await post('HeapProfiler.enable')
  console.log('bytes allocated per call (sampling heap profiler, client and server):')
  for (const t of targets) {
    await post('HeapProfiler.startSampling', {
      samplingInterval: 512,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    })
    await run(t, calls * 2)
    const { profile } = (await post('HeapProfiler.stopSampling')) as {
      profile: { head: { selfSize: number; children?: unknown[] } }
    }
    const out = process.env.GRPC_DOOR_PROFILES
    if (out) writeFileSync(`${out}/door-${targets.indexOf(t)}.heapprofile`, JSON.stringify(profile))
    let total = 0
    const walk = (n: { selfSize: number; children?: unknown[] }) => {
      total += n.selfSize
      for (const c of n.children ?? []) walk(c as typeof n)
    }
    walk(profile.head)
    console.log(`  ${(total / (calls * 2)).toFixed(0).padStart(6)}  ${t.name}`)
  }
}

for (const t of targets) {
  for (const s of t.sessions) s.close()
  t.server.close()
}
process.exit(0)
