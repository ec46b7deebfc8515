/**
 * etcd's gRPC services over gRPC-Web and the Connect protocol (src/api/grpc/fetch.ts), called the way a browser page
 * calls them (`@connectrpc/connect-web` over fetch), against a Node member (its HTTP/1.1 listener) and a workerd
 * member (a Durable Object behind the Worker): KV, leases, cluster, maintenance, auth with the `token` metadata, etcd's
 * codes and texts for bad input, a server stream (Snapshot), a half-duplex Watch, and the CORS a cross-origin page
 * needs. The JSON API beside it answers as before.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { type Client, Code, ConnectError, createClient, type Transport } from '@connectrpc/connect'
import {
  createConnectTransport as createNodeConnectTransport,
  createGrpcWebTransport as createNodeGrpcWebTransport,
} from '@connectrpc/connect-node'
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web'
import * as pb from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { createTlsDir, type TestCa, type TlsDir, type TlsFetch, tlsFetch } from '../helpers/tls.js'
import { startTestMember } from '../server/helpers.js'
import { freePort, silent, startEdgecd } from '../support/index.js'
import { requires } from '../support/requirements.js'

const te = new TextEncoder()
const td = new TextDecoder()
const b = (s: string) => te.encode(s)

/** The error a call ends with, as code and message (or `ok`). */
async function failure(p: Promise<unknown>): Promise<{ code: Code; message: string } | 'ok'> {
  try {
    await p
    return 'ok'
  } catch (err) {
    const e = ConnectError.from(err)
    return { code: e.code, message: e.rawMessage }
  }
}

/** One gRPC-Web frame. */
function frame(flags: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const f = new Uint8Array(5 + data.length)
  f[0] = flags
  new DataView(f.buffer).setUint32(1, data.length)
  f.set(data, 5)
  return f
}

/** A gRPC-Web answer's status: from its headers (trailers-only) or from its trailer frame. */
async function webStatus(res: Response): Promise<{ status: string; message: string }> {
  const body = new Uint8Array(await res.arrayBuffer())
  if (res.headers.has('grpc-status'))
    return { status: res.headers.get('grpc-status')!, message: res.headers.get('grpc-message') ?? '' }
  const text = td.decode(body.subarray(5))
  return {
    status: /^grpc-status: ?(\d+)\r?$/m.exec(text)?.[1] ?? '',
    message: /^grpc-message: ?(.*?)\r?$/m.exec(text)?.[1] ?? '',
  }
}

/** Reads gRPC-Web frames off a response body as they arrive. */
class FrameReader {
  private buf = new Uint8Array(0)
  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}
  async next(): Promise<{ flags: number; data: Uint8Array }> {
    for (;;) {
      if (this.buf.length >= 5) {
        const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(1)
        if (this.buf.length >= 5 + len) {
          const out = { flags: this.buf[0]!, data: this.buf.slice(5, 5 + len) }
          this.buf = this.buf.slice(5 + len)
          return out
        }
      }
      const r = await this.reader.read()
      if (r.done) throw new Error('the stream ended')
      const joined = new Uint8Array(this.buf.length + r.value.length)
      joined.set(this.buf)
      joined.set(r.value, this.buf.length)
      this.buf = joined
    }
  }
}

/** A member on `runtime`: Node and workerd through the API tests' launcher, Deno as an `edgecd serve` process. */
async function startMember(runtime: 'node' | 'workerd' | 'deno'): Promise<{ url: string; stop(): Promise<void> }> {
  if (runtime !== 'deno') return startTestMember({}, { runtime })
  const p = await startEdgecd({ runtime: 'deno', timeoutMs: 120_000 })
  return { url: p.url, stop: () => p.stop() }
}

