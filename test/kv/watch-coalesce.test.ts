/**
 * Coalescing an apply batch's revisions into one message per watcher (WatchHub.beginBatch/endBatch): a watcher gets
 * exactly the events it would get one revision at a time, in order, never across a compaction, a progress answer,
 * a create or a cancel, within the revision and byte caps, and watchers of one shape share one Event[].
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { watchJsonStats, watchResultJson } from '../../src/api/http/codec/watch-json.js'
import type { KvConfig } from '../../src/kv/config.js'
import type { KvStore } from '../../src/kv/store.js'
import type { WatchStream } from '../../src/kv/watch.js'
import { FilterType, type WatchCreateRequest, type WatchResponse } from '../../src/protocol/types.js'
import { del, newStore, opDel, opPut, put, RecordingSink, str, txn, watchReq, xorshift } from './helpers.js'

const keys = ['a', 'b', 'c', 'p/1', 'p/2', 'p/3', 'q']

/** A watcher as the tests see it: its stream's recording, and its id there. */
interface Seen {
  sink: RecordingSink
  id: number
  /** Canceled by the script: events still queued behind a congested transport are dropped with it. */
  canceled?: boolean
}

/** Every event of watcher `id` in these messages, as text, and whether it ended canceled with compact_revision. */
function eventsOf(messages: WatchResponse[], id: number): { events: string[]; compacted: boolean } {
  const events: string[] = []
  let compacted = false
  for (const m of messages) {
    if (m.watch_id !== id) continue
    if (m.canceled && m.compact_revision > 0) compacted = true
    for (const e of m.events) {
      const kv = e.kv
      const prev = e.prev_kv ? ` prev=${str(e.prev_kv.value)}@${e.prev_kv.mod_revision}` : ''
      events.push(`${e.type === 0 ? 'PUT' : 'DELETE'} ${str(kv.key)}=${str(kv.value)}@${kv.mod_revision}${prev}`)
    }
  }
  return { events, compacted }
}

type Step =
  | { kind: 'write'; n: number }
  | { kind: 'batch'; on: boolean }
  | { kind: 'create'; stream: number; req: WatchCreateRequest; startOffset: number | undefined }
  | { kind: 'cancel'; stream: number; pick: number }
  | { kind: 'progress'; stream: number }
  | { kind: 'compact'; back: number }
  | { kind: 'congest'; stream: number; on: boolean }

/** A seeded script of writes, batches, creates (synced, future and past starts), cancels, progress, compactions. */
function script(seed: number, opts: { congestion: boolean; past: boolean; compaction: boolean }): Step[] {
  const rnd = xorshift(seed)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!
  const steps: Step[] = []
  for (let i = 0; i < 120; i++) {
    const r = rnd()
    if (r < 0.45) steps.push({ kind: 'write', n: Math.floor(rnd() * 1e9) })
    else if (r < 0.6) steps.push({ kind: 'batch', on: rnd() < 0.6 })
    else if (r < 0.75) {
      const shape = Math.floor(rnd() * 5)
      const [key, end] =
        shape === 0
          ? [pick(keys), '']
          : shape === 1
            ? ['p/', 'p0']
            : shape === 2
              ? ['b', 'p/3']
              : shape === 3
                ? ['c', '\0']
                : ['a', 'r']
      const filters: FilterType[] = []
      if (rnd() < 0.2) filters.push(FilterType.NOPUT)
      if (rnd() < 0.2) filters.push(FilterType.NODELETE)
      const start = rnd()
      const startOffset = start < 0.5 ? undefined : start < 0.8 || !opts.past ? 1 + Math.floor(rnd() * 3) : -3
      steps.push({
        kind: 'create',
        stream: Math.floor(rnd() * 3),
        req: watchReq(key, end, { prev_kv: rnd() < 0.4, filters }),
        startOffset,
      })
    } else if (r < 0.8) steps.push({ kind: 'cancel', stream: Math.floor(rnd() * 3), pick: rnd() })
    else if (r < 0.86) steps.push({ kind: 'progress', stream: Math.floor(rnd() * 3) })
    else if (r < 0.9 && opts.compaction) steps.push({ kind: 'compact', back: Math.floor(rnd() * 4) })
    else if (opts.congestion) steps.push({ kind: 'congest', stream: Math.floor(rnd() * 3), on: rnd() < 0.5 })
  }
  return steps
}

/** One write of the script: a put, a delete, or a txn of several, on the small key space. */
function write(s: KvStore, n: number): void {
  const rnd = xorshift(n)
  const key = keys[Math.floor(rnd() * keys.length)]!
  const r = rnd()
  if (r < 0.55) put(s, key, `v${n % 1000}`)
  else if (r < 0.75) del(s, key)
  else if (r < 0.85) del(s, 'p/', 'p0')
  else {
    const other = key === 'p/2' ? 'a' : 'p/2'
    txn(s, { success: [opPut(key, `t${n % 1000}`), opPut(other, `u${n % 1000}`), opDel(key === 'q' ? 'c' : 'q')] })
  }
}

