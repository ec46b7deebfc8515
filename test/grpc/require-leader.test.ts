/**
 * clientv3's WithRequireLeader (`hasleader: true` metadata, which etcdctl watch and clientv3's watcher send), as etcd
 * serves it: while the member knows a leader such a watch (or keep-alive) stream opens; when the member loses its
 * leader, the periodic check (every election timeout, etcd's monitorLeader) cancels it with UNAVAILABLE
 * `etcdserver: no leader`; new streams and unary calls with the metadata are then refused with the same status,
 * while a watch opened without it stays open. Three in-process members (election 200 ms); two are stopped.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { create, type DescMessage, fromBinary, toBinary } from '@bufbuild/protobuf'
import * as grpc from '@grpc/grpc-js'
import * as pb from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { startCluster, type TestCluster } from '../cluster/helpers.js'
import { eventually } from '../support/index.js'

const codec = (d: DescMessage) => ({
  ser: (m: unknown) => Buffer.from(toBinary(d, m as never)),
  de: (b: Buffer) => fromBinary(d, b) as unknown,
})
const enc = new TextEncoder()

let c: TestCluster
let client: grpc.Client
before(async () => {
  c = await startCluster(3)
  client = new grpc.Client(new URL(c.urls[0]!).host, grpc.credentials.createInsecure())
})
after(async () => {
  client?.close()
  await c?.close()
})

function requireLeader(): grpc.Metadata {
  const md = new grpc.Metadata()
  md.set('hasleader', 'true')
  return md
}

interface Watch {
  responses: pb.WatchResponse[]
  status: Promise<grpc.StatusObject>
  call: grpc.ClientDuplexStream<unknown, unknown>
}

function watch(md: grpc.Metadata): Watch {
  const call = client.makeBidiStreamRequest(
    '/etcdserverpb.Watch/Watch',
    codec(pb.WatchRequestSchema).ser,
    codec(pb.WatchResponseSchema).de,
    md,
  )
  const responses: pb.WatchResponse[] = []
  call.on('data', (r: pb.WatchResponse) => responses.push(r))
  call.on('error', () => undefined)
  const status = new Promise<grpc.StatusObject>((r) => call.on('status', r))
  call.write(
    create(pb.WatchRequestSchema, { requestUnion: { case: 'createRequest', value: { key: enc.encode('k') } } }),
  )
  return { responses, status, call }
}

function range(md: grpc.Metadata): Promise<{ code: number; details: string }> {
  return new Promise((resolve) =>
    client.makeUnaryRequest(
      '/etcdserverpb.KV/Range',
      codec(pb.RangeRequestSchema).ser,
      codec(pb.RangeResponseSchema).de,
      create(pb.RangeRequestSchema, { key: enc.encode('k'), serializable: true }),
      md,
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '' }),
    ),
  )
}

test('WithRequireLeader streams are cancelled with "etcdserver: no leader" when the member loses its leader', async () => {
  // Both watches open while the member knows a leader.
  await eventually(async () => ((await range(requireLeader())).code === 0 ? true : undefined), 10_000)
  const required = watch(requireLeader())
  const plain = watch(new grpc.Metadata())
  await eventually(() => (required.responses.length > 0 && plain.responses.length > 0 ? true : undefined), 10_000)
  assert.equal(required.responses[0]!.created, true)
  assert.deepEqual(await range(requireLeader()), { code: 0, details: '' })

  // The two other members stop: member 0 loses its leader within an election timeout or two.
  await c.stop(1)
  await c.stop(2)
  const st = await Promise.race([
    required.status,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000).unref()),
  ])
  assert.ok(st, 'the WithRequireLeader watch was not cancelled')
  assert.equal(st.code, grpc.status.UNAVAILABLE)
  assert.equal(st.details, 'etcdserver: no leader')

  // New streams and unary calls that require a leader are refused; others are served.
  const late = watch(requireLeader())
  const lateStatus = await late.status
  assert.equal(lateStatus.code, grpc.status.UNAVAILABLE)
  assert.equal(lateStatus.details, 'etcdserver: no leader')
  assert.deepEqual(await range(requireLeader()), { code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' })
  assert.deepEqual(await range(new grpc.Metadata()), { code: 0, details: '' })

  // The watch opened without the metadata is still open.
  const plainDone = await Promise.race([plain.status, new Promise<'open'>((r) => setTimeout(() => r('open'), 500))])
  assert.equal(plainDone, 'open')
  plain.call.cancel()
})
