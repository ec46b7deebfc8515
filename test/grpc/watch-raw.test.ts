/**
 * The gRPC Watch call on raw bytes (src/api/grpc/watch-session.ts, served by the Node door): messages byte-equal to
 * protobuf-es' canonical encoding, etcd 3.4's fragmenting (sendFragments), every message of one turn in ONE write,
 * request messages split anywhere across chunks, the receive limit and malformed input answered with grpc-go's
 * status, and the member's flow control (a congested transport holds the stream back; watchers fall behind and catch
 * up from history when it drains, every revision exactly once, in order).
 */
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import { describe, test } from 'node:test'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { toProto } from '../../src/api/grpc/convert.js'
import {
  type WatchResponse as PbWatchResponse,
  WatchRequestSchema,
  WatchResponseSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { appendWatchResponse, GrpcFrames } from '../../src/api/grpc/watch-proto.js'
import { GrpcWatchSession, type RawWatchTransport, type WatchSessionDeps } from '../../src/api/grpc/watch-session.js'
import type { MemberApi, WatchStream } from '../../src/etcdserver/api.js'
import type { KvStore } from '../../src/kv/store.js'
import { watchResponse } from '../../src/kv/watch.js'
import type { WatchRequest, WatchResponse } from '../../src/protocol/types.js'
import { b, newStore, put } from '../kv/helpers.js'
import { startTestMember } from '../server/helpers.js'
import { post } from '../support/http.js'

const base: WatchResponse = watchResponse({})

/** The messages of a chunk of enveloped gRPC messages. */
function messages(chunk: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  let at = 0
  while (at < chunk.length) {
    assert.equal(chunk[at], 0)
    const len = new DataView(chunk.buffer, chunk.byteOffset + at + 1, 4).getUint32(0)
    out.push(chunk.subarray(at + 5, at + 5 + len))
    at += 5 + len
  }
  assert.equal(at, chunk.length)
  return out
}

function envelope(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + msg.length)
  new DataView(out.buffer).setUint32(1, msg.length)
  out.set(msg, 5)
  return out
}

const createReq = (key: string, fields: Record<string, unknown> = {}) =>
  envelope(
    toBinary(
      WatchRequestSchema,
      create(WatchRequestSchema, {
        requestUnion: { case: 'createRequest', value: { key: b(key), ...fields } },
      }),
    ),
  )

