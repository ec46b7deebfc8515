/**
 * Probe for issue 17 (docs/benchmarks.md, "Why the bench process spends more per put against edgecd"): one gRPC Watch
 * stream of N watchers on one key, W closed-loop writers of `POST /v3/kv/put`, and what the stream's client received
 * per put (messages, events per message; with `--client raw` also bytes and HTTP/2 DATA chunks) and the CPU the bench
 * process (writers + watch client) and the server spent per put. Clients: `connect` (ConnectRPC's Node gRPC client,
 * as bench/watch.ts), `grpc-js` (@grpc/grpc-js, as the etcd3 package; messages decoded with fromBinary), `raw` (a bare
 * node:http2 stream). Each put's value carries its number, so the run also prints the latency from a put's request
 * to the first watcher's event for it (`latencyMs`: p50, p90, p99, max; watch with `--watchers 1 --writers 1` for
 * the latency an idle watcher sees). `--busy-us N` makes the client spin N µs per event message it gets (a client that
 * does work per message, and falls behind sooner). One JSON line per run; not part of `npm run bench`.
 *
 *   npx tsx bench/watch-client-probe.ts [--client connect|grpc-js|raw] [--etcd] [--seconds 3] [--watchers 100]
 *                                       [--writers 16] [--busy-us 0]
 */
import http2 from 'node:http2'
import { parseArgs } from 'node:util'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import * as grpc from '@grpc/grpc-js'
import { Pool } from 'undici'
import {
  Watch,
  WatchRequestSchema,
  WatchResponseSchema,
} from '../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { startEdgecd, startEtcd, treeCpuSecs } from './lib/servers.js'

const { values } = parseArgs({
  options: {
    client: { type: 'string', default: 'raw' },
    etcd: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '3' },
    watchers: { type: 'string', default: '100' },
    writers: { type: 'string', default: '16' },
    'busy-us': { type: 'string', default: '0' },
  },
})
const nW = Number(values.watchers)
const key = new TextEncoder().encode('bench/watch/k')
const reqs = Array.from({ length: nW }, () =>
  create(WatchRequestSchema, { requestUnion: { case: 'createRequest', value: { key } } }),
)
let created = 0
let events = 0
let msgs = 0
let chunks = 0
let bytes = 0
const chunkSizes: number[] = []
/** When each put was sent, by its number (the value's first 8 bytes); latencies of the first event seen for each. */
const sentAt: number[] = []
const latencies: number[] = []
const seqOf = (value: Uint8Array): number => Number(new TextDecoder().decode(value.subarray(0, 8)))
const busyMs = Number(values['busy-us']) / 1000
function onEvents(evs: readonly { kv?: { value: Uint8Array } }[]): void {
  events += evs.length
  const now = performance.now()
  if (busyMs > 0 && evs.length > 0) while (performance.now() - now < busyMs);
  for (const e of evs) {
    const seq = e.kv ? seqOf(e.kv.value) : Number.NaN
    const t = sentAt[seq]
    if (t !== undefined) {
      latencies.push(now - t)
      // The first watcher to get it counts.
      sentAt[seq] = undefined as unknown as number
    }
  }
}

function envelope(b: Uint8Array): Buffer {
  const h = Buffer.alloc(5)
  h.writeUInt32BE(b.length, 1)
  return Buffer.concat([h, b])
}

function openRaw(url: string): () => void {
  const s = http2.connect(url)
  const st = s.request({
    ':method': 'POST',
    ':path': '/etcdserverpb.Watch/Watch',
    'content-type': 'application/grpc',
    te: 'trailers',
  })
  for (const r of reqs) st.write(envelope(toBinary(WatchRequestSchema, r)))
  let pending: Buffer = Buffer.alloc(0)
  st.on('data', (c: Buffer) => {
    chunks++
    bytes += c.length
    chunkSizes.push(c.length)
    pending = pending.length ? Buffer.concat([pending, c]) : c
    let off = 0
    while (pending.length - off >= 5) {
      const len = pending.readUInt32BE(off + 1)
      if (pending.length - off - 5 < len) break
      const m = fromBinary(WatchResponseSchema, pending.subarray(off + 5, off + 5 + len))
      msgs++
      if (m.created) created++
      onEvents(m.events)
      off += 5 + len
    }
    pending = pending.subarray(off)
  })
  st.on('error', () => {})
  return () => {
    st.close()
    s.close()
  }
}

