/**
 * `fragment: true` on a gRPC watch against etcd 3.4 and edgecd, both with default flags: a range delete of five keys
 * whose prev_kv values are 1 MB makes one revision of ~5 MB of events, past etcd's watch limit (--max-request-bytes
 * + 512 KiB = 2 MiB), which etcd 3.4's sendFragments splits into parts under it, each with `fragment: true` but the
 * last; a watcher of the same range without `fragment` gets it whole. The responses must be the same (member ids
 * and terms normalised).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { create, toJson } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import {
  KV,
  Watch,
  WatchRequestSchema,
  WatchResponseSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { normalizeServerIds } from '../support/diff.js'
import { type EtcdProcess, etcdAvailable, etcdMissing, startEtcd } from '../support/index.js'

const enc = new TextEncoder()

async function scenario(url: string): Promise<string[]> {
  const transport = createGrpcTransport({ baseUrl: url })
  const kv = createClient(KV, transport)
  const watch = createClient(Watch, transport)
  for (let i = 0; i < 5; i++) await kv.put({ key: enc.encode(`f/${i}`), value: new Uint8Array(1_000_000).fill(65 + i) })
  const out: string[] = []
  const abort = new AbortController()
  let release!: () => void
  const held = new Promise<void>((r) => {
    release = r
  })
  const create_ = (o: object) =>
    create(WatchRequestSchema, { requestUnion: { case: 'createRequest', value: o as never } })
  async function* requests() {
    yield create_({ key: enc.encode('f/'), rangeEnd: enc.encode('f0'), prevKv: true, fragment: true, watchId: 5n })
    yield create_({ key: enc.encode('f/'), rangeEnd: enc.encode('f0'), prevKv: true, watchId: 6n })
    await held
  }
  const reader = (async () => {
    try {
      for await (const r of watch.watch(requests(), { signal: abort.signal }))
        out.push(normalizeServerIds(JSON.stringify(toJson(WatchResponseSchema, r))))
    } catch {}
  })()
  const until = async (n: number) => {
    const deadline = Date.now() + 60_000
    while (out.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  }
  await until(2)
  await kv.deleteRange({ key: enc.encode('f/'), rangeEnd: enc.encode('f0') })
  await until(2 + 1 + 3)
  await new Promise((r) => setTimeout(r, 300))
  abort.abort()
  release()
  await reader
  return out
}

describe('gRPC watch fragments: etcd 3.4 and edgecd alike', { skip: etcdAvailable() ? false : etcdMissing }, () => {
  let etcd: EtcdProcess | undefined
  let edge: TestMember | undefined
  before(async () => {
    ;[etcd, edge] = await Promise.all([startEtcd(), startTestMember()])
  })
  after(async () => {
    await edge?.stop()
    await etcd?.stop()
  })

  test('a revision over the limit in parts for fragment: true, whole for the other watcher', async () => {
    const a = await scenario(etcd!.url)
    const b = await scenario(edge!.url)
    // The two watchers' messages may interleave differently; each watcher's own order must match.
    const of = (out: string[], id: string) => out.filter((m) => m.includes(`"watchId":"${id}"`))
    // Compared by digest: the messages are megabytes.
    const digest = (ms: string[]) => ms.map((m) => createHash('sha256').update(m).digest('hex'))
    assert.deepEqual(digest(of(b, '5')), digest(of(a, '5')))
    assert.deepEqual(digest(of(b, '6')), digest(of(a, '6')))
    assert.equal(b.length, a.length)
    const parts = of(a, '5').filter((m) => m.includes('"events"'))
    assert.ok(parts.length >= 2, `etcd sent ${parts.length} parts`)
    assert.ok(parts.slice(0, -1).every((m) => m.includes('"fragment":true')) && !parts.at(-1)!.includes('fragment'))
    assert.equal(of(a, '6').filter((m) => m.includes('"events"')).length, 1)
  })
})
