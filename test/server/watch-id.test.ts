/**
 * Client-chosen watch ids are int64 and etcd echoes them exactly: ids past 2^53 (here 2^53 and 2^53 + 1, which a
 * double cannot tell apart) are kept exactly on every door of a member: the WebSocket watch, POST /v3/watch (ids
 * sent as JSON numbers, read losslessly) and the gRPC Watch stream (protobuf int64 as bigint). Created, events and
 * cancel carry exactly the id the client chose, a cancel of one leaves the other, and a reused large id is refused
 * as a duplicate (mvcc: ErrWatcherDuplicateID).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { create, type MessageInitShape } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import {
  type WatchResponse as PbWatchResponse,
  Watch,
  WatchRequestSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { normalizeServerIds } from '../support/diff.js'
import { b64, etcdAvailable, etcdMissing, post, startEtcd } from '../support/index.js'
import { LineStream, notOnWorkerd, startTestMember, type TestMember, WsWatch } from './helpers.js'

const idA = '9007199254740992' // 2^53
const idB = '9007199254740993' // 2^53 + 1: Number(idB) === Number(idA)
const duplicate = 'mvcc: duplicate watch ID provided on the WatchStream'

let m: TestMember
before(async () => {
  m = await startTestMember()
})
after(async () => {
  await m?.stop()
})

const put = async (k: string, v: string) =>
  Number((await post(m.url, '/v3/kv/put', { key: b64(k), value: b64(v) })).json.header.revision)

describe('watch ids past 2^53 over the JSON gateway', () => {
  test('WebSocket: created, events and cancel carry the exact ids; a cancel of one leaves the other', async () => {
    const ws = await WsWatch.open(m.url)
    const raw: string[] = []
    ws.ws.on('message', (data) => raw.push(String(data)))
    try {
      // One id as a JSON string, the other as a JSON number (read losslessly, as etcd's gateway does).
      ws.send(`{"create_request":{"key":"${b64('wid/a')}","watch_id":"${idA}"}}`)
      ws.send(`{"create_request":{"key":"${b64('wid/a')}","watch_id":${idB}}}`)
      const c1 = (await ws.next()).result
      const c2 = (await ws.next()).result
      assert.deepEqual([c1.watch_id, c1.created, c2.watch_id, c2.created], [idA, true, idB, true])
      assert.match(raw[0]!, new RegExp(`"watch_id":"${idA}"`))
      assert.match(raw[1]!, new RegExp(`"watch_id":"${idB}"`))

      // The same id again is a duplicate on this stream, not a third watcher.
      ws.send(`{"create_request":{"key":"${b64('wid/x')}","watch_id":${idB}}}`)
      const dup = (await ws.next()).result
      assert.deepEqual([dup.watch_id, dup.canceled, dup.cancel_reason], ['-1', true, duplicate])

      const r1 = await put('wid/a', '1')
      const evs = [(await ws.next()).result, (await ws.next()).result]
      assert.deepEqual(evs.map((e) => e.watch_id).sort(), [idA, idB])
      for (const e of evs) assert.equal(e.events[0].kv.mod_revision, String(r1))
      assert.deepEqual(
        raw
          .slice(3)
          .map((t) => /"watch_id":"(\d+)"/.exec(t)?.[1])
          .sort(),
        [idA, idB],
      )

      ws.send(`{"cancel_request":{"watch_id":${idA}}}`)
      const canceled = (await ws.next()).result
      assert.deepEqual([canceled.watch_id, canceled.canceled], [idA, true])
      assert.match(raw[5]!, new RegExp(`"watch_id":"${idA}","canceled":true`))
      const r2 = await put('wid/a', '2')
      const ev = (await ws.next()).result
      assert.deepEqual([ev.watch_id, ev.events[0].kv.mod_revision], [idB, String(r2)])
      assert.equal(await ws.quiet(200), undefined, 'the canceled watcher gets nothing')
      // Server-assigned ids are unchanged: 0 (omitted), then 1.
      ws.send({ create_request: { key: b64('wid/s') } })
      ws.send({ create_request: { key: b64('wid/s') } })
      assert.equal((await ws.next()).result.watch_id, undefined)
      assert.equal((await ws.next()).result.watch_id, '1')
    } finally {
      await ws.close()
    }
  })

  test('POST /v3/watch: ids sent as JSON numbers are echoed exactly', async () => {
    const body =
      `{"create_request":{"key":"${b64('wid/p')}","watch_id":${idA}}}` +
      `{"create_request":{"key":"${b64('wid/p')}","watch_id":${idB}}}` +
      `{"cancel_request":{"watch_id":${idA}}}`
    const s = await LineStream.open(m.url, '/v3/watch', body)
    try {
      assert.equal(s.status, 200)
      const got = [(await s.next()).result, (await s.next()).result, (await s.next()).result]
      assert.deepEqual(
        got.map((r) => [r.watch_id, r.created ?? false, r.canceled ?? false]),
        [
          [idA, true, false],
          [idB, true, false],
          [idA, false, true],
        ],
      )
      await put('wid/p', '1')
      const ev = (await s.next()).result
      assert.equal(ev.watch_id, idB)
    } finally {
      await s.close()
    }
  })
})

/** The first `n` lines a POST /v3/watch with this body answers, normalised (server ids, terms, revisions). */
async function watchLines(url: string, body: string, n: number): Promise<string[]> {
  const ac = new AbortController()
  const r = await fetch(url + '/v3/watch', { method: 'POST', body, signal: ac.signal })
  const reader = r.body!.getReader()
  const dec = new TextDecoder()
  let text = ''
  const timer = setTimeout(() => ac.abort(), 5000)
  try {
    while (text.split('\n').length <= n) {
      const { value, done } = await reader.read()
      if (done) break
      text += dec.decode(value, { stream: true })
    }
  } catch {
  } finally {
    clearTimeout(timer)
    ac.abort()
  }
  // The member here served other tests first: its revision differs from a fresh etcd's.
  return text
    .split('\n')
    .slice(0, n)
    .map((l) => normalizeServerIds(l).replace(/"revision":"\d+"/, '"revision":"R"'))
}

