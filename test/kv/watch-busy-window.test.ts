/**
 * A stream's busy window (WatchHub.openStream(sink, busyMs), --watch-batch-interval, the gRPC Watch call; issue 17):
 * an idle stream's event goes out in the same turn, as etcd's; events that follow within W ms of the stream's last
 * send are held and go out merged (one message per watcher) when the window ends, as etcd's victims retried every
 * 10 ms. Every revision once, in order, never split; a progress answer, a cancel and a compaction send the held
 * events first; W = 0 is one message per revision (or apply batch). The hub runs on a virtual clock here.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  del,
  eventMessages,
  newStore,
  opDel,
  opPut,
  put,
  RecordingSink,
  revsOf,
  txn,
  virtualClock,
  watchReq,
  xorshift,
} from './helpers.js'

describe('watch busy window (--watch-batch-interval)', () => {
  test('an idle stream gets its event in the same turn; a burst within W is merged, every revision once, in order', () => {
    const s = newStore({ watchBusyMessagesMax: 1 })
    const clock = virtualClock(s)
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink, 5)
    stream.create(watchReq('p/', 'p0'))
    stream.create(watchReq('p/', 'p0'))
    put(s, 'p/1', 'a') // 2: idle, at once
    assert.deepEqual(eventMessages(sink).map(revsOf), [[2]], 'sent in the same turn')
    assert.equal(clock.pending, 0, 'no timer for an idle stream')
    clock.advance(1)
    put(s, 'p/2', 'b') // 3: within W of the last send: held
    put(s, 'x', 'n') // 4: not in the range
    clock.advance(1)
    del(s, 'p/1') // 5
    assert.deepEqual(eventMessages(sink).map(revsOf), [[2]], 'held while busy')
    assert.equal(clock.pending, 1, 'one timer for the stream')
    clock.advance(3) // t = 5: W since the last send
    for (const id of [0, 1]) {
      const msgs = eventMessages(sink, id)
      assert.deepEqual(msgs.map(revsOf), [[2], [3, 5]], `watcher ${id}`)
      assert.equal(msgs[1]!.header!.revision, 5, 'header: the last event revision')
    }
    // Quiet for W: the next event goes at once again.
    clock.advance(10)
    put(s, 'p/3', 'c') // 6
    assert.deepEqual(eventMessages(sink).map(revsOf), [[2], [3, 5], [6]])
  })

  test("a stream that sent fewer than etcd's 128 messages in its window is not busy: at once", () => {
    const s = newStore()
    const clock = virtualClock(s)
    const small = new RecordingSink()
    const big = new RecordingSink()
    s.watchHub.openStream(small, 5).create(watchReq('k'))
    const bigStream = s.watchHub.openStream(big, 5)
    for (let i = 0; i < 100; i++) bigStream.create(watchReq('k'))
    put(s, 'k', '1') // 2: both idle: at once (100 messages on big)
    put(s, 'k', '2') // 3: small sent 1 (+1): at once; big would reach 200 > 128: held
    put(s, 'k', '3') // 4
    assert.deepEqual(eventMessages(small).map(revsOf), [[2], [3], [4]], 'one watcher: each put at once')
    assert.deepEqual(eventMessages(big).map(revsOf), [[2]])
    clock.advance(5)
    assert.deepEqual(eventMessages(big).map(revsOf), [[2], [3, 4]])
    assert.equal(big.messages.filter((m) => m.events.length > 0).length, 200, 'one merged message per watcher')
  })

  test('an apply batch after quiet goes at once as one message, as without a window', () => {
    const s = newStore()
    virtualClock(s)
    const sink = new RecordingSink()
    s.watchHub.openStream(sink, 5).create(watchReq('k'))
    s.watchHub.beginBatch()
    put(s, 'k', '1')
    put(s, 'k', '2')
    s.watchHub.endBatch()
    assert.deepEqual(eventMessages(sink).map(revsOf), [[2, 3]])
  })

  test('W = 0 (and a stream opened without a window) keeps one message per revision', () => {
    const s = newStore()
    const clock = virtualClock(s)
    const zero = new RecordingSink()
    const plain = new RecordingSink()
    s.watchHub.openStream(zero, 0).create(watchReq('k'))
    s.watchHub.openStream(plain).create(watchReq('k'))
    for (let i = 0; i < 4; i++) put(s, 'k', String(i))
    clock.advance(100)
    assert.deepEqual(eventMessages(zero).map(revsOf), [[2], [3], [4], [5]])
    assert.deepEqual(eventMessages(plain).map(revsOf), [[2], [3], [4], [5]])
    assert.equal(clock.pending, 0)
  })

  test("one stream's sends do not delay another, idle stream", () => {
    const s = newStore({ watchBusyMessagesMax: 1 })
    const clock = virtualClock(s)
    const a = new RecordingSink()
    const b = new RecordingSink()
    s.watchHub.openStream(a, 10).create(watchReq('a'))
    s.watchHub.openStream(b, 10).create(watchReq('b'))
    put(s, 'a', '1') // 2: a sends at t = 0
    clock.advance(2)
    put(s, 'b', '1') // 3: b is idle: at once
    assert.deepEqual(eventMessages(b).map(revsOf), [[3]])
    put(s, 'a', '2') // 4: a is busy: held
    assert.deepEqual(eventMessages(a).map(revsOf), [[2]])
    clock.advance(8)
    assert.deepEqual(eventMessages(a).map(revsOf), [[2], [4]])
  })

  test('a progress answer, a cancel and a compaction send the held events first, without waiting for the window', () => {
    const s = newStore({ watchBusyMessagesMax: 1 })
    virtualClock(s)
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink, 10)
    stream.create(watchReq('k'))
    stream.create(watchReq('k'))
    put(s, 'k', '1') // 2: at once
    put(s, 'k', '2') // 3: held
    stream.requestProgress()
    assert.deepEqual(
      sink.messages.slice(-3).map((m) => [m.watch_id, revsOf(m), m.header?.revision]),
      [
        [0, [3], 3],
        [1, [3], 3],
        [-1, [], 3],
      ],
      'the progress answer at once, after the held events',
    )
    put(s, 'k', '3') // 4: held
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
  })

  /**
   * A store whose busy window starts at 5 ms and grows to 40 ms, with one stream of two watchers on `k`; `at` records
   * the virtual time of each message with events sent to watcher 0.
   */
  function growingBusyStream() {
    const s = newStore({ watchBusyMessagesMax: 1, watchBusyWindowMaxMs: 40 })
    const clock = virtualClock(s)
    const at: number[] = []
    const sink = new RecordingSink()
    const timed = {
      send(m: Parameters<RecordingSink['send']>[0]) {
        if (m.events.length > 0 && m.watch_id === 0) at.push(clock.now)
        return sink.send(m)
      },
    }
    const stream = s.watchHub.openStream(timed, 5)
    stream.create(watchReq('k'))
    stream.create(watchReq('k'))
    return { s, clock, at, sink, stream }
  }

  test('a stream busy window after window doubles its window up to watchBusyWindowMaxMs; idle, it is back at W', () => {
    const { s, clock, at, sink, stream } = growingBusyStream()
    // A put every ms for 200 ms, the transport backed up all along: sends at 0 (idle), then at the end of windows of
    // 5, 10, 20, 40, 40, ... ms.
    for (let t = 0; t < 200; t++) {
      put(s, 'k', String(t))
      stream.backedUp()
      clock.advance(1)
    }
    assert.deepEqual(at, [0, 5, 15, 35, 75, 115, 155, 195])
    clock.advance(100)
    assert.equal(at.length, 9, 'the last window sent its events')
    assert.deepEqual(sink.events().length, 400, 'every event, to both watchers')
    // Quiet longer than the window: the next put goes at once, and the window after it is W again.
    const t0 = clock.now
    for (let t = 0; t < 12; t++) {
      put(s, 'k', `b${t}`)
      stream.backedUp()
      clock.advance(1)
    }
    assert.deepEqual(
      at.slice(9).map((x) => x - t0),
      [0, 5],
    )
    clock.advance(100)
    assert.deepEqual(
      eventMessages(sink, 1).flatMap(revsOf),
      Array.from({ length: 212 }, (_, i) => i + 2),
    )
  })

  test('a busy window that ends holding one batch halves, down to W; an idle or light stream is never held', () => {
    const { s, clock, at, sink, stream } = growingBusyStream()
    for (let t = 0; t < 80; t++) {
      put(s, 'k', String(t))
      stream.backedUp()
      clock.advance(1)
    }
    assert.deepEqual(at, [0, 5, 15, 35, 75])
    // The window from 75 (40 ms) ends at 115 holding the puts of 76..79.
    clock.advance(75 + 40 - 80)
    assert.deepEqual(at.slice(5), [115])
    // Then one put right after each send: each window ends holding one batch, and the next is half as long.
    for (let i = 0; i < 4; i++) {
      put(s, 'k', `h${i}`) // held: within the window since the last send
      const n = at.length
      while (at.length === n) clock.advance(1)
    }
    assert.deepEqual(
      at.slice(5).map((x, i, xs) => (i === 0 ? 0 : x - xs[i - 1]!)),
      [0, 40, 20, 10, 5],
      'windows of 40, 20, 10, 5 (not under W)',
    )
    // A light stream: a put now and then, each at once.
    for (let i = 0; i < 3; i++) {
      clock.advance(6)
      put(s, 'k', `l${i}`)
      assert.equal(at.at(-1), clock.now, 'sent in the same turn')
    }
    assert.equal(clock.pending, 0, 'no timer')
    assert.deepEqual(
      eventMessages(sink, 1).flatMap(revsOf),
      Array.from({ length: 87 }, (_, i) => i + 2),
    )
  })

  test('a busy stream whose transport keeps up (never backed up) stays at W: no growth (session 10)', () => {
    const { s, clock, at, sink } = growingBusyStream()
    for (let t = 0; t < 60; t++) {
      put(s, 'k', String(t))
      clock.advance(1)
    }
    // Sends at 0 (idle), then every W = 5 ms: the window never grows while nothing is backed up.
    assert.deepEqual(at, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60])
    clock.advance(10)
    assert.deepEqual(
      eventMessages(sink, 0).flatMap(revsOf),
      Array.from({ length: 60 }, (_, i) => i + 2),
    )
  })

  test('seeded: with batches, congestion and a window, each watcher gets every revision once, in order, whole', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rnd = xorshift(seed)
      const s = newStore({ watchBusyMessagesMax: 1 + Math.floor(rnd() * 4) })
      const clock = virtualClock(s)
      const ref = new RecordingSink()
      s.watchHub.openStream(ref).create(watchReq('k/', 'k0'))
      const sink = new RecordingSink()
      const stream = s.watchHub.openStream(sink, 1 + Math.floor(rnd() * 10))
      stream.create(watchReq('k/', 'k0'))
      let sends = 0
      for (let step = 0; step < 200; step++) {
        const r = rnd()
        if (r < 0.5) {
          const batch = rnd() < 0.3
          if (batch) s.watchHub.beginBatch()
          const n = batch ? 1 + Math.floor(rnd() * 3) : 1
          for (let i = 0; i < n; i++) txn(s, { success: opsOf(rnd) })
          if (batch) s.watchHub.endBatch()
        } else if (r < 0.8) clock.advance(Math.floor(rnd() * 6))
        else if (r < 0.9) sink.congested = !sink.congested
        else if (!sink.congested) stream.resume()
        sends = eventMessages(sink).length
      }
      sink.congested = false
      stream.resume()
      clock.advance(1000)
      const msg = `seed ${seed}`
      assert.deepEqual(sink.events(), ref.events(), msg)
      const revs = eventMessages(sink).map(revsOf)
      const refRevs = eventMessages(ref).map(revsOf)
      // Whole revisions: each reference message (one revision) lies within one message of the windowed stream.
      const at = new Map<number, number>()
      revs.forEach((rs, i) => {
        for (const r of rs) at.set(r, i)
      })
      for (const rs of refRevs) assert.equal(new Set(rs.map((r) => at.get(r))).size, 1, `${msg}: revision split`)
      assert.ok(sends <= refRevs.length, msg)
    }
  })
})

/** One revision: a few puts and deletes of k/0..k/3 (one txn, one message per revision without a window). */
function opsOf(rnd: () => number) {
  const ops = []
  const first = Math.floor(rnd() * 4)
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
    const key = `k/${(first + n) % 4}`
    ops.push(rnd() < 0.8 ? opPut(key, String(n)) : opDel(key))
  }
  return ops
}
