/**
 * Issue 17, finding 4 (etcd's CVE-2023-32082 and its lease checks): with auth on, no key name attached to a lease is
 * listed to a caller without READ on it (timetolive with keys), lease ids are not listed to a caller without a token
 * or without READ on every leased key (etcd's checkLeaseLeases), and a put may not attach a lease that holds keys the
 * user cannot write (etcd's checkLeasePuts), neither alone nor inside a txn.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type AuthFixture, authFixture, b64, call } from '../auth/helpers.js'

describe('auth on every lease path (issue 17, finding 4)', () => {
  let f: AuthFixture & { url: string }
  let lease: string
  before(async () => {
    f = await authFixture()
    // Root attaches a key alice may not read (b/secret) and one she may (app/x) to a lease.
    const g = await call(f.url, '/v3/lease/grant', { TTL: 600 }, f.root)
    assert.equal(g.status, 200, g.text)
    lease = g.json.ID
    for (const k of ['b/secret', 'app/x'])
      assert.equal((await call(f.url, '/v3/kv/put', { key: b64(k), value: b64('v'), lease }, f.root)).status, 200)
  })
  after(async () => {
    await f.m.stop()
  })

  test('timetolive with keys: names only to a caller who may read every one of them', async () => {
    const denied = await call(f.url, '/v3/lease/timetolive', { ID: lease, keys: true }, f.alice)
    assert.equal(denied.status, 403, denied.text)
    assert.equal(denied.json.message, 'etcdserver: permission denied')
    assert.doesNotMatch(denied.text, /secret|YI9zZWNyZXQ/)
    const anonymous = await call(f.url, '/v3/lease/timetolive', { ID: lease, keys: true })
    assert.equal(anonymous.status, 400, anonymous.text)
    assert.equal(anonymous.json.message, 'etcdserver: user name is empty')
    assert.doesNotMatch(anonymous.text, /YI9zZWNyZXQ|Yi9zZWNyZXQ/)
    const rooted = await call(f.url, '/v3/lease/timetolive', { ID: lease, keys: true }, f.root)
    assert.equal(rooted.status, 200, rooted.text)
    assert.deepEqual(rooted.json.keys, [b64('app/x'), b64('b/secret')])
    // Without keys there is nothing to leak: etcd 3.4 answers the TTL to anyone.
    const ttl = await call(f.url, '/v3/lease/timetolive', { ID: lease }, f.alice)
    assert.equal(ttl.status, 200, ttl.text)
    assert.equal(ttl.json.keys, undefined)
  })

  test('lease/leases: a token and READ on every leased key', async () => {
    const anonymous = await call(f.url, '/v3/lease/leases', {})
    assert.equal(anonymous.status, 400, anonymous.text)
    assert.equal(anonymous.json.message, 'etcdserver: user name is empty')
    const denied = await call(f.url, '/v3/lease/leases', {}, f.alice)
    assert.equal(denied.status, 403, denied.text)
    const rooted = await call(f.url, '/v3/lease/leases', {}, f.root)
    assert.equal(rooted.status, 200)
    assert.deepEqual(
      rooted.json.leases.map((l: { ID: string }) => l.ID),
      [lease],
    )
  })

  test('put with a lease that holds keys the user cannot write: permission denied (alone and in a txn)', async () => {
    const put = await call(f.url, '/v3/kv/put', { key: b64('app/mine'), value: b64('1'), lease }, f.alice)
    assert.equal(put.status, 403, put.text)
    const txn = await call(
      f.url,
      '/v3/kv/txn',
      { success: [{ request_put: { key: b64('app/mine'), value: b64('1'), lease } }] },
      f.alice,
    )
    assert.equal(txn.status, 403, txn.text)
    const got = await call(f.url, '/v3/kv/range', { key: b64('app/mine') }, f.root)
    assert.equal(got.json.kvs, undefined, 'nothing was written')
    // A lease of her own (only her keys) is fine.
    const own = await call(f.url, '/v3/lease/grant', { TTL: 600 }, f.alice)
    const ok = await call(f.url, '/v3/kv/put', { key: b64('app/mine'), value: b64('1'), lease: own.json.ID }, f.alice)
    assert.equal(ok.status, 200, ok.text)
    const mine = await call(f.url, '/v3/lease/timetolive', { ID: own.json.ID, keys: true }, f.alice)
    assert.deepEqual(mine.json.keys, [b64('app/mine')])
  })
})
