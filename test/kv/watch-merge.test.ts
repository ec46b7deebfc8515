/**
 * Merging a lagging watcher's queued messages (WatchStream.enqueue): while a stream is congested, each watcher's
 * later revisions join its last queued message, so that when the transport drains the watcher gets what it missed
 * in one WatchResponse (header.revision = the last), as etcd 3.4's victim and unsynced batches, instead of one per
 * apply batch (issue 17: ~20 gRPC messages per put to 100 watchers on one stream, against etcd's 1.3-7). Events stay
 * in revision order, each once, a revision never split across two messages; the revision and byte caps hold; the
 * watchers of one shape that fell behind together share one Event[] (encoded once) and cost the replay budget once.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { watchJsonStats, watchResultJson } from '../../src/api/http/codec/watch-json.js'
import type { KvConfig } from '../../src/kv/config.js'
import type { KvStore } from '../../src/kv/store.js'
import type { WatchStream } from '../../src/kv/watch.js'
import type { WatchResponse } from '../../src/protocol/types.js'
import { del, newStore, opPut, put, RecordingSink, str, txn, watchReq, xorshift } from './helpers.js'

/** A store whose replay turns run when the test says (no timers). */
function store(config: Partial<KvConfig> = {}): { s: KvStore; turns: () => void } {
  const s = newStore(config)
  const later: (() => void)[] = []
  s.watchHub.defer = (fn) => later.push(fn)
  const turns = () => {
    for (let i = 0; i < 1000 && later.length > 0; i++) later.shift()!()
  }
  return { s, turns }
}

const revsOf = (m: WatchResponse) => m.events.map((e) => e.kv.mod_revision)

/** Watcher id's events in these messages, as text, in message order. */
function eventsOf(messages: WatchResponse[], id: number): string[] {
  return messages
    .filter((m) => m.watch_id === id)
    .flatMap((m) =>
      m.events.map(
        (e) =>
          `${e.type === 0 ? 'PUT' : 'DEL'} ${str(e.kv.key)}=${str(e.kv.value)}@${e.kv.mod_revision}` +
          (e.prev_kv ? ` prev=${str(e.prev_kv.value)}` : ''),
      ),
    )
}

const eventMessages = (sink: RecordingSink, id: number) =>
  sink.messages.filter((m) => m.watch_id === id && m.events.length > 0)

/** A few apply batches of puts, deletes and multi-key txns on p/ and k (the same writes on any store). */
function writes(s: KvStore, batches: number, from = 0): void {
  for (let b = from; b < from + batches; b++) {
    s.watchHub.beginBatch()
    put(s, 'p/1', `a${b}`)
    put(s, 'k', `k${b}`)
    txn(s, { success: [opPut('p/2', `t${b}`), opPut('p/3', `u${b}`), opPut('k', `kk${b}`)] })
    if (b % 2 === 1) del(s, 'p/1')
    s.watchHub.endBatch()
  }
}

