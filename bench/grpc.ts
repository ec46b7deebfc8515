/**
 * gRPC throughput and latency of a member through its gRPC front door, optionally side by side with Debian's etcd on
 * the same machine under the same load. Closed loop: N clients sharing ceil(N/16) HTTP/2 connections (as Go clients
 * multiplex calls on few connections), each sending its next call when the previous answer is read; 256-byte values
 * over 1,000 keys (preloaded). The load generator is this process: by default a bare node:http2 client sending
 * pre-encoded gRPC frames (reading only grpc-status), so that its own cost per call stays well under a server's;
 * `--client grpc-js` uses @grpc/grpc-js with the generated messages instead (what the `etcd3` package does). Each
 * row also reports the generator's own CPU per call.
 *
 *   npm run bench -- grpc [--etcd] [--trivial] [--quick] [--seconds 3] [--client raw|grpc-js]
 *
 *   --etcd      also run the load against etcd 3.4 and print edgecd/etcd per row
 *   --trivial   also against do-nothing KV servers (bench/lib/grpc-trivial.ts) on ConnectRPC (edgecd's stack) and
 *               on @grpc/grpc-js: the generator's own ceiling and the two libraries' ceilings
 *   --quick     0.5 s per run
 *   --rows r    only these rows, e.g. `put:64,range-serializable:64` (default: all four)
 *   --profile d start edgecd with `node --cpu-prof --cpu-prof-dir d` (open the .cpuprofile in Chrome DevTools)
 *   --node-args "f ..."  extra node flags for the edgecd member, space-separated, each starting with `--` (e.g.
 *               `--max-semi-space-size=8`, a smaller young generation: docs/benchmarks.md, gRPC "Session 9")
 *   --warmup-calls n  puts (64 in flight) sent to each server before its rows (default 5,000; 500 with --quick), on
 *               top of the 1,000-key preload: edgecd's JIT needs a few thousand calls to reach its steady speed (a
 *               fresh member spends about twice the CPU per put of a warm one), which a 1-client row's 1 s warm-up
 *               does not give it. Every server gets the same calls.
 *
 * Rows: put with 1 and 64 clients, linearizable and serializable range with 64. Every run is bounded by time and by
 * a call count; servers are child processes, stopped (and their directories removed) at the end, also on failure.
 */
import { spawn } from 'node:child_process'
import { type ClientHttp2Session, connect } from 'node:http2'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { create, type DescMessage, fromBinary, toBinary } from '@bufbuild/protobuf'
import * as grpc from '@grpc/grpc-js'
import {
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
} from '../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { freePort } from '../test/support/index.js'
import { type BenchServer, processCpuSecs, startEdgecd, startEtcd } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

const keyCount = 1000
const valueBytes = 256
const callsMax = 5_000_000

type Kind = 'put' | 'range-linearizable' | 'range-serializable'
const rows: [Kind, number][] = [
  ['put', 1],
  ['put', 64],
  ['range-linearizable', 64],
  ['range-serializable', 64],
]

interface Target {
  name: string
  address: string
  pid: number
  stop(): Promise<void>
}

const enc = new TextEncoder()
const keys = Array.from({ length: keyCount }, (_, i) => enc.encode(`bench/${String(i).padStart(6, '0')}`))
const value = new Uint8Array(valueBytes).fill(0x61)

function codec(d: DescMessage) {
  return {
    ser: (m: unknown) => Buffer.from(toBinary(d, m as never)),
    de: (b: Buffer) => fromBinary(d, b),
  }
}
const putReq = codec(PutRequestSchema)
const putRes = codec(PutResponseSchema)
const rangeReq = codec(RangeRequestSchema)
const rangeRes = codec(RangeResponseSchema)

/** A gRPC connection for the generator: grpc-js, or a bare HTTP/2 session sending pre-encoded frames. */
type Conn = { kind: 'grpc-js'; client: grpc.Client } | { kind: 'raw'; session: ClientHttp2Session }

const framed = (b: Uint8Array): Buffer => {
  const f = Buffer.alloc(5 + b.length)
  f.writeUInt32BE(b.length, 1)
  f.set(b, 5)
  return f
}
/** Per key: the enveloped Put, linearizable Range and serializable Range requests. */
const frames = keys.map((key) => ({
  put: framed(toBinary(PutRequestSchema, create(PutRequestSchema, { key, value }))),
  'range-linearizable': framed(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key }))),
  'range-serializable': framed(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key, serializable: true }))),
}))
const keyIndex = new Map<Uint8Array, number>(keys.map((k, i) => [k, i]))
const rawHeaders = (path: string) => ({
  ':method': 'POST',
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
})
const putHeaders = rawHeaders('/etcdserverpb.KV/Put')
const rangeHeaders = rawHeaders('/etcdserverpb.KV/Range')

