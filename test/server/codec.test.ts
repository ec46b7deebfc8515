import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { decodeBase64, encodeBase64 } from '../../src/api/http/codec/base64.js'
import { decodeMessage } from '../../src/api/http/codec/decode.js'
import { encodeMessage } from '../../src/api/http/codec/encode.js'
import * as M from '../../src/protocol/descriptors.js'
import { EtcdError } from '../../src/protocol/errors.js'

const te = new TextEncoder()
const td = new TextDecoder()

function decodeErr(desc: M.MessageDesc, body: string): string {
  try {
    decodeMessage(desc, body)
  } catch (err) {
    assert.ok(err instanceof EtcdError)
    assert.equal(err.grpcCode, 3)
    return err.message
  }
  assert.fail(`expected ${body} to be refused`)
}

describe('base64 as Go StdEncoding', () => {
  test('round trips every length', () => {
    for (let n = 0; n < 20; n++) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255)
      const s = encodeBase64(b)
      assert.equal(s, btoa(String.fromCharCode(...b)))
      assert.deepEqual(decodeBase64(s), b)
    }
    // Both output paths of the encoder (short: fromCharCode; long: the ASCII decoder) and its growing scratch buffer.
    for (const n of [47, 48, 49, 255, 256, 257, 5000, 100_000, 3]) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 131 + n) & 255)
      assert.equal(encodeBase64(b), Buffer.from(b).toString('base64'))
    }
  })
  test('refuses unpadded and URL-safe input with Go offsets; skips CR/LF', () => {
    assert.throws(() => decodeBase64('Zm9vYg'), /illegal base64 data at input byte 4/)
    assert.throws(() => decodeBase64('_-8='), /illegal base64 data at input byte 0/)
    assert.throws(() => decodeBase64('Zm9v!'), /illegal base64 data at input byte 4/)
    assert.equal(td.decode(decodeBase64('Zm9v\r\nYmFy')), 'foobar')
    assert.equal(td.decode(decodeBase64('Zm9vYg==')), 'foob')
  })
})

describe('request decoding (jsonpb rules, etcd-api.md §2)', () => {
  test('proto and lowerCamel names, unknown fields ignored, int64 as number or string, enums by name or number', () => {
    const r = decodeMessage<any>(
      M.RangeRequest,
      '{"key":"Zm9v","rangeEnd":"Zm9w","limit":"2","revision":3,"sort_order":"DESCEND","sortTarget":2,"bogus":1,"ttl":5}',
    )
    assert.equal(td.decode(r.key), 'foo')
    assert.equal(td.decode(r.range_end), 'fop')
    assert.equal(r.limit, 2)
    assert.equal(r.revision, 3)
    assert.equal(r.sort_order, 2)
    assert.equal(r.sort_target, 2)
    assert.equal(r.keys_only, false)
  })
  test('empty body, {} and null are the empty request; a second object is ignored', () => {
    for (const b of ['', '{}', 'null', '  ']) assert.equal(decodeMessage<any>(M.PutRequest, b).key.length, 0)
    assert.equal(td.decode(decodeMessage<any>(M.PutRequest, '{"key":"YQ=="}{"key":"Yg=="}').key), 'a')
  })
  test('lease ids are exact int64 (bigint)', () => {
    assert.equal(
      decodeMessage<any>(M.LeaseGrantRequest, '{"ID":"7587869316348584452","TTL":30}').ID,
      7587869316348584452n,
    )
  })
  test("Go's errors for bad input", () => {
    assert.equal(decodeErr(M.RangeRequest, '{"key":'), 'unexpected EOF')
    assert.equal(decodeErr(M.RangeRequest, 'abc'), "invalid character 'a' looking for beginning of value")
    assert.equal(decodeErr(M.RangeRequest, '{"key":5}'), 'json: cannot unmarshal number into Go value of type []uint8')
    assert.equal(decodeErr(M.RangeRequest, '{"key":"Zm9vYg"}'), 'illegal base64 data at input byte 4')
    assert.equal(
      decodeErr(M.RangeRequest, '{"limit":1.5}'),
      'json: cannot unmarshal number 1.5 into Go value of type int64',
    )
    assert.equal(decodeErr(M.RangeRequest, '{"limit":"abc"}'), "invalid character 'a' looking for beginning of value")
    assert.equal(
      decodeErr(M.RangeRequest, '{"limit":"9223372036854775808"}'),
      'json: cannot unmarshal number 9223372036854775808 into Go value of type int64',
    )
    assert.equal(
      decodeErr(M.RangeRequest, '{"serializable":"true"}'),
      'json: cannot unmarshal string into Go value of type bool',
    )
    assert.equal(
      decodeErr(M.RangeRequest, '{"sort_order":"BOGUS"}'),
      'unknown value "BOGUS" for enum etcdserverpb.RangeRequest_SortOrder',
    )
  })
  test('nested txn requests decode recursively', () => {
    const t = decodeMessage<any>(
      M.TxnRequest,
      '{"compare":[{"key":"YQ==","target":"VALUE","value":"Yg=="}],"success":[{"request_txn":{"success":[{"requestPut":{"key":"Yw=="}}]}}]}',
    )
    assert.equal(t.compare[0].target, 3)
    assert.equal(td.decode(t.success[0].request_txn.success[0].request_put.key), 'c')
    assert.deepEqual(t.failure, [])
  })
})

describe('response encoding (etcd-api.md §3)', () => {
  const header = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: 12, raft_term: 2 }
  test('defaults omitted, int64 as strings, proto field order', () => {
    const kv = {
      key: te.encode('foo'),
      create_revision: 7,
      mod_revision: 9,
      version: 2,
      value: te.encode('bar'),
      lease: 0n,
    }
    assert.equal(
      encodeMessage(M.RangeResponse, { header, kvs: [kv], more: false, count: 1 }),
      '{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"12","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"7","mod_revision":"9","version":"2","value":"YmFy"}],"count":"1"}',
    )
    assert.equal(
      encodeMessage(M.RangeResponse, { header: { ...header, revision: 0 }, kvs: [], more: false, count: 0 }),
      '{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","raft_term":"2"}}',
    )
  })
  test('present but empty messages are {} (nested txn header); enums by name', () => {
    assert.equal(
      encodeMessage(M.TxnResponse, { header: {} as never, succeeded: false, responses: [] }),
      '{"header":{}}',
    )
    assert.equal(
      encodeMessage(M.Event, { type: 1, kv: { key: te.encode('a'), mod_revision: 5 } as never }),
      '{"type":"DELETE","kv":{"key":"YQ==","mod_revision":"5"}}',
    )
    assert.equal(
      encodeMessage(M.WatchResponse, { watch_id: -1, created: true, canceled: true }),
      '{"watch_id":"-1","created":true,"canceled":true}',
    )
    assert.equal(encodeMessage(M.LeaseTimeToLiveResponse, { ID: 5n, TTL: -1 }), '{"ID":"5","TTL":"-1"}')
  })
})
