/** The client against one in-process member: KV, txn, leases, watch, errors, status, member list. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Client, Compare, EtcdClientError, Op } from '../../src/client/index.js'
import { type RestartableMember, startMember, testClient, within } from './helpers.js'

describe('client: one member', () => {
  let m: RestartableMember
  let c: Client
  before(async () => {
    m = await startMember()
    c = testClient([m.url])
  })
  after(async () => {
    c.close()
    await m.close()
  })

  test('put, get, range options, delete', async () => {
    const p = await c.put('a/1', 'one')
    assert.ok(p.header.revision > 0)
    await c.put('a/2', 'two')
    await c.put('a/3', new Uint8Array([0xff, 0]))
    await c.put('b', 'bee')
    const kv = await c.get('a/1')
    assert.equal(kv?.value, 'one')
    assert.equal(kv?.version, 1)
    assert.equal(await c.get('missing'), undefined)
    const pre = await c.getPrefix('a/')
    assert.deepEqual(
      pre.kvs.map((k) => k.key),
      ['a/1', 'a/2', 'a/3'],
    )
    assert.deepEqual([...pre.kvs[2]!.valueBytes], [0xff, 0])
    assert.equal(pre.count, 3)
    const lim = await c.range('a/', { prefix: true, limit: 2, sortOrder: 'DESCEND' })
    assert.deepEqual(
      lim.kvs.map((k) => k.key),
      ['a/3', 'a/2'],
    )
    assert.equal(lim.more, true)
    assert.equal((await c.range('a/', { prefix: true, countOnly: true })).count, 3)
    assert.equal((await c.range('a/1', { keysOnly: true })).kvs[0]!.value, '')
    const from = await c.range('a/3', { fromKey: true })
    assert.deepEqual(
      from.kvs.map((k) => k.key),
      ['a/3', 'b'],
    )
    const old = await c.get('a/1', { revision: p.header.revision })
    assert.equal(old?.value, 'one')
    const all = await c.range('', { prefix: true })
    assert.equal(all.count, 4)
    const d = await c.delete('a/', { prefix: true, prevKv: true })
    assert.equal(d.deleted, 3)
    assert.equal(d.prevKvs.length, 3)
    const prev = await c.put('b', 'bee2', { prevKv: true })
    assert.equal(prev.prevKv?.value, 'bee')
  })

  test('txn builder: compare, then, else', async () => {
    await c.put('t', '1')
    const ok = await c
      .txn()
      .if(Compare.value('t', '=', '1'))
      .then(Op.put('t', '2'), Op.get('t'))
      .else(Op.get('t'))
      .commit()
    assert.equal(ok.succeeded, true)
    assert.equal(ok.responses[0]!.type, 'put')
    const r = ok.responses[1]!
    assert.ok(r.type === 'range' && r.kvs[0]!.value === '2')
    const no = await c
      .txn()
      .if(Compare.version('t', '>', 5))
      .then(Op.delete('t'))
      .else(Op.get('t'))
      .commit()
    assert.equal(no.succeeded, false)
    assert.equal(no.responses[0]!.type, 'range')
    await assert.rejects(async () => {
      await (c.txn().if(Compare.createRevision('t', '>', 0)) as unknown as Promise<unknown>)
    }, /call .commit/)
  })

  test('errors carry etcd code and message', async () => {
    const e = await c.put('', 'x').catch((err) => err)
    assert.ok(e instanceof EtcdClientError)
    assert.equal(e.code, 'ERR_SERVER')
    assert.equal(e.grpcCode, 3)
    assert.equal(e.message, 'etcdserver: key is not provided')
    const l = await c.put('k', 'v', { lease: '12345' }).catch((err) => err)
    assert.equal(l.grpcCode, 5)
    assert.equal(l.message, 'etcdserver: requested lease not found')
  })

  test('leases: grant, keepAliveOnce, timeToLive, list, keepAlive, revoke', async () => {
    const g = await c.lease.grant(5)
    assert.match(g.id, /^\d+$/)
    assert.equal(g.ttl, 5)
    await c.put('leased', 'x', { lease: g.id })
    const ttl = await c.lease.timeToLive(g.id, { keys: true })
    assert.equal(ttl.grantedTtl, 5)
    assert.deepEqual(ttl.keys, ['leased'])
    assert.ok((await c.lease.list()).leases.includes(g.id))
    assert.equal((await c.lease.keepAliveOnce(g.id)).ttl, 5)
    const ka = await c.lease.keepAlive(g.id, { intervalMs: 100 })
    let renewals = 0
    ka.onRenew = () => renewals++
    // Wait (bounded) for two renewals rather than a fixed sleep that a loaded machine may not honour.
    const deadline = Date.now() + 10_000
    while (renewals < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    ka.stop()
    assert.equal(await ka.done, undefined)
    assert.ok(renewals >= 2, `renewals ${renewals}`)
    await c.lease.revoke(g.id)
    assert.equal(await c.get('leased'), undefined)
    assert.equal((await c.lease.timeToLive(g.id)).ttl, -1)
    const e = await c.lease.keepAliveOnce(g.id).catch((err) => err)
    assert.equal(e.grpcCode, 5)
  })

  test('watch: events, prevKv, filters, startRevision, compacted error', async () => {
    const w = c.watch({ prefix: 'w/' }, { prevKv: true })
    await within(30_000, w.ready, 'watch ready')
    const p1 = await c.put('w/1', 'a')
    await c.put('w/1', 'b')
    await c.delete('w/1')
    const got: string[] = []
    for await (const e of w.events()) {
      got.push(`${e.type} ${e.kv.key} ${e.kv.value} ${e.prevKv?.value ?? '-'}`)
      if (got.length === 3) break
    }
    assert.deepEqual(got, ['PUT w/1 a -', 'PUT w/1 b a', 'DELETE w/1  b'])
    const h = c.watch('w/1', { startRevision: p1.header.revision, filters: ['NODELETE'] })
    const r = await within(30_000, h.next(), 'history')
    assert.deepEqual(
      r!.events.map((e) => e.kv.value),
      ['a', 'b'],
    )
    h.cancel()
    const now = (await c.put('w/2', 'z')).header.revision
    await c.compact(now)
    const old = c.watch({ prefix: 'w/' }, { startRevision: p1.header.revision })
    const err = await within(30_000, old.next(), 'compacted').catch((e) => e)
    assert.ok(err instanceof EtcdClientError)
    assert.equal(err.code, 'ERR_COMPACTED')
    assert.equal(err.grpcCode, 11)
    assert.equal(err.message, 'etcdserver: mvcc: required revision has been compacted')
    assert.equal(err.compactRevision, now)
  })

  test('status and member list', async () => {
    const s = await c.status()
    assert.equal(s.version, '3.4.23')
    assert.equal(s.leader, s.header.memberId)
    const ml = await c.member.list()
    assert.equal(ml.members.length, 1)
    assert.equal(ml.members[0]!.clientUrls[0], m.url)
  })
})