describe('raw gRPC watch encoding', () => {
  test('each message is byte-equal to toBinary(toProto(...)), ids of every size', () => {
    const kv = { key: b('k'), create_revision: 2, mod_revision: 3, version: 2, value: b('v'), lease: 7n }
    const prev = { ...kv, value: b('p'), mod_revision: 2, version: 1 }
    const events = [
      { type: 0, kv, prev_kv: prev },
      { type: 1, kv: { ...kv, value: b(''), version: 0, lease: 0n } },
      { type: 0, kv: { ...kv, key: b('\u0000\u00ff'), value: new Uint8Array(300).fill(0xab) } },
    ]
    const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: 3, raft_term: 4 }
    const cases: WatchResponse[] = [
      { ...base, events },
      { ...base, events, header },
      { ...base, events, header, watch_id: 7 },
      { ...base, events, header, watch_id: 5000 },
      { ...base, events, header, watch_id: -5 },
      { ...base, events: events.slice(1, 2), header, watch_id: 2n ** 60n + 1n },
      { ...base, events: events.slice(1, 2), header, watch_id: -(2n ** 62n) },
      { ...base, events, header, fragment: true, watch_id: 3 },
      { ...base, header, created: true, watch_id: 1 },
      { ...base, header, created: true, watch_id: 2n ** 63n - 1n },
      { ...base, header, created: true, canceled: true, cancel_reason: 'mvcc: watcher range is empty', watch_id: -1 },
      { ...base, header: { ...header, revision: 0 }, canceled: true, compact_revision: 9, watch_id: 4 },
      { ...base, header, watch_id: -1 },
    ]
    for (const c of cases) {
      const want = toBinary(WatchResponseSchema, toProto(WatchResponseSchema, c))
      for (let i = 0; i < 2; i++) {
        const f = new GrpcFrames(8)
        appendWatchResponse(f, c)
        const got = messages(f.take())
        assert.equal(got.length, 1)
        assert.equal(Buffer.from(got[0]!).toString('hex'), Buffer.from(want).toString('hex'))
      }
    }
  })

  test("fragment: true splits as etcd 3.4's sendFragments, each part under the limit, the last without fragment", () => {
    const header = { cluster_id: '1', member_id: '2', revision: 9, raft_term: 4 }
    const ev = (i: number, size: number) => ({
      type: 0,
      kv: {
        key: b(`k${i}`),
        create_revision: 2,
        mod_revision: 3 + i,
        version: 1,
        value: new Uint8Array(size),
        lease: 0n,
      },
    })
    const events = [ev(0, 100), ev(1, 500), ev(2, 50), ev(3, 900), ev(4, 10), ev(5, 10), ev(6, 2000), ev(7, 1)]
    const r: WatchResponse = { ...base, header, watch_id: 5, events }
    // etcd's sendFragments, on protobuf-es messages, as the reference.
    const reference = (max: number): PbWatchResponse[] => {
      const wr = toProto(WatchResponseSchema, r)
      if (toBinary(WatchResponseSchema, wr).length < max || wr.events.length < 2) return [wr]
      const out: PbWatchResponse[] = []
      let idx = 0
      for (;;) {
        const cur = create(WatchResponseSchema, { ...wr, events: [], fragment: true })
        for (const e of wr.events.slice(idx)) {
          cur.events.push(e)
          if (cur.events.length > 1 && toBinary(WatchResponseSchema, cur).length >= max) {
            cur.events.pop()
            break
          }
          idx++
        }
        if (idx === wr.events.length) cur.fragment = false
        out.push(cur)
        if (!cur.fragment) break
      }
      return out
    }
    for (const max of [1, 200, 700, 1000, 1500, 3000, 5000, 100_000]) {
      const f = new GrpcFrames()
      appendWatchResponse(f, r, max)
      const got = messages(f.take())
      const want = reference(max).map((m) => Buffer.from(toBinary(WatchResponseSchema, m)).toString('hex'))
      assert.deepEqual(
        got.map((m) => Buffer.from(m).toString('hex')),
        want,
        `limit ${max}`,
      )
      const back = got.map((m) => fromBinary(WatchResponseSchema, m))
      assert.equal(back.flatMap((m) => m.events).length, events.length)
      assert.ok(back.slice(0, -1).every((m) => m.fragment) && !back.at(-1)!.fragment)
    }
  })
})

/** A member over a bare store: its watch streams straight from the hub, writes as apply batches. */
function storeMember(s: KvStore): MemberApi {
  return {
    openWatchStream(send: (r: WatchResponse) => boolean | undefined): WatchStream {
      const st = s.watchHub.openStream({ send: (r) => send(r) !== false })
      return {
        request(req: WatchRequest) {
          if (req.create_request) st.create(req.create_request)
          else if (req.cancel_request) st.cancel(req.cancel_request.watch_id)
          else if (req.progress_request) st.requestProgress()
        },
        resume: () => st.resume(),
        hold: () => st.hold(),
        close: () => st.close(),
      }
    },
  } as unknown as MemberApi
}

class FakeTransport implements RawWatchTransport {
  writes: Uint8Array[] = []
  bufferedBytes = 0
  ended: { code: number; message: string } | undefined
  write(chunk: Uint8Array, written?: (chunk: Uint8Array) => void): void {
    // A copy: the chunk's buffer is given back at once and reused for the next turn.
    this.writes.push(chunk.slice())
    written?.(chunk)
  }
  end(code: number, message: string): void {
    this.ended = { code, message }
  }
  responses(): PbWatchResponse[] {
    return this.writes.flatMap(messages).map((m) => fromBinary(WatchResponseSchema, m))
  }
}

