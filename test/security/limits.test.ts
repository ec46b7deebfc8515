/**
 * Issue 17, finding 5: client limits answered as etcd answers them. A WebSocket watch frame larger than the request
 * limit (--max-request-bytes plus gRPC's 512 KiB, as etcd's receive limit) is answered with etcd's
 * ResourceExhausted error and the socket closed (it was accepted up to the peers' 256 MiB frame limit); a txn nested
 * 1,000 deep is refused with etcd's 400 "too many operations in txn request" (it answered 500 "internal error"), one
 * nested past the decoder's depth with 400 code 3, as etcd's gateway does (checked against etcd 3.4.23).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { post } from '../support/index.js'

function nestedTxn(depth: number): string {
  let s = '{"request_put":{"key":"aw==","value":"dg=="}}'
  for (let i = 0; i < depth; i++) s = `{"request_txn":{"success":[${s}]}}`
  return `{"success":[${s}]}`
}

describe('client limits (issue 17, finding 5)', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ maxRequestBytes: 64 * 1024 })
  })
  after(async () => {
    await m.stop()
  })

  test('an oversize WebSocket watch frame is closed with etcd error', async () => {
    const ws = new WebSocket(`${m.url.replace('http:', 'ws:')}/v3/watch`)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const frames: string[] = []
    ws.on('message', (d) => frames.push(String(d)))
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    const big = JSON.stringify({ create_request: { key: Buffer.alloc(700 * 1024, 'k').toString('base64') } })
    ws.send(big)
    const code = await closed
    assert.equal(code, 1009)
    const err = JSON.parse(frames[0]!).error
    assert.equal(err.grpc_code, 8)
    assert.equal(err.http_code, 429)
    assert.match(err.message, /^grpc: received message larger than max \(\d+ vs\. 589824\)$/)
  })

  test('a frame announcing 64 MiB is refused from its header: error and close (1009) come before its payload', async () => {
    const url = new URL(m.url)
    const sock = connect(Number(url.port), '127.0.0.1')
    let buf = Buffer.alloc(0)
    let wake = () => {}
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      wake()
    })
    const until = async <T>(f: () => T | undefined, what: string): Promise<T> => {
      const deadline = Date.now() + 30_000
      for (;;) {
        const v = f()
        if (v !== undefined) return v
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
        await new Promise<void>((r) => {
          wake = r
          setTimeout(r, 100)
        })
      }
    }
    try {
      sock.write(
        `GET /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      )
      const headEnd = await until(() => {
        const i = buf.indexOf('\r\n\r\n')
        return i >= 0 ? i + 4 : undefined
      }, 'the upgrade')
      assert.match(buf.subarray(0, headEnd).toString(), /^HTTP\/1\.1 101/)
      buf = buf.subarray(headEnd)
      // A masked text frame announcing 64 MiB, of which only 1 KiB is ever sent.
      const header = Buffer.alloc(14)
      header[0] = 0x81
      header[1] = 0x80 | 127
      header.writeBigUInt64BE(BigInt(64 * 1024 * 1024), 2)
      sock.write(Buffer.concat([header, Buffer.alloc(1024, 0x20)]))
      /** Server frames (unmasked): [opcode, payload]. */
      const frames = () => {
        const out: [number, Buffer][] = []
        let i = 0
        while (i + 2 <= buf.length) {
          let len = buf[i + 1]! & 0x7f
          let off = i + 2
          if (len === 126) {
            if (off + 2 > buf.length) break
            len = buf.readUInt16BE(off)
            off += 2
          }
          if (off + len > buf.length) break
          out.push([buf[i]! & 0x0f, buf.subarray(off, off + len)])
          i = off + len
        }
        return out
      }
      const got = await until(() => {
        const f = frames()
        return f.some(([op]) => op === 8) ? f : undefined
      }, 'the close frame')
      const text = got.find(([op]) => op === 1)
      assert.ok(text, 'an error frame before the close')
      const err = JSON.parse(text[1].toString()).error
      assert.equal(err.grpc_code, 8)
      assert.match(err.message, /^grpc: received message larger than max \(67108864 vs\. 589824\)$/)
      const close = got.find(([op]) => op === 8)!
      assert.equal(close[1].readUInt16BE(0), 1009)
    } finally {
      sock.destroy()
    }
  })

  test('a txn nested 1,000 deep: 400 too many operations; nested 10,000 deep: 400 code 3', async () => {
    const ok = await post(m.url, '/v3/kv/txn', nestedTxn(100))
    assert.equal(ok.status, 200, ok.text)
    for (const depth of [200, 1000]) {
      const r = await post(m.url, '/v3/kv/txn', nestedTxn(depth))
      assert.equal(r.status, 400, `${depth}: ${r.text}`)
      assert.equal(r.json.message, 'etcdserver: too many operations in txn request')
      assert.equal(r.json.code, 3)
    }
    const deep = await post(m.url, '/v3/kv/txn', nestedTxn(10_000))
    assert.equal(deep.status, 400, deep.text)
    assert.equal(deep.json.code, 3)
    // The member is fine.
    assert.equal((await post(m.url, '/v3/kv/put', { key: 'aw==', value: 'dg==' })).status, 200)
  })
})
