/** The recipes against one in-process member: Mutex safety under contention, Election handover, Queue, registry. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Client, Election, Mutex, Queue, ServiceRegistry, Session } from '../../src/client/index.js'
import { eventually } from '../support/index.js'
import { type RestartableMember, sleep, startMember, testClient, within } from './helpers.js'

describe('client recipes', () => {
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

  test('Mutex: N contenders x M rounds, never two holders at once, fencing revisions increase', async () => {
    const contenders = 5
    const rounds = 4
    let holders = 0
    let maxHolders = 0
    let counter = 0
    const intervals: [number, number][] = []
    const fencing: number[] = []
    await within(
      60_000,
      Promise.all(
        Array.from({ length: contenders }, async (_, i) => {
          const client = testClient([m.url])
          const s = await Session.create(client, { ttlSeconds: 10 })
          try {
            for (let r = 0; r < rounds; r++) {
              const mu = new Mutex(s, 'locks/contended')
              await mu.lock()
              holders++
              maxHolders = Math.max(maxHolders, holders)
              const start = performance.now()
              fencing.push(mu.revision)
              // A read-modify-write that would lose increments if two held the lock together.
              const before = counter
              await sleep(2 + ((i * 7 + r * 3) % 5))
              counter = before + 1
              // The guarded write succeeds only while we own the lock.
              const g = await client.txn().if(mu.isOwner()).then().commit()
              assert.equal(g.succeeded, true)
              intervals.push([start, performance.now()])
              holders--
              await mu.unlock()
            }
          } finally {
            await s.close()
            client.close()
          }
        }),
      ),
      'all rounds',
    )
    assert.equal(maxHolders, 1)
    assert.equal(counter, contenders * rounds)
    intervals.sort((a, b) => a[0] - b[0])
    for (let i = 1; i < intervals.length; i++)
      assert.ok(intervals[i]![0] >= intervals[i - 1]![1], 'intervals do not overlap')
    assert.deepEqual(
      fencing,
      [...fencing].sort((a, b) => a - b),
      'fencing revisions grow with each holder',
    )
    assert.equal((await c.getPrefix('locks/contended/')).count, 0)
  })

  test('Mutex.tryLock fails while held; the lock passes on when the holder session is lost', async () => {
    const s1 = await Session.create(c, { ttlSeconds: 2 })
    const s2 = await Session.create(c, { ttlSeconds: 5 })
    const a = new Mutex(s1, 'locks/t')
    await a.lock()
    await assert.rejects(new Mutex(s2, 'locks/t').tryLock(), /Locked by another session/)
    const b = new Mutex(s2, 'locks/t')
    const got = b.lock()
    s1.orphan() // the holder "crashes": its lease expires after ~2 s
    await within(30_000, got, 'lock after the holder lease expired')
    await b.unlock()
    await s2.close()
  })

  test('Election: campaign, proclaim, observe, handover when the leader session ends', async () => {
    const s1 = await Session.create(c, { ttlSeconds: 2 })
    const s2 = await Session.create(c, { ttlSeconds: 5 })
    const e1 = new Election(s1, 'elect/x')
    const e2 = new Election(s2, 'elect/x')
    await e1.campaign('one')
    assert.equal((await e1.leader())?.value, 'one')
    const ac = new AbortController()
    const seen: string[] = []
    const observer = (async () => {
      for await (const kv of new Election(s2, 'elect/x').observe(ac.signal)) {
        seen.push(kv.value)
        if (seen.length === 3) return
      }
    })()
    let elected = false
    const second = e2.campaign('two').then(() => (elected = true))
    // The observer reports the leader's value as of its first read: proclaiming before that read would skip 'one'.
    await eventually(() => (seen.length >= 1 ? true : undefined), 30_000, "the observer's first value")
    await sleep(200)
    assert.equal(elected, false, 'the second candidate waits')
    await e1.proclaim('one-b')
    s1.orphan() // leader's session ends without resigning
    await within(30_000, second, 'handover')
    assert.equal((await e2.leader())?.value, 'two')
    await within(30_000, observer, 'observer saw the changes')
    assert.deepEqual(seen, ['one', 'one-b', 'two'])
    await assert.rejects(e1.proclaim('stale'), /not leader/)
    await e2.resign()
    assert.equal(await e2.leader(), undefined)
    ac.abort()
    await s2.close()
  })

  test('Queue: FIFO, one consumer per item, dequeue waits on empty', async () => {
    const q = new Queue(c, 'q/jobs')
    for (const v of ['a', 'b', 'c']) await q.enqueue(v)
    assert.equal(await q.size(), 3)
    const got = await Promise.all([q.dequeue(), q.dequeue(), q.dequeue()])
    assert.deepEqual([...got].sort(), ['a', 'b', 'c'])
    assert.equal(await q.size(), 0)
    const waiting = q.dequeue()
    await sleep(100)
    await q.enqueue('late')
    assert.equal(await within(30_000, waiting, 'dequeue after enqueue'), 'late')
    const q2 = new Queue(c, 'q/order')
    for (const v of ['1', '2', '3']) await q2.enqueue(v)
    assert.deepEqual([await q2.dequeue(), await q2.dequeue(), await q2.dequeue()], ['1', '2', '3'])
  })

  test('ServiceRegistry: register, discover, watch, gone when closed', async () => {
    const reg = new ServiceRegistry(c, 'svc')
    const r1 = await reg.register('api', 'i1', 'http://10.0.0.1:80')
    const ac = new AbortController()
    const views: string[] = []
    const watching = (async () => {
      for await (const list of reg.watch('api', ac.signal)) {
        views.push(list.map((i) => i.id).join(','))
        if (views.length === 3) return
      }
    })()
    // The watch lists the service as of its first read: registering i2 before that read would skip the 'i1' view.
    await eventually(() => (views.length >= 1 ? true : undefined), 30_000, "the watch's first view")
    const r2 = await reg.register('api', 'i2', 'http://10.0.0.2:80')
    assert.deepEqual(await reg.discover('api'), [
      { id: 'i1', value: 'http://10.0.0.1:80' },
      { id: 'i2', value: 'http://10.0.0.2:80' },
    ])
    await r1.close()
    await within(30_000, watching, 'registry watch')
    assert.deepEqual(views, ['i1', 'i1,i2', 'i2'])
    ac.abort()
    await r2.close()
    assert.deepEqual(await reg.discover('api'), [])
  })
})
