import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { b64, eventually, post, unb64 } from '../support/index.js'
import { leaderIndex, startCluster, type TestCluster } from './helpers.js'

describe('a three-member cluster on loopback', () => {
  let c: TestCluster
  before(async () => {
    c = await startCluster(3)
  })
  after(async () => {
    await c?.close()
  })

  test('elects one leader and every member answers writes and linearizable reads', async () => {
    await eventually(() => leaderIndex(c), 30_000, 'a leader')
    for (let i = 0; i < 3; i++) {
      const put = await post(c.urls[i]!, '/v3/kv/put', { key: b64(`k${i}`), value: b64(`v${i}`) })
      assert.equal(put.status, 200, JSON.stringify(put.json))
    }
    for (let i = 0; i < 3; i++) {
      const r = await post(c.urls[i]!, '/v3/kv/range', { key: b64('k'), range_end: b64('l') })
      assert.equal(r.status, 200)
      assert.deepEqual(
        r.json.kvs.map((kv: any) => unb64(kv.value)),
        ['v0', 'v1', 'v2'],
        `member ${i}`,
      )
    }
    // Every member publishes its client URLs; the member list shows all three.
    const list = await eventually(
      async () => {
        const r = await post(c.urls[0]!, '/v3/cluster/member/list', {})
        return r.json.members.every((m: any) => m.clientURLs?.length === 1) ? r.json : undefined
      },
      5000,
      'published client URLs',
    )
    assert.equal(list.members.length, 3)
    assert.deepEqual(list.members.map((m: any) => m.name).sort(), ['m0', 'm1', 'm2'])
  })

  test('a watch on a follower sees writes made through another member', async () => {
    const li = (await eventually(() => leaderIndex(c)))!
    const fi = (li + 1) % 3
    const ac = new AbortController()
    const res = await fetch(c.urls[fi]! + '/v3/watch', {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: b64('w') } }),
      signal: ac.signal,
    })
    const reader = res.body!.getReader()
    let text = ''
    const read = async (n: number) => {
      while ((text.match(/\n/g)?.length ?? 0) < n) {
        const { value, done } = await reader.read()
        if (done) break
        text += new TextDecoder().decode(value)
      }
    }
    await read(1)
    await post(c.urls[li]!, '/v3/kv/put', { key: b64('w'), value: b64('seen') })
    await read(2)
    ac.abort()
    const ev = JSON.parse(text.split('\n')[1]!).result.events[0]
    assert.equal(unb64(ev.kv.value), 'seen')
  })

  test('leases: keepalive on a follower reaches the leader; timetolive agrees', async () => {
    const li = (await eventually(() => leaderIndex(c)))!
    const fi = (li + 2) % 3
    const g = await post(c.urls[fi]!, '/v3/lease/grant', { TTL: 30 })
    assert.equal(g.status, 200)
    const ka = await post(c.urls[fi]!, '/v3/lease/keepalive', { ID: g.json.ID })
    assert.equal(ka.json.result.TTL, '30')
    const ttl = await post(c.urls[fi]!, '/v3/lease/timetolive', { ID: g.json.ID })
    assert.ok(Number(ttl.json.TTL) > 25 && Number(ttl.json.TTL) <= 30, JSON.stringify(ttl.json))
  })

  test('the leader stops: a new one is elected and no acknowledged write is lost', async () => {
    const li = (await eventually(() => leaderIndex(c)))!
    const acked: string[] = []
    for (let i = 0; i < 20; i++) {
      const r = await post(c.urls[li]!, '/v3/kv/put', { key: b64(`f${i}`), value: b64('x') })
      if (r.status === 200) acked.push(`f${i}`)
    }
    const t0 = Date.now()
    await c.stop(li)
    const survivor = (li + 1) % 3
    await eventually(
      async () => {
        const r = await post(c.urls[survivor]!, '/v3/kv/put', { key: b64('after-failover'), value: b64('y') })
        return r.status === 200 ? true : undefined
      },
      10_000,
      'a write after fail-over',
    )
    const failoverMs = Date.now() - t0
    assert.ok(failoverMs < 3000, `fail-over took ${failoverMs} ms`)
    const r = await post(c.urls[survivor]!, '/v3/kv/range', { key: b64('f'), range_end: b64('g'), keys_only: true })
    assert.equal(Number(r.json.count), acked.length)
    // The stopped member restarts from its data dir and catches up.
    await c.start(li)
    await eventually(
      async () => {
        const rr = await post(c.urls[li]!, '/v3/kv/range', { key: b64('after-failover') })
        return rr.json.kvs?.length === 1 ? true : undefined
      },
      10_000,
      'the restarted member to catch up',
    )
  })

  test('peers without the cluster credential are refused', async () => {
    const r = await fetch(c.urls[0]! + '/raft', {
      headers: {
        upgrade: 'websocket',
        connection: 'upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        'x-edgecd-from': '1',
        'x-edgecd-cluster': '2',
        authorization: 'Bearer ' + '0'.repeat(64),
      },
    }).catch((e) => e)
    assert.ok(!(r instanceof Response) || r.status === 401, `status ${r instanceof Response ? r.status : r}`)
  })
})
