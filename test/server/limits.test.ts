/**
 * Limits a user meets, each on a member started with a small setting: --max-request-bytes, --max-watchers,
 * --max-watch-streams, --quota-backend-bytes (the NOSPACE alarm and its way out), and lease expiry in real time.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { b64, eventually, post } from '../support/index.js'
import { LineStream, startTestMember, type TestMember, WsWatch } from './helpers.js'

const rev = (a: { json: { header: { revision: string } } }) => Number(a.json.header.revision)

describe('small --max-request-bytes, --max-watchers, --max-watch-streams; lease expiry', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ maxRequestBytes: 8192, maxWatchers: 3, maxWatchStreams: 2 })
  })
  after(async () => {
    await m?.stop()
  })

  test('a write larger than --max-request-bytes is 400 "request is too large"; the message limit is that + 512 KiB', async () => {
    const ok = await post(m.url, '/v3/kv/put', { key: b64('small'), value: Buffer.alloc(4096).toString('base64') })
    assert.equal(ok.status, 200)
    const big = await post(m.url, '/v3/kv/put', { key: b64('large'), value: Buffer.alloc(10_000).toString('base64') })
    assert.equal(big.status, 400)
    assert.equal(
      big.text,
      '{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}',
    )
    const txn = await post(m.url, '/v3/kv/txn', {
      success: [1, 2, 3].map((i) => ({
        request_put: { key: b64(`t${i}`), value: Buffer.alloc(3000).toString('base64') },
      })),
    })
    assert.equal(txn.json?.message, 'etcdserver: request is too large')
    assert.equal((await post(m.url, '/v3/kv/range', { key: b64('large') })).json.kvs, undefined)
    // gRPC's limit is on the protobuf message (as etcd): a 532,481-byte value makes a 532,491-byte PutRequest.
    const value = Buffer.alloc(8192 + 512 * 1024 + 1).toString('base64')
    const huge = await post(m.url, '/v3/kv/put', { key: b64('huge'), value })
    assert.equal(huge.status, 429)
    assert.equal(huge.json.message, `grpc: received message larger than max (532491 vs. ${8192 + 512 * 1024})`)
    // A body past three times that limit is refused unread, measured by its length.
    const body = JSON.stringify({ key: b64('huge'), value: 'A'.repeat(3 * (8192 + 512 * 1024)) })
    const unread = await post(m.url, '/v3/kv/put', body)
    assert.equal(unread.status, 429)
    assert.equal(
      unread.json.message,
      `grpc: received message larger than max (${body.length} vs. ${8192 + 512 * 1024})`,
    )
  })

  test('--max-watchers: the watcher past the limit is refused; --max-watch-streams: the stream past it is 429', async () => {
    const s1 = await LineStream.open(
      m.url,
      '/v3/watch',
      ['a', 'b', 'c', 'd'].map((k) => JSON.stringify({ create_request: { key: b64(k) } })).join(''),
    )
    const answers = []
    for (let i = 0; i < 4; i++) answers.push((await s1.next()).result)
    assert.deepEqual(
      answers.slice(0, 3).map((a) => a.created),
      [true, true, true],
    )
    assert.equal(answers[3].canceled, true, JSON.stringify(answers[3]))
    assert.equal(answers[3].watch_id, '-1')
    assert.match(answers[3].cancel_reason, /too many watchers/)
    const ws = await WsWatch.open(m.url)
    const third = await post(m.url, '/v3/watch', JSON.stringify({ create_request: { key: b64('x') } }))
    assert.equal(third.status, 429)
    assert.equal(third.json.message, 'etcdserver: too many watch streams')
    await assert.rejects(WsWatch.open(m.url), /429/)
    s1.close()
    await ws.close()
    const again = await eventually(
      async () => {
        const s = await LineStream.open(m.url, '/v3/watch', JSON.stringify({ create_request: { key: b64('x') } }))
        if (s.status === 200) return s
        s.close()
        return undefined
      },
      5000,
      'a stream slot frees up',
    )
    assert.equal((await again.next()).result.created, true)
    again.close()
  })

  test('a lease with TTL 2 expires: its keys are deleted in one revision about 2-2.5 s after the grant', async () => {
    const g = await post(m.url, '/v3/lease/grant', { TTL: 2 })
    const t0 = Date.now()
    const ID = g.json.ID
    await post(m.url, '/v3/kv/put', { key: b64('exp/1'), value: b64('x'), lease: ID })
    const r = rev(await post(m.url, '/v3/kv/put', { key: b64('exp/2'), value: b64('y'), lease: ID }))
    const w = await LineStream.open(
      m.url,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('exp/'), range_end: b64('exp0') } }),
    )
    await w.next()
    const gone = await eventually(
      async () => {
        const a = await post(m.url, '/v3/kv/range', { key: b64('exp/'), range_end: b64('exp0'), count_only: true })
        return a.json.count === undefined ? Date.now() - t0 : undefined
      },
      6000,
      'the leased keys to vanish',
      50,
    )
    assert.ok(gone >= 1900 && gone <= 4000, `expired after ${gone} ms`)
    const ev = (await w.next()).result
    assert.equal(ev.header.revision, String(r + 1), 'one revision for the whole revoke')
    assert.deepEqual(
      ev.events.map((e: { type: string }) => e.type),
      ['DELETE', 'DELETE'],
    )
    w.close()
    assert.equal((await post(m.url, '/v3/lease/timetolive', { ID })).json.TTL, '-1')
    const ka = await post(m.url, '/v3/lease/keepalive', { ID })
    assert.equal(JSON.parse(ka.text).result.TTL, undefined, 'keepalive of an expired lease answers TTL 0')
  })
})

describe('--quota-backend-bytes: NOSPACE alarm', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ quotaBackendBytes: 6000 })
  })
  after(async () => {
    await m?.stop()
  })

  test('writes past the quota raise NOSPACE; reads, deletes and compaction still work; disarm after freeing space', async () => {
    const value = Buffer.alloc(1000, 1).toString('base64')
    let refused: Awaited<ReturnType<typeof post>> | undefined
    let written = 0
    for (let i = 0; i < 20 && !refused; i++) {
      const a = await post(m.url, '/v3/kv/put', { key: b64(`q/${i}`), value })
      if (a.status === 200) written++
      else refused = a
    }
    assert.ok(refused, 'the quota was reached')
    assert.ok(written >= 3 && written <= 6, `${written} puts fit in 6000 bytes`)
    assert.equal(refused.status, 429)
    assert.equal(
      refused.text,
      '{"error":"etcdserver: mvcc: database space exceeded","message":"etcdserver: mvcc: database space exceeded","code":8}',
    )
    const alarms = await post(m.url, '/v3/maintenance/alarm', { action: 'GET' })
    assert.equal(alarms.json.header, undefined)
    assert.equal(
      (await post(m.url, '/v3/maintenance/alarm', { action: 'GET', alarm: 'CORRUPT' })).text,
      '{}',
      'GET filters by alarm type',
    )
    assert.deepEqual(
      (await post(m.url, '/v3/maintenance/alarm', { action: 'GET', memberID: '12345' })).json.alarms,
      [{ alarm: 'NOSPACE' }],
      'not by member',
    )
    // Raised by apply on every member alike, so recorded under member 0, which the gateway omits (docs/kv.md).
    assert.deepEqual(alarms.json.alarms, [{ alarm: 'NOSPACE' }])
    const status = await post(m.url, '/v3/maintenance/status', {})
    assert.deepEqual(status.json.errors?.length, 1)
    assert.match(status.json.errors[0], /alarm:NOSPACE/)
    // While the alarm is active even a tiny put, a txn with a put and a lease grant are refused...
    assert.equal((await post(m.url, '/v3/kv/put', { key: b64('tiny'), value: b64('t') })).status, 429)
    assert.equal((await post(m.url, '/v3/kv/txn', { success: [{ request_put: { key: b64('tiny') } }] })).status, 429)
    assert.equal((await post(m.url, '/v3/lease/grant', { TTL: 10 })).status, 429)
    // ...but reads, deletes and compaction work.
    const r = await post(m.url, '/v3/kv/range', { key: b64('q/'), range_end: b64('q0'), count_only: true })
    assert.equal(r.json.count, String(written))
    const d = await post(m.url, '/v3/kv/deleterange', { key: b64('q/'), range_end: b64('q0') })
    assert.equal(d.json.deleted, String(written))
    assert.equal((await post(m.url, '/v3/kv/compaction', { revision: rev(d) })).status, 200)
    assert.equal(
      (await post(m.url, '/v3/kv/put', { key: b64('tiny'), value: b64('t') })).status,
      429,
      'still refused until disarmed',
    )
    const dis = await post(m.url, '/v3/maintenance/alarm', { action: 'DEACTIVATE', memberID: '0', alarm: 'NOSPACE' })
    assert.equal(dis.status, 200)
    assert.deepEqual(dis.json, { alarms: [{ alarm: 'NOSPACE' }] }, 'DEACTIVATE lists what it deactivated')
    assert.equal((await post(m.url, '/v3/maintenance/alarm', {})).text, '{}')
    assert.equal(
      (await post(m.url, '/v3/maintenance/alarm', { action: 'DEACTIVATE', memberID: '0', alarm: 'NOSPACE' })).text,
      '{}',
    )
    const ok = await post(m.url, '/v3/kv/put', { key: b64('tiny'), value: b64('t') })
    assert.equal(ok.status, 200, ok.text)
    assert.equal((await post(m.url, '/v3/maintenance/status', {})).json.errors, undefined)
  })
})
