/**
 * Faults seen by gRPC clients (the `etcd3` npm client) of a three-member cluster: a watch stream and a lease
 * keep-alive stream held on a follower survive the leader's death without losing or repeating events, and a client
 * given every endpoint goes on working when the member it used is stopped.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Etcd3, type IKeyValue } from 'etcd3'
import { startCluster, type TestCluster } from '../cluster/helpers.js'

async function eventually<T>(f: () => T | Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      const v = await f()
      if (v) return v
    } catch {}
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function status(url: string): Promise<{ leader: string; self: string }> {
  const r = await fetch(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}' })
  const j = (await r.json()) as { leader?: string; header: { member_id: string } }
  return { leader: j.leader ?? '', self: j.header.member_id }
}

describe('gRPC clients through faults (three members)', () => {
  let c: TestCluster
  before(async () => {
    c = await startCluster(3)
  })
  after(async () => {
    await c?.close()
  })

  test('a watch and a keep-alive on a follower survive the leader being stopped; no event lost or repeated', async () => {
    const leaderId = await eventually(async () => (await status(c.urls[0]!)).leader)
    const ids = await Promise.all(c.urls.map(async (u) => (await status(u)).self))
    const leaderIdx = ids.indexOf(leaderId)
    const followerIdx = leaderIdx === 0 ? 1 : 0
    const client = new Etcd3({ hosts: [c.urls[followerIdx]!] })
    try {
      const seen: string[] = []
      const w = await client.watch().key('fault/k').create()
      w.on('put', (kv: IKeyValue) => seen.push(kv.value.toString()))
      // Renewed every TTL/3 by the client (2 s); it must not lapse across the election. 6 s rather than 2 s: a
      // keep-alive delayed past the TTL on a loaded machine (or the client's own TTL-long reply timeout) lapsed it.
      const ttl = 6
      const lease = client.lease(ttl)
      await lease.put('fault/leased').value('v')
      await client.put('fault/k').value('1')
      await eventually(() => seen.length === 1)

      await c.stop(leaderIdx)
      await eventually(async () => {
        const s = await status(c.urls[followerIdx]!)
        return s.leader !== '' && s.leader !== leaderId
      })
      const electedAt = Date.now()
      await eventually(async () => {
        await client.put('fault/k').value('2')
        return true
      })
      await client.put('fault/k').value('3')
      await eventually(() => seen.length >= 3)
      // Longer than the TTL after the election: the keep-alive went on through the follower.
      const wait = electedAt + ttl * 1000 + 500 - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      assert.equal(await client.get('fault/leased').string(), 'v')
      assert.deepEqual(seen, ['1', '2', '3'])
      await w.cancel()
      await lease.revoke()
    } finally {
      client.close()
    }
    await c.start(leaderIdx)
  })

  test('a client given every endpoint goes on when the member it used is stopped', async () => {
    const client = new Etcd3({ hosts: [...c.urls] })
    try {
      await client.put('fo/a').value('1')
      await c.stop(0)
      for (let i = 0; i < 5; i++) {
        await eventually(async () => {
          await client.put(`fo/${i}`).value(String(i))
          return true
        })
        assert.equal(await client.get(`fo/${i}`).string(), String(i))
      }
    } finally {
      client.close()
    }
    await c.start(0)
  })
})
