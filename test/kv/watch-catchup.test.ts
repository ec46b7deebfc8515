/**
 * Issue 17: a watcher created with a start revision in the past (etcd's unsynced group) is caught up from history in
 * bounded turns, not at once at create time. `watch --rev 1` over 50,000 revisions, or 1,000 such watchers created
 * together, replays at most watchPumpEventsMax events per turn of the event loop (writes are applied between turns),
 * and the client sees exactly what a synchronous replay would have sent: `created` first, then every revision once,
 * in order, across the switch to live events while puts keep coming; a compaction of what it still needs cancels it
 * with compact_revision, as etcd; progress only once it is synced.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { KvStore } from '../../src/kv/store.js'
import { EventType, FilterType, type WatchResponse } from '../../src/protocol/types.js'
import { del, newStore, put, RecordingSink, str, watchReq } from './helpers.js'

/** A hub whose replay turns the test runs (WatchHub.defer). */
function withTurns(s: KvStore): { turns: (() => void)[] } {
  const turns: (() => void)[] = []
  s.watchHub.defer = (fn) => void turns.push(fn)
  return { turns }
}

const evs = (sink: RecordingSink, id = 0): string[] =>
  sink.messages
    .filter((m) => m.watch_id === id)
    .flatMap((m) =>
      m.events.map((e) => {
        const kv = `${str(e.kv.key)}=${str(e.kv.value)}@${e.kv.mod_revision}`
        const prev = e.prev_kv ? ` prev=${str(e.prev_kv.value)}` : ''
        return `${e.type === EventType.DELETE ? 'DELETE' : 'PUT'} ${kv}${prev}`
      }),
    )

const eventCount = (sink: RecordingSink) => sink.messages.reduce((n, m) => n + m.events.length, 0)

/**
 * The reference: the same history in a second store whose watcher is created before the writes, so that it gets every
 * event live, one revision at a time (what a synchronous replay must equal).
 */
function reference(writes: ((s: KvStore) => void)[], req: Parameters<typeof watchReq>): string[] {
  const s = newStore()
  const sink = new RecordingSink()
  s.watchHub.openStream(sink).create(watchReq(...req))
  for (const w of writes) w(s)
  return evs(sink)
}