function rawCall(session: ClientHttp2Session, kind: Kind, key: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request(kind === 'put' ? putHeaders : rangeHeaders)
    let status: unknown
    let message: unknown
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) {
        status = h['grpc-status']
        message = h['grpc-message']
      }
    }
    req.on('response', take)
    req.on('trailers', take)
    req.on('data', () => undefined)
    req.on('end', () => (status === '0' ? resolve() : reject(new Error(`grpc-status ${status}: ${message}`))))
    req.on('error', reject)
    req.end(frames[keyIndex.get(key)!]![kind] as Buffer)
  })
}

function call(conn: Conn, kind: Kind, key: Uint8Array): Promise<void> {
  if (conn.kind === 'raw') return rawCall(conn.session, kind, key)
  const client = conn.client
  return new Promise((resolve, reject) => {
    const cb = (err: grpc.ServiceError | null) => (err ? reject(err) : resolve())
    if (kind === 'put')
      client.makeUnaryRequest(
        '/etcdserverpb.KV/Put',
        putReq.ser,
        putRes.de,
        create(PutRequestSchema, { key, value }),
        cb,
      )
    else
      client.makeUnaryRequest(
        '/etcdserverpb.KV/Range',
        rangeReq.ser,
        rangeRes.de,
        create(RangeRequestSchema, { key, serializable: kind === 'range-serializable' }),
        cb,
      )
  })
}

let clientKind: Conn['kind'] = 'raw'

function clients(address: string, n: number): Conn[] {
  return Array.from({ length: n }, (_, i): Conn => {
    if (clientKind === 'raw') {
      const session = connect(`http://${address}`)
      session.on('error', () => undefined)
      return { kind: 'raw', session }
    }
    return {
      kind: 'grpc-js',
      client: new grpc.Client(address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        // a distinct channel per connection
        'grpc.channel_id': i,
      } as grpc.ChannelOptions),
    }
  })
}

const closeConn = (c: Conn) => (c.kind === 'raw' ? c.session.close() : c.client.close())

interface Run {
  /** Server CPU time per call (user + system), µs: robust to a loaded machine where ops/s is not. */
  cpuUsPerCall: number
  /** The load generator's (this process's) CPU time per call, µs. */
  genUsPerCall: number
  ops: number
  p50: number
  p99: number
  errors: number
  firstError?: string
}

async function load(address: string, kind: Kind, n: number, ms: number, warmupMs: number, pid: number): Promise<Run> {
  const conns = clients(address, Math.ceil(n / 16))
  const lat: number[] = []
  let ops = 0
  let errors = 0
  let firstError: string | undefined
  const t0 = performance.now()
  const tMeasure = t0 + warmupMs
  const tEnd = tMeasure + ms
  let cpuAt = Number.NaN
  let cpuEnd = Number.NaN
  let genAt = process.cpuUsage()
  let genEnd = genAt
  const measureTimer = setTimeout(() => {
    cpuAt = processCpuSecs(pid)
    genAt = process.cpuUsage()
  }, warmupMs)
  const endTimer = setTimeout(() => {
    cpuEnd = processCpuSecs(pid)
    genEnd = process.cpuUsage(genAt)
  }, warmupMs + ms)
  async function worker(id: number) {
    let x = (id * 104729 + 7) >>> 0 || 1
    const client = conns[id % conns.length]!
    for (let i = 0; i < callsMax; i++) {
      const s = performance.now()
      if (s >= tEnd) return
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      try {
        await call(client, kind, keys[(x >>> 0) % keyCount]!)
      } catch (err) {
        errors++
        firstError ??= (err as Error).message
        continue
      }
      const e = performance.now()
      if (s >= tMeasure && e <= tEnd) {
        ops++
        lat.push(e - s)
      }
    }
  }
  await Promise.all(Array.from({ length: n }, (_, i) => worker(i)))
  clearTimeout(measureTimer)
  clearTimeout(endTimer)
  // A busy event loop may end the workers before the end timer ran: read the CPU figures now.
  if (Number.isNaN(cpuEnd)) {
    cpuEnd = processCpuSecs(pid)
    genEnd = process.cpuUsage(genAt)
  }
  for (const c of conns) closeConn(c)
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? Number.NaN
  return {
    ops: ops / (ms / 1000),
    cpuUsPerCall: ((cpuEnd - cpuAt) * 1e6) / Math.max(1, ops),
    genUsPerCall: (genEnd.user + genEnd.system) / Math.max(1, ops),
    p50: q(0.5),
    p99: q(0.99),
    errors,
    ...(firstError ? { firstError } : {}),
  }
}

async function preload(address: string, warmupCalls: number): Promise<void> {
  const [c] = clients(address, 1)
  for (let i = 0; i < keyCount + warmupCalls; i += 64) {
    const batch = Array.from({ length: Math.min(64, keyCount + warmupCalls - i) }, (_, j) => keys[(i + j) % keyCount]!)
    await Promise.all(batch.map((k) => call(c!, 'put', k)))
  }
  closeConn(c!)
}

