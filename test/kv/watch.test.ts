/**
 * The watch hub: etcd's message shapes (etcd-api.md §5), replay batching, filters, prev_kv, compaction, progress,
 * and bounded slow watchers that catch up from history without loss or duplicates.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { watchResultJson } from '../../src/api/http/codec/watch-json.js'
import type { KvStore } from '../../src/kv/store.js'
import { isSharedEvents } from '../../src/kv/watch.js'
import { EventType, FilterType } from '../../src/protocol/types.js'
import { del, newStore, opDel, opPut, opTxn, put, RecordingSink, str, txn, watchReq, xorshift } from './helpers.js'

function open(s: KvStore) {
  const sink = new RecordingSink()
  const stream = s.watchHub.openStream(sink)
  return { sink, stream }
}

describe('watch create and cancel', () => {
  test('created carries the current revision; auto ids count from 0; client ids are honoured; duplicates refused', () => {
    const s = newStore()
    put(s, 'x')
    const { sink, stream } = open(s)
    assert.equal(stream.create(watchReq('a')), 0)
    assert.equal(stream.create(watchReq('a')), 1)
    assert.equal(stream.create(watchReq('a', '', { watch_id: 7 })), 7)
    assert.equal(stream.create(watchReq('a', '', { watch_id: 7 })), -1)
    const [m0, m1, m7, dup] = sink.messages
    assert.deepEqual([m0!.watch_id, m0!.created, m0!.header?.revision], [0, true, 2])
    assert.equal(m1!.watch_id, 1)
    assert.equal(m7!.watch_id, 7)
    assert.deepEqual(
      [dup!.watch_id, dup!.created, dup!.canceled, dup!.cancel_reason],
      [-1, true, true, 'mvcc: duplicate watch ID provided on the WatchStream'],
    )
    assert.equal(s.watchHub.watcherCount, 3)
  })

  test('range_end <= key is refused as an empty range', () => {
    const { sink, stream } = open(newStore())
    assert.equal(stream.create(watchReq('c', 'b')), -1)
    assert.equal(sink.messages[0]!.cancel_reason, 'mvcc: watcher range is empty')
  })

  test('cancel answers canceled; an unknown id gets no answer; no events after cancel', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('a'))
    sink.clear()
    assert.equal(stream.cancel(0), true)
    assert.deepEqual([sink.messages[0]!.watch_id, sink.messages[0]!.canceled], [0, true])
    assert.equal(stream.cancel(5), false)
    assert.equal(sink.messages.length, 1)
    put(s, 'a')
    assert.equal(sink.messages.length, 1)
    assert.equal(s.watchHub.watcherCount, 0)
  })

  test('maxWatchers bounds the watchers of all streams', () => {
    const s = newStore({ maxWatchers: 2 })
    const a = open(s)
    const b = open(s)
    a.stream.create(watchReq('a'))
    b.stream.create(watchReq('a'))
    assert.equal(b.stream.create(watchReq('a')), -1)
    assert.equal(b.sink.messages[1]!.cancel_reason, 'etcdserver: too many watchers')
    a.stream.close()
    assert.equal(b.stream.create(watchReq('a')), 1)
  })
})

describe('live events', () => {
  test('PUT and DELETE events; header revision = the event revision', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('k'))
    sink.clear()
    put(s, 'k', 'v1') // 2
    put(s, 'other') // 3
    del(s, 'k') // 4
    assert.deepEqual(sink.events(), ['PUT k=v1@2', 'DELETE k@4'])
    assert.deepEqual(
      sink.messages.map((m) => m.header?.revision),
      [2, 4],
    )
    const d = sink.messages[1]!.events[0]!
    assert.equal(d.type, EventType.DELETE)
    assert.deepEqual([d.kv.create_revision, d.kv.version, d.kv.value.length, d.kv.lease], [0, 0, 0, 0n])
  })

  test('all events of one txn come in one message', () => {
    const s = newStore()
    put(s, 'p/old')
    const { sink, stream } = open(s)
    stream.create(watchReq('p/', 'p0'))
    sink.clear()
    txn(s, { success: [opPut('p/a', '1'), opPut('p/b', '2'), opDel('p/old'), opPut('q', 'not watched')] })
    assert.equal(sink.messages.length, 1)
    assert.equal(sink.messages[0]!.header?.revision, 3)
    assert.deepEqual(sink.events(), ['PUT p/a=1@3', 'PUT p/b=2@3', 'DELETE p/old@3'])
  })

  test('from-key watch ("\\0") and prefix watch', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('m', '\0'))
    sink.clear()
    put(s, 'a')
    put(s, 'm')
    put(s, 'z')
    assert.deepEqual(sink.events(), ['PUT m=@3', 'PUT z=@4'])
  })

  test('prev_kv on PUT (not on create) and DELETE', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('k', '', { prev_kv: true }))
    put(s, 'k', 'v1')
    put(s, 'k', 'v2')
    del(s, 'k')
    const evs = sink.messages.flatMap((m) => m.events)
    assert.equal(evs[0]!.prev_kv, undefined)
    assert.equal(str(evs[1]!.prev_kv!.value), 'v1')
    assert.equal(str(evs[2]!.prev_kv!.value), 'v2')
    assert.equal(evs[2]!.prev_kv!.version, 2)
  })

  // Found by test/diff/random-watch.test.ts (session 9): etcd reads prev_kv at mod_revision - 1.
  test('prev_kv of a key the same txn changed before: its value from before the txn, live and replayed', () => {
    const s = newStore()
    put(s, 'old', 'o1') // 2
    const live = open(s)
    live.stream.create(watchReq('a', 'z', { prev_kv: true }))
    // 3: `new` created then deleted, `old` put then deleted, in one txn (sibling txns: no duplicate key).
    const r = txn(s, {
      success: [
        opTxn({ success: [opPut('new', 'n1'), opPut('old', 'o2')] }),
        opTxn({ success: [opDel('new'), opDel('old')] }),
      ],
    })
    assert.equal(r.header?.revision, 3)
    const prevs = (m: typeof live.sink.messages) =>
      m.flatMap((x) =>
        x.events.map((e) => `${e.type ?? 0} ${str(e.kv!.key)} prev=${e.prev_kv ? str(e.prev_kv.value) : '-'}`),
      )
    const want = ['0 new prev=-', '0 old prev=o1', '1 new prev=-', '1 old prev=o1']
    assert.deepEqual(prevs(live.sink.messages), want)
    const replay = open(s)
    replay.stream.create(watchReq('a', 'z', { prev_kv: true, start_revision: 3 }))
    assert.deepEqual(prevs(replay.sink.messages), want)
  })

  // Found by the session 11 soak (random-watch seed 11219): etcd's sendLoop reads no prev_kv for a create event
  // (IsCreateEvent: create_revision == mod_revision), also for a key the same txn deleted before putting it again.
  test('prev_kv of a key a txn deletes and puts again: none on the put (a create event), live and replayed', () => {
    const s = newStore()
    put(s, 'k', 'v1') // 2
    const live = open(s)
    live.stream.create(watchReq('k', '', { prev_kv: true }))
    // 3: k deleted by a from-key delete, then put again (etcd's duplicate-key check sees no overlap with a from-key
    // range, so it allows this).
    txn(s, { success: [opDel('k', '\0'), opPut('k', 'v2')] })
    put(s, 'k', 'v3') // 4
    const prevs = (m: typeof live.sink.messages) =>
      m.flatMap((x) =>
        x.events.map(
          (e) =>
            `${e.type ?? 0} ${str(e.kv!.key)}@${e.kv!.mod_revision}/${e.kv!.create_revision} prev=${e.prev_kv ? str(e.prev_kv.value) : '-'}`,
        ),
      )
    const want = ['1 k@3/0 prev=v1', '0 k@3/3 prev=-', '0 k@4/3 prev=v2']
    assert.deepEqual(prevs(live.sink.messages), want)
    const replay = open(s)
    replay.stream.create(watchReq('k', '', { prev_kv: true, start_revision: 3 }))
    assert.deepEqual(prevs(replay.sink.messages), want)
  })

  test('filters NOPUT and NODELETE', () => {
    const s = newStore()
    const noPut = open(s)
    const noDel = open(s)
    noPut.stream.create(watchReq('k', '', { filters: [FilterType.NOPUT] }))
    noDel.stream.create(watchReq('k', '', { filters: [FilterType.NODELETE] }))
    put(s, 'k', 'v')
    del(s, 'k')
    assert.deepEqual(noPut.sink.events(), ['DELETE k@3'])
    assert.deepEqual(noDel.sink.events(), ['PUT k=v@2'])
  })

  test('a future start_revision skips the revisions before it', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('k', '', { start_revision: 4 }))
    put(s, 'k', 'a') // 2
    put(s, 'k', 'b') // 3
    put(s, 'k', 'c') // 4
    assert.deepEqual(sink.events(), ['PUT k=c@4'])
  })
})

describe('history replay', () => {
  test('start_revision in the past replays many revisions in one message with header = current revision', () => {
    const s = newStore()
    put(s, 'k', '1') // 2
    put(s, 'x') // 3
    put(s, 'k', '2') // 4
    del(s, 'k') // 5
    const { sink, stream } = open(s)
    stream.create(watchReq('k', '', { start_revision: 2 }))
    assert.equal(sink.messages.length, 2)
    assert.equal(sink.messages[0]!.created, true)
    assert.equal(sink.messages[1]!.header?.revision, 5)
    assert.deepEqual(sink.events(), ['PUT k=1@2', 'PUT k=2@4', 'DELETE k@5'])
    put(s, 'k', '3')
    assert.deepEqual(sink.events().slice(3), ['PUT k=3@6'], 'then live, synced')
  })

  test('replay batches at most watchBatchRevisionsMax revisions per message', () => {
    const s = newStore({ watchBatchRevisionsMax: 3 })
    for (let i = 0; i < 7; i++) put(s, 'k', String(i)) // 2..8
    const { sink, stream } = open(s)
    stream.create(watchReq('k', '', { start_revision: 2 }))
    assert.deepEqual(
      sink.messages.slice(1).map((m) => m.events.length),
      [3, 3, 1],
    )
  })

  test('replay carries prev_kv', () => {
    const s = newStore()
    put(s, 'k', 'a')
    put(s, 'k', 'b')
    const { sink, stream } = open(s)
    stream.create(watchReq('k', '', { start_revision: 1, prev_kv: true }))
    const evs = sink.messages[1]!.events
    assert.equal(evs[0]!.prev_kv, undefined)
    assert.equal(str(evs[1]!.prev_kv!.value), 'a')
  })

  test('a start below the compact revision: created, then canceled with compact_revision and no header revision', () => {
    const s = newStore()
    for (let i = 0; i < 5; i++) put(s, 'k', String(i)) // 2..6
    s.apply({ compaction: { revision: 4, physical: false } })
    const { sink, stream } = open(s)
    assert.equal(stream.create(watchReq('k', '', { start_revision: 3 })), 0)
    const [created, canceled] = sink.messages
    assert.equal(created!.created, true)
    assert.deepEqual(
      [canceled!.watch_id, canceled!.canceled, canceled!.compact_revision, canceled!.header?.revision],
      [0, true, 4, 0],
    )
    assert.equal(s.watchHub.watcherCount, 0)
    // At the compact revision itself the history is still there (etcd keeps the latest put at or below it).
    const ok = open(s)
    ok.stream.create(watchReq('k', '', { start_revision: 4 }))
    assert.deepEqual(ok.sink.events(), ['PUT k=2@4', 'PUT k=3@5', 'PUT k=4@6'])
  })

  // Found by test/diff/random-watch.test.ts (session 9), answers read off etcd 3.4.
  test('a negative start_revision: as etcd 3.4, compacted below its compactMainRev (-1 before any compaction)', () => {
    const s = newStore()
    for (let i = 0; i < 3; i++) put(s, 'k', String(i)) // 2..4
    const before = open(s)
    // -1 is not below -1: a watcher from now on (etcd reads no history for it and syncs it).
    assert.equal(before.stream.create(watchReq('k', '', { start_revision: -1 })), 0)
    // -2 is: created, then canceled with compact_revision -1.
    assert.equal(before.stream.create(watchReq('k', '', { start_revision: -2, watch_id: 3 })), 3)
    put(s, 'k', 'x') // 5
    assert.deepEqual(
      before.sink.messages.map((m) => [m.watch_id, m.created, m.canceled, m.compact_revision, m.events.length]),
      [
        [0, true, false, 0, 0],
        [3, true, false, 0, 0],
        [3, false, true, -1, 0],
        [0, false, false, 0, 1],
      ],
    )
    s.apply({ compaction: { revision: 3, physical: false } })
    const after = open(s)
    after.stream.create(watchReq('k', '', { start_revision: -1 }))
    assert.deepEqual(
      after.sink.messages.map((m) => [m.watch_id, m.canceled, m.compact_revision, m.header?.revision]),
      [
        [0, false, 0, 5],
        [0, true, 3, 0],
      ],
    )
  })

  // Found by test/diff/random-watch.test.ts (seed 9514, session 10): etcd takes a compaction at revision 0 on a store
  // never compacted (its compactMainRev goes from -1 to 0), and its sendLoop cancels only for compact_revision != 0.
  test('after a compaction at revision 0, a negative start_revision gets a bare message and no events, as etcd 3.4', () => {
    const s = newStore()
    put(s, 'k', 'a') // 2
    s.apply({ compaction: { revision: 0, physical: false } })
    assert.equal(s.etcdCompactRevision, 0)
    const w = open(s)
    assert.equal(w.stream.create(watchReq('k', '', { start_revision: -1, watch_id: 2 })), 2)
    put(s, 'k', 'b') // 3
    assert.deepEqual(
      w.sink.messages.map((m) => [
        m.watch_id,
        m.created,
        m.canceled,
        m.compact_revision,
        m.header?.revision,
        m.events.length,
      ]),
      [
        [2, true, false, 0, 2, 0],
        [2, false, false, 0, 0, 0],
      ],
    )
    // Gone from the hub, its id still taken on the stream (etcd's watchStream keeps it until the client cancels).
    assert.equal(s.watchHub.watcherCount, 0)
    assert.equal(w.stream.create(watchReq('k', '', { watch_id: 2 })), -1)
    assert.equal(w.stream.cancel(2), true)
    assert.deepEqual([w.sink.messages.at(-1)!.watch_id, w.sink.messages.at(-1)!.canceled], [2, true])
  })

  test('a compacted watcher keeps its id on the stream until canceled, as etcd 3.4 (a create of it is a duplicate)', () => {
    const s = newStore()
    for (let i = 0; i < 5; i++) put(s, 'k', String(i)) // 2..6
    s.apply({ compaction: { revision: 4, physical: false } })
    const { sink, stream } = open(s)
    assert.equal(stream.create(watchReq('k', '', { start_revision: 3, watch_id: 9 })), 9)
    assert.equal(stream.create(watchReq('k', '', { start_revision: 2 })), 0)
    // Both compacted; 9 and 0 are still taken: a create of 9 is refused, the next auto id is 1.
    assert.equal(stream.create(watchReq('k', '', { watch_id: 9 })), -1)
    assert.equal(stream.create(watchReq('k')), 1)
    // Their cancel is answered, once.
    assert.equal(stream.cancel(9), true)
    assert.equal(stream.cancel(9), false)
    assert.equal(stream.create(watchReq('k', '', { watch_id: 9 })), 9)
    const reasons = sink.messages.slice(4).map((m) => [m.watch_id, m.created, m.canceled, m.cancel_reason])
    assert.deepEqual(reasons, [
      [-1, true, true, 'mvcc: duplicate watch ID provided on the WatchStream'],
      [1, true, false, ''],
      [9, false, true, ''],
      [9, true, false, ''],
    ])
  })
})

describe('progress', () => {
  test('progress_request answers watch_id -1 with the current revision', () => {
    const s = newStore()
    put(s, 'a')
    const { sink, stream } = open(s)
    stream.requestProgress()
    assert.deepEqual([sink.messages[0]!.watch_id, sink.messages[0]!.header?.revision], [-1, 2])
  })

  test('progressNotify reaches synced watchers that asked for it', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('a', '', { progress_notify: true }))
    stream.create(watchReq('b'))
    put(s, 'zzz')
    sink.clear()
    s.watchHub.progressNotify()
    assert.deepEqual(
      sink.messages.map((m) => [m.watch_id, m.header?.revision, m.events.length]),
      [[0, 2, 0]],
    )
  })
})

describe('slow watchers', () => {
  test('a congested stream queues; resume flushes in order', () => {
    const s = newStore()
    const { sink, stream } = open(s)
    stream.create(watchReq('k'))
    sink.congested = true
    put(s, 'k', '1') // delivered (the sink took it, then said congested)
    put(s, 'k', '2') // queued
    put(s, 'k', '3') // queued
    assert.deepEqual(sink.events(), ['PUT k=1@2'])
    assert.equal(stream.isBlocked, true)
    sink.congested = false
    stream.resume()
    assert.deepEqual(sink.events(), ['PUT k=1@2', 'PUT k=2@3', 'PUT k=3@4'])
    put(s, 'k', '4')
    assert.equal(sink.events().length, 4)
  })

  test('past watcherQueueEventsMax the watcher goes unsynced and catches up from history: no loss, no duplicates', () => {
    const s = newStore({ watcherQueueEventsMax: 4 })
    const { sink, stream } = open(s)
    stream.create(watchReq('k', 'l'))
    sink.congested = true
    const expected: string[] = []
    for (let i = 0; i < 50; i++) {
      put(s, `k${i % 3}`, String(i))
      expected.push(`PUT k${i % 3}=${i}@${i + 2}`)
    }
    assert.ok(sink.messages.length <= 2, 'nothing more delivered while congested')
    sink.congested = false
    stream.resume()
    assert.deepEqual(sink.events(), expected)
    put(s, 'k0', 'live')
    assert.deepEqual(sink.events().at(-1), 'PUT k0=live@52', 'synced again')
  })

  test('a draining stream replays at most watchPumpEventsMax events per turn; the rest follows, in order, once', () => {
    // 10 watchers, 30 revisions behind each: 300 events to replay with a budget of 50 per turn. Before the budget,
    // resume() replayed all of it at once, however large (10,000 watchers of a fast reader: seconds of a member's
    // time in one go, every write held back; issue 17).
    const s = newStore({ watchPumpEventsMax: 50, watcherQueueEventsMax: 4 })
    const turns: (() => void)[] = []
    s.watchHub.defer = (fn) => void turns.push(fn)
    const { sink, stream } = open(s)
    // Ten shapes that all hold only `k` ([k, k\x01), [k, k\x02), ...): a catch-up batch another watcher of the same
    // shape already got costs an eighth (one encode), which this test is not about.
    for (let i = 0; i < 10; i++) stream.create(watchReq('k', i === 0 ? '' : `k${String.fromCharCode(i)}`))
    sink.clear()
    sink.congested = true
    const expected: string[] = []
    for (let i = 0; i < 30; i++) {
      put(s, 'k', String(i))
      expected.push(`PUT k=${i}@${i + 2}`)
    }
    const before = sink.events().length
    sink.congested = false
    stream.resume()
    const first = sink.events().length - before
    assert.ok(first > 0 && first <= 50 + 30, `${first} events in the first turn`)
    assert.equal(turns.length, 1, 'the rest is deferred to a later turn')
    // A write between turns: watchers already caught up get it live, the others in their catch-up.
    put(s, 'k', 'live')
    expected.push('PUT k=live@32')
    let n = 1
    while (turns.length > 0 && n < 100) {
      turns.shift()!()
      n++
    }
    assert.ok(n >= 5, `${n} turns for 310 events at 50 per turn`)
    for (let id = 0; id < 10; id++) {
      const got = sink.messages
        .filter((m) => m.watch_id === id)
        .flatMap((m) => m.events.map((e) => `PUT ${str(e.kv.key)}=${str(e.kv.value)}@${e.kv.mod_revision}`))
      assert.deepEqual(got, expected, `watcher ${id}`)
    }
    put(s, 'k', 'after')
    assert.equal(sink.messages.filter((m) => m.events.length > 0).length > 0, true)
    assert.equal(sink.events().filter((e) => e === 'PUT k=after@33').length, 10, 'all synced again')
  })

  test('if the history it needs is compacted meanwhile, the watcher gets the compacted cancel', () => {
    const s = newStore({ watcherQueueEventsMax: 2 })
    const { sink, stream } = open(s)
    stream.create(watchReq('k'))
    sink.congested = true
    for (let i = 0; i < 10; i++) put(s, 'k', String(i)) // 2..11
    s.apply({ compaction: { revision: 8, physical: false } })
    sink.congested = false
    stream.resume()
    const last = sink.messages.at(-1)!
    assert.deepEqual([last.canceled, last.compact_revision], [true, 8])
    assert.equal(s.watchHub.watcherCount, 0)
  })

  test('randomized congestion: every watcher sees exactly the event sequence, once', () => {
    let seed = 12345
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed / 0x7fffffff
    }
    const s = newStore({ watcherQueueEventsMax: 8, watchBatchRevisionsMax: 5 })
    const w = open(s)
    w.stream.create(watchReq('a', '\0', { prev_kv: true }))
    const expected: string[] = []
    for (let i = 0; i < 2000; i++) {
      if (rnd() < 0.05) w.sink.congested = !w.sink.congested
      if (!w.sink.congested && rnd() < 0.3) w.stream.resume()
      const k = `k${Math.floor(rnd() * 5)}`
      if (rnd() < 0.2) {
        const r = del(s, k)
        if (r.deleted > 0) expected.push(`DELETE ${k}@${s.revision}`)
      } else {
        put(s, k, String(i))
        expected.push(`PUT ${k}=${i}@${s.revision}`)
      }
    }
    w.sink.congested = false
    w.stream.resume()
    assert.deepEqual(w.sink.events(), expected)
  })

  test('a sink that throws closes its stream and never breaks a write', () => {
    const s = newStore()
    const stream = s.watchHub.openStream({
      send(resp) {
        if (resp.events.length > 0) throw new Error('socket gone')
        return true
      },
    })
    stream.create(watchReq('k'))
    put(s, 'k')
    put(s, 'k')
    assert.equal(s.revision, 3)
    assert.equal(s.watchHub.watcherCount, 0)
  })
})

// Found by test/diff/random-watch.test.ts (seed 9108, session 10): etcd's sendLoop fills prev_kv when it SENDS an event,
// by a range at mod_revision - 1 (etcdserver/api/v3rpc/watch.go); below the compact revision that range fails
// (ErrCompacted) and the event goes without prev_kv. Events that waited across a compaction lose it.
describe('prev_kv is read when the event is sent', () => {
  const prevs = (sink: RecordingSink, id = 0) =>
    sink.messages
      .filter((m) => m.watch_id === id)
      .flatMap((m) =>
        m.events.map(
          (e) =>
            `${e.type === 0 ? 'PUT' : 'DELETE'}@${e.kv.mod_revision} prev=${e.prev_kv ? str(e.prev_kv.value) : '-'}`,
        ),
      )

  test('a congested stream across a compaction: events at or below the compact revision go without prev_kv', () => {
    const s = newStore()
    const idle = open(s)
    const slow = open(s)
    const slow2 = open(s)
    for (const w of [idle, slow, slow2]) w.stream.create(watchReq('k', '', { prev_kv: true }))
    // The slow streams are congested from here: the next message (a create's `created`) is taken, the rest queued.
    for (const w of [slow, slow2]) {
      w.sink.congested = true
      w.stream.create(watchReq('other'))
    }
    put(s, 'k', 'v1') // 2: a create, no prev_kv
    put(s, 'k', 'v2') // 3
    put(s, 'k', 'v3') // 4
    del(s, 'k') // 5
    put(s, 'k', 'v4') // 6: created again, no prev_kv
    put(s, 'k', 'v5') // 7
    s.apply({ compaction: { revision: 5, physical: false } })
    put(s, 'k', 'v6') // 8
    const all = ['PUT@2 prev=-', 'PUT@3 prev=v1', 'PUT@4 prev=v2', 'DELETE@5 prev=v3', 'PUT@6 prev=-', 'PUT@7 prev=v4']
    assert.deepEqual(prevs(idle.sink), [...all, 'PUT@8 prev=v5'], 'sent before the compaction: prev_kv as it was')
    for (const w of [slow, slow2]) {
      w.sink.congested = false
      w.stream.resume()
    }
    // etcd ranges at 1..4 (below 5: compacted) for the events at 2..5, at 6 and 7 (kept) for those at 7 and 8.
    const want = ['PUT@2 prev=-', 'PUT@3 prev=-', 'PUT@4 prev=-', 'DELETE@5 prev=-', 'PUT@6 prev=-', 'PUT@7 prev=v4']
    assert.deepEqual(prevs(slow.sink), [...want, 'PUT@8 prev=v5'])
    assert.deepEqual(prevs(slow2.sink), [...want, 'PUT@8 prev=v5'])
    // The two slow watchers of one shape got the same copy (one encode), not the array the idle one was sent.
    const events = (w: typeof slow) => w.sink.messages.filter((m) => m.watch_id === 0 && m.events.length > 0)[0]!.events
    assert.equal(events(slow), events(slow2))
    assert.ok(isSharedEvents(events(slow)))
    // Encoded: the JSON of the copy (prev_kv at 7 and 8 only), not a text cached for an array sent before.
    const json = watchResultJson(slow.sink.messages.find((m) => m.watch_id === 0 && m.events.length > 0)!)
    assert.equal(json.match(/"prev_kv"/g)?.length, 2, json)
  })

  test('the shape encoded with prev_kv before the compaction is not reused for a watcher sent it after', () => {
    const s = newStore()
    const a = open(s)
    const b = open(s)
    put(s, 'k', 'v1') // 2
    a.stream.create(watchReq('k', '', { prev_kv: true }))
    b.stream.create(watchReq('k', '', { prev_kv: true }))
    b.sink.congested = true
    b.stream.create(watchReq('other'))
    put(s, 'k', 'v2') // 3: one Event[] for both watchers (one shape); a is sent it and encodes it
    const sentA = a.sink.messages.at(-1)!
    assert.match(watchResultJson(sentA), /"prev_kv"/)
    s.apply({ compaction: { revision: 3, physical: false } })
    b.sink.congested = false
    b.stream.resume()
    const sentB = b.sink.messages.find((m) => m.watch_id === 0 && m.events.length > 0)!
    assert.notEqual(sentB.events, sentA.events)
    assert.equal(sentB.events[0]!.kv, sentA.events[0]!.kv)
    assert.equal(sentB.events[0]!.prev_kv, undefined)
    assert.doesNotMatch(watchResultJson(sentB), /prev_kv/)
    // The array a was sent is untouched (its encoding stays right for whoever has it).
    assert.equal(str(sentA.events[0]!.prev_kv!.value), 'v1')
  })

  test('randomized congestion and compactions: each prev_kv is the value at mod_revision - 1 unless compacted when sent', () => {
    const seed = Number(process.env.EDGECD_WATCH_SEED ?? 90108)
    const rnd = xorshift(seed)
    const s = newStore({ watcherQueueEventsMax: 64, watchBatchRevisionsMax: 4 })
    // Each message's compact revision when the sink took it.
    const streams = Array.from({ length: 3 }, () => {
      const sink = new RecordingSink()
      const at: number[] = []
      const stream = s.watchHub.openStream({
        send: (r) => {
          at.push(s.compactRevision)
          return sink.send(r)
        },
      })
      stream.create(watchReq('k', 'l', { prev_kv: true }))
      return { sink, stream, at }
    })
    // The value of each key at each revision (undefined: absent).
    const history = new Map<string, Map<number, string | undefined>>()
    const valueAt = (k: string, rev: number): string | undefined => {
      let best = -1
      let v: string | undefined
      for (const [r, val] of history.get(k) ?? []) {
        if (r <= rev && r > best) {
          best = r
          v = val
        }
      }
      return v
    }
    for (let i = 0; i < 1500; i++) {
      for (const w of streams) {
        if (rnd() < 0.05) w.sink.congested = !w.sink.congested
        if (!w.sink.congested && rnd() < 0.2) w.stream.resume()
      }
      const k = `k${Math.floor(rnd() * 4)}`
      const x = rnd()
      if (x < 0.03 && s.revision > s.compactRevision + 1) {
        const rev = s.compactRevision + 1 + Math.floor(rnd() * (s.revision - s.compactRevision))
        s.apply({ compaction: { revision: rev, physical: false } })
      } else if (x < 0.2) {
        if (del(s, k).deleted > 0) history.get(k)!.set(s.revision, undefined)
      } else if (x < 0.3) {
        s.watchHub.beginBatch()
        for (let j = 0; j < 3; j++) {
          const kk = `k${Math.floor(rnd() * 4)}`
          put(s, kk, `${i}.${j}`)
          if (!history.has(kk)) history.set(kk, new Map())
          history.get(kk)!.set(s.revision, `${i}.${j}`)
        }
        s.watchHub.endBatch()
      } else {
        put(s, k, String(i))
        if (!history.has(k)) history.set(k, new Map())
        history.get(k)!.set(s.revision, String(i))
      }
    }
    let checked = 0
    let dropped = 0
    for (const [n, w] of streams.entries()) {
      w.sink.congested = false
      w.stream.resume()
      for (const [j, m] of w.sink.messages.entries()) {
        for (const e of m.events) {
          const k = str(e.kv.key)
          const rev = e.kv.mod_revision
          const create = e.type === EventType.PUT && e.kv.create_revision === rev
          const want = create || rev - 1 < w.at[j]! ? undefined : valueAt(k, rev - 1)
          if (!create && want === undefined) dropped++
          assert.equal(
            e.prev_kv === undefined ? undefined : str(e.prev_kv.value),
            want,
            `seed ${seed}, stream ${n}: ${k}@${rev} sent at compact revision ${w.at[j]}`,
          )
          checked++
        }
      }
    }
    assert.ok(checked > 1000 && dropped > 0, `seed ${seed}: ${checked} events, ${dropped} without prev_kv`)
  })
})
