/**
 * Every int64/uint64 field of a request is exact whether it is sent as a JSON string or a JSON number, as etcd's
 * gateway reads it (Go's encoding/json): a lease ID or member ID above 2^53 written as a number is not rounded.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { decodeMessage, decodeMessageWithSchema } from '../../src/api/http/codec/decode.js'
import * as M from '../../src/protocol/descriptors.js'
import { b64, post } from '../support/index.js'
import { startTestMember, type TestMember } from './helpers.js'

/** 2^60 + 1: a double holds 2^60, so JSON.parse would give a neighbouring lease. */
const big = '1152921504606846977'
const bigRev = '9007199254740993' // 2^53 + 1

describe('int64 sent as JSON numbers: the codec', () => {
  test('a lease id above 2^53 as a number is exact, on the fast path and through the schema', () => {
    for (const decode of [decodeMessage, decodeMessageWithSchema]) {
      const r = decode(M.LeaseGrantRequest, `{"TTL":5,"ID":${big}}`)
      assert.equal(r.ID, BigInt(big))
      assert.equal(r.TTL, 5)
      const m = decode(M.MemberRemoveRequest, '{"ID":18446744073709551615}')
      assert.equal(m.ID, '18446744073709551615')
      const p = decode(M.PutRequest, `{"key":"YQ==","lease":-${big}}`)
      assert.equal(p.lease, -BigInt(big))
    }
  })
  test("out of range and non-integer numbers get Go's message with the number as written", () => {
    assert.throws(
      () => decodeMessage(M.LeaseGrantRequest, '{"ID":9223372036854775808}'),
      /json: cannot unmarshal number 9223372036854775808 into Go value of type int64/,
    )
    assert.throws(
      () => decodeMessage(M.LeaseGrantRequest, '{"ID":1e20}'),
      /json: cannot unmarshal number 1e20 into Go value of type int64/,
    )
    assert.throws(
      () => decodeMessage(M.PutRequest, '{"key":123456789012345678901}'),
      /json: cannot unmarshal number into Go value of type \[\]uint8/,
    )
  })
  test('a number inside a nested message (txn compare, watch create) is exact too', () => {
    const t = decodeMessage(M.TxnRequest, `{"compare":[{"target":"LEASE","key":"YQ==","lease":${big}}]}`)
    assert.equal(t.compare[0]!.lease, BigInt(big))
    // A watch id is a number while safe and a bigint past 2^53 (one representation per id), on both paths.
    for (const decode of [decodeMessage, decodeMessageWithSchema]) {
      const w = decode(M.WatchRequest, `{"create_request":{"key":"YQ==","watch_id":${bigRev}}}`)
      assert.equal(w.create_request!.watch_id, BigInt(bigRev))
      assert.equal(
        decode(M.WatchRequest, `{"cancel_request":{"watch_id":"${bigRev}"}}`).cancel_request!.watch_id,
        BigInt(bigRev),
      )
      assert.equal(decode(M.WatchRequest, '{"cancel_request":{"watch_id":"42"}}').cancel_request!.watch_id, 42)
      assert.equal(decode(M.WatchRequest, '{"create_request":{"key":"YQ=="}}').create_request!.watch_id, 0)
    }
  })
})

describe('int64 sent as JSON numbers: a member', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m.stop()
  })

  test('lease grant, keepalive, timetolive, put with lease, revoke with an ID above 2^53 sent as a number', async () => {
    const grant = await post(m.url, '/v3/lease/grant', `{"TTL":60,"ID":${big}}`)
    assert.equal(grant.status, 200, grant.text)
    assert.equal(grant.json.ID, big)

    const ka = await post(m.url, '/v3/lease/keepalive', `{"ID":${big}}`)
    assert.equal(ka.status, 200, ka.text)
    const kaLine = JSON.parse(ka.text.split('\n')[0]!)
    assert.equal(kaLine.result.ID, big)
    assert.equal(kaLine.result.TTL, '60')

    const put = await post(m.url, '/v3/kv/put', `{"key":"${b64('k')}","value":"${b64('v')}","lease":${big}}`)
    assert.equal(put.status, 200, put.text)
    const range = await post(m.url, '/v3/kv/range', { key: b64('k') })
    assert.equal(range.json.kvs[0].lease, big)

    const ttl = await post(m.url, '/v3/lease/timetolive', `{"ID":${big},"keys":true}`)
    assert.equal(ttl.status, 200, ttl.text)
    assert.equal(ttl.json.ID, big)
    assert.equal(ttl.json.grantedTTL, '60')
    assert.deepEqual(ttl.json.keys, [b64('k')])

    const revoke = await post(m.url, '/v3/lease/revoke', `{"ID":${big}}`)
    assert.equal(revoke.status, 200, revoke.text)
    const gone = await post(m.url, '/v3/lease/timetolive', `{"ID":${big}}`)
    assert.equal(gone.json.TTL, '-1')
    const after = await post(m.url, '/v3/kv/range', { key: b64('k') })
    assert.equal(after.json.kvs, undefined, 'the revoke deleted the key attached to the exact lease')
  })

  test('a revision above 2^53 as a number is a future revision, not a rounded one', async () => {
    for (const body of [`{"key":"${b64('k')}","revision":${bigRev}}`, `{"key":"${b64('k')}","revision":"${bigRev}"}`]) {
      const r = await post(m.url, '/v3/kv/range', body)
      assert.equal(r.status, 400, r.text)
      assert.equal(r.json.message, 'etcdserver: mvcc: required revision is a future revision')
    }
  })

  test('a member ID above 2^53 as a number (member update) names the member exactly', async () => {
    const list = await post(m.url, '/v3/cluster/member/list', {})
    const id: string = list.json.members[0].ID
    const up = await post(m.url, '/v3/cluster/member/update', `{"ID":${id},"peerURLs":["${m.url}"]}`)
    assert.equal(up.status, 200, up.text)
    assert.equal(up.json.members[0].ID, id)
  })
})
