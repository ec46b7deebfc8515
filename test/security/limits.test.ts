/**
 * Issue 17, finding 5: client limits answered as etcd answers them. A WebSocket watch frame larger than the request
 * limit (--max-request-bytes plus gRPC's 512 KiB, as etcd's receive limit) is answered with etcd's
 * ResourceExhausted error and the socket closed (it was accepted up to the peers' 256 MiB frame limit); a txn nested
 * 1,000 deep is refused with etcd's 400 "too many operations in txn request" (it answered 500 "internal error"), one
 * nested past the decoder's depth with 400 code 3, as etcd's gateway does (checked against etcd 3.4.23).
 */
import assert from 'node:assert/strict'
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
