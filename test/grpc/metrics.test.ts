/**
 * gRPC streams in /metrics as etcd's go-grpc-prometheus counts them: a Watch, a LeaseKeepAlive and a Snapshot stream
 * each count grpc_server_started_total once, one grpc_server_msg_received_total per request message, one
 * grpc_server_msg_sent_total per response message, and grpc_server_handled_total once with the code the stream ends
 * with (a watch the client cancels: Canceled; a keep-alive stream the client half-closes: OK); unary calls on the
 * gRPC front door count one message each way.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { create, type DescMessage, fromBinary, toBinary } from '@bufbuild/protobuf'
import * as grpc from '@grpc/grpc-js'
import * as pb from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { eventually } from '../support/index.js'

/** Waits until `check` stops throwing. */
const until = (check: () => unknown) =>
  eventually(async () => {
    await check()
    return true
  })

import { startTestMember, type TestMember } from '../server/helpers.js'

const codec = (d: DescMessage) => ({
  ser: (m: unknown) => Buffer.from(toBinary(d, m as never)),
  de: (b: Buffer) => fromBinary(d, b) as unknown,
})

let m: TestMember
let client: grpc.Client
before(async () => {
  m = await startTestMember()
  client = new grpc.Client(new URL(m.url).host, grpc.credentials.createInsecure())
})
after(async () => {
  client?.close()
  await m?.stop()
})

async function metrics(): Promise<string> {
  return (await fetch(`${m.url}/metrics`)).text()
}

function value(text: string, type: string, service: string, method: string, family: string, code?: string): number {
  const labels = `grpc_type="${type}",grpc_service="${service}",grpc_method="${method}"${code ? `,grpc_code="${code}"` : ''}`
  const line = text.split('\n').find((l) => l.startsWith(`${family}{${labels}} `))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

function unary<Res>(path: string, req: DescMessage, res: DescMessage, msg: object): Promise<Res> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(path, codec(req).ser, codec(res).de, create(req, msg as never), (err, out) =>
      err ? reject(err) : resolve(out as Res),
    ),
  )
}

