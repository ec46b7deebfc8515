/**
 * The gRPC Watch stream against etcd 3.4 and edgecd with the same requests: many watches on one stream with
 * client-chosen and server-chosen ids, prev_kv, filters, a watch from a compacted revision, a progress request, a
 * cancel, a duplicate id. The responses must be the same (ids of members, terms and revisions normalised).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { create, type MessageInitShape, toJson } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import {
  KV,
  Watch,
  WatchRequestSchema,
  WatchResponseSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { type DiffPair, normalizeServerIds, startDiffPair } from '../support/diff.js'
import { etcdAvailable, etcdMissing } from '../support/index.js'

const enc = new TextEncoder()
type Req = MessageInitShape<typeof WatchRequestSchema>

/** A push-fed async iterable of requests, for a bidi stream. */
function requestQueue() {
  const items: Req[] = []
  let wake: (() => void) | undefined
  let closed = false
  return {
    push(r: Req) {
      items.push(r)
      wake?.()
    },
    close() {
      closed = true
      wake?.()
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (items.length > 0) yield create(WatchRequestSchema, items.shift()!)
        if (closed) return
        await new Promise<void>((r) => {
          wake = r
        })
      }
    },
  }
}

/** Runs the scenario against one server; returns its watch responses as normalised JSON text. */
async function scenario(url: string): Promise<string[]> {
  const transport = createGrpcTransport({ baseUrl: url })
  const kv = createClient(KV, transport)
  const watch = createClient(Watch, transport)
  for (const v of ['1', '2', '3']) await kv.put({ key: enc.encode('c'), value: enc.encode(v) })
  await kv.compact({ revision: 3n })
  const reqs = requestQueue()
  const out: string[] = []
  const abort = new AbortController()
  let wake: (() => void) | undefined
  const reader = (async () => {
    try {
      for await (const r of watch.watch(reqs, { signal: abort.signal })) {
        out.push(
          normalizeServerIds(JSON.stringify(toJson(WatchResponseSchema, r))).replace(
            /"watchId":"(\d{5,})"/g,
            '"watchId":"AUTO"',
          ),
        )
        wake?.()
      }
    } catch {}
  })()
  /** Sends a request and waits until `n` more responses came. */
  const send = async (r: Req, n: number) => {
    const want = out.length + n
    reqs.push(r)
    const deadline = Date.now() + 30_000
    while (out.length < want && Date.now() < deadline)
      await new Promise<void>((res) => {
        wake = res
        setTimeout(res, 100)
      })
  }
  const create_ = (o: object) => ({ requestUnion: { case: 'createRequest' as const, value: o } })
  await send(create_({ key: enc.encode('a'), watchId: 7n }), 1)
  await send(create_({ key: enc.encode('b'), rangeEnd: enc.encode('c'), prevKv: true, watchId: 9n }), 1)
  await send(create_({ key: enc.encode('a'), filters: [0] }), 1)
  await send(create_({ key: enc.encode('c'), startRevision: 2n }), 2)
  await send(create_({ key: enc.encode('x'), watchId: 9n }), 1)
  await kv.put({ key: enc.encode('a'), value: enc.encode('1') })
  await kv.put({ key: enc.encode('b1'), value: enc.encode('x') })
  await kv.put({ key: enc.encode('b1'), value: enc.encode('y') })
  await kv.deleteRange({ key: enc.encode('a') })
  const deadline = Date.now() + 30_000
  while (out.length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  await send({ requestUnion: { case: 'progressRequest', value: {} } }, 1)
  await send({ requestUnion: { case: 'cancelRequest', value: { watchId: 7n } } }, 1)
  await kv.put({ key: enc.encode('a'), value: enc.encode('2') })
  await new Promise((r) => setTimeout(r, 300))
  abort.abort()
  reqs.close()
  await reader
  return out
}

describe('gRPC Watch: etcd 3.4 and edgecd answer the same stream alike', {
  skip: etcdAvailable() ? false : etcdMissing,
}, () => {
  let pair: DiffPair
  before(async () => {
    pair = await startDiffPair()
  })
  after(async () => {
    await pair?.stop()
  })

  test('ids, prev_kv, filters, compacted start, duplicate id, events, progress, cancel', async () => {
    const a = await scenario(pair.etcd.url)
    const b = await scenario(pair.edgeUrl)
    // Events of different watches may interleave differently across servers; each watch's own order must match.
    assert.deepEqual([...b].sort(), [...a].sort())
    assert.ok(a.length >= 12, `etcd answered ${a.length} responses`)
  })
})
