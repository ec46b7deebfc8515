/**
 * Coalescing windows (`edgecd_coalesce_ms`, an edgecd extension of the watch create request; issue 13): a watcher
 * that asks for a window of W ms gets its events at most once per W, several revisions in one message, each event
 * exactly once and in order, with header.revision its last event's; a progress answer, a cancel or a compaction
 * sends what is held first; an ordinary watcher (no field, or 0) keeps etcd's one message per revision. The hub runs
 * on a virtual clock here (WatchHub.now / setTimer).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { decodeMessage } from '../../src/api/http/codec/decode.js'
import { watchJsonStats, watchResultJson } from '../../src/api/http/codec/watch-json.js'
import { type WatchStream, watchCoalesceMsMax } from '../../src/kv/watch.js'
import * as M from '../../src/protocol/descriptors.js'
import {
  del,
  eventMessages,
  newStore,
  put,
  RecordingSink,
  revsOf,
  str,
  virtualClock,
  watchReq,
  xorshift,
} from './helpers.js'

describe('watch coalescing windows (edgecd_coalesce_ms)', () => {
  test('the JSON field decodes (number or string); an etcd request without it is a window of 0', () => {
    const a = decodeMessage(M.WatchRequest, JSON.stringify({ create_request: { key: 'YQ==', edgecd_coalesce_ms: 50 } }))
    assert.equal(a.create_request!.edgecd_coalesce_ms, 50)
    const c = decodeMessage(M.WatchRequest, JSON.stringify({ create_request: { key: 'YQ==', edgecdCoalesceMs: '20' } }))
    assert.equal(c.create_request!.edgecd_coalesce_ms, 20)
    const e = decodeMessage(M.WatchRequest, JSON.stringify({ create_request: { key: 'YQ==' } }))
    assert.equal(e.create_request!.edgecd_coalesce_ms ?? 0, 0)
  })

  test('first event at once after quiet, then at most one message per window with every revision, in order', () => {
    const s = newStore()
    const clock = virtualClock(s)
    const win = new RecordingSink()
    const plain = new RecordingSink()
    s.watchHub.openStream(win).create(watchReq('p/', 'p0', { edgecd_coalesce_ms: 100 }))
    s.watchHub.openStream(plain).create(watchReq('p/', 'p0'))
    put(s, 'p/1', 'a') // 2: after quiet, at once
    assert.deepEqual(eventMessages(win).map(revsOf), [[2]])
    clock.advance(10)
    put(s, 'p/2', 'b') // 3
    clock.advance(10)
    put(s, 'x', 'n') // 4: not in the range
    del(s, 'p/1') // 5
    clock.advance(50)
    assert.deepEqual(eventMessages(win).map(revsOf), [[2]], 'held within the window')
    assert.equal(clock.pending, 1, 'one timer for the window')
    clock.advance(30) // t = 100: the window since the first send is over
    const msgs = eventMessages(win)
    assert.deepEqual(msgs.map(revsOf), [[2], [3, 5]])
    assert.equal(msgs[1]!.header!.revision, 5, 'header: the last event revision')
    assert.equal(msgs[1]!.events[1]!.type, 1, 'the delete kept its place')
    assert.equal(str(msgs[1]!.events[0]!.kv.value), 'b')
    // The ordinary watcher: one message per revision, at once, as etcd.
    assert.deepEqual(eventMessages(plain).map(revsOf), [[2], [3], [5]])
    // Quiet for a window: the next event goes at once again.
    clock.advance(150)
    put(s, 'p/3', 'c') // 6
    assert.deepEqual(eventMessages(win).map(revsOf), [[2], [3, 5], [6]])
  })

  test('within apply batches: a batch ending inside the window is held; the window group sends together', () => {
    const s = newStore()
    const clock = virtualClock(s)
    const sinks = Array.from({ length: 20 }, () => new RecordingSink())
    for (const k of sinks) s.watchHub.openStream(k).create(watchReq('p/', 'p0', { edgecd_coalesce_ms: 40 }))
    const other = new RecordingSink()
    s.watchHub.openStream(other).create(watchReq('p/', 'p0', { edgecd_coalesce_ms: 25 }))
    for (let batch = 0; batch < 10; batch++) {
      s.watchHub.beginBatch()
      put(s, `p/${batch % 3}`, String(batch))
      put(s, `p/${(batch + 1) % 3}`, String(batch))
      s.watchHub.endBatch()
      clock.advance(10)
    }
    clock.advance(100)
    const want = Array.from({ length: 20 }, (_, i) => i + 2)
    for (const k of [...sinks, other]) assert.deepEqual(eventMessages(k).flatMap(revsOf), want)
    // 100 ms of batches every 10 ms: the 40 ms group sent at 0, 40, 80 and once after (4); the 25 ms one 5 times.
    assert.equal(eventMessages(sinks[0]!).length, 4)
    assert.equal(eventMessages(other).length, 5)
    // Every watcher of the group got the same Event[] per send: its JSON is encoded once per send, not per watcher.
    for (let i = 0; i < 4; i++) {
      const first = eventMessages(sinks[0]!)[i]!
      for (const k of sinks) assert.equal(eventMessages(k)[i]!.events, first.events)
    }
    const before = watchJsonStats.eventEncodes
    for (const k of sinks) for (const m of eventMessages(k)) watchResultJson(m)
    assert.ok(watchJsonStats.eventEncodes - before <= 4, `${watchJsonStats.eventEncodes - before} encodes`)
  })

  test('a progress answer, a cancel and a compaction send the held events first; progress_notify waits for them', () => {
    const s = newStore()
    const clock = virtualClock(s)
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k', '', { edgecd_coalesce_ms: 100, progress_notify: true }))
    stream.create(watchReq('k', '', { edgecd_coalesce_ms: 100 }))
    put(s, 'k', '1') // 2: sent at once
    put(s, 'k', '2') // 3: held
    s.watchHub.progressNotify()
    assert.equal(
      sink.messages.filter((m) => m.watch_id === 0 && m.events.length === 0 && !m.created).length,
      0,
      'no progress notification while events are held',
    )
    stream.requestProgress()
    const tail = sink.messages.slice(-3).map((m) => [m.watch_id, revsOf(m), m.header?.revision])
    assert.deepEqual(tail, [
      [0, [3], 3],
      [1, [3], 3],
      [-1, [], 3],
    ])
    put(s, 'k', '3') // 4: held (the window since the send above is not over)
    stream.cancel(1)
    assert.deepEqual(
      sink.messages.slice(-3).map((m) => [m.watch_id, m.canceled, revsOf(m)]),
      [
        [0, false, [4]],
        [1, false, [4]],
        [1, true, []],
      ],
    )
    put(s, 'k', '4') // 5: held
    s.apply({ compaction: { revision: 3, physical: false } })
    assert.deepEqual(revsOf(sink.messages.at(-1)!), [5], 'sent before the compaction')
    clock.advance(500)
    assert.equal(eventMessages(sink).flatMap(revsOf).join(), '2,3,4,5')
  })

  test('congested when the window is due: queued, then sent in order on resume; a closed stream drops what it held', () => {
    const s = newStore()
    const clock = virtualClock(s)
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k', '', { edgecd_coalesce_ms: 50 }))
    const gone = new RecordingSink()
    const goneStream = s.watchHub.openStream(gone)
    goneStream.create(watchReq('k', '', { edgecd_coalesce_ms: 50 }))
    put(s, 'k', '1') // 2
    sink.congested = true
    put(s, 'k', '2') // 3: held
    put(s, 'k', '3') // 4: held
    goneStream.close()
    clock.advance(50) // sent: the transport reports congestion
    put(s, 'k', '4') // 5: queued behind the congestion
    clock.advance(50)
    sink.congested = false
    stream.resume()
    put(s, 'k', '5') // 6
    clock.advance(100)
    assert.deepEqual(eventMessages(sink).flatMap(revsOf), [2, 3, 4, 5, 6])
    assert.deepEqual(eventMessages(gone).flatMap(revsOf), [2])
    assert.equal(clock.pending, 0)
  })

  test('the window is clamped to watchCoalesceMsMax; 0 or negative is none', () => {
    const s = newStore()
    const clock = virtualClock(s)
    const big = new RecordingSink()
    const none = new RecordingSink()
    s.watchHub.openStream(big).create(watchReq('k', '', { edgecd_coalesce_ms: 60_000 }))
    s.watchHub.openStream(none).create(watchReq('k', '', { edgecd_coalesce_ms: -5 }))
    put(s, 'k', '1')
    put(s, 'k', '2')
    put(s, 'k', '3')
    assert.deepEqual(eventMessages(none).map(revsOf), [[2], [3], [4]])
    assert.deepEqual(eventMessages(big).map(revsOf), [[2]])
    clock.advance(watchCoalesceMsMax - 1)
    assert.deepEqual(eventMessages(big).map(revsOf), [[2]])
    clock.advance(1)
    assert.deepEqual(eventMessages(big).map(revsOf), [[2], [3, 4]])
  })

  test('seeded scripts: every windowed watcher gets exactly the events of an ordinary one, in order, spaced by its window', () => {
    let held = 0
    for (const congestion of [false, true])
      for (let seed = 1; seed <= 200; seed++) {
        const rnd = xorshift(seed)
        const s = newStore()
        const clock = virtualClock(s)
        const windows = [0, 10, 30, 30, 100]
        const sinks: RecordingSink[] = []
        const streams: WatchStream[] = []
        const sendTimes: number[][] = []
        for (const w of windows) {
          const sink = new RecordingSink()
          const times: number[] = []
          const send = sink.send.bind(sink)
          sink.send = (r) => {
            if (r.events.length > 0) times.push(clock.now)
            return send(r)
          }
          sinks.push(sink)
          sendTimes.push(times)
          const st = s.watchHub.openStream(sink)
          st.create(watchReq('p/', 'p0', { prev_kv: rnd() < 0.5, edgecd_coalesce_ms: w }))
          streams.push(st)
        }
        let batch = false
        for (let i = 0; i < 150; i++) {
          const r = rnd()
          if (r < 0.5) {
            const k = `p/${Math.floor(rnd() * 4)}`
            if (rnd() < 0.8) put(s, k, `v${i}`)
            else del(s, k)
          } else if (r < 0.6) put(s, 'q', 'x')
          else if (r < 0.75) {
            if (batch) s.watchHub.endBatch()
            else s.watchHub.beginBatch()
            batch = !batch
          } else if (r < 0.95 || !congestion) clock.advance(Math.floor(rnd() * 25))
          else {
            const j = Math.floor(rnd() * sinks.length)
            sinks[j]!.congested = !sinks[j]!.congested
            if (!sinks[j]!.congested) streams[j]!.resume()
          }
        }
        if (batch) s.watchHub.endBatch()
        for (let j = 0; j < sinks.length; j++) {
          sinks[j]!.congested = false
          streams[j]!.resume()
        }
        clock.advance(200)
        const text = (k: RecordingSink) =>
          eventMessages(k).flatMap((m) =>
            m.events.map((e) => `${e.type} ${str(e.kv.key)}@${e.kv.mod_revision} ${e.prev_kv?.mod_revision ?? ''}`),
          )
        const ref = text(sinks[0]!).map((t) => t.split(' ').slice(0, 2).join(' '))
        assert.ok(ref.length > 0, `seed ${seed}`)
        for (let j = 1; j < sinks.length; j++) {
          const what = `seed ${seed} window ${windows[j]} congestion ${congestion}`
          assert.deepEqual(
            text(sinks[j]!).map((t) => t.split(' ').slice(0, 2).join(' ')),
            ref,
            what,
          )
          for (const m of eventMessages(sinks[j]!)) {
            const revs = revsOf(m)
            assert.equal(m.header!.revision, revs.at(-1), `${what}: header`)
            if (new Set(revs).size > 1) held++
          }
          // Without congestion (whose queue drains at once on resume), sends are at least the window apart.
          if (!congestion) {
            const t = sendTimes[j]!
            for (let n = 1; n < t.length; n++)
              assert.ok(t[n]! - t[n - 1]! >= windows[j]!, `${what}: sends at ${t[n - 1]} and ${t[n]}`)
          }
        }
      }
    assert.ok(held > 200, `only ${held} multi-revision messages`)
  })

  test('an ordinary watch keeps etcd behaviour: a request with the field absent decodes to one message per revision', () => {
    const s = newStore()
    virtualClock(s)
    const sink = new RecordingSink()
    const req = decodeMessage(
      M.WatchRequest,
      JSON.stringify({ create_request: { key: Buffer.from('k').toString('base64') } }),
    )
    s.watchHub.openStream(sink).create(req.create_request!)
    for (let i = 0; i < 5; i++) put(s, 'k', String(i))
    assert.deepEqual(eventMessages(sink).map(revsOf), [[2], [3], [4], [5], [6]])
  })
})