interface Run {
  store: KvStore
  sinks: RecordingSink[]
  watchers: Seen[]
  /**
   * The store's revision at each create, cancel and progress (on that stream) and compaction (stream -1: every
   * stream): no coalesced message of the stream may span one.
   */
  barriers: { stream: number; rev: number }[]
}

/** Plays a script; `batches` false plays the batch steps as nothing (the one-revision-per-message reference). */
function play(steps: Step[], batches: boolean, config: Partial<KvConfig> = {}): Run {
  const store = newStore(config)
  for (const k of keys) put(store, k, 'init')
  const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()]
  const streams: WatchStream[] = sinks.map((k) => store.watchHub.openStream(k))
  const watchers: Seen[] = []
  const live: Seen[][] = [[], [], []]
  const barriers: { stream: number; rev: number }[] = []
  let inBatch = false
  for (const st of steps) {
    switch (st.kind) {
      case 'write':
        write(store, st.n)
        break
      case 'batch':
        if (!batches || st.on === inBatch) break
        inBatch = st.on
        if (st.on) store.watchHub.beginBatch()
        else store.watchHub.endBatch()
        break
      case 'create': {
        const start = st.startOffset === undefined ? 0 : Math.max(1, store.revision + st.startOffset)
        barriers.push({ stream: st.stream, rev: store.revision })
        const id = streams[st.stream]!.create({ ...st.req, start_revision: start })
        if (id !== -1) {
          const w = { sink: sinks[st.stream]!, id: Number(id) }
          watchers.push(w)
          live[st.stream]!.push(w)
        }
        break
      }
      case 'cancel': {
        const ws = live[st.stream]!
        if (ws.length === 0) break
        const w = ws.splice(Math.floor(st.pick * ws.length), 1)[0]!
        w.canceled = true
        barriers.push({ stream: st.stream, rev: store.revision })
        streams[st.stream]!.cancel(w.id)
        break
      }
      case 'progress':
        barriers.push({ stream: st.stream, rev: store.revision })
        streams[st.stream]!.requestProgress()
        break
      case 'compact': {
        const rev = store.revision - st.back
        if (rev > store.compactRevision) {
          barriers.push({ stream: -1, rev: store.revision })
          store.apply({ compaction: { revision: rev, physical: false } })
        }
        break
      }
      case 'congest':
        // The reference run has no congestion: it gets every event of every watcher.
        if (!batches) break
        sinks[st.stream]!.congested = st.on
        if (!st.on) streams[st.stream]!.resume()
        break
    }
  }
  if (inBatch) store.watchHub.endBatch()
  for (let i = 0; i < 3; i++) {
    sinks[i]!.congested = false
    streams[i]!.resume()
  }
  return { store, sinks, watchers, barriers }
}

/** Revisions of a message's events, in message order. */
const revsOf = (m: WatchResponse) => m.events.map((e) => e.kv.mod_revision)

