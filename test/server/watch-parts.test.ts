/**
 * Session 10 (issue 17, the all-match put row) on a Node member's WebSocket watch: a large message whose events the
 * hub shares among watchers (a catch-up batch) is written as parts (codec/watch-json.ts watchResultParts, the socket
 * layer's sendTextParts in runtime/node/split-wss.ts): its events' bytes are encoded once and written by reference,
 * and the client reads the same JSON as before. 200 watchers on one socket are more than watchPaceWatchersMin (128),
 * so every apply batch paces them out and they are caught up at sync ticks: every revision once, in order.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { watchResultJson, watchResultParts } from '../../src/api/http/codec/watch-json.js'
import { sharedFrameStats } from '../../src/runtime/node/split-wss.js'
import { eventMessages, newStore, put, RecordingSink, watchReq } from '../kv/helpers.js'
import { b64, post } from '../support/index.js'
import { notOnWorkerd, startTestMember, type TestMember } from './helpers.js'

describe('watch messages in parts', () => {
  test('watchResultParts: head + events + tail is watchResultJson; the events bytes are shared by reference', () => {
    const s = newStore()
    for (let i = 0; i < 100; i++) put(s, 'k', 'v'.repeat(300) + i)
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    // Two watchers at one past position: one shared catch-up batch.
    stream.create(watchReq('k', '', { start_revision: 2 }))
    stream.create(watchReq('k', '', { start_revision: 2 }))
    const [m0] = eventMessages(sink, 0)
    const [m1] = eventMessages(sink, 1)
    assert.equal(m0!.events.length, 100)
    assert.equal(m0!.events, m1!.events, 'one Event[] for both')
    const p0 = watchResultParts(m0!)
    const p1 = watchResultParts(m1!)
    assert.ok(typeof p0 !== 'string' && typeof p1 !== 'string', 'parts for a large shared message')
    assert.equal(p0.events, p1.events, 'the same bytes for both watchers')
    const text = (p: { head: string; events: Uint8Array; tail: string }) =>
      p.head + new TextDecoder().decode(p.events) + p.tail
    assert.equal(text(p0), watchResultJson(m0!))
    assert.equal(text(p1), watchResultJson(m1!))
    assert.match(p1.head, /"watch_id":"1"/)
    // Small or unshared: one string, as before.
    const small = { ...m0!, events: m0!.events.slice(0, 3) }
    assert.equal(watchResultParts(small), watchResultJson(small))
    const unshared = { ...m0!, events: m0!.events.slice() }
    assert.equal(watchResultParts(unshared), watchResultJson(unshared))
  })
})

const skip = notOnWorkerd('the Node socket layer')

describe('watch parts and pacing over a WebSocket', { skip }, () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m?.stop()
  })

  test('200 watchers on one socket: caught up in parts, paced, every revision once and in order', async () => {
    const put1 = async (v: string) =>
      Number((await post(m.url, '/v3/kv/put', { key: b64('k'), value: b64(v) })).json.header.revision)
    const want: number[] = []
    for (let i = 0; i < 60; i++) want.push(await put1(`${'v'.repeat(300)}${i}`))
    const n = 200
    const got = new Map<number, number[]>()
    let created = 0
    const ws = new WebSocket(`${m.url.replace('http', 'ws')}/v3/watch`)
    ws.on('message', (d) => {
      const r = JSON.parse(String(d)).result
      if (r.created) {
        created++
        return
      }
      const id = Number(r.watch_id ?? 0)
      const list = got.get(id) ?? []
      for (const e of r.events ?? []) list.push(Number(e.kv.mod_revision))
      got.set(id, list)
    })
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    try {
      const parts = sharedFrameStats.partWrites
      for (let i = 0; i < n; i++)
        ws.send(JSON.stringify({ create_request: { key: b64('k'), start_revision: String(want[0]) } }))
      const until = async (cond: () => boolean, what: string) => {
        const deadline = Date.now() + 60_000
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
          await new Promise((r) => setTimeout(r, 10))
        }
      }
      await until(() => created === n, 'creates')
      // Puts while they catch up and after: each apply batch reaches 200 > 128 watchers, which are paced out.
      for (let i = 0; i < 40; i++) {
        const revs = await Promise.all([0, 1, 2].map((j) => put1(`live ${i} ${j}`)))
        want.push(...revs)
      }
      want.sort((x, y) => x - y)
      await until(
        () => [...Array(n).keys()].every((id) => (got.get(id)?.length ?? 0) >= want.length),
        'every revision on every watcher',
      )
      for (let id = 0; id < n; id++) assert.deepEqual(got.get(id), want, `watcher ${id}`)
      assert.ok(sharedFrameStats.partWrites - parts >= n - 1, `parts written: ${sharedFrameStats.partWrites - parts}`)
    } finally {
      ws.terminate()
    }
  })
})
