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
  test("Go's errors and readings that test/diff/random-json.test.ts found against etcd 3.4", () => {
    // A number written with a fraction or an exponent is not an integer to Go, even when its value is one.
    for (const lit of ['1e2', '1.0', '1E2', '0.0'])
      assert.equal(
        decodeErr(M.RangeRequest, `{"key":"YQ==","limit":${lit}}`),
        `json: cannot unmarshal number ${lit} into Go value of type int64`,
      )
    assert.equal(decodeMessage<any>(M.RangeRequest, '{"limit":-0}').limit, 0)
    // An integer given as a string: encoding/json reads the string's contents as a JSON document.
    const inString: [string, string][] = [
      ['01', "invalid character '1' after top-level value"],
      ['-01', "invalid character '1' after top-level value"],
      ['1.', "invalid character ' ' after decimal point in numeric literal"],
      ['-', "invalid character ' ' in numeric literal"],
      ['1e+', "invalid character ' ' in exponent of numeric literal"],
      ['tru', "invalid character ' ' in literal true (expecting 'e')"],
      ['true', 'json: cannot unmarshal bool into Go value of type int64'],
      ['[]', 'json: cannot unmarshal array into Go value of type int64'],
      ['é', "invalid character 'Ã' looking for beginning of value"],
      ['1\\"', "invalid character '\\\\' after top-level value"],
      ['', 'unexpected end of JSON input'],
    ]
    for (const [inner, want] of inString) assert.equal(decodeErr(M.RangeRequest, `{"limit":"${inner}"}`), want, inner)
    assert.equal(decodeMessage<any>(M.RangeRequest, '{"limit":" 3 "}').limit, 3)
    assert.equal(decodeMessage<any>(M.RangeRequest, '{"limit":"null"}').limit, 0)
    // Enums given as numbers are read into int32 from the number's text.
    assert.equal(
      decodeErr(M.RangeRequest, '{"sort_order":1.5}'),
      'json: cannot unmarshal number 1.5 into Go value of type etcdserverpb.RangeRequest_SortOrder',
    )
    assert.equal(
      decodeErr(M.RangeRequest, '{"sort_order":2147483648}'),
      'json: cannot unmarshal number 2147483648 into Go value of type etcdserverpb.RangeRequest_SortOrder',
    )
    assert.equal(decodeMessage<any>(M.RangeRequest, '{"sort_order":1e0,"sort_order":2}').sort_order, 2)
    // jsonpb reads a message as map[string]json.RawMessage and a repeated field as []json.RawMessage first.
    assert.equal(
      decodeErr(M.RangeRequest, '5'),
      'json: cannot unmarshal number into Go value of type map[string]json.RawMessage',
    )
    assert.equal(
      decodeErr(M.TxnRequest, '{"compare":{}}'),
      'json: cannot unmarshal object into Go value of type []json.RawMessage',
    )
    assert.equal(
      decodeErr(M.TxnRequest, '{"success":[{"request_put":[]}]}'),
      'json: cannot unmarshal array into Go value of type map[string]json.RawMessage',
    )
    // Bytes may come as an array of byte values (encoding/json's []byte from an array).
    assert.equal(td.decode(decodeMessage<any>(M.PutRequest, '{"key":[97,98],"value":[null]}').key), 'ab')
    assert.equal(
      decodeErr(M.PutRequest, '{"key":[300]}'),
      'json: cannot unmarshal number 300 into Go value of type uint8',
    )
    assert.equal(decodeErr(M.PutRequest, '{"key":["a"]}'), 'json: cannot unmarshal string into Go value of type uint8')
    // Both spellings of a field: the lowerCamel one is taken (jsonpb favours it), even when null.
    assert.equal(td.decode(decodeMessage<any>(M.RangeRequest, '{"rangeEnd":"Yg==","range_end":"Yw=="}').range_end), 'b')
    assert.equal(decodeMessage<any>(M.RangeRequest, '{"range_end":"Yw==","rangeEnd":null}').range_end.length, 0)
    // A oneof member is read after the other fields: its error comes after theirs.
    assert.equal(
      decodeErr(M.TxnRequest, '{"compare":[{"key":"YQ==","value":5,"range_end":7}]}'),
      'json: cannot unmarshal number into Go value of type []uint8',
    )
    assert.equal(
      decodeErr(M.TxnRequest, '{"compare":[{"key":"YQ==","value":"!!","range_end":7}]}'),
      'json: cannot unmarshal number into Go value of type []uint8',
    )
    // A key given twice keeps its last value, also when a number needs its text kept.
    assert.equal(
      decodeMessage<any>(M.CompactionRequest, '{"revision":"9","revision":9223372036854775807}').revision,
      2 ** 63,
    )
    // A RequestOp that sets two members (etcd's gateway keeps one at random) keeps the first, in field order; the
    // other is still decoded (its errors are reported).
    const two = decodeMessage<any>(
      M.TxnRequest,
      '{"success":[{"request_put":{"key":"YQ=="},"request_range":{"key":"Yg=="}}]}',
    ).success[0]
    assert.equal(td.decode(two.request_range.key), 'b')
    assert.equal(two.request_put, undefined)
    assert.equal(
      decodeErr(M.TxnRequest, '{"success":[{"request_range":{"key":"Yg=="},"request_put":5}]}'),
      'json: cannot unmarshal number into Go value of type map[string]json.RawMessage',
    )
    // A null element of a list of enums reads as 0.
    assert.deepEqual(decodeMessage<any>(M.WatchCreateRequest, '{"filters":[null,1]}').filters, [0, 1])
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