function session(s: KvStore, extra: Partial<WatchSessionDeps> = {}, recvBytesMax = 1 << 20) {
  const t = new FakeTransport()
  const deps: WatchSessionDeps = {
    member: storeMember(s),
    requiresLeader: () => false,
    monitorLeader: () => () => undefined,
    authorize: () => undefined,
    maxWatchStreams: 10,
    watchStreams: { n: 0 },
    ...extra,
  }
  const call = new GrpcWatchSession(deps, { token: undefined, hasLeader: false, certUser: undefined, recvBytesMax }, t)
  return { t, call, deps }
}

const turn = () => new Promise<void>((r) => setTimeout(r, 0))

/** Makes `t` keep each write's callback until the test lets the network take it: answers the function that does. */
function writeWhenTold(t: FakeTransport): () => void {
  const unwritten: (() => void)[] = []
  t.write = (chunk, written) => {
    t.writes.push(chunk.slice())
    if (written) unwritten.push(() => written(chunk))
  }
  return () => {
    for (const f of unwritten.splice(0)) f()
  }
}

test('a written chunk is reused for a later turn, never one the transport still holds; small turns are copied', () => {
  const f = new GrpcFrames(16)
  f.message(new Uint8Array(6000))
  const a = f.take()
  f.message(new Uint8Array(5000))
  const b = f.take()
  assert.ok(a.buffer !== b.buffer)
  f.release(a)
  f.message(new Uint8Array(4500))
  const c = f.take()
  assert.ok(c.buffer === a.buffer, 'the written buffer is reused')
  assert.equal(c.length, 4505)
  // b was never given back, c is out: the next turn gets a buffer of its own.
  f.message(new Uint8Array(4200))
  const d = f.take()
  assert.ok(d.buffer !== b.buffer && d.buffer !== c.buffer)
  // A small turn is an exact copy: the buffer stays for the next one.
  f.message(Uint8Array.of(1, 2, 3))
  const e = f.take()
  assert.equal(e.buffer.byteLength, 8)
  assert.deepEqual([...e], [0, 0, 0, 0, 3, 1, 2, 3])
})