describe('merged queued watch messages', () => {
  test("a lagging watcher's queued batches leave as one message: every event once, in order, header = the last", () => {
    const ref = store()
    const refSink = new RecordingSink()
    const refStream = ref.s.watchHub.openStream(refSink)
    const { s, turns } = store()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    for (const st of [refStream, stream]) {
      st.create(watchReq('p/', 'p0', { prev_kv: true }))
      st.create(watchReq('k'))
    }
    // The first batch finds the transport congested (its first message is taken, the rest is queued).
    sink.congested = true
    writes(s, 6)
    // A lone write outside a batch merges too.
    put(s, 'p/9', 'lone')
    writes(ref.s, 6)
    put(ref.s, 'p/9', 'lone')
    const before = sink.messages.length
    assert.ok(before <= 3, `${before} messages while congested`)
    sink.congested = false
    stream.resume()
    turns()
    for (const id of [0, 1])
      assert.deepEqual(eventsOf(sink.messages, id), eventsOf(refSink.messages, id), `watcher ${id}`)
    const after = sink.messages.slice(before)
    // One message per watcher after the drain, whatever the number of batches queued.
    assert.deepEqual(after.map((m) => m.watch_id).sort(), [0, 1])
    for (const m of after) {
      const revs = revsOf(m)
      for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! >= revs[i - 1]!, 'revision order')
      assert.equal(m.header!.revision, revs[revs.length - 1])
    }
    // The reference sent one message per watcher per batch.
    assert.ok(eventMessages(refSink, 0).length >= 7)
  })

  test('100 watchers of one shape on one stream: one message each after the drain, one Event[] encoded once', () => {
    const { s, turns } = store()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    for (let i = 0; i < 100; i++) stream.create(watchReq('k'))
    sink.clear()
    sink.congested = true
    for (let b = 0; b < 20; b++) {
      s.watchHub.beginBatch()
      for (let i = 0; i < 5; i++) put(s, 'k', `v${b}.${i}`)
      s.watchHub.endBatch()
    }
    // Batch 1's first message found the transport congested; the other 99 watchers queued all 100 revisions, watcher
    // 0 the 95 after its message.
    assert.equal(sink.messages.length, 1)
    sink.clear()
    sink.congested = false
    stream.resume()
    // 99 x 100 + 95 queued events, past the turn's replay budget (2,048) unless shared messages cost a fraction.
    assert.equal(sink.messages.length, 100, 'every watcher in the one replay turn')
    turns()
    assert.equal(sink.messages.length, 100)
    const rest = sink.messages.filter((m) => m.watch_id !== 0)
    for (const m of rest) {
      assert.equal(m.events, rest[0]!.events, 'one shared Event[]')
      assert.deepEqual(
        revsOf(m),
        Array.from({ length: 100 }, (_, i) => i + 2),
      )
      assert.equal(m.header!.revision, 101)
    }
    const w0 = sink.messages.find((m) => m.watch_id === 0)!
    assert.deepEqual(
      revsOf(w0),
      Array.from({ length: 95 }, (_, i) => i + 7),
    )
    const enc = watchJsonStats.eventEncodes
    for (const m of sink.messages) watchResultJson(m)
    assert.equal(watchJsonStats.eventEncodes - enc, 2, 'one encode per distinct Event[]')
  })

  test('caps: at most watchBatchRevisionsMax revisions and watchCoalesceBytesMax bytes per merged message', () => {
    const { s, turns } = store({ watchBatchRevisionsMax: 3, watchCoalesceBytesMax: 400 })
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k'))
    stream.create(watchReq('b', 'c'))
    sink.clear()
    sink.congested = true
    put(s, 'x', '0') // 2: nobody's
    put(s, 'k', '0') // 3: sent, finds the transport congested
    for (let i = 1; i <= 7; i++) put(s, 'k', String(i)) // 4..10: queued
    // ~217 B per event: one revision per message, and a two-event revision (~434 B, past the cap alone) whole.
    put(s, 'b1', 'x'.repeat(150)) // 11
    txn(s, { success: [opPut('b2', 'y'.repeat(150)), opPut('b3', 'z'.repeat(150))] }) // 12
    put(s, 'b1', 'w'.repeat(150)) // 13
    sink.congested = false
    stream.resume()
    turns()
    const of = (id: number) => eventMessages(sink, id).map(revsOf)
    assert.deepEqual(of(0), [[3], [4, 5, 6], [7, 8, 9], [10]])
    assert.deepEqual(of(1), [[11], [12, 12], [13]])
  })

  test('seeded congestion: events equal the uncongested run, each revision whole in one message, merges happen', () => {
    let merged = 0
    for (let seed = 1; seed <= 60; seed++) {
      const rnd = xorshift(Math.imul(seed, 0x9e3779b1))
      const caps = {
        watchBatchRevisionsMax: 1 + Math.floor(rnd() * 8),
        watchCoalesceBytesMax: 300 + Math.floor(rnd() * 2000),
      }
      const ref = store(caps)
      const got = store(caps)
      const refSink = new RecordingSink()
      const sink = new RecordingSink()
      const streams: [WatchStream, WatchStream] = [ref.s.watchHub.openStream(refSink), got.s.watchHub.openStream(sink)]
      for (const st of streams) {
        st.create(watchReq('p/', 'p0', { prev_kv: true }))
        st.create(watchReq('k'))
        st.create(watchReq('a', '\0'))
      }
      for (let step = 0; step < 40; step++) {
        const r = rnd()
        if (r < 0.25) {
          sink.congested = !sink.congested
          if (!sink.congested) {
            streams[1].resume()
            got.turns()
          }
        } else if (r < 0.35) {
          del(ref.s, 'p/', 'p0')
          del(got.s, 'p/', 'p0')
        } else {
          writes(ref.s, 1, step)
          writes(got.s, 1, step)
        }
      }
      sink.congested = false
      streams[1].resume()
      got.turns()
      for (const id of [0, 1, 2])
        assert.deepEqual(eventsOf(sink.messages, id), eventsOf(refSink.messages, id), `seed ${seed} watcher ${id}`)
      for (const id of [0, 1, 2]) {
        // Each revision of a watcher is in exactly one message.
        const where = new Map<number, WatchResponse>()
        for (const m of eventMessages(sink, id)) {
          const revs = revsOf(m)
          for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! >= revs[i - 1]!, `seed ${seed}: order`)
          assert.ok(m.header!.revision >= revs[revs.length - 1]!, `seed ${seed}: header`)
          for (const r of revs) {
            const at = where.get(r)
            assert.ok(at === undefined || at === m, `seed ${seed} watcher ${id}: revision ${r} split`)
            where.set(r, m)
          }
        }
        if (eventMessages(sink, id).length < eventMessages(refSink, id).length) merged++
      }
    }
    assert.ok(merged > 30, `only ${merged} watchers got fewer messages`)
  })
})