test('Watch, LeaseKeepAlive and Snapshot streams are counted as go-grpc-prometheus counts them', async () => {
  const W = ['bidi_stream', 'etcdserverpb.Watch', 'Watch'] as const
  const L = ['bidi_stream', 'etcdserverpb.Lease', 'LeaseKeepAlive'] as const
  const S = ['server_stream', 'etcdserverpb.Maintenance', 'Snapshot'] as const
  const P = ['unary', 'etcdserverpb.KV', 'Put'] as const
  // The member is ready and the connection up before counting.
  await unary('/etcdserverpb.KV/Range', pb.RangeRequestSchema, pb.RangeResponseSchema, {
    key: new TextEncoder().encode('k'),
  })
  const before = await metrics()
  const at = (t: string, k: readonly [string, string, string], f: string, code?: string) =>
    value(t, ...k, f, code) - value(before, ...k, f, code)

  // Watch: two requests (create, progress), then a put: created + progress + event = 3 responses; then cancelled.
  const w = client.makeBidiStreamRequest(
    '/etcdserverpb.Watch/Watch',
    codec(pb.WatchRequestSchema).ser,
    codec(pb.WatchResponseSchema).de,
  )
  const got: pb.WatchResponse[] = []
  w.on('data', (r: pb.WatchResponse) => got.push(r))
  w.on('error', () => undefined)
  w.write(
    create(pb.WatchRequestSchema, {
      requestUnion: { case: 'createRequest', value: { key: new TextEncoder().encode('k') } },
    }),
  )
  await until(() => assert.equal(got.length, 1))
  w.write(create(pb.WatchRequestSchema, { requestUnion: { case: 'progressRequest', value: {} } }))
  await until(() => assert.equal(got.length, 2))
  await unary('/etcdserverpb.KV/Put', pb.PutRequestSchema, pb.PutResponseSchema, {
    key: new TextEncoder().encode('k'),
    value: new Uint8Array([1]),
  })
  await until(() => assert.equal(got.length, 3))
  let t = await metrics()
  assert.equal(at(t, W, 'grpc_server_started_total'), 1)
  assert.equal(at(t, W, 'grpc_server_msg_received_total'), 2)
  assert.equal(at(t, W, 'grpc_server_msg_sent_total'), 3)
  assert.equal(at(t, W, 'grpc_server_handled_total', 'Canceled'), 0)
  w.cancel()
  await until(async () => assert.equal(at(await metrics(), W, 'grpc_server_handled_total', 'Canceled'), 1))

  // LeaseKeepAlive: two renewals, then the client half-closes: OK.
  const lease = await unary<pb.LeaseGrantResponse>(
    '/etcdserverpb.Lease/LeaseGrant',
    pb.LeaseGrantRequestSchema,
    pb.LeaseGrantResponseSchema,
    { TTL: 60n },
  )
  const k = client.makeBidiStreamRequest(
    '/etcdserverpb.Lease/LeaseKeepAlive',
    codec(pb.LeaseKeepAliveRequestSchema).ser,
    codec(pb.LeaseKeepAliveResponseSchema).de,
  )
  let renewed = 0
  k.on('data', () => renewed++)
  const ended = new Promise<void>((r) => k.on('status', () => r()))
  k.on('error', () => undefined)
  k.write(create(pb.LeaseKeepAliveRequestSchema, { ID: lease.ID }))
  k.write(create(pb.LeaseKeepAliveRequestSchema, { ID: lease.ID }))
  await until(() => assert.equal(renewed, 2))
  k.end()
  await ended
  t = await metrics()
  assert.equal(at(t, L, 'grpc_server_started_total'), 1)
  assert.equal(at(t, L, 'grpc_server_msg_received_total'), 2)
  assert.equal(at(t, L, 'grpc_server_msg_sent_total'), 2)
  assert.equal(at(t, L, 'grpc_server_handled_total', 'OK'), 1)

  // Snapshot: one request, every chunk and the hash sent, OK.
  const s = client.makeServerStreamRequest(
    '/etcdserverpb.Maintenance/Snapshot',
    codec(pb.SnapshotRequestSchema).ser,
    codec(pb.SnapshotResponseSchema).de,
    create(pb.SnapshotRequestSchema, {}),
  )
  let chunks = 0
  s.on('data', () => chunks++)
  await new Promise<void>((resolve, reject) => {
    s.on('end', resolve)
    s.on('error', reject)
  })
  assert.ok(chunks >= 2)
  await until(async () => {
    const x = await metrics()
    assert.equal(at(x, S, 'grpc_server_started_total'), 1)
    assert.equal(at(x, S, 'grpc_server_msg_received_total'), 1)
    assert.equal(at(x, S, 'grpc_server_msg_sent_total'), chunks)
    assert.equal(at(x, S, 'grpc_server_handled_total', 'OK'), 1)
  })

  // The one unary Put above: one message each way, OK.
  t = await metrics()
  assert.equal(at(t, P, 'grpc_server_started_total'), 1)
  assert.equal(at(t, P, 'grpc_server_msg_received_total'), 1)
  assert.equal(at(t, P, 'grpc_server_msg_sent_total'), 1)
  assert.equal(at(t, P, 'grpc_server_handled_total', 'OK'), 1)
})

test("stream messages count in etcd_network_client_grpc_{received,sent}_bytes_total, as unary calls' do", async () => {
  const total = (text: string, family: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${family} `))
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  const lease = await unary<pb.LeaseGrantResponse>(
    '/etcdserverpb.Lease/LeaseGrant',
    pb.LeaseGrantRequestSchema,
    pb.LeaseGrantResponseSchema,
    { TTL: 60n },
  )
  const before = await metrics()
  // Each message on the wire: a 5-byte envelope and its protobuf bytes (what the server encodes: protobuf-es').
  const framed = (d: DescMessage, m: unknown) => 5 + toBinary(d, m as never).length
  const k = client.makeBidiStreamRequest(
    '/etcdserverpb.Lease/LeaseKeepAlive',
    codec(pb.LeaseKeepAliveRequestSchema).ser,
    codec(pb.LeaseKeepAliveResponseSchema).de,
  )
  const got: pb.LeaseKeepAliveResponse[] = []
  k.on('data', (r: pb.LeaseKeepAliveResponse) => got.push(r))
  const ended = new Promise<void>((r) => k.on('status', () => r()))
  k.on('error', () => undefined)
  const req = create(pb.LeaseKeepAliveRequestSchema, { ID: lease.ID })
  k.write(req)
  k.write(req)
  k.write(req)
  await until(() => assert.equal(got.length, 3))
  k.end()
  await ended
  const received = 3 * framed(pb.LeaseKeepAliveRequestSchema, req)
  const sent = got.reduce((n, r) => n + framed(pb.LeaseKeepAliveResponseSchema, r), 0)
  await until(async () => {
    const t = await metrics()
    assert.equal(
      total(t, 'etcd_network_client_grpc_received_bytes_total') -
        total(before, 'etcd_network_client_grpc_received_bytes_total'),
      received,
    )
    assert.equal(
      total(t, 'etcd_network_client_grpc_sent_bytes_total') -
        total(before, 'etcd_network_client_grpc_sent_bytes_total'),
      sent,
    )
  })
})
