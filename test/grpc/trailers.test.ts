/**
 * A unary answer's `grpc-status: 0` trailers are submitted in the send pass of its DATA frame
 * (src/runtime/node/h2-trailers.ts), not a loop turn later as node:http2's sendTrailers does, and its HEADERS through
 * the native handle with a list built once (respondOkNow), arriving as respond's would: no setImmediate is
 * scheduled for them, every answer carries its message and status, a client's reset in the middle never crashes the
 * server, and edgecd's gRPC front door uses the fast path on Node.
 */
import assert from 'node:assert/strict'
import { connect, createServer, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import * as grpc from '@grpc/grpc-js'
import {
  findTrailerInternals,
  respondOkNow,
  sendOkTrailersNow,
  syncTrailersInUse,
} from '../../src/runtime/node/h2-trailers.js'
import { startTestMember, type TestMember } from '../server/helpers.js'

// The fast path is on by default (NODE_H2_SYNC_TRAILERS=0 turns it off; read at the first answer): this file sets it on
// for its process whatever the environment says.
process.env.NODE_H2_SYNC_TRAILERS = '1'

const frame = Buffer.from([0, 0, 0, 0, 2, 0x0a, 0])

describe('grpc-status trailers in the DATA frame’s send pass', () => {
  const immediates: number[] = []
  const responded: boolean[] = []
  const server = createServer()
  let url = ''
  const sessions = new Set<ServerHttp2Session>()
  before(async () => {
    server.on('session', (s: ServerHttp2Session) => sessions.add(s))
    server.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => {})
      stream.on('data', () => {})
      stream.on('end', () => {
        if (stream.destroyed || stream.closed) return
        // The answer's HEADERS through the handle too (session 11); a second call on the same stream declines.
        const fast = respondOkNow(stream)
        responded.push(fast && !respondOkNow(stream) && stream.headersSent)
        if (!fast) stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
        stream.on('wantTrailers', () => {
          // Counts the setImmediate calls the submission makes (Node's sendTrailers makes one).
          const real = globalThis.setImmediate
          let n = 0
          globalThis.setImmediate = ((...a: Parameters<typeof setImmediate>) => {
            n++
            return real(...a)
          }) as typeof setImmediate
          try {
            if (!sendOkTrailersNow(stream)) stream.sendTrailers({ 'grpc-status': '0' })
          } finally {
            globalThis.setImmediate = real
          }
          immediates.push(n)
        })
        stream.end(frame)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    // The reset streams' session may linger: close() waits for every session.
    for (const s of sessions) s.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  })

  function call(s: ReturnType<typeof connect>): Promise<{ status: unknown; bytes: number }> {
    return new Promise((resolve, reject) => {
      const r = s.request({ ':method': 'POST', ':path': '/x', 'content-type': 'application/grpc', te: 'trailers' })
      let status: unknown
      let bytes = 0
      r.on('response', (h) => {
        if (h[':status'] !== 200 || h['content-type'] !== 'application/grpc')
          reject(new Error(`response headers ${JSON.stringify(h)}`))
      })
      r.on('trailers', (h) => {
        status = h['grpc-status']
      })
      r.on('data', (d: Buffer) => {
        bytes += d.length
      })
      r.on('error', reject)
      r.on('end', () => resolve({ status, bytes }))
      r.end(frame)
    })
  }

  test('one call at a time, 64 at once, resets in between: every answer whole, no setImmediate', async () => {
    const s = connect(url)
    try {
      for (let i = 0; i < 50; i++) assert.deepEqual(await call(s), { status: '0', bytes: frame.length })
      const many = await Promise.all(Array.from({ length: 64 }, () => call(s)))
      for (const a of many) assert.deepEqual(a, { status: '0', bytes: frame.length })
      // Clients going away before, while and after the answer is sent (bounded: 100 streams).
      for (let i = 0; i < 100; i++) {
        const r = s.request({ ':method': 'POST', ':path': '/x', 'content-type': 'application/grpc' })
        r.on('error', () => {})
        r.end(frame)
        if (i % 3 === 0) r.close(8)
        else if (i % 3 === 1) setImmediate(() => r.close(8))
        else r.on('response', () => r.close(8))
      }
      assert.deepEqual(await call(s), { status: '0', bytes: frame.length })
    } finally {
      s.close()
    }
    assert.equal(syncTrailersInUse(), true)
    assert.ok(immediates.length >= 115, `${immediates.length} answers`)
    assert.deepEqual(
      immediates.filter((n) => n !== 0),
      [],
      'trailers submitted at once',
    )
    assert.ok(responded.length >= 115, `${responded.length} responses`)
    assert.deepEqual(
      responded.filter((ok) => !ok),
      [],
      'headers submitted through the handle, once',
    )
  })

  test('a stream without the internals (another runtime, another Node) is left to sendTrailers', () => {
    assert.equal(findTrailerInternals({} as ServerHttp2Stream), null)
  })
})

describe("edgecd's unary answers use it", () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m?.stop()
  })

  test('a Put over grpc-js answers OK through the fast path', async () => {
    const c = new grpc.Client(new URL(m.url).host, grpc.credentials.createInsecure())
    const put = Buffer.from([0x0a, 0x01, 0x61, 0x12, 0x01, 0x62]) // PutRequest{key "a", value "b"}
    const code = await new Promise<number>((resolve) =>
      c.makeUnaryRequest(
        '/etcdserverpb.KV/Put',
        (b: Buffer) => b,
        (b: Buffer) => b,
        put,
        (err) => resolve(err ? err.code : 0),
      ),
    )
    c.close()
    assert.equal(code, 0)
    assert.equal(syncTrailersInUse(), true)
  })
})
