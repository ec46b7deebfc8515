/**
 * In-process: one put to N watchers of one gRPC Watch call (src/api/grpc/watch-session.ts) over a bare store, the
 * transport a counter. Prints µs of CPU per message delivered: the raw Watch path's own cost, without HTTP/2 or a
 * client. `node --import tsx bench/watch-session-micro.ts [watchers] [puts]`
 */
import { GrpcWatchSession } from '../src/api/grpc/watch-session.js'
import type { MemberApi } from '../src/etcdserver/api.js'
import { KvStore } from '../src/kv/store.js'
import { defaultPutRequest, type WatchRequest } from '../src/protocol/types.js'

const watchers = Number(process.argv[2] ?? 10_000)
const puts = Number(process.argv[3] ?? 200)
const s = new KvStore({ maxWatchers: 1e6, maxWatchersPerStream: 1e6 } as never)
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
      close: () => st.close(),
    }
  },
} as unknown as MemberApi
let bytes = 0
let writes = 0
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
  {
    write(c, written) {
      bytes += c.length
      writes++
      written?.(c)
    },
    bufferedBytes: 0,
    end() {},
  },
)
const key = new TextEncoder().encode('bench/watch/k')
// WatchRequest{create_request{key}} enveloped.
const body = Uint8Array.of(0x0a, key.length + 2, 0x0a, key.length, ...key)
const msg = Uint8Array.of(0, 0, 0, 0, body.length, ...body)
const all = new Uint8Array(msg.length * watchers)
for (let i = 0; i < watchers; i++) all.set(msg, i * msg.length)
call.data(all)
await new Promise((r) => setTimeout(r, 0))
const value = new Uint8Array(64).fill(120)
const b0 = bytes
const t0 = process.cpuUsage()
for (let i = 0; i < puts; i++) {
  s.watchHub.beginBatch()
  s.apply({ put: defaultPutRequest({ key, value }) })
  s.watchHub.endBatch()
  await new Promise((r) => setImmediate(r))
}
const cpu = process.cpuUsage(t0)
const us = cpu.user + cpu.system
console.log(
  `${watchers} watchers x ${puts} puts: ${(us / (watchers * puts)).toFixed(3)} µs cpu/message, ${((bytes - b0) / (watchers * puts)).toFixed(0)} bytes/message, ${writes} writes`,
)