for (const runtime of ['node', 'workerd', 'deno'] as const) {
  describe(`gRPC-Web and Connect on a ${runtime} member`, {
    timeout: 240_000,
    skip: runtime === 'deno' ? requires('deno') : false,
  }, () => {
    let m: { url: string; stop(): Promise<void> }
    let web: Transport
    let kv: Client<typeof pb.KV>
    before(async () => {
      m = await startMember(runtime)
      web = createGrpcWebTransport({ baseUrl: m.url })
      kv = createClient(pb.KV, web)
    })
    after(async () => {
      await m?.stop()
    })

    test('KV: put, range, txn, delete over gRPC-Web; put and range over Connect (binary and JSON)', async () => {
      const put = await kv.put({ key: b('web/a'), value: b('1'), prevKv: true })
      assert.ok(put.header!.revision > 1n)
      await kv.put({ key: b('web/b'), value: b('2') })
      const r = await kv.range({ key: b('web/'), rangeEnd: b('web0') })
      assert.deepEqual(
        r.kvs.map((x) => [td.decode(x.key), td.decode(x.value)]),
        [
          ['web/a', '1'],
          ['web/b', '2'],
        ],
      )
      assert.equal(r.count, 2n)
      const t = await kv.txn({
        compare: [
          {
            key: b('web/a'),
            target: pb.Compare_CompareTarget.VALUE,
            result: 0,
            targetUnion: { case: 'value', value: b('1') },
          },
        ],
        success: [{ request: { case: 'requestPut', value: { key: b('web/c'), value: b('3') } } }],
        failure: [],
      })
      assert.equal(t.succeeded, true)
      const d = await kv.deleteRange({ key: b('web/'), rangeEnd: b('web0'), prevKv: true })
      assert.equal(d.deleted, 3n)
      assert.deepEqual(
        d.prevKvs.map((x) => td.decode(x.key)),
        ['web/a', 'web/b', 'web/c'],
      )
      for (const useBinaryFormat of [true, false]) {
        const c = createClient(pb.KV, createConnectTransport({ baseUrl: m.url, useBinaryFormat }))
        await c.put({ key: b('connect/k'), value: b(String(useBinaryFormat)) })
        const got = await c.range({ key: b('connect/k') })
        assert.equal(td.decode(got.kvs[0]!.value), String(useBinaryFormat))
      }
    })

    test('Connect over HTTP/2 (h2c with prior knowledge) on the Node listener', {
      skip: runtime === 'node' ? false : 'only the Node member has an HTTP/2 listener',
    }, async () => {
      const c = createClient(pb.KV, createNodeConnectTransport({ baseUrl: m.url, httpVersion: '2' }))
      await c.put({ key: b('h2/k'), value: b('v') })
      assert.equal(td.decode((await c.range({ key: b('h2/k') })).kvs[0]!.value), 'v')
    })

    test('gRPC-Web over HTTP/2 (h2c with prior knowledge) on the Node listener', {
      skip: runtime === 'node' ? false : 'only the Node member has an HTTP/2 listener',
    }, async () => {
      const c = createClient(pb.KV, createNodeGrpcWebTransport({ baseUrl: m.url, httpVersion: '2' }))
      await c.put({ key: b('h2web/k'), value: b('w') })
      assert.equal(td.decode((await c.range({ key: b('h2web/k') })).kvs[0]!.value), 'w')
      assert.deepEqual(await failure(c.put({ key: new Uint8Array(0), value: b('x') })), {
        code: Code.InvalidArgument,
        message: 'etcdserver: key is not provided',
      })
    })

    test('leases, member list, status; Snapshot as a server stream', async () => {
      const lease = createClient(pb.Lease, web)
      const g = await lease.leaseGrant({ TTL: 60n })
      assert.equal(g.TTL, 60n)
      const ttl = await lease.leaseTimeToLive({ ID: g.ID })
      assert.equal(ttl.ID, g.ID)
      assert.ok(ttl.TTL > 0n && ttl.TTL <= 60n)
      await lease.leaseRevoke({ ID: g.ID })
      assert.equal((await lease.leaseTimeToLive({ ID: g.ID })).TTL, -1n)
      assert.deepEqual(await failure(lease.leaseRevoke({ ID: g.ID })), {
        code: Code.NotFound,
        message: 'etcdserver: requested lease not found',
      })
      const members = await createClient(pb.Cluster, web).memberList({})
      assert.equal(members.members.length, 1)
      assert.deepEqual(members.members[0]!.clientURLs, [m.url])
      const maintenance = createClient(pb.Maintenance, web)
      const status = await maintenance.status({})
      assert.equal(status.version, '3.4.23')
      assert.equal(status.leader, status.header!.memberId)
      // etcd 3.4's snapshot: 32 KiB chunks counting down remaining_bytes, then the SHA-256 of the whole.
      const chunks: pb.SnapshotResponse[] = []
      for await (const s of maintenance.snapshot({})) chunks.push(s)
      assert.ok(chunks.length >= 2)
      const data = new Uint8Array(chunks.slice(0, -1).reduce((n, c) => n + c.blob.length, 0))
      let off = 0
      for (const c of chunks.slice(0, -1)) {
        data.set(c.blob, off)
        off += c.blob.length
      }
      const sha = new Uint8Array(await crypto.subtle.digest('SHA-256', data))
      assert.deepEqual(chunks.at(-1)!.blob, sha)
      assert.equal(chunks.at(-1)!.remainingBytes, 0n)
    })

    test('Watch, half duplex: the create request up front, events streamed back until the client goes away', async () => {
      const abort = new AbortController()
      const res = await fetch(`${m.url}/etcdserverpb.Watch/Watch`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
        body: frame(
          0,
          toBinary(
            pb.WatchRequestSchema,
            create(pb.WatchRequestSchema, {
              requestUnion: { case: 'createRequest', value: { key: b('watched'), watchId: 7n } },
            }),
          ),
        ),
        signal: abort.signal,
      })
      assert.equal(res.status, 200)
      const frames = new FrameReader(res.body!.getReader())
      const created = fromBinary(pb.WatchResponseSchema, (await frames.next()).data)
      assert.equal(created.created, true)
      assert.equal(created.watchId, 7n)
      await kv.put({ key: b('watched'), value: b('v1') })
      const ev = fromBinary(pb.WatchResponseSchema, (await frames.next()).data)
      assert.equal(ev.watchId, 7n)
      assert.equal(td.decode(ev.events[0]!.kv!.value), 'v1')
      abort.abort()
    })

    test('LeaseKeepAlive, half duplex: two renewals up front, two answers, then status 0', async () => {
      const { ID } = await createClient(pb.Lease, web).leaseGrant({ TTL: 30n })
      const ka = toBinary(pb.LeaseKeepAliveRequestSchema, create(pb.LeaseKeepAliveRequestSchema, { ID }))
      const body = new Uint8Array([...frame(0, ka), ...frame(0, ka)])
      const res = await fetch(`${m.url}/etcdserverpb.Lease/LeaseKeepAlive`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto' },
        body,
      })
      const frames = new FrameReader(res.body!.getReader())
      for (let i = 0; i < 2; i++) {
        const f = await frames.next()
        assert.equal(f.flags, 0)
        const r = fromBinary(pb.LeaseKeepAliveResponseSchema, f.data)
        assert.equal(r.ID, ID)
        assert.equal(r.TTL, 30n)
      }
      const end = await frames.next()
      assert.equal(end.flags, 0x80)
      assert.match(td.decode(end.data), /^grpc-status: ?0\r?$/m)
    })

    test("bad input: etcd's codes and texts; the member goes on serving", async () => {
      assert.deepEqual(await failure(kv.put({ key: new Uint8Array(0), value: b('x') })), {
        code: Code.InvalidArgument,
        message: 'etcdserver: key is not provided',
      })
      // Unknown method and service: Unimplemented with grpc-go's words, on both protocols.
      for (const t of [web, createConnectTransport({ baseUrl: m.url, useBinaryFormat: true })]) {
        const res = await fetch(`${m.url}/etcdserverpb.KV/Nope`, {
          method: 'POST',
          headers: { 'content-type': t === web ? 'application/grpc-web+proto' : 'application/proto' },
          body: t === web ? frame(0, new Uint8Array(0)) : new Uint8Array(0),
        })
        if (t === web) {
          assert.equal(res.headers.get('grpc-status'), '12')
          assert.equal(res.headers.get('grpc-message'), 'unknown method Nope for service etcdserverpb.KV')
        } else {
          assert.equal(res.status, 501)
          assert.deepEqual(await res.json(), {
            code: 'unimplemented',
            message: 'unknown method Nope for service etcdserverpb.KV',
          })
        }
      }
      const unknownService = await fetch(`${m.url}/etcdserverpb.Nope/Range`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto' },
        body: frame(0, new Uint8Array(0)),
      })
      assert.equal(unknownService.headers.get('grpc-status'), '12')
      assert.equal(unknownService.headers.get('grpc-message'), 'unknown service etcdserverpb.Nope')
      // grpc-message in the trailer frame is percent-encoded as the gRPC spec says (as on the gRPC door): ': ' stays.
      const empty = await fetch(`${m.url}/etcdserverpb.KV/Put`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto' },
        body: frame(0, new Uint8Array(0)),
      })
      assert.deepEqual(await webStatus(empty), { status: '3', message: 'etcdserver: key is not provided' })
      // The same through ConnectRPC's path (gRPC-Web JSON): the status comes in the trailer frame, re-encoded.
      const emptyJson = await fetch(`${m.url}/etcdserverpb.KV/Put`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+json' },
        body: frame(0, te.encode('{}')),
      })
      assert.equal(emptyJson.headers.get('grpc-status'), null)
      assert.deepEqual(await webStatus(emptyJson), { status: '3', message: 'etcdserver: key is not provided' })
      // Malformed protobuf: a length-delimited field that runs past the end.
      const bad = await fetch(`${m.url}/etcdserverpb.KV/Range`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto' },
        body: frame(0, new Uint8Array([0x0a, 0xff, 0xff])),
      })
      assert.deepEqual(await webStatus(bad), {
        status: '13',
        message: 'grpc: error unmarshalling request: unexpected EOF',
      })
      // 2.5 MiB: over etcd's 2 MiB receive limit (1.5 MiB + 512 KiB). workerd may drop the connection of a body it
      // answered before reading it: the client then sees the transport fail, never a success.
      const huge = { key: b('big'), value: new Uint8Array(0x280000) }
      const big = await failure(kv.put(huge))
      const size = toBinary(pb.PutRequestSchema, create(pb.PutRequestSchema, huge)).length
      const want = {
        code: Code.ResourceExhausted,
        message: `grpc: received message larger than max (${size} vs. 2097152)`,
      }
      if (runtime === 'workerd' && big !== 'ok' && big.code === Code.Unknown) assert.match(big.message, /fetch failed/)
      else assert.deepEqual(big, want)
      assert.equal((await kv.range({ key: b('big') })).count, 0n)
    })

    test('CORS: a preflight allows the gRPC-Web, Connect and token headers; answers expose grpc-status', async () => {
      const pre = await fetch(`${m.url}/etcdserverpb.KV/Range`, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://page.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-grpc-web,x-user-agent,token',
        },
      })
      assert.ok(pre.status === 204 || pre.status === 200)
      assert.equal(pre.headers.get('access-control-allow-origin'), '*')
      const allowed = pre.headers.get('access-control-allow-headers')!.split(/,\s*/)
      for (const h of [
        'content-type',
        'x-grpc-web',
        'x-user-agent',
        'token',
        'connect-protocol-version',
        'grpc-timeout',
      ])
        assert.ok(allowed.includes(h), h)
      const res = await fetch(`${m.url}/etcdserverpb.KV/Range`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web+proto', origin: 'http://page.example' },
        body: frame(0, toBinary(pb.RangeRequestSchema, create(pb.RangeRequestSchema, { key: b('x') }))),
      })
      await res.arrayBuffer()
      assert.equal(res.headers.get('access-control-allow-origin'), '*')
      assert.match(res.headers.get('access-control-expose-headers')!, /grpc-status, grpc-message/)
      // The JSON API's answers and CORS stay etcd's.
      const json = await fetch(`${m.url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: 'eA==' }) })
      assert.equal(json.status, 200)
      assert.equal(json.headers.get('access-control-allow-headers'), 'accept, content-type, authorization')
      assert.equal(json.headers.get('access-control-expose-headers'), null)
      assert.ok('header' in ((await json.json()) as object))
    })

    test('auth: users, enable, authenticate, calls with and without a token, permission denied', async () => {
      const auth = createClient(pb.Auth, web)
      await auth.userAdd({ name: 'root', password: 'rootpw' })
      await auth.roleAdd({ name: 'root' })
      await auth.userGrantRole({ user: 'root', role: 'root' })
      await auth.userAdd({ name: 'alice', password: 'alicepw' })
      await auth.authEnable({})
      const { token } = await auth.authenticate({ name: 'root', password: 'rootpw' })
      assert.ok(token.length > 0)
      const withToken = { headers: { token } }
      await kv.put({ key: b('secured'), value: b('s') }, withToken)
      assert.equal((await kv.range({ key: b('secured') }, withToken)).count, 1n)
      assert.deepEqual(await failure(kv.range({ key: b('secured') })), {
        code: Code.InvalidArgument,
        message: 'etcdserver: user name is empty',
      })
      assert.deepEqual(await failure(kv.range({ key: b('secured') }, { headers: { token: 'forged.token' } })), {
        code: Code.Unauthenticated,
        message: 'etcdserver: invalid auth token',
      })
      assert.deepEqual(await failure(auth.authenticate({ name: 'alice', password: 'nope' })), {
        code: Code.InvalidArgument,
        message: 'etcdserver: authentication failed, invalid user ID or password',
      })
      const alice = await auth.authenticate({ name: 'alice', password: 'alicepw' })
      assert.deepEqual(await failure(kv.range({ key: b('secured') }, { headers: { token: alice.token } })), {
        code: Code.PermissionDenied,
        message: 'etcdserver: permission denied',
      })
      await auth.authDisable({}, withToken)
      assert.equal((await kv.range({ key: b('secured') })).count, 1n)
    })
  })
}

describe('gRPC-Web with --client-cert-auth (Node, HTTPS over HTTP/1.1): the certificate CN is the user', () => {
  let tls: TlsDir
  let ca: TestCa
  let m: RunningMember
  let dir: string
  let url: string
  const fetches: TlsFetch[] = []
  const kvAs = (user: string): Client<typeof pb.KV> => {
    const c = ca.issue(user, { server: false })
    const f = tlsFetch({ ca: ca.certFile, cert: c.certFile, key: c.keyFile })
    fetches.push(f)
    return createClient(pb.KV, createGrpcWebTransport({ baseUrl: url, fetch: f as unknown as typeof fetch }))
  }
  before(async () => {
    tls = createTlsDir()
    ca = tls.ca('grpc-web-test-ca')
    const server = ca.issue('server')
    dir = mkdtempSync(join(tmpdir(), 'edgecd-grpc-web-tls-'))
    url = `https://127.0.0.1:${await freePort()}`
    m = await startNodeMember(
      {
        ...serverDefaults,
        dataDir: dir,
        listenClientUrls: [url],
        advertiseClientUrls: [url],
        initialAdvertisePeerUrls: [url],
        logLevel: 'error',
        certFile: server.certFile,
        keyFile: server.keyFile,
        trustedCaFile: ca.certFile,
        clientCertAuth: true,
        authPasswordIterations: 1000,
      },
      silent,
    )
  })
  after(async () => {
    for (const f of fetches) await f.close()
    await m?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
    tls?.remove()
  })

  test('root by certificate writes; alice by certificate is denied once auth is on', async () => {
    const root = kvAs('root')
    const alice = kvAs('alice')
    await root.put({ key: b('mtls'), value: b('1') })
    const rootTransport = createGrpcWebTransport({ baseUrl: url, fetch: fetches[0] as unknown as typeof fetch })
    const auth = createClient(pb.Auth, rootTransport)
    await auth.userAdd({ name: 'root', password: 'rootpw' })
    await auth.roleAdd({ name: 'root' })
    await auth.userGrantRole({ user: 'root', role: 'root' })
    await auth.userAdd({ name: 'alice', password: 'alicepw' })
    await auth.authEnable({})
    assert.equal((await root.range({ key: b('mtls') })).count, 1n)
    assert.deepEqual(await failure(alice.range({ key: b('mtls') })), {
      code: Code.PermissionDenied,
      message: 'etcdserver: permission denied',
    })
  })
})
