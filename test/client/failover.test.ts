/**
 * Fail-over and resumption: a watch survives a member restart without losing or repeating events; calls move to
 * another member of a 3-member cluster when theirs stops; a write whose outcome is unknown is reported, not retried.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { EtcdClientError } from '../../src/client/index.js'
import { startCluster } from '../cluster/helpers.js'
import { eventually, freePort } from '../support/index.js'
import { sleep, startMember, testClient, within } from './helpers.js'

describe('client: fail-over and resumption', () => {
  test('a watch resumes across a member restart without losing or repeating events', async () => {
    const m = await startMember()
    const c = testClient([m.url])
    try {
      const w = c.watch({ prefix: 'r/' })
      await within(30_000, w.ready, 'watch ready')
      const seen: number[] = []
      const reader = (async () => {
        for await (const e of w.events()) {
          seen.push(Number(e.kv.value))
          if (seen.length === 40) return
        }
      })()
      for (let i = 0; i < 20; i++) await c.put(`r/${i % 3}`, String(i))
      await eventually(() => (seen.length >= 20 ? true : undefined), 30_000, 'first 20 events')
      await m.stop()
      await m.start()
      // Written while the watcher may still be reconnecting: they must arrive exactly once, in order.
      for (let i = 20; i < 40; i++) await c.put(`r/${i % 3}`, String(i))
      await within(30_000, reader, 'all 40 events')
      assert.deepEqual(
        seen,
        Array.from({ length: 40 }, (_, i) => i),
      )
      assert.ok(w.reconnects >= 1, 'the watcher reconnected')
      w.cancel()
    } finally {
      c.close()
      await m.close()
    }
  })

  test('calls fail over when the member the client uses stops (3-member cluster)', async () => {
    const cl = await startCluster(3)
    const c = testClient(cl.urls)
    try {
      await eventually(async () => ((await c.status()).leader !== '0' ? true : undefined), 30_000, 'a leader')
      await c.put('f', '1')
      const first = c.transport.current()
      await cl.stop(cl.urls.indexOf(first))
      // Reads and writes go on through the other members (a new election may answer "no leader" for a moment). The
      // first call is a read: a write could land on a pooled connection the stopped member just closed, which the
      // client must report as an unknown outcome, not retry.
      assert.equal((await c.get('f'))?.value, '1')
      assert.notEqual(c.transport.current(), first)
      await c.put('f', '2')
      assert.equal((await c.get('f'))?.value, '2')
      const w = c.watch('f')
      await within(30_000, w.ready, 'watch on a survivor')
      await c.put('f', '3')
      const r = await within(30_000, w.next(), 'event')
      assert.equal(r!.events[0]!.kv.value, '3')
      w.cancel()
    } finally {
      c.close()
      await cl.close()
    }
  })

  test('a write with unknown outcome is reported, not retried; reads fail over; refused connections are retried', async () => {
    // A fake endpoint that reads the request, then drops the connection: the write may have been applied.
    let hits = 0
    const fake: Server = createServer((req, res) => {
      hits++
      req.resume()
      req.on('end', () => res.socket?.destroy())
    })
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r))
    const fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`
    const m = await startMember()
    try {
      const c = testClient([fakeUrl, m.url])
      const e = await c.put('u', 'x').catch((err) => err)
      assert.ok(e instanceof EtcdClientError)
      assert.equal(e.code, 'ERR_UNKNOWN_OUTCOME')
      assert.match(e.message, /outcome unknown/)
      assert.equal(hits, 1, 'sent once')
      assert.equal(await testClient([m.url]).get('u'), undefined, 'not retried on the other endpoint')
      const txn = await c
        .txn()
        .then()
        .commit()
        .catch((err) => err)
      assert.ok(!(txn instanceof Error), 'a read-only txn is retried elsewhere')
      // A read is idempotent: it fails over from the fake to the member.
      const c2 = testClient([fakeUrl, m.url])
      assert.equal(await c2.get('u'), undefined)
      assert.equal(c2.transport.current(), m.url)
      // Connection refused: certainly not sent, so even a write moves on.
      const dead = `http://127.0.0.1:${await freePort()}`
      const c3 = testClient([dead, m.url])
      await c3.put('u', 'y')
      assert.equal((await c3.get('u'))?.value, 'y')
      // Every endpoint refusing: the command fails within its timeout, naming the refusal. The code says where the
      // deadline fell: between attempts (ERR_UNAVAILABLE, as on a quiet machine) or during one, which a loaded
      // machine can stretch past it (ERR_TIMEOUT, its message naming the last refusal). 2 s leaves room for at least
      // one refusal before the deadline.
      const c4 = testClient([dead], { commandTimeoutMs: 2000 })
      const u = await c4.get('u').catch((err) => err)
      assert.ok(u instanceof EtcdClientError, String(u))
      assert.match(u.code, /^(ERR_UNAVAILABLE|ERR_TIMEOUT)$/)
      assert.match(u.message, /ECONNREFUSED/)
      // A timeout after sending is an unknown outcome too.
      const slow: Server = createServer(() => {})
      await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r))
      const c5 = testClient([`http://127.0.0.1:${(slow.address() as AddressInfo).port}`, m.url], {
        commandTimeoutMs: 300,
      })
      const t = await c5.put('u', 'z').catch((err) => err)
      assert.equal(t.code, 'ERR_UNKNOWN_OUTCOME')
      slow.closeAllConnections()
      slow.close()
      await sleep(10)
    } finally {
      fake.closeAllConnections()
      fake.close()
      await m.close()
    }
  })
  test('when the deadline cuts the last attempt short, the error names the last real failure (not the abort)', async () => {
    // Every attempt but the first hangs until aborted: the command ends on a timeout, yet the caller learns why the
    // endpoint failed (as gRPC reports its "last connection error"), e.g. an untrusted certificate.
    let calls = 0
    const fakeFetch = ((_url: string, init?: RequestInit) => {
      calls++
      if (calls === 1)
        return Promise.reject(new TypeError('fetch failed', { cause: new Error('self-signed certificate') }))
      return new Promise((_resolve, reject) =>
        init?.signal?.addEventListener('abort', () =>
          reject(new DOMException('This operation was aborted', 'AbortError')),
        ),
      )
    }) as typeof fetch
    const c = testClient(['http://127.0.0.1:1'], { fetch: fakeFetch, commandTimeoutMs: 300 })
    try {
      const err = await c.get('k').catch((e: unknown) => e)
      assert.ok(err instanceof EtcdClientError, String(err))
      assert.equal(err.code, 'ERR_TIMEOUT')
      assert.ok(calls >= 2, `attempts: ${calls}`)
      assert.match(err.message, /fetch failed/)
      assert.match(String((err.cause as Error).message), /fetch failed/)
    } finally {
      c.close()
    }
  })
})
