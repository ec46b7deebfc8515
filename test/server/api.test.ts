/**
 * The HTTP API of one in-process member, endpoint by endpoint (shared/etcd-api.md): KV, txn, compaction, leases
 * (keepalive stream included), legacy aliases and /v3beta, maintenance, cluster, /health, /version, /metrics, CORS,
 * 405/404, size limits, txn ops, bad input. Watch has its own file (watch.test.ts); quota and lease expiry are in
 * limits.test.ts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { decodeSavedSnapshot } from '../../src/etcdserver/saved-snapshot.js'
import { KvStore } from '../../src/kv/store.js'
import { type Answer, b64, eventually, get, post, unb64 } from '../support/index.js'
import { LineStream, notOnWorkerd, startTestMember, type TestMember } from './helpers.js'

let m: TestMember
before(async () => {
  m = await startTestMember()
})
after(async () => {
  await m?.stop()
})

const rev = (a: Answer): number => Number(a.json.header.revision)

function assertHeader(a: Answer, revision?: number): void {
  const h = a.json.header
  assert.deepEqual(
    Object.keys(h),
    revision === 0 ? ['cluster_id', 'member_id', 'raft_term'] : ['cluster_id', 'member_id', 'revision', 'raft_term'],
  )
  assert.match(h.cluster_id, /^\d+$/)
  assert.match(h.member_id, /^\d+$/)
  assert.match(h.raft_term, /^[1-9]\d*$/)
  if (revision !== undefined && revision !== 0) assert.equal(h.revision, String(revision))
}

function assertError(a: Answer, status: number, code: number, message: string): void {
  assert.equal(a.status, status, a.text)
  assert.equal(a.headers.get('content-type'), 'application/json')
  assert.equal(a.text, JSON.stringify({ error: message, message, code }))
}

describe('kv', () => {
  test('put: header with the new revision, prev_kv only when asked and present', async () => {
    const p1 = await post(m.url, '/v3/kv/put', { key: b64('k1'), value: b64('v1') })
    assert.equal(p1.status, 200)
    assert.equal(p1.headers.get('content-type'), 'application/json')
    assert.equal(p1.headers.get('grpc-metadata-content-type'), 'application/grpc')
    assert.deepEqual(Object.keys(p1.json), ['header'])
    assertHeader(p1, 2)
    const p2 = await post(m.url, '/v3/kv/put', { key: b64('k1'), value: b64('v2'), prev_kv: true })
    assertHeader(p2, 3)
    assert.deepEqual(p2.json.prev_kv, {
      key: b64('k1'),
      create_revision: '2',
      mod_revision: '2',
      version: '1',
      value: b64('v1'),
    })
    const p3 = await post(m.url, '/v3/kv/put', { key: b64('fresh'), value: b64('x'), prevKv: true })
    assert.equal(p3.json.prev_kv, undefined, 'no prev_kv for a new key')
    assertHeader(p3, 4)
  })

  test('range: hit, miss, prefix, from-key, limit/more, count_only, keys_only, sort, historical', async () => {
    for (const k of ['p/a', 'p/b', 'p/c']) await post(m.url, '/v3/kv/put', { key: b64(k), value: b64(`val-${k}`) })
    const cur = rev(await post(m.url, '/v3/kv/range', { key: b64('p/a') }))
    assert.equal(cur, 7)
    const hit = await post(m.url, '/v3/kv/range', { key: b64('k1') })
    assert.deepEqual(Object.keys(hit.json), ['header', 'kvs', 'count'])
    assert.deepEqual(Object.keys(hit.json.kvs[0]), ['key', 'create_revision', 'mod_revision', 'version', 'value'])
    assert.deepEqual(hit.json.kvs[0], {
      key: b64('k1'),
      create_revision: '2',
      mod_revision: '3',
      version: '2',
      value: b64('v2'),
    })
    assert.equal(hit.json.count, '1')
    const miss = await post(m.url, '/v3/kv/range', { key: b64('nope') })
    assert.deepEqual(Object.keys(miss.json), ['header'], 'a miss has no kvs and no count')
    const prefix = await post(m.url, '/v3/kv/range', { key: b64('p/'), range_end: b64('p0') })
    assert.deepEqual(
      prefix.json.kvs.map((kv: { key: string }) => unb64(kv.key)),
      ['p/a', 'p/b', 'p/c'],
    )
    const fromKey = await post(m.url, '/v3/kv/range', { key: b64('p/b'), range_end: 'AA==' })
    assert.deepEqual(
      fromKey.json.kvs.map((kv: { key: string }) => unb64(kv.key)),
      ['p/b', 'p/c'],
    )
    const limited = await post(m.url, '/v3/kv/range', { key: b64('p/'), range_end: b64('p0'), limit: 2 })
    assert.equal(limited.json.kvs.length, 2)
    assert.equal(limited.json.more, true)
    assert.equal(limited.json.count, '3')
    const count = await post(m.url, '/v3/kv/range', { key: 'AA==', range_end: 'AA==', count_only: true })
    assert.deepEqual(Object.keys(count.json), ['header', 'count'])
    assert.equal(count.json.count, '5')
    const keysOnly = await post(m.url, '/v3/kv/range', { key: b64('p/a'), keysOnly: true })
    assert.equal(keysOnly.json.kvs[0].value, undefined)
    const sorted = await post(m.url, '/v3/kv/range', {
      key: b64('p/'),
      range_end: b64('p0'),
      sort_order: 'DESCEND',
      sort_target: 'KEY',
    })
    assert.deepEqual(
      sorted.json.kvs.map((kv: { key: string }) => unb64(kv.key)),
      ['p/c', 'p/b', 'p/a'],
    )
    const byNumber = await post(m.url, '/v3/kv/range', {
      key: b64('p/'),
      range_end: b64('p0'),
      sort_order: 2,
      sort_target: 'MOD',
    })
    assert.deepEqual(
      byNumber.json.kvs.map((kv: { key: string }) => unb64(kv.key)),
      ['p/c', 'p/b', 'p/a'],
    )
    const old = await post(m.url, '/v3/kv/range', { key: b64('k1'), revision: 2 })
    assert.equal(old.json.kvs[0].value, b64('v1'))
    assertHeader(old, 7) // header.revision is the current revision even for a historical read
    const serial = await post(m.url, '/v3/kv/range', { key: b64('k1'), serializable: true })
    assert.equal(serial.json.kvs[0].value, b64('v2'))
    const future = await post(m.url, '/v3/kv/range', { key: b64('k1'), revision: 1000 })
    assertError(future, 400, 11, 'etcdserver: mvcc: required revision is a future revision')
  })

  test('request content type is ignored; int64 as string; lowerCamel names', async () => {
    for (const type of ['application/json', 'text/plain', 'application/x-www-form-urlencoded']) {
      const a = await post(
        m.url,
        '/v3/kv/range',
        { key: b64('p/'), rangeEnd: b64('p0'), limit: '1' },
        { headers: { 'content-type': type } },
      )
      assert.equal(a.status, 200)
      assert.equal(a.json.kvs.length, 1)
    }
  })

  test('deleterange: deleted + prev_kvs, a no-op delete does not bump the revision, recreate resets version', async () => {
    const before = rev(await post(m.url, '/v3/kv/range', { key: b64('x') }))
    const d = await post(m.url, '/v3/kv/deleterange', { key: b64('p/a'), range_end: b64('p/c'), prev_kv: true })
    assert.equal(d.status, 200)
    assertHeader(d, before + 1)
    assert.equal(d.json.deleted, '2')
    assert.deepEqual(
      d.json.prev_kvs.map((kv: { key: string }) => unb64(kv.key)),
      ['p/a', 'p/b'],
    )
    const none = await post(m.url, '/v3/kv/deleterange', { key: b64('p/a') })
    assert.deepEqual(Object.keys(none.json), ['header'], 'deleted omitted when 0')
    assertHeader(none, before + 1)
    const re = await post(m.url, '/v3/kv/put', { key: b64('p/a'), value: b64('again') })
    const r = await post(m.url, '/v3/kv/range', { key: b64('p/a') })
    assert.equal(r.json.kvs[0].version, '1')
    assert.equal(r.json.kvs[0].create_revision, String(rev(re)))
    assertError(await post(m.url, '/v3/kv/deleterange', {}), 400, 3, 'etcdserver: key is not provided')
  })

  test('txn: compare success/failure, all writes share one revision, ops see earlier ops, nested txn', async () => {
    const r0 = rev(await post(m.url, '/v3/kv/range', { key: b64('x') }))
    const ok = await post(m.url, '/v3/kv/txn', {
      compare: [{ key: b64('k1'), target: 'VALUE', value: b64('v2') }],
      success: [
        { request_put: { key: b64('t/1'), value: b64('a') } },
        { request_put: { key: b64('t/2'), value: b64('b') } },
        { request_range: { key: b64('t/1') } },
      ],
      failure: [{ request_put: { key: b64('t/fail'), value: b64('x') } }],
    })
    assert.equal(ok.status, 200)
    assertHeader(ok, r0 + 1)
    assert.equal(ok.json.succeeded, true)
    assert.deepEqual(ok.json.responses[0], { response_put: { header: { revision: String(r0 + 1) } } })
    assert.equal(ok.json.responses[2].response_range.kvs[0].value, b64('a'))
    const both = await post(m.url, '/v3/kv/range', { key: b64('t/'), range_end: b64('t0') })
    assert.deepEqual(
      both.json.kvs.map((kv: { mod_revision: string }) => kv.mod_revision),
      [String(r0 + 1), String(r0 + 1)],
    )
    const fail = await post(m.url, '/v3/kv/txn', {
      compare: [{ key: b64('k1'), target: 'VERSION', result: 'GREATER', version: 99 }],
      success: [{ request_put: { key: b64('t/never'), value: b64('x') } }],
      failure: [{ request_range: { key: b64('k1') } }],
    })
    assert.equal(fail.json.succeeded, undefined, 'succeeded omitted when false')
    assert.ok(fail.json.responses[0].response_range)
    assertHeader(fail, r0 + 1)
    const nested = await post(m.url, '/v3/kv/txn', {
      success: [{ request_txn: { success: [{ request_put: { key: b64('t/n'), value: b64('n') } }] } }],
    })
    assert.deepEqual(nested.json.responses[0].response_txn.header, {})
    assert.equal(nested.json.responses[0].response_txn.succeeded, true)
    assertHeader(nested, r0 + 2)
    assertError(
      await post(m.url, '/v3/kv/txn', {
        success: [{ request_put: { key: b64('d') } }, { request_put: { key: b64('d') } }],
      }),
      400,
      3,
      'etcdserver: duplicate key given in txn request',
    )
  })

  test('txn: 128 ops pass, 129 are refused', async () => {
    const ops = (n: number, p: string) =>
      Array.from({ length: n }, (_, i) => ({ request_put: { key: b64(`${p}${i}`), value: b64('v') } }))
    const ok = await post(m.url, '/v3/kv/txn', { success: ops(128, 'ops/a') })
    assert.equal(ok.status, 200)
    assert.equal(ok.json.responses.length, 128)
    assertError(
      await post(m.url, '/v3/kv/txn', { success: ops(129, 'ops/b') }),
      400,
      3,
      'etcdserver: too many operations in txn request',
    )
    const none = await post(m.url, '/v3/kv/range', { key: b64('ops/b'), range_end: b64('ops/c'), count_only: true })
    assert.equal(none.json.count, undefined, 'nothing of the refused txn was written')
  })

  test('compaction: older reads fail with code 11, the compact revision still reads, re-compaction fails', async () => {
    const cur = rev(await post(m.url, '/v3/kv/range', { key: b64('x') }))
    const c = await post(m.url, '/v3/kv/compaction', { revision: cur - 1, physical: true })
    assert.equal(c.status, 200)
    assert.deepEqual(Object.keys(c.json), ['header'])
    assertHeader(c, cur)
    assertError(
      await post(m.url, '/v3/kv/range', { key: b64('k1'), revision: cur - 2 }),
      400,
      11,
      'etcdserver: mvcc: required revision has been compacted',
    )
    assert.equal((await post(m.url, '/v3/kv/range', { key: b64('k1'), revision: cur - 1 })).status, 200)
    assertError(
      await post(m.url, '/v3/kv/compaction', { revision: cur - 1 }),
      400,
      11,
      'etcdserver: mvcc: required revision has been compacted',
    )
    assertError(
      await post(m.url, '/v3/kv/compaction', { revision: cur + 100 }),
      400,
      11,
      'etcdserver: mvcc: required revision is a future revision',
    )
  })

  test('validation errors: empty key, ignore_value on a missing key, unknown lease', async () => {
    assertError(await post(m.url, '/v3/kv/put', { value: b64('v') }), 400, 3, 'etcdserver: key is not provided')
    assertError(
      await post(m.url, '/v3/kv/put', { key: b64('missing'), ignore_value: true }),
      400,
      3,
      'etcdserver: key not found',
    )
    assertError(
      await post(m.url, '/v3/kv/put', { key: b64('k1'), value: b64('v'), ignore_value: true }),
      400,
      3,
      'etcdserver: value is provided',
    )
    assertError(
      await post(m.url, '/v3/kv/put', { key: b64('k1'), lease: 12345 }),
      404,
      5,
      'etcdserver: requested lease not found',
    )
  })
})

describe('leases', () => {
  test('grant (minimum TTL, chosen ID, duplicate), attach, timetolive with keys, leases, revoke deletes the keys', async () => {
    const g = await post(m.url, '/v3/lease/grant', { TTL: 0 })
    assert.equal(g.status, 200)
    assert.deepEqual(Object.keys(g.json), ['header', 'ID', 'TTL'])
    assert.equal(g.json.TTL, '2', 'TTL below the minimum becomes ceil(1.5 x election timeout)')
    assert.match(g.json.ID, /^[1-9]\d*$/)
    const chosen = await post(m.url, '/v3/lease/grant', { TTL: 60, ID: 4242 })
    assert.equal(chosen.json.ID, '4242')
    assert.equal(chosen.json.TTL, '60')
    assertError(await post(m.url, '/v3/lease/grant', { TTL: 60, ID: 4242 }), 412, 9, 'etcdserver: lease already exists')
    const r0 = rev(chosen)
    assertHeader(chosen, r0)
    await post(m.url, '/v3/kv/put', { key: b64('leased/1'), value: b64('x'), lease: '4242' })
    await post(m.url, '/v3/kv/put', { key: b64('leased/2'), value: b64('y'), lease: 4242 })
    const kv = await post(m.url, '/v3/kv/range', { key: b64('leased/1') })
    assert.equal(kv.json.kvs[0].lease, '4242')
    const ttl = await post(m.url, '/v3/lease/timetolive', { ID: 4242, keys: true })
    assert.deepEqual(Object.keys(ttl.json), ['header', 'ID', 'TTL', 'grantedTTL', 'keys'])
    assert.ok(Number(ttl.json.TTL) >= 58 && Number(ttl.json.TTL) <= 60, ttl.text)
    assert.equal(ttl.json.grantedTTL, '60')
    assert.deepEqual(ttl.json.keys, [b64('leased/1'), b64('leased/2')])
    const unknown = await post(m.url, '/v3/lease/timetolive', { ID: 999 })
    assert.equal(unknown.status, 200)
    assert.deepEqual(
      { ID: unknown.json.ID, TTL: unknown.json.TTL, keys: Object.keys(unknown.json) },
      { ID: '999', TTL: '-1', keys: ['header', 'ID', 'TTL'] },
    )
    const ls = await post(m.url, '/v3/lease/leases', {})
    assert.ok(ls.json.leases.some((l: { ID: string }) => l.ID === '4242'))
    assert.ok(ls.json.leases.some((l: { ID: string }) => l.ID === g.json.ID))
    const rv = await post(m.url, '/v3/lease/revoke', { ID: 4242 })
    assert.equal(rv.status, 200)
    assert.deepEqual(Object.keys(rv.json), ['header'])
    assertHeader(rv, r0 + 3) // two puts, then the revoke deleting both keys in one revision
    assert.equal(
      (await post(m.url, '/v3/kv/range', { key: b64('leased/'), range_end: b64('leased0'), count_only: true })).json
        .count,
      undefined,
    )
    assertError(await post(m.url, '/v3/lease/revoke', { ID: 4242 }), 404, 5, 'etcdserver: requested lease not found')
  })

  test('keepalive: a body of several {"ID"} answers one line each, then ends; unknown lease has no TTL', async () => {
    await post(m.url, '/v3/lease/grant', { TTL: 30, ID: 77 })
    const s = await LineStream.open(m.url, '/v3/lease/keepalive', '{"ID":77}{"ID":"77"}\n{"ID":78}')
    assert.equal(s.status, 200)
    const lines = (await s.rest()) as { result: { header: unknown; ID: string; TTL?: string } }[]
    assert.equal(lines.length, 3)
    assert.deepEqual(Object.keys(lines[0]!.result), ['header', 'ID', 'TTL'])
    assert.deepEqual(
      lines.map((l) => [l.result.ID, l.result.TTL]),
      [
        ['77', '30'],
        ['77', '30'],
        ['78', undefined],
      ],
    )
    const bad = await post(m.url, '/v3/lease/keepalive', '{"ID":"abc"}')
    assert.equal(bad.status, 500)
    assert.equal(bad.json.code, 2)
  })

  test("a lease's clock starts when its grant is applied: a timetolive a moment later answers TTL - 1, as etcd", {
    skip: notOnWorkerd('the lease clock is injected (nowMs), which a member in workerd does not take'),
  }, async () => {
    // etcd's lessor starts the clock in Grant on the leader, so a timetolive after a grant always reads a whole
    // second less than granted. Found by test/diff/random-json.test.ts: the clock used to start at the first reading.
    let clock = 2_000_000
    const fm = await startTestMember({}, { nowMs: () => clock })
    try {
      await eventually(
        async () => (await post(fm.url, '/v3/lease/grant', { TTL: 100, ID: 77 })).status === 200 || undefined,
        5000,
        'the member to serve',
      )
      clock += 1
      const t = await post(fm.url, '/v3/lease/timetolive', { ID: 77 })
      assert.equal(t.json.TTL, '99', t.text)
      assert.equal(t.json.grantedTTL, '100')
    } finally {
      await fm.stop()
    }
  })

  test('keepalive renews: the remaining TTL goes back to the granted TTL', {
    skip: notOnWorkerd('the lease clock is injected (nowMs), which a member in workerd does not take'),
  }, async () => {
    // The member's lease clock is injected: a second and a bit passes without sleeping.
    let clock = 1_000_000
    const fm = await startTestMember({}, { nowMs: () => clock })
    try {
      await eventually(
        async () => (await post(fm.url, '/v3/lease/grant', { TTL: 3, ID: 88 })).status === 200 || undefined,
        5000,
        'the member to serve',
      )
      // The grant starts the lease's clock as it is applied (as etcd's lessor on the primary); then 1.1 s pass.
      assert.equal((await post(fm.url, '/v3/lease/timetolive', { ID: 88 })).json.TTL, '3')
      clock += 1100
      const before = await post(fm.url, '/v3/lease/timetolive', { ID: 88 })
      assert.equal(before.json.TTL, '1', before.text) // 1.9 s left, in whole seconds as etcd
      const ka = await post(fm.url, '/v3/lease/keepalive', { ID: 88 })
      assert.equal(JSON.parse(ka.text.trim()).result.TTL, '3')
      const afterKa = await post(fm.url, '/v3/lease/timetolive', { ID: 88 })
      assert.equal(afterKa.json.TTL, '3', afterKa.text) // the clock has not moved since the keepalive
    } finally {
      await fm.stop()
    }
  })

  test('legacy aliases /v3/kv/lease/{revoke,timetolive,leases} and /v3beta', async () => {
    await post(m.url, '/v3beta/lease/grant', { TTL: 60, ID: 5001 })
    const t = await post(m.url, '/v3/kv/lease/timetolive', { ID: 5001 })
    assert.equal(t.json.grantedTTL, '60')
    const ls = await post(m.url, '/v3/kv/lease/leases', {})
    assert.ok(ls.json.leases.some((l: { ID: string }) => l.ID === '5001'))
    assert.equal((await post(m.url, '/v3/kv/lease/revoke', { ID: 5001 })).status, 200)
    assert.equal((await post(m.url, '/v3beta/lease/timetolive', { ID: 5001 })).json.TTL, '-1')
    const put = await post(m.url, '/v3beta/kv/put', { key: b64('beta'), value: b64('b') })
    assert.equal(put.status, 200)
    assert.equal((await post(m.url, '/v3beta/kv/range', { key: b64('beta') })).json.kvs[0].value, b64('b'))
    const ka = await post(m.url, '/v3beta/lease/keepalive', { ID: 5001 })
    assert.equal(ka.status, 200)
    assert.equal(JSON.parse(ka.text).result.ID, '5001')
    assert.equal((await post(m.url, '/v3alpha/kv/range', { key: b64('beta') })).status, 404)
  })
})

describe('maintenance and cluster', () => {
  test("status of an empty store: etcd 3.4's floor (dbSize 20480, dbSizeInUse 16384), never 0", async () => {
    const fresh = await startTestMember()
    try {
      const s = await post(fresh.url, '/v3/maintenance/status', {})
      assert.equal(s.json.dbSize, '20480')
      assert.equal(s.json.dbSizeInUse, '16384')
    } finally {
      await fresh.stop()
    }
  })
  test('status: version, sizes, leader is this member, raft indexes', async () => {
    const s = await post(m.url, '/v3/maintenance/status', {})
    assert.equal(s.status, 200)
    assert.deepEqual(Object.keys(s.json), [
      'header',
      'version',
      'dbSize',
      'leader',
      'raftIndex',
      'raftTerm',
      'raftAppliedIndex',
      'dbSizeInUse',
    ])
    assert.equal(s.json.version, '3.4.23')
    assert.equal(s.json.leader, s.json.header.member_id)
    assert.equal(s.json.raftTerm, s.json.header.raft_term)
    assert.ok(Number(s.json.raftIndex) >= rev(s), 'every write is a log entry')
    assert.ok(Number(s.json.dbSize) > 0)
  })

  test('alarm GET with no alarm is {}; hash; hashkv; hashkv at a revision', async () => {
    const a = await post(m.url, '/v3/maintenance/alarm', {})
    assert.equal(a.text, '{}', 'etcd 3.4 answers alarms without a header')
    const h1 = await post(m.url, '/v3/maintenance/hash', {})
    assert.equal(typeof h1.json.hash, 'number', 'uint32 is a JSON number')
    const kv1 = await post(m.url, '/v3/maintenance/hashkv', {})
    assert.equal(typeof kv1.json.hash, 'number')
    assert.match(kv1.json.compact_revision, /^-?\d+$/)
    const kv1again = await post(m.url, '/v3/maintenance/hashkv', { revision: rev(kv1) })
    assert.equal(kv1again.json.hash, kv1.json.hash, 'hashkv at the current revision = hashkv of now')
    await post(m.url, '/v3/kv/put', { key: b64('hash-change'), value: b64('x') })
    const kv2 = await post(m.url, '/v3/maintenance/hashkv', {})
    assert.notEqual(kv2.json.hash, kv1.json.hash)
    const kvOld = await post(m.url, '/v3/maintenance/hashkv', { revision: rev(kv1) })
    assert.equal(kvOld.json.hash, kv1.json.hash, 'hashkv at an older revision is stable')
    const h2 = await post(m.url, '/v3/maintenance/hash', {})
    assert.notEqual(h2.json.hash, h1.json.hash)
  })

  test('snapshot: a stream of {"result"} lines whose blobs restore the store', async () => {
    const s = await LineStream.open(m.url, '/v3/maintenance/snapshot', '{}')
    assert.equal(s.status, 200)
    const lines = (await s.rest()) as { result: { header: unknown; remaining_bytes?: string; blob: string } }[]
    assert.ok(lines.length >= 1)
    assert.equal(lines.at(-1)!.result.remaining_bytes, undefined, 'the last chunk has remaining_bytes 0 (omitted)')
    const bytes = Buffer.concat(lines.map((l) => Buffer.from(l.result.blob, 'base64')))
    if (lines.length > 1)
      assert.equal(
        Number(lines[0]!.result.remaining_bytes),
        bytes.length - Buffer.from(lines[0]!.result.blob, 'base64').length,
      )
    const saved = decodeSavedSnapshot(new Uint8Array(bytes))
    assert.equal(saved.auth?.enabled, false, 'the auth store rides along')
    const restored = KvStore.restore(saved.kv)
    const live = await post(m.url, '/v3/maintenance/hashkv', {})
    assert.equal(restored.revision, rev(live))
    assert.equal(restored.hashKV(0).hash, live.json.hash, 'the snapshot holds exactly the live store')
  })

  test('member list: one member, header without revision', async () => {
    const l = await post(m.url, '/v3/cluster/member/list', {})
    assert.equal(l.status, 200)
    assertHeader(l, 0)
    assert.equal(l.json.members.length, 1)
    assert.deepEqual(Object.keys(l.json.members[0]), ['ID', 'name', 'peerURLs', 'clientURLs'])
    assert.equal(l.json.members[0].ID, l.json.header.member_id)
    assert.deepEqual(l.json.members[0].clientURLs, [m.url])
  })
})

describe('transport', () => {
  test('/health, /version', async () => {
    const h = await get(m.url, '/health')
    assert.equal(h.status, 200)
    assert.equal(h.text, '{"health":"true"}')
    const v = await get(m.url, '/version')
    assert.deepEqual(v.json, { etcdserver: '3.4.23', etcdcluster: '3.4.0' })
  })

  test("/metrics: Prometheus text under etcd's names: gRPC calls by method and code, raft and mvcc gauges", async () => {
    const count = (text: string, method: string, code: string) =>
      Number(
        new RegExp(
          `^grpc_server_handled_total\\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="${method}",grpc_code="${code}"\\} (\\d+)$`,
          'm',
        ).exec(text)?.[1] ?? 0,
      )
    const before = await get(m.url, '/metrics')
    assert.equal(before.status, 200)
    assert.match(before.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    await post(m.url, '/v3/kv/put', { key: b64('metric'), value: b64('1') })
    await post(m.url, '/v3/kv/put', { key: b64('metric'), value: b64('2') })
    await post(m.url, '/v3/kv/put', { value: b64('no key') })
    const r = await post(m.url, '/v3/kv/range', { key: b64('metric') })
    const after = (await get(m.url, '/metrics')).text
    assert.equal(count(after, 'Put', 'OK') - count(before.text, 'Put', 'OK'), 2)
    assert.equal(count(after, 'Put', 'InvalidArgument') - count(before.text, 'Put', 'InvalidArgument'), 1)
    assert.equal(count(after, 'Range', 'OK') - count(before.text, 'Range', 'OK'), 1)
    assert.match(after, /^# TYPE grpc_server_handled_total counter$/m)
    assert.match(
      after,
      /^grpc_server_handling_seconds_count\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"\} \d+$/m,
    )
    assert.match(after, /^etcd_server_has_leader 1$/m)
    assert.match(after, /^etcd_server_is_leader 1$/m)
    assert.match(after, new RegExp(`^edgecd_raft_term ${r.json.header.raft_term}$`, 'm'))
    assert.match(after, new RegExp(`^etcd_debugging_mvcc_current_revision ${rev(r)}$`, 'm'))
    assert.match(after, /^edgecd_raft_applied_index \d+$/m)
    // Every sample line is `name{labels} value` or `name value`.
    for (const line of after.split('\n'))
      if (line && !line.startsWith('#')) assert.match(line, /^[a-z_]+(\{[^}]*\})? -?[\d.e+-]+$|^.* (\+Inf|NaN)$/, line)
  })

  test('CORS headers on success, error, 404 and stream responses; OPTIONS is 200 with no body', {
    skip: notOnWorkerd("workerd's HTTP server sends no Content-Length: 0 on an empty OPTIONS answer"),
  }, async () => {
    const cors = (a: { headers: Headers }) => {
      assert.equal(a.headers.get('access-control-allow-origin'), '*')
      assert.equal(a.headers.get('access-control-allow-methods'), 'POST, GET, OPTIONS, PUT, DELETE')
      assert.equal(a.headers.get('access-control-allow-headers'), 'accept, content-type, authorization')
    }
    cors(await post(m.url, '/v3/kv/range', { key: b64('k1') }))
    cors(await post(m.url, '/v3/kv/range', 'garbage'))
    cors(await post(m.url, '/v3/kv/nothing', {}))
    cors(await post(m.url, '/v3/lease/keepalive', { ID: 1 }))
    const o = await get(m.url, '/v3/kv/put', 'OPTIONS')
    assert.equal(o.status, 200)
    assert.equal(o.headers.get('content-length'), '0')
    assert.equal(o.text, '')
    cors(o)
  })

  test('405 on GET of an RPC path, 404 for unknown /v3 paths, Go mux 404 elsewhere', async () => {
    for (const p of ['/v3/kv/range', '/v3/kv/put', '/v3/lease/grant', '/v3beta/kv/txn', '/v3/maintenance/status']) {
      const a = await get(m.url, p)
      assert.equal(a.status, 405, p)
      assert.equal(a.text, 'Method Not Allowed\n')
      assert.equal(a.headers.get('content-type'), 'text/plain; charset=utf-8')
    }
    const nf = await post(m.url, '/v3/kv/nope', {})
    assert.equal(nf.status, 404)
    assert.equal(nf.text, 'Not Found\n')
    const alpha = await post(m.url, '/v3alpha/kv/range', {})
    assert.equal(alpha.status, 404)
    assert.equal(alpha.text, '404 page not found\n')
  })

  test('a message over 2 MiB is 429 "received message larger than max" (its protobuf length, as etcd)', async () => {
    const body = JSON.stringify({ key: b64('big'), value: Buffer.alloc(2 * 1024 * 1024).toString('base64') })
    const a = await post(m.url, '/v3/kv/put', body)
    assertError(a, 429, 8, 'grpc: received message larger than max (2097162 vs. 2097152)')
    assert.equal((await post(m.url, '/v3/kv/range', { key: b64('big') })).json.kvs, undefined)
  })

  test('after a 429 the connection is closed (not reused half-drained): the next large requests still work', {
    skip: notOnWorkerd('workerd owns the connection: a Worker cannot send Connection: close'),
  }, async () => {
    // Regression: the 429 said keep-alive while the server dropped the socket 500 ms later, mid-request.
    // A body past 3 x 2 MiB is refused unread.
    const big = JSON.stringify({ key: b64('big'), value: 'A'.repeat(6 * 1024 * 1024 + 4) })
    const a = await post(m.url, '/v3/kv/put', big)
    assert.equal(a.status, 429)
    assert.equal(a.headers.get('connection'), 'close')
    const value = Buffer.alloc(1024 * 1024, 7).toString('base64')
    for (let i = 0; i < 3; i++) assert.equal((await post(m.url, '/v3/kv/put', { key: b64('mib'), value })).status, 200)
    assert.equal((await post(m.url, '/v3/kv/range', { key: b64('mib') })).json.kvs[0].value, value)
    await post(m.url, '/v3/kv/deleterange', { key: b64('mib') })
  })

  test('bad input never crashes the member', async () => {
    const garbage = [
      '',
      'null',
      '[]',
      '"str"',
      '{',
      '{"key":',
      'abc',
      '{"key":5}',
      '{"key":"@@@"}',
      '{"key":"Zm9vYg"}',
      '{"key":"YQ==","limit":1.5}',
      '{"key":"YQ==","limit":"1e2"}',
      '{"key":"YQ==","limit":99999999999999999999}',
      '{"key":"YQ==","serializable":"true"}',
      '{"key":"YQ==","sort_order":"BOGUS"}',
      '{"key":{"a":1}}',
      '{"key":["YQ=="]}',
      '\u0000\u0001\u0002',
      '{"compare":5}',
      '{"success":[{"request_put":5}]}',
      '{"success":[{"request_txn":{"success":[{"request_txn":null}]}}]}',
      '{"ID":"x"}',
      '{"TTL":-1}',
      '{"TTL":"99999999999999"}',
      '{"revision":-5}',
      '{"action":"BOGUS"}',
      '{"action":7,"alarm":9}',
      '{"create_request":5}',
      '{"key":"YQ==","value":"' + '\\u'.repeat(50) + '"}',
      '{'.repeat(10_000),
      '['.repeat(10_000) + ']'.repeat(10_000),
    ]
    const paths = [
      '/v3/kv/range',
      '/v3/kv/put',
      '/v3/kv/deleterange',
      '/v3/kv/txn',
      '/v3/kv/compaction',
      '/v3/lease/grant',
      '/v3/lease/revoke',
      '/v3/lease/timetolive',
      '/v3/lease/keepalive',
      '/v3/maintenance/alarm',
      '/v3/maintenance/hashkv',
      '/v3/watch',
    ]
    for (const p of paths) {
      for (const g of garbage) {
        const r = await fetch(m.url + p, { method: 'POST', body: g })
        assert.ok(
          r.status < 500 || (r.status === 500 && (p === '/v3/watch' || p === '/v3/lease/keepalive')),
          `${p} ${g.slice(0, 40)} -> ${r.status}`,
        )
        await r.body?.cancel()
      }
    }
    const ok = await post(m.url, '/v3/kv/put', { key: b64('after-garbage'), value: b64('fine') })
    assert.equal(ok.status, 200)
    assert.equal((await post(m.url, '/v3/kv/range', { key: b64('after-garbage') })).json.kvs[0].value, b64('fine'))
    assert.equal((await get(m.url, '/health')).status, 200)
  })
})
