/**
 * Issue 17: a watch WebSocket whose client is gone must cost nothing more. A client that resets the connection
 * while the member replays a large backlog to its watchers makes the next write fail: Node marks the socket errored
 * at once but destroys it (and ws reports the close) only on a later tick, and meanwhile every write is dropped, so
 * bufferedAmount stays low. The stream took that for a fast reader and replayed the whole backlog of 10,000 watchers
 * into the dead socket in one synchronous pump (measured: 10-40 s of CPU, the next put answered after 15-44 s; the
 * watch bench's void "puts, no watchers" baseline after its all-match row). Now the node socket wrapper throws once
 * the socket is not writable, and the WebSocket watch closes its stream when a send throws or the socket is closing:
 * its watchers are removed at once.
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { defineWebSocketHelper, WSContext } from 'hono/ws'
import { createApp } from '../../src/api/http/app.js'
import { batchWrites } from '../../src/runtime/node/split-wss.js'
import { b64, eventually, post } from '../support/index.js'
import { startTestMember, type TestMember } from './helpers.js'

describe('node WebSocket writes after a write error (split-wss)', () => {
  test('a send on a socket that a write error left errored throws instead of dropping the frame', () => {
    let writes = 0
    const socket = new Writable({
      write(_chunk, _enc, cb) {
        writes++
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
      },
    })
    socket.on('error', () => {})
    const ws = { _socket: socket, send: (data: string) => void socket.write(data) }
    batchWrites(ws as never)
    ws.send('first') // corked: written at the uncork, where the error happens
    socket.uncork()
    assert.equal(writes, 1)
    assert.equal(socket.writable, false, 'errored at once (destroyed only on a later tick)')
    assert.throws(() => ws.send('second'), /socket is closed/)
  })
})

describe('WebSocket watch: a stream whose socket is gone ends at once', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ maxWatchersPerStream: 100_000, maxWatchers: 100_000 })
  })
  after(async () => {
    await m?.stop()
  })

  /** A WebSocket the test drives: its bufferedAmount, whether send throws, its readyState; counts send calls. */
  function fakeSocket() {
    const s = { buffered: 0, dead: false, readyState: 1 as 0 | 1 | 2 | 3, sends: 0, sendsWhileDead: 0 }
    const raw = {
      get bufferedAmount() {
        return s.buffered
      },
    }
    const helper = defineWebSocketHelper(async (_c, events) => {
      const ctx = new WSContext({
        raw,
        url: null,
        get readyState() {
          return s.readyState
        },
        send: () => {
          s.sends++
          if (s.dead) {
            s.sendsWhileDead++
            throw new Error('socket is closed')
          }
        },
        close: () => {},
      })
      events.onOpen?.(new Event('open'), ctx)
      ;(s as { message?: (text: string) => void }).message = (text) =>
        events.onMessage?.(new MessageEvent('message', { data: text }), ctx)
      return new Response(null, { status: 200 })
    })
    return { s: s as typeof s & { message: (text: string) => void }, helper }
  }

  async function congestedStream(watchers: number, readyStateDead: boolean) {
    const { s, helper } = fakeSocket()
    const app = createApp(m.running.member, {
      maxRequestBytes: 1.5 * 1024 * 1024,
      maxWatchStreams: 100,
      upgradeWebSocket: helper,
    })
    const hub = m.running.member.kv.watchHub
    const before = hub.watcherCount
    const res = await app.request('/v3/watch', { headers: { upgrade: 'websocket' } })
    assert.equal(res.status, 200)
    const key = b64('dead/k')
    for (let i = 0; i < watchers; i++) s.message(JSON.stringify({ create_request: { key } }))
    assert.equal(hub.watcherCount - before, watchers)
    // The client stops reading: the socket holds 2 MiB, the stream is congested; puts pile up a backlog that
    // overflows the watchers' queues (they will catch up from history).
    s.buffered = 2 * 1024 * 1024
    for (let i = 0; i < 40; i++) {
      const r = await post(m.url, '/v3/kv/put', { key, value: b64('v'.repeat(200)) })
      assert.equal(r.status, 200)
    }
    // The client resets the connection: sends now fail and nothing is buffered any more (the drain poll sees 0).
    s.buffered = 0
    if (readyStateDead) s.readyState = 2
    else s.dead = true
    const sendsBefore = s.sends
    await eventually(() => (hub.watcherCount === before ? true : undefined), 10_000, 'the watchers removed')
    return { s, sendsAfter: s.sends - sendsBefore }
  }

  test('a send that throws closes the stream: 2,000 watchers removed, no replay into the dead socket', async () => {
    const { s, sendsAfter } = await congestedStream(2000, false)
    assert.ok(s.sendsWhileDead <= 1, `${s.sendsWhileDead} sends tried after the socket died`)
    assert.ok(sendsAfter <= 1, `${sendsAfter} sends after the socket died`)
    // The member answers at once.
    const t0 = performance.now()
    assert.equal((await post(m.url, '/v3/kv/put', { key: b64('other'), value: b64('x') })).status, 200)
    assert.ok(performance.now() - t0 < 2000)
  })

  test('a socket that is closing (readyState 2) closes the stream before any replay', async () => {
    const { sendsAfter } = await congestedStream(2000, true)
    assert.equal(sendsAfter, 0)
  })
})
