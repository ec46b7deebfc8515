/**
 * Errors etcd 3.4 gives at once, checked against a real etcd on this machine (values in the comments):
 * - POST /v3/watch with a body that ends inside its first value, or holds no JSON value: 500 with Go's JSON error
 *   (code 2), immediately (it used to answer 200 and then nothing);
 * - request sizes: etcd limits the protobuf message (gRPC: --max-request-bytes + 512 KiB, 429/code 8) and the raft
 *   request it proposes (--max-request-bytes, 400/code 3), not the JSON body. With the default 1.5 MiB, a put of key
 *   "k" is accepted up to a 1,572,840-byte value, "request is too large" from 1,572,841 to 2,097,145, and "received
 *   message larger than max (2097153 vs. 2097152)" from 2,097,146 (etcd 3.4.23, measured).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { b64, post } from '../support/index.js'
import { startTestMember, type TestMember } from './helpers.js'

describe('malformed stream bodies and request sizes, as etcd answers them', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m?.stop()
  })

  test('POST /v3/watch with a truncated or non-JSON body answers the JSON error at once', async () => {
    const cases: [string, string][] = [
      ['{"create_request":', 'unexpected EOF'],
      ['{"create_request":{"key":"YQ=="', 'unexpected EOF'],
      ['xyz', "invalid character 'x' looking for beginning of value"],
    ]
    for (const [body, message] of cases) {
      const r = await post(m.url, '/v3/watch', body, { signal: AbortSignal.timeout(30_000) })
      assert.equal(r.status, 500, body)
      assert.deepEqual(r.json, { error: message, message, code: 2 }, body)
    }
    // The keepalive stream words the same errors (it said "unexpected EOF" for anything).
    const ka = await post(m.url, '/v3/lease/keepalive', 'xyz', { signal: AbortSignal.timeout(30_000) })
    assert.equal(ka.status, 500)
    assert.equal(ka.json.message, "invalid character 'x' looking for beginning of value")
  })

  test('request size limits fall where etcd 3.4 puts them (default --max-request-bytes)', async () => {
    const put = (valueBytes: number, key = 'k') =>
      post(m.url, '/v3/kv/put', { key: b64(key), value: Buffer.alloc(valueBytes, 120).toString('base64') })
    assert.equal((await put(1_572_840)).status, 200)
    const tooLarge = await put(1_572_841)
    assert.equal(tooLarge.status, 400)
    assert.deepEqual(tooLarge.json, {
      error: 'etcdserver: request is too large',
      message: 'etcdserver: request is too large',
      code: 3,
    })
    assert.equal((await put(1_572_831, 'kkkkkkkkkk')).status, 200)
    assert.equal((await put(1_572_832, 'kkkkkkkkkk')).status, 400)
    assert.equal((await put(2_097_145)).status, 400)
    const over = await put(2_097_146)
    assert.equal(over.status, 429)
    assert.equal(over.json.message, 'grpc: received message larger than max (2097153 vs. 2097152)')
    assert.equal(over.json.code, 8)
  })

  test("a too large write with a fault of its own gets the fault's error, as etcd checks the request first", async () => {
    // etcd's v3rpc checks a put (empty key, value with ignore_value) and a txn before it measures the raft request:
    // found by test/diff/random-json.test.ts.
    const big = Buffer.alloc(1_572_860, 120).toString('base64')
    const empty = await post(m.url, '/v3/kv/put', { key: '', value: big })
    assert.deepEqual([empty.status, empty.json.message], [400, 'etcdserver: key is not provided'])
    const ignore = await post(m.url, '/v3/kv/put', { key: b64('k'), value: big, ignore_value: true })
    assert.deepEqual([ignore.status, ignore.json.message], [400, 'etcdserver: value is provided'])
    const dup = await post(m.url, '/v3/kv/txn', {
      success: [{ request_put: { key: b64('d'), value: big } }, { request_put: { key: b64('d') } }],
    })
    assert.deepEqual([dup.status, dup.json.message], [400, 'etcdserver: duplicate key given in txn request'])
    const plain = await post(m.url, '/v3/kv/put', { key: b64('k'), value: big })
    assert.deepEqual([plain.status, plain.json.message], [400, 'etcdserver: request is too large'])
  })
})
