/**
 * One WebSocket per client: several watches share it (ids as etcd's stream), each resumes from its own last
 * revision after the connection drops without losing or repeating events, a cancel or a paused slow reader leaves
 * the others on the same socket, and a refused create (watch_id -1) fails only its own watch.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import type { WatchEvent, Watcher } from '../../src/client/index.js'
import { type RestartableMember, startMember, testClient, within } from './helpers.js'

/** `ws` that records every socket it opens. */
function countingWebSocket() {
  const sockets: WebSocket[] = []
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols)
      sockets.push(this)
    }
  }
  return { sockets, Counting }
}

/** Reads events from a watcher into a list in the background. */
function collect(w: Watcher) {
  const events: WatchEvent[] = []
  let error: unknown
  const done = (async () => {
    try {
      for await (const e of w.events()) events.push(e)
    } catch (err) {
      error = err
    }
  })()
  return { events, done, error: () => error }
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const line = (e: WatchEvent) => `${e.type} ${e.kv.key}=${e.kv.value}@${e.kv.modRevision}`

describe('shared watch stream', () => {
  let m: RestartableMember
  before(async () => {
    m = await startMember()
  })
  after(() => m?.close())

  test('two watches share one socket and both resume after the connection drops, exactly once', async () => {
    const { sockets, Counting } = countingWebSocket()
    const c = testClient([m.url], { WebSocket: Counting })
    const writer = testClient([m.url])
    const a = c.watch({ prefix: 'a/' })
    const b = c.watch('b', { prevKv: true })
    await within(30_000, Promise.all([a.ready, b.ready]), 'both watches ready')
    assert.equal(sockets.length, 1, 'one socket for two watches')
    const ca = collect(a)
    const cb = collect(b)

    const want: { a: string[]; b: string[] } = { a: [], b: [] }
    const put = async (k: string, v: string) => {
      const r = await writer.put(k, v)
      const e = `PUT ${k}=${v}@${r.header.revision}`
      if (k.startsWith('a/')) want.a.push(e)
      if (k === 'b') want.b.push(e)
    }
    await put('a/1', 'x')
    await put('b', '1')
    await put('c', 'not watched')
    await until('first events', () => ca.events.length === 1 && cb.events.length === 1)

    // Drop the connection, then write while the stream reconnects: every event arrives once, in order.
    sockets[0]!.terminate()
    for (let i = 0; i < 5; i++) {
      await put(`a/${i}`, `y${i}`)
      await put('b', `${i + 2}`)
    }
    await until('events after the drop', () => ca.events.length === want.a.length && cb.events.length === want.b.length)
    assert.equal(sockets.length, 2, 'one new socket for both watches')

    // A member restart (same data, same port) too.
    await m.stop()
    await m.start()
    await put('a/after', 'z')
    await put('b', 'last')
    await until(
      'events after the restart',
      () => ca.events.length === want.a.length && cb.events.length === want.b.length,
    )
    await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(ca.events.map(line), want.a)
    assert.deepEqual(cb.events.map(line), want.b)
    assert.equal(cb.events.at(-1)?.prevKv?.value, '6', 'prevKv still asked for after resuming')
    assert.ok(a.reconnects >= 2 && b.reconnects >= 2)

    // Cancelling one leaves the other on the same socket.
    const before = sockets.length
    a.cancel()
    await ca.done
    await put('b', 'after cancel')
    await put('a/ignored', 'x')
    await until('b after the cancel', () => cb.events.length === want.b.length)
    assert.equal(sockets.length, before, 'no new socket')
    assert.equal(sockets.at(-1)!.readyState, WebSocket.OPEN)
    b.cancel()
    await cb.done
    await until('socket closed when no watch is left', () => sockets.at(-1)!.readyState === WebSocket.CLOSED)
    c.close()
    writer.close()
  })

  test('a slow reader pauses only its own watch; a refused create fails only its own', async () => {
    const { sockets, Counting } = countingWebSocket()
    const c = testClient([m.url], { WebSocket: Counting })
    const writer = testClient([m.url])
    const slow = c.watch({ prefix: 's/' }, { maxQueuedResponses: 2 })
    const other = c.watch({ prefix: 'o/' })
    await within(30_000, Promise.all([slow.ready, other.ready]), 'ready')
    const co = collect(other)
    const revs: number[] = []
    for (let i = 0; i < 10; i++) {
      revs.push((await writer.put(`s/${i}`, String(i))).header.revision)
      await writer.put(`o/${i}`, String(i))
    }
    await until('the other watch is served meanwhile', () => co.events.length === 10)
    // Now read the slow one: every event, once, in order, although it was paused (cancelled on the server).
    const got: number[] = []
    for await (const e of slow.events()) {
      got.push(e.kv.modRevision)
      if (got.length === 10) break
    }
    assert.deepEqual(got, revs)
    assert.equal(sockets.length, 1, 'pausing did not close the shared socket')

    // An empty range is refused by the server (watch_id -1): only that watch fails.
    const bad = c.watch({ key: 'z', rangeEnd: 'a' })
    await assert.rejects(bad.ready, /empty|range/)
    await writer.put('o/late', 'x')
    await until('other still served', () => co.events.length === 11)
    other.cancel()
    c.close()
    writer.close()
  })
})