describe('raw gRPC watch session', () => {
  test('one put to 100 watchers of one stream: 100 messages in ONE write', async () => {
    const s = newStore()
    const { t, call } = session(s)
    // 100 create requests in one chunk: their 100 created answers go out in one write too.
    const reqs = Array.from({ length: 100 }, () => createReq('k'))
    call.data(Buffer.concat(reqs))
    await turn()
    assert.equal(t.writes.length, 1)
    assert.equal(messages(t.writes[0]!).length, 100)
    s.watchHub.beginBatch()
    put(s, 'k', 'v1')
    put(s, 'k', 'v2')
    s.watchHub.endBatch()
    await turn()
    assert.equal(t.writes.length, 2)
    const rs = messages(t.writes[1]!).map((m) => fromBinary(WatchResponseSchema, m))
    assert.equal(rs.length, 100)
    // One message per watcher per batch, with both revisions.
    assert.deepEqual(new Set(rs.map((r) => r.watchId)), new Set(Array.from({ length: 100 }, (_, i) => BigInt(i))))
    assert.ok(rs.every((r) => r.events.length === 2 && r.header?.revision === 3n))
  })

  test('request messages split at every byte are read whole, in order', async () => {
    const s = newStore()
    const { t, call } = session(s)
    const bytes = Buffer.concat([createReq('a', { watchId: 7n }), createReq('b', { watchId: 2n ** 60n })])
    for (let i = 0; i < bytes.length; i++) call.data(bytes.subarray(i, i + 1))
    await turn()
    const rs = t.responses()
    assert.deepEqual(
      rs.map((r) => [r.watchId, r.created]),
      [
        [7n, true],
        [2n ** 60n, true],
      ],
    )
  })

  test('a request over the receive limit ends the call: ResourceExhausted, as grpc-go words it', async () => {
    const s = newStore()
    const streams = { n: 0 }
    const { t, call } = session(s, { watchStreams: streams }, 64)
    assert.equal(streams.n, 1)
    call.data(createReq('x'.repeat(100)).subarray(0, 5))
    assert.equal(t.ended?.code, 8)
    assert.match(t.ended!.message, /^grpc: received message larger than max \(\d+ vs\. 64\)$/)
    assert.equal(streams.n, 0)
  })

  test('a malformed request ends the call with Internal; a compressed flag too', () => {
    const s = newStore()
    const a = session(s)
    a.call.data(envelope(Uint8Array.of(0x0a, 0x05, 0x0a)))
    assert.equal(a.t.ended?.code, 13)
    assert.match(a.t.ended!.message, /^grpc: failed to unmarshal the received message /)
    const c = session(s)
    const m = createReq('k')
    m[0] = 1
    c.call.data(m)
    assert.deepEqual(c.t.ended, { code: 13, message: 'grpc: compressed flag set with identity or empty encoding' })
  })

  test('too many watch streams: refused with ResourceExhausted, nothing opened', () => {
    const s = newStore()
    const { t } = session(s, { maxWatchStreams: 1, watchStreams: { n: 1 } })
    assert.deepEqual(t.ended, { code: 8, message: 'etcdserver: too many watch streams' })
  })

  test('a congested transport holds the stream back; after it drains every revision arrives once, in order', async () => {
    // A small queue: the held-back watchers overflow it and catch up from history (etcd's victims / unsynced).
    const s = newStore({ watcherQueueEventsMax: 4 })
    const { t, call } = session(s, { sendBufferBytesMax: 4096 })
    call.data(Buffer.concat(Array.from({ length: 20 }, () => createReq('k'))))
    await turn()
    t.bufferedBytes = 1 << 20 // the client stopped reading
    for (let i = 0; i < 50; i++) put(s, 'k', `v${i}`)
    await turn()
    const whileCongested = t.responses().filter((r) => r.events.length > 0).length
    // At most the turn that found the transport congested went out; the rest is held.
    assert.ok(whileCongested <= 20, `${whileCongested} event messages while congested`)
    t.bufferedBytes = 0
    call.drained()
    for (let i = 0; i < 10 && t.responses().flatMap((r) => r.events).length < 20 * 50; i++) await turn()
    const byWatcher = new Map<bigint, bigint[]>()
    for (const r of t.responses())
      for (const e of r.events) {
        const list = byWatcher.get(r.watchId) ?? []
        list.push(e.kv!.modRevision)
        byWatcher.set(r.watchId, list)
      }
    assert.equal(byWatcher.size, 20)
    const want = Array.from({ length: 50 }, (_, i) => BigInt(i + 2))
    for (const [id, revs] of byWatcher) assert.deepEqual(revs, want, `watcher ${id}`)
  })

  test('a client behind by sendLagBytesMax at the end of a turn: the next turns merge per watcher until it drains', async () => {
    const s = newStore()
    const { t, call } = session(s, { sendLagBytesMax: 1024 })
    call.data(Buffer.concat(Array.from({ length: 100 }, () => createReq('k'))))
    await turn()
    // From here the network takes nothing until the test says so.
    const write = t.write.bind(t)
    t.write = (chunk, written) => {
      t.bufferedBytes += chunk.length
      write(chunk, written)
    }
    const writesBefore = t.writes.length
    for (let b = 0; b < 10; b++) {
      s.watchHub.beginBatch()
      for (let i = 0; i < 5; i++) put(s, 'k', `v${b}.${i}`)
      s.watchHub.endBatch()
      await turn()
    }
    // Batch 1's turn (100 messages, ~10 KB) left more than 1 KiB unsent: later turns found the call congested and
    // wrote one message at most (the one that found it so).
    assert.ok(t.writes.length - writesBefore <= 2, `${t.writes.length - writesBefore} writes while lagging`)
    t.bufferedBytes = 0
    call.drained()
    for (let i = 0; i < 10 && t.responses().flatMap((r) => r.events).length < 100 * 50; i++) await turn()
    const byWatcher = revisionsByWatcher(t.responses())
    assert.equal(byWatcher.size, 100)
    const want = Array.from({ length: 50 }, (_, i) => BigInt(i + 2))
    for (const [id, w] of byWatcher) {
      assert.deepEqual(w.revs, want, `watcher ${id}`)
      // Batch 1, (for one watcher, batch 2's message that found the call congested,) then the other 9 in one.
      assert.ok(w.messages <= 3, `watcher ${id}: ${w.messages} messages`)
    }
  })

  test('while the last write is not yet written, later batches wait merged per watcher and go in one write; an idle call writes each batch in its turn', async () => {
    for (const hold of [true, false]) {
      const s = newStore()
      const { t, call } = session(s, { holdWhileWriting: hold })
      // The network takes a chunk when the test says so (Node: the stream's write callback).
      const writeAll = writeWhenTold(t)
      const microtask = () => new Promise<void>((r) => queueMicrotask(r))
      call.data(Buffer.concat(Array.from({ length: 100 }, () => createReq('k'))))
      await turn()
      writeAll()
      let n = 0
      const batch = () => {
        s.watchHub.beginBatch()
        for (let i = 0; i < 5; i++) put(s, 'k', `v${n++}`)
        s.watchHub.endBatch()
      }
      // Idle (the last write is written): the batch goes out in this turn, one message per watcher, no timer.
      const w0 = t.writes.length
      batch()
      await microtask()
      assert.equal(t.writes.length, w0 + 1)
      assert.equal(messages(t.writes[w0]!).length, 100)
      // That write is not written yet: 9 more batches, each its own turn.
      for (let i = 0; i < 9; i++) {
        batch()
        await turn()
      }
      if (hold) {
        assert.equal(t.writes.length, w0 + 1, 'nothing written while the last write is pending')
        writeAll()
        await microtask()
        // The 9 batches: one write, one message per watcher with all 45 revisions.
        assert.equal(t.writes.length, w0 + 2)
        assert.equal(messages(t.writes[w0 + 1]!).length, 100)
      } else assert.equal(t.writes.length, w0 + 10, 'without holding, one write per batch')
      writeAll()
      // Idle again: the next put goes out in its turn, alone.
      const w1 = t.writes.length
      put(s, 'k', `v${n++}`)
      await microtask()
      assert.equal(t.writes.length, w1 + 1)
      assert.equal(messages(t.writes[w1]!).length, 100)
      writeAll()
      // Every watcher got every revision once, in order, each message's header at its last event.
      const byWatcher = revisionsByWatcher(t.responses())
      assert.equal(byWatcher.size, 100)
      const want = Array.from({ length: n }, (_, i) => BigInt(i + 2))
      for (const [id, w] of byWatcher) {
        assert.deepEqual(w.revs, want, `watcher ${id}`)
        assert.equal(w.messages, hold ? 3 : 11, `watcher ${id}: messages`)
      }
    }
  })

  // Diff seed 9108 (session 10): etcd's sendLoop reads prev_kv when it sends (a range at mod_revision - 1), so the
  // events a call held back across a compaction go without it at or below the compact revision.
  test('a call held back across a compaction: its events at or below the compact revision go without prev_kv', async () => {
    const s = newStore()
    const idle = session(s)
    const slow = session(s)
    // slow's network takes a chunk when the test says so (Node: the stream's write callback).
    const unwritten: (() => void)[] = []
    slow.t.write = (chunk, written) => {
      slow.t.writes.push(chunk.slice())
      if (written) unwritten.push(() => written(chunk))
    }
    const creates = Buffer.concat(Array.from({ length: 3 }, () => createReq('k', { prevKv: true })))
    idle.call.data(creates)
    slow.call.data(creates)
    await turn()
    // slow's `created` answers are not written yet: from here its events wait in the member, merged per watcher.
    const values = ['v1', 'v2', 'v3', 'v4', 'v5']
    for (const v of values) {
      put(s, 'k', v) // 2..6
      await turn()
    }
    s.apply({ compaction: { revision: 4, physical: false } })
    put(s, 'k', 'v6') // 7
    await turn()
    for (const f of unwritten.splice(0)) f()
    await turn()
    const prevs = (rs: PbWatchResponse[]) => {
      const byWatcher = new Map<bigint, string[]>()
      for (const r of rs)
        for (const e of r.events) {
          const list = byWatcher.get(r.watchId) ?? []
          list.push(`${e.kv!.modRevision} prev=${e.prevKv ? Buffer.from(e.prevKv.value).toString() : '-'}`)
          byWatcher.set(r.watchId, list)
        }
      return byWatcher
    }
    const before = ['2 prev=-', '3 prev=v1', '4 prev=v2', '5 prev=v3', '6 prev=v4', '7 prev=v5']
    const after = ['2 prev=-', '3 prev=-', '4 prev=-', '5 prev=v3', '6 prev=v4', '7 prev=v5']
    const idleGot = prevs(idle.t.responses())
    const slowGot = prevs(slow.t.responses())
    assert.equal(idleGot.size, 3)
    assert.equal(slowGot.size, 3)
    for (const [id, list] of idleGot) assert.deepEqual(list, before, `idle watcher ${id}`)
    for (const [id, list] of slowGot) assert.deepEqual(list, after, `held-back watcher ${id}`)
    // Held back together: one message per watcher with every revision.
    assert.equal(slow.t.responses().filter((r) => r.events.length > 0).length, 3)
  })

  // Diff seed 9108 (session 11): etcd's sendLoop sends one message at a time and blocks in Send on a large one until
  // HTTP/2 flow control has let most of it out (grpc-go's 64 KiB write quota); the next watcher's prev_kv is read
  // after that, so a compaction in between leaves it out. A message of 64 KiB or more ends the turn's write.
  test('a message of 64 KiB or more is written before the next is encoded: a compaction in between takes prev_kv', async () => {
    const s = newStore()
    const { t, call } = session(s)
    const writeAll = writeWhenTold(t)
    call.data(Buffer.concat([createReq('k', { prevKv: true }), createReq('k', { prevKv: true })]))
    await turn()
    writeAll()
    put(s, 'k', 'v1') // 2
    await turn()
    writeAll()
    const big = 'x'.repeat(100_000)
    put(s, 'k', big) // 3: two messages of ~100 KB each
    await turn()
    // The first watcher's message is in the write; the second's waits in the member.
    assert.equal(t.responses().filter((r) => r.events.some((e) => e.kv!.modRevision === 3n)).length, 1)
    s.apply({ compaction: { revision: 3, physical: false } })
    writeAll()
    await turn()
    writeAll()
    const at3 = t
      .responses()
      .flatMap((r) => r.events.filter((e) => e.kv!.modRevision === 3n).map(() => r))
      .map((r) => `${r.watchId} prev=${r.events[0]!.prevKv ? Buffer.from(r.events[0]!.prevKv.value).toString() : '-'}`)
    assert.deepEqual(at3, ['0 prev=v1', '1 prev=-'])
    // Small messages still share one write: after one more put (whose prev_kv is the big value), the next put's two
    // messages go out together.
    put(s, 'k', 'v4')
    for (let i = 0; i < 3; i++) {
      await turn()
      writeAll()
    }
    const w = t.writes.length
    put(s, 'k', 'v5')
    await turn()
    assert.equal(t.writes.length, w + 1)
    assert.equal(messages(t.writes[w]!).length, 2)
  })

  test('the client going away closes every watcher and the stream count', async () => {
    const s = newStore()
    const streams = { n: 0 }
    const { call } = session(s, { watchStreams: streams })
    call.data(createReq('k'))
    assert.equal(s.watchHub.watcherCount, 1)
    call.closed()
    assert.equal(s.watchHub.watcherCount, 0)
    assert.equal(streams.n, 0)
  })
})