describe('watch ids past 2^53: etcd 3.4 and edgecd answer alike', {
  skip: etcdAvailable() ? false : etcdMissing,
}, () => {
  test('POST /v3/watch: two large ids as JSON numbers, a duplicate, a cancel (raw JSON lines equal)', async () => {
    const body =
      `{"create_request":{"key":"YQ==","watch_id":${idA}}}{"create_request":{"key":"YQ==","watch_id":${idB}}}` +
      `{"create_request":{"key":"YQ==","watch_id":"${idB}"}}{"cancel_request":{"watch_id":${idA}}}`
    const etcd = await startEtcd()
    try {
      const want = await watchLines(etcd.url, body, 4)
      assert.match(want[1]!, new RegExp(`"watch_id":"${idB}","created":true`))
      assert.deepEqual(await watchLines(m.url, body, 4), want)
    } finally {
      await etcd.stop()
    }
  })
})

type Req = MessageInitShape<typeof WatchRequestSchema>

describe('watch ids past 2^53 over gRPC', { skip: notOnWorkerd('gRPC is served by the Node member') }, () => {
  test('created, events and cancel carry the exact bigint ids; duplicate refused', async () => {
    const transport = createGrpcTransport({ baseUrl: m.url })
    const watch = createClient(Watch, transport)
    const items: Req[] = []
    let wakeReq: (() => void) | undefined
    let closed = false
    const reqs = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (items.length > 0) yield create(WatchRequestSchema, items.shift()!)
          if (closed) return
          await new Promise<void>((r) => {
            wakeReq = r
          })
        }
      },
    }
    const send = (r: Req) => {
      items.push(r)
      wakeReq?.()
    }
    const out: PbWatchResponse[] = []
    let wake: (() => void) | undefined
    const abort = new AbortController()
    const reader = (async () => {
      try {
        for await (const r of watch.watch(reqs, { signal: abort.signal })) {
          out.push(r)
          wake?.()
        }
      } catch {}
    })()
    const next = async (): Promise<PbWatchResponse> => {
      const deadline = Date.now() + 5000
      while (out.length === 0) {
        if (Date.now() > deadline) throw new Error('no gRPC watch response within 5 s')
        await new Promise<void>((r) => {
          wake = r
          setTimeout(r, 100)
        })
      }
      return out.shift()!
    }
    const enc = new TextEncoder()
    const create_ = (key: string, watchId: bigint): Req => ({
      requestUnion: { case: 'createRequest', value: { key: enc.encode(key), watchId } },
    })
    try {
      send(create_('wid/g', BigInt(idA)))
      send(create_('wid/g', BigInt(idB)))
      const c = [await next(), await next()]
      assert.deepEqual(
        c.map((r) => [r.watchId, r.created]),
        [
          [BigInt(idA), true],
          [BigInt(idB), true],
        ],
      )
      send(create_('wid/x', BigInt(idA)))
      const dup = await next()
      assert.deepEqual([dup.watchId, dup.canceled, dup.cancelReason], [-1n, true, duplicate])

      await put('wid/g', '1')
      const evs = [await next(), await next()]
      assert.deepEqual(evs.map((r) => r.watchId.toString()).sort(), [idA, idB])
      assert.deepEqual(
        evs.map((r) => r.events.length),
        [1, 1],
      )

      send({ requestUnion: { case: 'cancelRequest', value: { watchId: BigInt(idB) } } })
      const canceled = await next()
      assert.deepEqual([canceled.watchId, canceled.canceled], [BigInt(idB), true])
      await put('wid/g', '2')
      const ev = await next()
      assert.equal(ev.watchId, BigInt(idA))
      // Nothing for the canceled watcher: a third write's event is the next message, again for idA only.
      await put('wid/g', '3')
      assert.equal((await next()).watchId, BigInt(idA))
      assert.equal(out.length, 0)
    } finally {
      abort.abort()
      closed = true
      wakeReq?.()
      await reader
    }
  })
})