describe('catch-up at create (issue 17)', () => {
  test('watch from rev 1 over 50,000 revisions: turns of at most watchPumpEventsMax events, writes between them, the same stream as a synchronous replay', () => {
    const s = newStore()
    const { turns } = withTurns(s)
    const max = s.config.watchPumpEventsMax
    const writes: ((s: KvStore) => void)[] = []
    const write = (f: (s: KvStore) => void) => {
      writes.push(f)
      f(s)
    }
    for (let i = 0; i < 50_000; i++) {
      const k = `k/${i % 97}`
      if (i % 11 === 10) write((x) => del(x, k))
      else write((x) => put(x, k, String(i)))
    }
    // Turns of the replay are set going by the writes above (nothing was replayed yet): run them first.
    while (turns.length > 0) turns.shift()!()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    const req: Parameters<typeof watchReq> = ['k/', 'k0', { start_revision: 1, prev_kv: true }]
    const t0 = performance.now()
    const id = stream.create(watchReq(...req))
    const createMs = performance.now() - t0
    assert.equal(id, 0)
    assert.equal(sink.messages[0]!.created, true, 'created comes first')
    const perTurn = [eventCount(sink)]
    assert.ok(perTurn[0]! <= max, `the create itself replayed ${perTurn[0]} events`)
    assert.ok(turns.length > 0, 'the rest waits for a later turn')
    // A write between each two turns, as the member's event loop would apply one: it goes out after the history,
    // in revision order, once.
    let n = 0
    while (turns.length > 0) {
      assert.ok(++n < 10_000, 'the replay ends')
      const i = 50_000 + n
      write((x) => put(x, `k/${i % 97}`, String(i)))
      const before = eventCount(sink)
      turns.shift()!()
      perTurn.push(eventCount(sink) - before)
    }
    assert.ok(Math.max(...perTurn) <= max, `events per turn: max ${Math.max(...perTurn)} > ${max}`)
    assert.ok(n >= Math.ceil(45_000 / max), `${n} turns`)
    // Live again: one more write arrives at once.
    write((x) => put(x, 'k/live', 'x'))
    assert.equal(turns.length, 0, 'nothing replayed for a live event')
    const want = reference(writes, req)
    assert.ok(want.length > 45_000 + n, `${want.length} events`)
    assert.deepEqual(evs(sink), want, 'every revision once, in order, with the writes made while catching up')
    assert.ok(
      sink.messages.slice(1).every((m) => !m.created && !m.canceled),
      'no other message than events',
    )
    // What the create cost: at most one turn's replay (a loaded machine gets a wide margin).
    assert.ok(createMs < 2000, `create took ${createMs.toFixed(1)} ms`)
  })

  test('1,000 watchers at rev 1 created at once on one stream: the creates replay one budget in all, the rest in turns', () => {
    const s = newStore()
    const { turns } = withTurns(s)
    const max = s.config.watchPumpEventsMax
    for (let i = 0; i < 400; i++) put(s, `a/${i % 7}`, String(i))
    while (turns.length > 0) turns.shift()!()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    for (let i = 0; i < 1000; i++) {
      const opts = i % 3 === 0 ? { start_revision: 1, filters: [FilterType.NOPUT] } : { start_revision: 1 + (i % 5) }
      stream.create(watchReq('a/', 'a0', opts))
    }
    assert.equal(sink.messages.filter((m) => m.created).length, 1000)
    // Events read from history (a new Event[]) count whole; a batch another watcher of the shape already got (the
    // same Event[], encoded once by a transport) counts an eighth.
    const seen = new Set<unknown>()
    let at = 0
    const turn = () => {
      let fresh = 0
      let all = 0
      for (; at < sink.messages.length; at++) {
        const m = sink.messages[at]!
        all += m.events.length
        if (m.events.length > 0 && !seen.has(m.events)) {
          seen.add(m.events)
          fresh += m.events.length
        }
      }
      return { fresh, all }
    }
    const first = turn()
    assert.ok(first.fresh <= max && first.all <= 8 * max, `the 1,000 creates replayed ${JSON.stringify(first)}`)
    const perTurn: { fresh: number; all: number }[] = []
    let n = 0
    while (turns.length > 0) {
      assert.ok(++n < 10_000)
      put(s, `a/${n % 7}`, `live${n}`)
      turns.shift()!()
      perTurn.push(turn())
    }
    for (const t of perTurn) assert.ok(t.fresh <= max && t.all <= 8 * max, `a turn replayed ${JSON.stringify(t)}`)
    assert.ok(n >= 20, `${n} turns`)
    // Every watcher: every PUT from its start revision, once, in order (the NOPUT ones: nothing).
    const all: string[] = []
    for (let r = 2; r <= s.revision; r++) {
      const [kv] = s.changesFrom(r, 1)[0]!.changes
      all.push(`PUT ${str(kv!.kv.key)}=${str(kv!.kv.value)}@${r}`)
    }
    for (let i = 0; i < 1000; i++) {
      const want = i % 3 === 0 ? [] : all.slice(Math.max(0, 1 + (i % 5) - 2))
      assert.deepEqual(evs(sink, i), want, `watcher ${i}`)
    }
  })

  test('a compaction while catching up: events up to there, then the compacted cancel (compact_revision, no header revision)', () => {
    const s = newStore({ watchPumpEventsMax: 100 })
    const { turns } = withTurns(s)
    for (let i = 0; i < 1000; i++) put(s, 'k', String(i)) // revisions 2..1001
    while (turns.length > 0) turns.shift()!()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('k', '', { start_revision: 1 }))
    // A second watcher already past the compaction point is unaffected.
    stream.create(watchReq('k', '', { start_revision: 900 }))
    turns.shift()!()
    const got = evs(sink, 0)
    assert.ok(got.length > 0 && got.length < 500, `${got.length} events so far`)
    s.apply({ compaction: { revision: 600, physical: false } })
    while (turns.length > 0) turns.shift()!()
    const mine = sink.messages.filter((m) => m.watch_id === 0)
    const last = mine.at(-1)!
    assert.deepEqual(
      [last.canceled, last.compact_revision, last.header?.revision, last.events.length],
      [true, 600, 0, 0],
      'etcd: canceled with compact_revision, header revision 0',
    )
    const all = evs(sink, 0)
    assert.deepEqual(
      all,
      Array.from({ length: all.length }, (_, i) => `PUT k=${i}@${i + 2}`),
      'the events before the cancel: from the start, in order, once',
    )
    assert.ok(all.length < 599, 'nothing from compacted history after the cancel')
    assert.deepEqual(
      evs(sink, 1),
      Array.from({ length: 102 }, (_, i) => `PUT k=${898 + i}@${900 + i}`),
    )
    assert.equal(s.watchHub.watcherCount, 1)
    put(s, 'k', 'after')
    assert.equal(evs(sink, 1).at(-1), 'PUT k=after@1002')
  })

  test('a start revision already compacted: created, then the compacted cancel', () => {
    const s = newStore()
    withTurns(s)
    for (let i = 0; i < 10; i++) put(s, 'k', String(i))
    s.apply({ compaction: { revision: 6, physical: false } })
    const sink = new RecordingSink()
    s.watchHub.openStream(sink).create(watchReq('k', '', { start_revision: 3 }))
    assert.deepEqual(
      sink.messages.map((m) => [m.created, m.canceled, m.compact_revision]),
      [
        [true, false, 0],
        [false, true, 6],
      ],
    )
  })

  test('progress only once synced: a progress request waits for the catch-up, progress_notify skips the unsynced watcher', () => {
    const s = newStore({ watchPumpEventsMax: 50 })
    const { turns } = withTurns(s)
    for (let i = 0; i < 500; i++) put(s, 'p', String(i)) // 2..501
    while (turns.length > 0) turns.shift()!()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('p', '', { start_revision: 1, progress_notify: true }))
    stream.requestProgress()
    s.watchHub.progressNotify()
    const progress = (m: WatchResponse) => !m.created && !m.canceled && m.events.length === 0
    assert.equal(sink.messages.filter(progress).length, 0, 'no progress while unsynced')
    let n = 0
    while (turns.length > 0) {
      turns.shift()!()
      n++
      s.watchHub.progressNotify()
    }
    assert.ok(n >= 10, `${n} turns`)
    const at = sink.messages.findIndex(progress)
    assert.ok(at > 0, 'progress once synced')
    const before = sink.messages.slice(0, at).flatMap((m) => m.events)
    assert.equal(before.length, 500, 'every event before the first progress message')
    assert.equal(sink.messages.slice(at).flatMap((m) => m.events).length, 0)
    // The answer to the request (watch_id -1) and the watcher's own notification (watch_id 0), at the current revision.
    assert.deepEqual(
      sink.messages
        .filter(progress)
        .slice(0, 2)
        .map((m) => [m.watch_id, m.header?.revision]),
      [
        [-1, 501],
        [0, 501],
      ],
    )
  })

  test('a cancel or a closed stream while catching up stops the replay', () => {
    const s = newStore({ watchPumpEventsMax: 10 })
    const { turns } = withTurns(s)
    for (let i = 0; i < 200; i++) put(s, 'c', String(i))
    while (turns.length > 0) turns.shift()!()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('c', '', { start_revision: 1 }))
    turns.shift()!()
    stream.cancel(0)
    const n = sink.messages.length
    while (turns.length > 0) turns.shift()!()
    assert.equal(sink.messages.length, n, 'nothing after the cancel')
    assert.equal(sink.messages.at(-1)!.canceled, true)
    stream.create(watchReq('c', '', { start_revision: 1 }))
    stream.close()
    const m = sink.messages.length
    while (turns.length > 0) turns.shift()!()
    assert.equal(sink.messages.length, m)
    assert.equal(s.watchHub.watcherCount, 0)
  })

  test('on the event loop (default defer): other callbacks run between the chunks of one create', async () => {
    const s = newStore()
    for (let i = 0; i < 50_000; i++) put(s, `e/${i % 13}`, String(i))
    await new Promise((r) => setTimeout(r, 5)) // the replay turn the writes scheduled
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    stream.create(watchReq('e/', 'e0', { start_revision: 1 }))
    const atCreate = eventCount(sink)
    assert.ok(atCreate <= s.config.watchPumpEventsMax)
    // A write from another callback (a client's put) is applied while the watcher still catches up.
    const during = await new Promise<number>((resolve) =>
      setImmediate(() => {
        put(s, 'e/x', 'during')
        resolve(eventCount(sink))
      }),
    )
    assert.ok(during < 50_000, `${during} events replayed before the write`)
    const deadline = Date.now() + 60_000
    while (eventCount(sink) < 50_001 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    const got = evs(sink)
    assert.equal(got.length, 50_001)
    assert.equal(got.at(-1), `PUT e/x=during@50002`)
    for (let i = 0; i < 50_000; i++)
      if (got[i] !== `PUT e/${i % 13}=${i}@${i + 2}`) assert.fail(`event ${i}: ${got[i]}`)
  })
})