async function ready(address: string): Promise<void> {
  const deadline = performance.now() + 30_000
  for (;;) {
    const [c] = clients(address, 1)
    try {
      await call(c!, 'range-serializable', keys[0]!)
      return
    } catch (err) {
      if (performance.now() > deadline) throw err
    } finally {
      closeConn(c!)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function trivial(kind: 'connect' | 'grpc-js'): Promise<Target> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/grpc-trivial.ts', kind, String(port)], {
    stdio: 'ignore',
  })
  const stop = async () => {
    if (child.exitCode !== null) return
    await new Promise((r) => {
      child.once('exit', r)
      child.kill('SIGTERM')
    })
  }
  const address = `127.0.0.1:${port}`
  try {
    await ready(address)
  } catch (err) {
    await stop()
    throw err
  }
  return { name: `trivial-${kind}`, address, pid: child.pid!, stop }
}

const fromServer = (s: BenchServer): Target => ({
  name: s.name,
  address: new URL(s.url).host,
  pid: s.pid,
  stop: () => s.stop(),
})

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const { values } = parseArgs({
    args: opts.args,
    options: {
      etcd: { type: 'boolean' },
      trivial: { type: 'boolean' },
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      seconds: { type: 'string' },
      rows: { type: 'string' },
      client: { type: 'string' },
      profile: { type: 'string' },
      'node-args': { type: 'string' },
      'warmup-calls': { type: 'string' },
    },
    strict: true,
  })
  if (values.client !== undefined && values.client !== 'raw' && values.client !== 'grpc-js')
    throw new Error(`--client: raw or grpc-js, not ${values.client}`)
  clientKind = (values.client as Conn['kind'] | undefined) ?? 'raw'
  const quick = opts.quick || values.quick === true
  const ms = quick ? 500 : Number(values.seconds ?? 3) * 1000
  const warmupMs = quick ? 200 : 1000
  const warmupCalls = Number(values['warmup-calls'] ?? (quick ? 500 : 5000))
  if (!Number.isSafeInteger(warmupCalls) || warmupCalls < 0 || warmupCalls > 1_000_000)
    throw new Error(`--warmup-calls: 0..1000000, got ${values['warmup-calls']}`)
  const out: BenchResult[] = []
  const selected: [Kind, number][] = values.rows
    ? values.rows.split(',').map((r) => {
        const [kind, n] = r.split(':')
        if (!rows.some(([k]) => k === kind) || !(Number(n) > 0)) throw new Error(`--rows: bad row ${r}`)
        return [kind as Kind, Number(n)]
      })
    : rows
  const extraNodeArgs = (values['node-args'] ?? '').split(' ').filter((a) => a !== '')
  for (const a of extraNodeArgs) if (!a.startsWith('--')) throw new Error(`--node-args: node flags only, not ${a}`)
  const nodeArgs = [...(values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : []), ...extraNodeArgs]
  const targets: (() => Promise<Target>)[] = [
    async () => fromServer(await startEdgecd(nodeArgs.length > 0 ? { nodeArgs } : {})),
  ]
  if (values.etcd) targets.push(async () => fromServer(await startEtcd()))
  if (values.trivial)
    targets.push(
      () => trivial('connect'),
      () => trivial('grpc-js'),
    )
  const results = new Map<string, Run>()
  for (const start of targets) {
    const t = await start()
    try {
      if (!t.name.startsWith('trivial')) {
        await ready(t.address).catch(() => undefined)
        await preload(t.address, warmupCalls)
      }
      for (const [kind, n] of selected) {
        const r = await load(t.address, kind, n, ms, warmupMs, t.pid)
        results.set(`${t.name} ${kind} ${n}`, r)
        out.push({
          name: `${t.name} ${kind}, ${n} clients`,
          value: r.ops,
          unit: 'ops/s',
          note: `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, server CPU ${r.cpuUsPerCall.toFixed(0)} µs/call, generator ${r.genUsPerCall.toFixed(0)} µs/call${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}, load ${loadavg()[0]!.toFixed(1)}`,
        })
      }
    } finally {
      await t.stop()
    }
  }
  if (values.etcd)
    for (const [kind, n] of selected) {
      const a = results.get(`edgecd ${kind} ${n}`)
      const b = results.get(`etcd ${kind} ${n}`)
      if (a && b)
        out.push({
          name: `edgecd/etcd ${kind}, ${n} clients`,
          value: a.ops / b.ops,
          unit: 'ratio',
          note: `p99 ${a.p99.toFixed(2)} vs ${b.p99.toFixed(2)} ms, server CPU ${a.cpuUsPerCall.toFixed(0)} vs ${b.cpuUsPerCall.toFixed(0)} µs/call`,
        })
    }
  return out
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await run({ quick: false, args: process.argv.slice(2) })
  for (const r of results) console.log(`${r.name}\t${r.value.toFixed(2)} ${r.unit}\t${r.note ?? ''}`)
}