describe('a held stream (WatchStream.hold: its transport is still writing)', () => {
  test('events wait merged per watcher until resume; a progress request waits too; the progress tick does not', () => {
    const { s, turns } = store()
    const sink = new RecordingSink()
    const st = s.watchHub.openStream(sink)
    const busy = st.create(watchReq('k')) as number
    const idle = st.create(watchReq('other', '', { progress_notify: true }))
    // The same watch on a stream that is never held: what the held one must get, in other messages.
    const ref = new RecordingSink()
    const refId = s.watchHub.openStream(ref).create(watchReq('k')) as number
    sink.clear()
    st.hold()
    writes(s, 5)
    assert.equal(sink.messages.length, 0, 'nothing sent while held')
    // etcd's progress tick goes to an idle synced watcher while its send buffer has room: held is not congested.
    s.watchHub.progressNotify()
    assert.deepEqual(
      sink.messages.map((m) => [m.watch_id, m.events.length]),
      [[idle, 0]],
    )
    // A progress answer promises every event up to its revision: it waits for the held events.
    st.requestProgress()
    assert.equal(sink.messages.length, 1)
    st.resume()
    turns()
    const ev = eventMessages(sink, busy)
    assert.equal(ev.length, 1, 'the five batches in one message')
    assert.equal(eventMessages(ref, refId).length, 5)
    assert.deepEqual(eventsOf(sink.messages, busy), eventsOf(ref.messages, refId))
    assert.equal(ev[0]!.header!.revision, revsOf(ev[0]!).at(-1))
    const progress = sink.messages.at(-1)!
    assert.equal(progress.watch_id, -1)
    assert.equal(progress.header!.revision, s.revision)
    // Not held: the next batch goes at once.
    sink.clear()
    writes(s, 1, 5)
    assert.equal(eventMessages(sink, busy).length, 1)
    // Congested (the sink said so) is not held: no progress tick then.
    st.hold()
    sink.congested = true
    writes(s, 1, 6)
    put(s, 'other', 'x')
    sink.clear()
    st.resume()
    assert.ok(sink.messages.length > 0)
    sink.clear()
    s.watchHub.progressNotify()
    assert.equal(sink.messages.length, 0)
  })
})