describe('raw gRPC watch on a Node member', () => {
  test('a client that stops reading: puts go on, the member holds the stream back; once it reads, every event arrives once, in order', async () => {
    const m = await startTestMember()
    const client = http2.connect(m.url)
    client.on('error', () => undefined)
    try {
      const req = client.request({
        ':method': 'POST',
        ':path': '/etcdserverpb.Watch/Watch',
        'content-type': 'application/grpc',
        te: 'trailers',
      })
      req.on('error', () => undefined)
      const watchers = 20
      const puts = 60
      let input = Buffer.alloc(0)
      const got: PbWatchResponse[] = []
      let wake: (() => void) | undefined
      req.on('data', (c: Buffer) => {
        input = Buffer.concat([input, c])
        let at = 0
        while (input.length - at >= 5 && input.length - at >= 5 + input.readUInt32BE(at + 1)) {
          const len = input.readUInt32BE(at + 1)
          got.push(fromBinary(WatchResponseSchema, input.subarray(at + 5, at + 5 + len)))
          at += 5 + len
        }
        input = input.subarray(at)
        wake?.()
      })
      const until = async (cond: () => boolean, what: string) => {
        const deadline = Date.now() + 60_000
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
          await new Promise<void>((r) => {
            wake = r
            setTimeout(r, 50)
          })
        }
      }
      req.write(Buffer.concat(Array.from({ length: watchers }, () => createReq('slow'))))
      await until(() => got.filter((r) => r.created).length === watchers, 'created')
      // The client stops reading: HTTP/2 flow control stops the server's data once its window is used.
      req.pause()
      const sentBytes = async () => {
        const text = await (await fetch(`${m.url}/metrics`)).text()
        return Number(/^etcd_network_client_grpc_sent_bytes_total (\S+)$/m.exec(text)![1])
      }
      const sent0 = await sentBytes()
      const value = Buffer.alloc(16 * 1024, 'v').toString('base64')
      const key = Buffer.from('slow').toString('base64')
      for (let i = 0; i < puts; i++) {
        const r = await post(m.url, '/v3/kv/put', { key, value })
        assert.equal(r.status, 200)
      }
      // 20 watchers x 60 puts x 16 KiB = 19 MiB: the member encoded (wrote to the stream) about 4 MiB past what the
      // client's window took, queued 4 MiB of events at most, and left the rest of the history in the store.
      const sent = (await sentBytes()) - sent0
      assert.ok(sent < 6 * 1024 * 1024, `${sent} bytes written to a stream the client does not read`)
      const hub = m.running.member.kv.watchHub
      assert.ok(hub.queuedBytes <= 4 * 1024 * 1024 + 512 * 1024, `${hub.queuedBytes} bytes queued`)
      req.resume()
      const total = () => got.reduce((n, r) => n + r.events.length, 0)
      await until(() => total() === watchers * puts, `${watchers * puts} events`)
      const byWatcher = new Map<bigint, bigint[]>()
      for (const r of got)
        for (const e of r.events) {
          const list = byWatcher.get(r.watchId) ?? []
          list.push(e.kv!.modRevision)
          byWatcher.set(r.watchId, list)
        }
      assert.equal(byWatcher.size, watchers)
      const first = byWatcher.values().next().value![0]!
      const want = Array.from({ length: puts }, (_, i) => first + BigInt(i))
      for (const [id, revs] of byWatcher) assert.deepEqual(revs, want, `watcher ${id}`)
      req.close()
    } finally {
      client.close()
      await m.stop()
    }
  })
})

/** Each watcher's event revisions and message count, checking every message's header is at its last event. */
function revisionsByWatcher(
  responses: { watchId: bigint; events: { kv?: { modRevision: bigint } }[]; header?: { revision: bigint } }[],
): Map<bigint, { revs: bigint[]; messages: number }> {
  const byWatcher = new Map<bigint, { revs: bigint[]; messages: number }>()
  for (const r of responses) {
    if (r.events.length === 0) continue
    const w = byWatcher.get(r.watchId) ?? { revs: [], messages: 0 }
    for (const e of r.events) w.revs.push(e.kv!.modRevision)
    w.messages++
    assert.equal(r.header!.revision, r.events.at(-1)!.kv!.modRevision)
    byWatcher.set(r.watchId, w)
  }
  return byWatcher
}
