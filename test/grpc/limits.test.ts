/**
 * Bad input on the gRPC front door gets etcd's status and text (as read off etcd 3.4.23 with the same bytes), and
 * the member goes on serving: malformed protobuf, an unknown method or service, a message over the receive limit
 * (--max-request-bytes + 512 KiB), a request over --max-request-bytes. And the gRPC flags parse as etcd's.
 */
import assert from 'node:assert/strict'
import { connect, constants } from 'node:http2'
import { after, before, describe, test } from 'node:test'
import * as grpc from '@grpc/grpc-js'
import { serveConfig } from '../../src/cli/serve-flags.js'
import { type ServerConfig, validateServerConfig } from '../../src/etcdserver/config.js'
import { startTestMember, type TestMember } from '../server/helpers.js'

const raw = (b: Buffer) => b

function call(address: string, path: string, body: Buffer): Promise<{ code: number; message: string }> {
  const c = new grpc.Client(address, grpc.credentials.createInsecure())
  return new Promise((resolve) => {
    c.makeUnaryRequest(path, raw, raw, body, (err) => {
      c.close()
      resolve(err ? { code: err.code, message: err.details } : { code: 0, message: '' })
    })
  })
}

/** A PutRequest with key "a" and a value of `n` bytes (field 2, length as a 3-byte varint). */
function putOf(n: number): Buffer {
  const len = [(n & 0x7f) | 0x80, ((n >> 7) & 0x7f) | 0x80, n >> 14]
  return Buffer.concat([Buffer.from([0x0a, 0x01, 0x61, 0x12, ...len]), Buffer.alloc(n, 0x61)])
}

describe('gRPC bad input: etcd status and text, never a crash', () => {
  let m: TestMember
  let address: string
  before(async () => {
    m = await startTestMember()
    address = new URL(m.url).host
  })
  after(async () => {
    await m?.stop()
  })

  test('malformed protobuf, unknown method and service, oversized message, too large request', async () => {
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Range', Buffer.from([0x0a, 0xff, 0xff])), {
      code: 13,
      message: 'grpc: error unmarshalling request: unexpected EOF',
    })
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Nope', Buffer.alloc(0)), {
      code: 12,
      message: 'unknown method Nope for service etcdserverpb.KV',
    })
    assert.deepEqual(await call(address, '/etcdserverpb.Nope/Range', Buffer.alloc(0)), {
      code: 12,
      message: 'unknown service etcdserverpb.Nope',
    })
    // 2.5 MiB: over the 2 MiB receive limit (1.5 MiB + 512 KiB), refused before it is decoded.
    const huge = putOf(0x280000 - 8)
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Put', huge), {
      code: 8,
      message: `grpc: received message larger than max (${huge.length} vs. 2097152)`,
    })
    // 1.6 MiB: under the receive limit, over --max-request-bytes: the member refuses it.
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Put', putOf(0x1a0000)), {
      code: 3,
      message: 'etcdserver: request is too large',
    })
    // Still serving, and errors keep their exact text for grpc-js clients (no '%3A').
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Range', Buffer.alloc(0)), {
      code: 3,
      message: 'etcdserver: key is not provided',
    })
    assert.equal((await call(address, '/etcdserverpb.KV/Put', putOf(10))).code, 0)
  })

  test('--max-request-bytes falls where etcd puts it (its raft request), after the request is checked', async () => {
    // The same boundary as the JSON gateway's (test/server/request-errors.test.ts): a put of key "a" is accepted
    // up to a 1,572,840-byte value. Found by test/diff/random-grpc.test.ts: the gRPC door used to accept up to
    // ~64 KiB more.
    assert.equal((await call(address, '/etcdserverpb.KV/Put', putOf(1_572_840))).code, 0)
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Put', putOf(1_572_841)), {
      code: 3,
      message: 'etcdserver: request is too large',
    })
    // A too large put without a key: the key's error, as etcd's v3rpc checks the put before measuring it.
    const n = 1_572_860
    const noKey = Buffer.concat([
      Buffer.from([0x12, (n & 0x7f) | 0x80, ((n >> 7) & 0x7f) | 0x80, n >> 14]),
      Buffer.alloc(n, 0x61),
    ])
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Put', noKey), {
      code: 3,
      message: 'etcdserver: key is not provided',
    })
  })

  test('calls the client resets mid-way (RST_STREAM PROTOCOL_ERROR) end only themselves', async () => {
    const session = connect(m.url)
    session.on('error', () => undefined)
    for (let i = 0; i < 12; i++) {
      const r = session.request({
        ':method': 'POST',
        ':path': '/etcdserverpb.KV/Range',
        'content-type': 'application/grpc',
      })
      r.on('error', () => undefined)
      // a message that declares 10 bytes and sends 1: the call waits for the rest, then is reset
      r.write(Buffer.from([0, 0, 0, 0, 10, 0x0a]))
      await new Promise((resolve) => setTimeout(resolve, i % 3))
      r.close(constants.NGHTTP2_PROTOCOL_ERROR)
    }
    session.close()
    assert.deepEqual(await call(address, '/etcdserverpb.KV/Range', Buffer.from([0x0a, 0x01, 0x61])), {
      code: 0,
      message: '',
    })
  })
})

