/**
 * Issue 17, gRPC watch fan-out: the events of one watch shape are serialized once per revision, not once per watcher,
 * and every watcher's message is byte-equal to the canonical protobuf encoding. Plus a small end-to-end gRPC watch
 * case (1,000 watchers of one key on one stream) whose time is printed.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import { toProto } from '../../src/api/grpc/convert.js'
import {
  KV,
  Watch,
  WatchRequestSchema,
  WatchResponseSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { watchProtoStats, watchResponseToProto } from '../../src/api/grpc/watch-proto.js'
import type { WatchResponse } from '../../src/protocol/types.js'
import { b, newStore, put, watchReq } from '../kv/helpers.js'
import { startTestMember } from '../server/helpers.js'

const base: WatchResponse = {
  watch_id: 0,
  created: false,
  canceled: false,
  compact_revision: 0,
  cancel_reason: '',
  fragment: false,
  events: [],
}

describe('gRPC watch encoding (issue 17)', () => {
  test('each message is byte-equal to the canonical encoding, and decodes to its events', () => {
    const kv = { key: b('k'), create_revision: 2, mod_revision: 3, version: 2, value: b('v'), lease: 7n }
    const prev = { ...kv, value: b('p'), mod_revision: 2, version: 1 }
    const events = [
      { type: 0, kv, prev_kv: prev },
      { type: 1, kv: { ...kv, value: b(''), version: 0 } },
      { type: 0, kv: { ...kv, key: b('\u0000\u00ff'), value: new Uint8Array(300).fill(0xab) } },
    ]
    const header = { cluster_id: '1', member_id: '2', revision: 3, raft_term: 4 }
    const cases: WatchResponse[] = [
      { ...base, events },
      { ...base, events, header },
      { ...base, events, header, watch_id: 7 },
      { ...base, events: events.slice(1, 2), header, watch_id: 2n ** 60n + 1n },
      { ...base, events, header, fragment: true, watch_id: 3 },
      { ...base, header, created: true, watch_id: 1 },
      { ...base, header, canceled: true, cancel_reason: 'x', watch_id: -1 },
    ]
    for (const c of cases) {
      const want = toBinary(WatchResponseSchema, toProto(WatchResponseSchema, c))
      // Twice: the second takes the cached events.
      for (let i = 0; i < 2; i++) {
        const got = toBinary(WatchResponseSchema, watchResponseToProto(c))
        assert.deepEqual(Buffer.from(got).toString('hex'), Buffer.from(want).toString('hex'))
        const back = fromBinary(WatchResponseSchema, got)
        assert.equal(back.events.length, c.events.length)
      }
    }
  })

  test('one put to 3,000 watchers of 3 shapes: 3 event serializations, not 3,000', () => {
    const s = newStore()
    const out: Uint8Array[] = []
    const stream = s.watchHub.openStream({
      send: (r) => {
        out.push(toBinary(WatchResponseSchema, watchResponseToProto(r)))
        return true
      },
    })
    for (let i = 0; i < 1000; i++) stream.create(watchReq('k'))
    for (let i = 0; i < 1000; i++) stream.create(watchReq('k', '', { prev_kv: true }))
    for (let i = 0; i < 1000; i++) stream.create(watchReq('a', 'z'))
    put(s, 'k', 'v1')
    out.length = 0
    const before = watchProtoStats.eventEncodes
    put(s, 'k', 'v2')
    assert.equal(out.length, 3000)
    assert.equal(watchProtoStats.eventEncodes - before, 3, 'one serialization per shape')
    const ids = new Set(out.map((m) => fromBinary(WatchResponseSchema, m).watchId))
    assert.equal(ids.size, 3000, 'each message carries its own watch id')
    const withPrev = out.map((m) => fromBinary(WatchResponseSchema, m)).filter((m) => m.events[0]?.prevKv)
    assert.equal(withPrev.length, 1000)

    // What it saves: 10,000 messages of one shape, serialized the old way (each message in full) and the new way.
    const events = [
      {
        type: 0,
        kv: { key: b('key/1'), create_revision: 2, mod_revision: 3, version: 2, value: new Uint8Array(256), lease: 0n },
      },
    ]
    const header = { cluster_id: '1', member_id: '2', revision: 3, raft_term: 4 }
    const time = (f: (i: number) => void) => {
      // CPU time, not wall time: on a loaded machine the process waits for a core.
      const c0 = process.cpuUsage()
      for (let i = 0; i < 10_000; i++) f(i)
      const c = process.cpuUsage(c0)
      return (c.user + c.system) / 1000
    }
    const full = time((i) =>
      toBinary(WatchResponseSchema, toProto(WatchResponseSchema, { ...base, header, watch_id: i, events })),
    )
    const shared = time((i) =>
      toBinary(WatchResponseSchema, watchResponseToProto({ ...base, header, watch_id: i, events })),
    )
    console.log(
      `# 10,000 messages of one event (256 B value): ${full.toFixed(1)} ms CPU each in full, ${shared.toFixed(1)} ms sharing the events`,
    )
  })

  test('end to end: 1,000 watchers of one key on one gRPC Watch stream, 20 puts: every event arrives', async () => {
    const m = await startTestMember()
    const transport = createGrpcTransport({ baseUrl: m.url })
    const kv = createClient(KV, transport)
    const watch = createClient(Watch, transport)
    const n = 1000
    const puts = 20
    const abort = new AbortController()
    let created = 0
    let events = 0
    let wake: (() => void) | undefined
    async function* requests() {
      for (let i = 0; i < n; i++) {
        yield create(WatchRequestSchema, { requestUnion: { case: 'createRequest', value: { key: b('grpc-enc') } } })
      }
      await new Promise<void>((r) => abort.signal.addEventListener('abort', () => r()))
    }
    const reader = (async () => {
      try {
        for await (const r of watch.watch(requests(), { signal: abort.signal })) {
          if (r.created) created++
          events += r.events.length
          wake?.()
        }
      } catch {}
    })()
    const until = async (cond: () => boolean, what: string) => {
      const deadline = Date.now() + 60_000
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
        await new Promise<void>((r) => {
          wake = r
          setTimeout(r, 50)
        })
      }
    }
    try {
      await until(() => created === n, 'creates')
      const t0 = performance.now()
      for (let i = 0; i < puts; i++) await kv.put({ key: b('grpc-enc'), value: b(`v${i}`) })
      await until(() => events === n * puts, 'every event')
      console.log(`# gRPC Watch: ${n} watchers x ${puts} puts delivered in ${(performance.now() - t0).toFixed(0)} ms`)
    } finally {
      abort.abort()
      await reader
      await m.stop()
    }
  })
})