function openConnect(url: string): () => void {
  const abort = new AbortController()
  const watch = createClient(Watch, createGrpcTransport({ baseUrl: url }))
  async function* requests() {
    yield* reqs
    await new Promise<void>((r) => abort.signal.addEventListener('abort', () => r()))
  }
  void (async () => {
    try {
      for await (const r of watch.watch(requests(), { signal: abort.signal })) {
        msgs++
        if (r.created) created++
        onEvents(r.events)
      }
    } catch {}
  })()
  return () => abort.abort()
}

function openGrpcJs(url: string): () => void {
  const client = new grpc.Client(url.replace(/^http:\/\//, ''), grpc.credentials.createInsecure())
  const call = client.makeBidiStreamRequest(
    '/etcdserverpb.Watch/Watch',
    (b: Buffer) => b,
    (b: Buffer) => fromBinary(WatchResponseSchema, b),
  )
  call.on('data', (m: ReturnType<typeof fromBinary<typeof WatchResponseSchema>>) => {
    msgs++
    if (m.created) created++
    onEvents(m.events)
  })
  call.on('error', () => {})
  for (const r of reqs) call.write(Buffer.from(toBinary(WatchRequestSchema, r)))
  return () => {
    call.cancel()
    client.close()
  }
}

const server = values.etcd ? await startEtcd() : await startEdgecd({ serveArgs: ['--max-watchers-per-stream=100000'] })
try {
  const open = { raw: openRaw, connect: openConnect, 'grpc-js': openGrpcJs }[values.client!]!
  const close = open(server.url)
  while (created < nW) await new Promise((r) => setTimeout(r, 20))
  msgs = chunks = bytes = events = 0
  chunkSizes.length = 0
  latencies.length = 0
  const pool = new Pool(server.url, { connections: Number(values.writers) })
  const keyB64 = Buffer.from(key).toString('base64')
  let seq = 0
  let puts = 0
  const cpu0 = process.cpuUsage()
  const scpu0 = treeCpuSecs(server.pid)
  const t0 = performance.now()
  const tEnd = t0 + Number(values.seconds) * 1000
  await Promise.all(
    Array.from({ length: Number(values.writers) }, async () => {
      while (performance.now() < tEnd) {
        const n = seq++
        const value = Buffer.from(String(n).padStart(8, '0') + 'x'.repeat(56)).toString('base64')
        const body = JSON.stringify({ key: keyB64, value })
        sentAt[n] = performance.now()
        const res = await pool.request({ path: '/v3/kv/put', method: 'POST', body })
        await res.body.dump()
        puts++
      }
    }),
  )
  const dEnd = performance.now() + 10_000
  while (events < puts * nW && performance.now() < dEnd) await new Promise((r) => setTimeout(r, 10))
  const el = (performance.now() - t0) / 1000
  const c = process.cpuUsage(cpu0)
  const scpu = treeCpuSecs(server.pid) - scpu0
  chunkSizes.sort((a, b) => a - b)
  const q = (p: number) => chunkSizes[Math.floor(p * (chunkSizes.length - 1))] ?? 0
  latencies.sort((a, b) => a - b)
  const lq = (p: number) => +(latencies[Math.floor(p * (latencies.length - 1))] ?? 0).toFixed(2)
  console.log(
    JSON.stringify({
      server: server.name,
      client: values.client,
      puts,
      putsPerSec: Math.round(puts / el),
      eventsPerSec: Math.round(events / el),
      delivered: events / (puts * nW),
      msgsPerPut: +(msgs / puts).toFixed(2),
      eventsPerMsg: +(events / msgs).toFixed(2),
      bytesPerPut: chunks ? Math.round(bytes / puts) : undefined,
      chunksPerPut: chunks ? +(chunks / puts).toFixed(3) : undefined,
      chunkBytes: chunks ? { p50: q(0.5), p90: q(0.9), max: q(1) } : undefined,
      clientCpuUsPerPut: Math.round((c.user + c.system) / puts),
      serverCpuUsPerPut: Math.round((scpu * 1e6) / puts),
      latencyMs: { p50: lq(0.5), p90: lq(0.9), p99: lq(0.99), max: lq(1) },
    }),
  )
  await pool.close()
  close()
} finally {
  await server.stop?.()
}
process.exit(0)