describe('coalesced watch messages', () => {
  test('seeded scripts with congestion: every watcher gets exactly the events of the one-revision-per-message run, in order', () => {
    let multi = 0
    for (let seed = 1; seed <= 300; seed++) {
      // No compaction here: a watcher that overflowed its queue catches up from history, and after a compaction
      // history lacks the compact revision's tombstones and older prev_kvs (as etcd's): the run without congestion
      // below covers compactions.
      const steps = script(seed, { congestion: true, past: true, compaction: false })
      const ref = play(steps, false)
      // Small queues, so congestion overflows into catch-up now and then.
      const got = play(steps, true, { watcherQueueEventsMax: 6 })
      assert.equal(got.watchers.length, ref.watchers.length, `seed ${seed}`)
      for (let i = 0; i < got.watchers.length; i++) {
        const g = eventsOf(got.watchers[i]!.sink.messages, got.watchers[i]!.id)
        const r = eventsOf(ref.watchers[i]!.sink.messages, ref.watchers[i]!.id)
        if (got.watchers[i]!.canceled) {
          // Canceled with events still queued behind the congested transport: a prefix, never more.
          assert.deepEqual(g.events, r.events.slice(0, g.events.length), `seed ${seed} watcher ${i}`)
        } else assert.deepEqual(g.events, r.events, `seed ${seed} watcher ${i}`)
      }
      for (const k of got.sinks)
        for (const m of k.messages) {
          const revs = revsOf(m)
          for (let j = 1; j < revs.length; j++) assert.ok(revs[j]! >= revs[j - 1]!, `seed ${seed}: out of order`)
          if (new Set(revs).size > 1) multi++
          if (revs.length > 0) assert.ok(m.header!.revision >= revs[revs.length - 1]!, `seed ${seed}: header`)
        }
    }
    // The scripts do exercise coalescing (and catch-up): many messages carry several revisions.
    assert.ok(multi > 100, `only ${multi} multi-revision messages`)
  })

  test('seeded scripts without congestion: one message per watcher per batch, never across a barrier', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const steps = script(seed, { congestion: false, past: false, compaction: true })
      const got = play(steps, true)
      const ref = play(steps, false)
      for (let i = 0; i < got.watchers.length; i++) {
        const w = got.watchers[i]!
        assert.deepEqual(
          eventsOf(w.sink.messages, w.id).events,
          eventsOf(ref.watchers[i]!.sink.messages, ref.watchers[i]!.id).events,
          `seed ${seed} watcher ${i}`,
        )
      }
      for (const [i, k] of got.sinks.entries())
        for (const m of k.messages) {
          const revs = revsOf(m)
          if (revs.length === 0) continue
          const lo = revs[0]!
          const hi = revs[revs.length - 1]!
          // A synced watcher's message: header.revision is its last event's.
          assert.equal(m.header!.revision, hi, `seed ${seed}`)
          for (const { stream, rev: b } of got.barriers)
            if (stream === -1 || stream === i)
              assert.ok(!(lo <= b && b < hi), `seed ${seed}: message ${lo}-${hi} spans ${b} (stream ${stream})`)
        }
    }
  })

  test('a batch is one message per watcher; a watcher created inside gets only what follows; outside, one per write', () => {
    const s = newStore()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('p/', 'p0', { prev_kv: true }))
    stream.create(watchReq('p/1'))
    const other = new RecordingSink()
    const late = s.watchHub.openStream(other)
    sink.clear()
    s.watchHub.beginBatch()
    put(s, 'p/1', 'x') // 2
    put(s, 'q', 'y') // 3
    late.create(watchReq('p/', 'p0', { start_revision: 5 })) // starts in the middle of the batch
    put(s, 'p/2', 'z') // 4
    del(s, 'p/1') // 5
    put(s, 'p/3', 'w') // 6
    assert.equal(sink.messages.length, 0, 'held until the batch ends')
    s.watchHub.endBatch()
    assert.deepEqual(
      sink.messages.map((m) => [m.watch_id, m.header?.revision, revsOf(m)]),
      [
        [0, 6, [2, 4, 5, 6]],
        [1, 5, [2, 5]],
      ],
    )
    assert.equal(str(sink.messages[0]!.events[2]!.prev_kv!.value), 'x')
    assert.deepEqual(
      other.messages.filter((m) => m.events.length).map((m) => [m.header?.revision, revsOf(m)]),
      [[6, [5, 6]]],
    )
    sink.clear()
    put(s, 'p/1', 'a')
    put(s, 'p/1', 'b')
    assert.deepEqual(
      sink.messages.map((m) => revsOf(m)),
      [[7], [7], [8], [8]],
    )
  })

  test('a compaction, a progress answer or a cancel inside a batch ends the message before it', () => {
    const s = newStore()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k'))
    stream.create(watchReq('k'))
    sink.clear()
    s.watchHub.beginBatch()
    put(s, 'k', '1') // 2
    put(s, 'k', '2') // 3
    s.apply({ compaction: { revision: 2, physical: false } })
    put(s, 'k', '3') // 4
    stream.requestProgress()
    put(s, 'k', '4') // 5
    stream.cancel(1)
    put(s, 'k', '5') // 6
    s.watchHub.endBatch()
    assert.deepEqual(
      sink.messages.map((m) => [m.watch_id, m.canceled, m.header?.revision, revsOf(m)]),
      [
        [0, false, 3, [2, 3]],
        [1, false, 3, [2, 3]],
        [0, false, 4, [4]],
        [1, false, 4, [4]],
        [-1, false, 4, []],
        [0, false, 5, [5]],
        [1, false, 5, [5]],
        [1, true, 5, []],
        [0, false, 6, [6]],
      ],
    )
  })

  test('caps: at most watchBatchRevisionsMax revisions and watchCoalesceBytesMax bytes per message', () => {
    const s = newStore({ watchBatchRevisionsMax: 3, watchCoalesceBytesMax: 400 })
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k'))
    stream.create(watchReq('big'))
    sink.clear()
    s.watchHub.beginBatch()
    for (let i = 0; i < 7; i++) put(s, 'k', String(i)) // 2..8
    for (let i = 0; i < 4; i++) put(s, 'big', 'x'.repeat(150)) // 9..12: ~217 B each, one per message
    s.watchHub.endBatch()
    const of = (id: number) => sink.messages.filter((m) => m.watch_id === id).map(revsOf)
    assert.deepEqual(of(0), [[2, 3, 4], [5, 6, 7], [8]])
    assert.deepEqual(of(1), [[9], [10], [11], [12]])
  })

  test("congested while a batch is held: its messages are queued (a watcher's merged into one), then flushed in order on resume", () => {
    const s = newStore()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k'))
    stream.create(watchReq('j'))
    sink.clear()
    s.watchHub.beginBatch()
    put(s, 'k', '1') // 2
    put(s, 'j', '1') // 3
    sink.congested = true
    // The progress answer waits for the held messages: the first is sent and reports congestion, the second is
    // queued, and the answer is deferred until the stream drained (it promises every event before it was sent).
    stream.requestProgress()
    assert.deepEqual(
      sink.messages.map((m) => [m.watch_id, revsOf(m)]),
      [[0, [2]]],
    )
    put(s, 'k', '2') // 4: queued
    put(s, 'j', '2') // 5: queued
    s.watchHub.endBatch()
    assert.equal(sink.messages.length, 1)
    sink.congested = false
    stream.resume()
    const of = (id: number) => sink.messages.filter((m) => m.watch_id === id).map(revsOf)
    assert.deepEqual(of(0), [[2], [4]])
    // Watcher 1's queued revisions 3 and 5 leave as one message (header = the last), as etcd's victim batch.
    assert.deepEqual(of(1), [[3, 5]])
    assert.equal(sink.messages.find((m) => m.watch_id === 1 && m.events.length > 0)!.header!.revision, 5)
    assert.equal(sink.messages.at(-1)!.watch_id, -1)
  })

  test('watchers of one shape share one coalesced Event[], encoded to JSON once', () => {
    const s = newStore()
    const sinks = Array.from({ length: 50 }, () => new RecordingSink())
    for (const k of sinks) s.watchHub.openStream(k).create(watchReq('p/', 'p0'))
    const odd = new RecordingSink()
    s.watchHub.openStream(odd).create(watchReq('p/', 'p0', { prev_kv: true }))
    s.watchHub.beginBatch()
    put(s, 'p/1', 'a')
    put(s, 'x', 'a')
    put(s, 'p/2', 'b')
    s.watchHub.endBatch()
    const msgs = sinks.map((k) => k.messages.find((m) => m.events.length > 0)!)
    for (const m of msgs) assert.equal(m.events, msgs[0]!.events)
    assert.deepEqual(revsOf(msgs[0]!), [2, 4])
    const oddMsg = odd.messages.find((m) => m.events.length > 0)!
    assert.notEqual(oddMsg.events, msgs[0]!.events)
    const before = watchJsonStats.eventEncodes
    for (const m of msgs) watchResultJson(m)
    assert.equal(watchJsonStats.eventEncodes - before, 1)
  })

  test('a closed stream or a canceled watcher drops its held events; nested batches flush at the outer end', () => {
    const s = newStore()
    const a = new RecordingSink()
    const b = new RecordingSink()
    const sa = s.watchHub.openStream(a)
    const sb = s.watchHub.openStream(b)
    sa.create(watchReq('k'))
    sb.create(watchReq('k'))
    a.clear()
    b.clear()
    s.watchHub.beginBatch()
    s.watchHub.beginBatch()
    put(s, 'k', '1')
    s.watchHub.endBatch()
    assert.equal(a.messages.length + b.messages.length, 0)
    put(s, 'k', '2')
    sa.close()
    s.watchHub.endBatch()
    assert.equal(a.messages.length, 0)
    assert.deepEqual(
      b.messages.map((m) => revsOf(m)),
      [[2, 3]],
    )
  })

  test('catch-up: watchers of one shape at one position share one Event[] across streams, until the next write', () => {
    const s = newStore()
    for (let i = 0; i < 5; i++) put(s, `p/${i}`, 'x')
    const sinks = Array.from({ length: 20 }, () => new RecordingSink())
    for (const k of sinks) s.watchHub.openStream(k).create(watchReq('p/', 'p0', { start_revision: 2 }))
    const batches = sinks.map((k) => k.messages.find((m) => m.events.length > 0)!)
    assert.deepEqual(revsOf(batches[0]!), [2, 3, 4, 5, 6])
    for (const m of batches) assert.equal(m.events, batches[0]!.events)
    put(s, 'p/9', 'y')
    const late = new RecordingSink()
    s.watchHub.openStream(late).create(watchReq('p/', 'p0', { start_revision: 2 }))
    const m = late.messages.find((x) => x.events.length > 0)!
    assert.deepEqual(revsOf(m), [2, 3, 4, 5, 6, 7])
    assert.notEqual(m.events, batches[0]!.events)
  })
})