test('gRPC flags: Go durations as etcd takes them, and bounds', () => {
  const c = serveConfig(
    [
      '--grpc-keepalive-min-time=5s',
      '--grpc-keepalive-interval=2h0m0s',
      '--grpc-keepalive-timeout=1.5s',
      '--max-concurrent-streams=100',
    ],
    {},
  )
  assert.notEqual(c, 'help')
  if (c === 'help') return
  assert.equal(c.grpcKeepaliveMinTimeMs, 5000)
  assert.equal(c.grpcKeepaliveIntervalMs, 7_200_000)
  assert.equal(c.grpcKeepaliveTimeoutMs, 1500)
  assert.equal(c.maxConcurrentStreams, 100)
  assert.throws(() => serveConfig(['--grpc-keepalive-min-time=5'], {}), /duration/)
  const zero = serveConfig(['--max-concurrent-streams=0'], {})
  assert.throws(() => validateServerConfig(zero as ServerConfig), /max-concurrent-streams/)
})

describe('gRPC keep-alive as grpc-go enforces it', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({
      grpcKeepaliveMinTimeMs: 5000,
      grpcKeepaliveIntervalMs: 1000,
      grpcKeepaliveTimeoutMs: 2000,
    })
  })
  after(async () => {
    await m?.stop()
  })

  test('pings more often than --grpc-keepalive-min-time: GOAWAY ENHANCE_YOUR_CALM too_many_pings', async () => {
    const session = connect(m.url)
    session.on('error', () => undefined) // the GOAWAY's error code surfaces here too
    try {
      const goaway = new Promise<{ code: number; data: string }>((resolve) =>
        session.once('goaway', (code: number, _last: number, data?: Buffer) =>
          resolve({ code, data: data?.toString() ?? '' }),
        ),
      )
      await new Promise<void>((resolve) => session.once('connect', () => resolve()))
      for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => session.ping(() => resolve()))
      const timeout = new Promise((resolve) => setTimeout(() => resolve('no GOAWAY'), 10_000).unref())
      assert.deepEqual(await Promise.race([goaway, timeout]), {
        code: constants.NGHTTP2_ENHANCE_YOUR_CALM,
        data: 'too_many_pings',
      })
    } finally {
      session.destroy()
    }
  })

  test('pings right after the server sent data pass, as in grpc-go (gRPC C-core BDP pings on a watch stream)', async () => {
    const session = connect(m.url)
    session.on('error', () => undefined)
    let goaway = ''
    session.on('goaway', (_code: number, _last: number, data?: Buffer) => {
      goaway = data?.toString() ?? 'goaway'
    })
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/etcdserverpb.Watch/Watch',
        'content-type': 'application/grpc',
        te: 'trailers',
      })
      stream.on('error', () => undefined)
      const chunks: Buffer[] = []
      let wake: (() => void) | undefined
      stream.on('data', (c: Buffer) => {
        chunks.push(c)
        wake?.()
      })
      const nextData = () =>
        Promise.race([
          new Promise<void>((resolve) => {
            if (chunks.length > 0) resolve()
            else wake = resolve
          }),
          new Promise<void>((_, reject) =>
            setTimeout(() => reject(new Error(`no data; goaway: ${goaway}`)), 5000).unref(),
          ),
        ])
      // WatchRequest{create_request: {key: "w"}} in one gRPC frame
      const msg = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x77])
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg])
      stream.write(frame)
      await nextData() // created
      // Five events, a ping after each, far quicker than --grpc-keepalive-min-time (5 s): never a strike.
      for (let i = 0; i < 5 && goaway === ''; i++) {
        chunks.length = 0
        const put = await fetch(`${m.url}/v3/kv/put`, {
          method: 'POST',
          body: JSON.stringify({ key: Buffer.from('w').toString('base64'), value: 'dg==' }),
        })
        assert.equal(put.status, 200)
        await nextData()
        if (!session.closed) await new Promise<void>((resolve) => session.ping(() => resolve()))
      }
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.equal(goaway, '')
      assert.equal(session.closed, false)
      stream.close()
    } finally {
      session.destroy()
    }
  })

  test('a silent connection is pinged after --grpc-keepalive-interval', async () => {
    const session = connect(m.url)
    session.on('error', () => undefined) // the GOAWAY's error code surfaces here too
    try {
      const pinged = new Promise<void>((resolve) => session.once('ping', () => resolve()))
      await Promise.race([
        pinged,
        new Promise((_, reject) => setTimeout(() => reject(new Error('no ping from the server')), 10_000)),
      ])
    } finally {
      session.destroy()
    }
  })
})
