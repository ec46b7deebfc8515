/**
 * In-process model of issue 17's `grpc:1x100` row (docs/benchmarks.md, "Merging a lagging watcher's queue"): N
 * watchers of one gRPC Watch call (src/api/grpc/watch-session.ts) on one key over a bare store; each tick applies one
 * batch of P puts, then a client that takes at most K bytes per tick (a reader slower than the writers, as the bench
 * process is) decodes every message it took with protobuf-es' fromBinary, as ConnectRPC's client does. The transport
 * holds what the client has not taken (`bufferedBytes`), calls a write's `written` once the client took all of it (as
 * Node calls a stream write's callback once the chunk is on the socket) and reports 'drain' as Node's stream does
 * (after a write left 16 KiB or more, once it is empty; the network is the client's K bytes a tick). No sockets, no
 * timers: the message counts are deterministic; CPU is this process's (member + client), so compare runs made back
 * to back. (Session 7's model called `written` at once, which a session that holds events while a write is pending,
 * session 8, would take for a network that never lags.)
 *
 *   node --import tsx bench/watch-lag-micro.ts [watchers=100] [batches=2000] [putsPerBatch=5] [clientBytesPerTick=16384]
 *
 * Not part of `npm run bench` (no run(opts)).
 */
import { fromBinary } from '@bufbuild/protobuf'
import { WatchResponseSchema } from '../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { GrpcWatchSession } from '../src/api/grpc/watch-session.js'
import type { MemberApi } from '../src/etcdserver/api.js'
import { KvStore } from '../src/kv/store.js'
import { defaultPutRequest, type WatchRequest } from '../src/protocol/types.js'

const watchers = Number(process.argv[2] ?? 100)
const batches = Number(process.argv[3] ?? 2000)
const perBatch = Number(process.argv[4] ?? 5)
const clientBytesPerTick = Number(process.argv[5] ?? 16384)
const highWaterMark = 16 * 1024

const s = new KvStore({ maxWatchers: 1e6, maxWatchersPerStream: 1e6 } as never)
const later: (() => void)[] = []
s.watchHub.defer = (fn) => later.push(fn)
const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: 0, raft_term: 2 }
let last = header
const member = {
  openWatchStream(send: (r: never) => boolean) {
    const st = s.watchHub.openStream({
      send: (r) => {
        // As the member: the messages of one revision share one header object.
        const rev = r.header?.revision ?? 0
        if (rev !== last.revision) last = { ...header, revision: rev }
        r.header = last
        return send(r as never) !== false
      },
    })
    return {
      request: (req: WatchRequest) => req.create_request && st.create(req.create_request),
      resume: () => st.resume(),
      hold: () => st.hold?.(),
      close: () => st.close(),
    }
  },
} as unknown as MemberApi

/** Chunks the client has not taken whole: what is left of each, and its write's callback. */
const held: { rest: Uint8Array; chunk: Uint8Array; written?: (c: Uint8Array) => void }[] = []
let buffered = 0
let needDrain = false
let writes = 0
const transport = {
  write(c: Uint8Array, written?: (c: Uint8Array) => void) {
    held.push({ rest: c.slice(), chunk: c, written })
    buffered += c.length
    writes++
    if (buffered >= highWaterMark) needDrain = true
  },
  get bufferedBytes() {
    return buffered
  },
  end() {},
}
const call = new GrpcWatchSession(
  {
    member,
    requiresLeader: () => false,
    monitorLeader: () => () => undefined,
    authorize: () => undefined,
    maxWatchStreams: 10,
    watchStreams: { n: 0 },
  },
  { token: undefined, hasLeader: false, certUser: undefined, recvBytesMax: 2 << 20 },
  transport,
)

let msgs = 0
let events = 0
let clientMs = 0
let input = new Uint8Array(0)
/** The client: takes up to K bytes, decodes every whole message in them. */
function client(): void {
  const t = performance.now()
  let took = 0
  const done: typeof held = []
  while (held.length > 0 && took < clientBytesPerTick) {
    const h = held[0]!
    let c = h.rest
    if (c.length > clientBytesPerTick - took) {
      h.rest = c.subarray(clientBytesPerTick - took)
      c = c.subarray(0, clientBytesPerTick - took)
    } else {
      held.shift()
      done.push(h)
    }
    took += c.length
    buffered -= c.length
    const b = new Uint8Array(input.length + c.length)
    b.set(input)
    b.set(c, input.length)
    let at = 0
    while (b.length - at >= 5) {
      const len = ((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0
      if (b.length - at < 5 + len) break
      const m = fromBinary(WatchResponseSchema, b.subarray(at + 5, at + 5 + len))
      msgs++
      events += m.events.length
      at += 5 + len
    }
    input = b.slice(at)
  }
  clientMs += performance.now() - t
  for (const h of done) h.written?.(h.chunk)
  if (buffered === 0 && needDrain) {
    needDrain = false
    call.drained()
  }
}

const tick = async () => {
  await Promise.resolve() // the session's write of this turn (a microtask)
  client()
  for (let i = 0; i < 100 && later.length > 0; i++) later.shift()!()
  await Promise.resolve()
}

const key = new TextEncoder().encode('bench/watch/k')
const body = Uint8Array.of(0x0a, key.length + 2, 0x0a, key.length, ...key)
const msg = Uint8Array.of(0, 0, 0, 0, body.length, ...body)
const all = new Uint8Array(msg.length * watchers)
for (let i = 0; i < watchers; i++) all.set(msg, i * msg.length)
call.data(all)
await tick()
while (held.length > 0) await tick()
msgs = 0
events = 0
clientMs = 0
const value = new Uint8Array(64).fill(120)
const t0 = process.cpuUsage()
const w0 = performance.now()
let ticks = 0
for (let i = 0; i < batches; i++) {
  s.watchHub.beginBatch()
  for (let j = 0; j < perBatch; j++) s.apply({ put: defaultPutRequest({ key, value }) })
  s.watchHub.endBatch()
  await tick()
  ticks++
}
const puts = batches * perBatch
for (let i = 0; i < 1e6 && events < puts * watchers; i++) {
  await tick()
  ticks++
}
const cpu = process.cpuUsage(t0)
const wall = performance.now() - w0
console.log(
  JSON.stringify({
    watchers,
    puts,
    perBatch,
    clientBytesPerTick,
    delivered: events / (puts * watchers),
    ticks,
    writes,
    msgsPerPut: Number((msgs / puts).toFixed(2)),
    eventsPerMsg: Number((events / msgs).toFixed(1)),
    cpuUsPerPut: Math.round((cpu.user + cpu.system) / puts),
    clientUsPerPut: Math.round((clientMs * 1000) / puts),
    wallMs: Math.round(wall),
  }),
)
