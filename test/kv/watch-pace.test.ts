/**
 * Pacing (session 10, issue 17; etcd's victims and unsynced group, mvcc/watchable_store.go): an apply batch that ends
 * with messages for more than watchPaceWatchersMin watchers of one stream (etcd's 128-slot send channel overflows)
 * paces them out: they leave the hub's notify index (puts cost them nothing), and are caught up from history at the
 * stream's sync ticks (every watchSyncIntervalMs, etcd's syncWatchersLoop), at most watchSyncWatchersMax per tick
 * (etcd's maxWatchersPerSync), one message each with every revision missed (up to watchBatchRevisionsMax). Every
 * revision once, in order, whole; a compaction meanwhile cancels with compact_revision. Virtual clock, seeded.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { eventMessages, newStore, put, RecordingSink, revsOf, virtualClock, watchReq, xorshift } from './helpers.js'

function paced(config = {}) {
  const s = newStore({ watchPaceWatchersMin: 4, watchSyncWatchersMax: 3, watchSyncIntervalMs: 100, ...config })
  const clock = virtualClock(s)
  // Replay turns run when the test says (WatchHub.defer).
  const turns: (() => void)[] = []
  s.watchHub.defer = (fn) => void turns.push(fn)
  const runTurns = () => {
    for (let i = 0; turns.length > 0 && i < 1000; i++) turns.shift()!()
  }
  return { s, clock, runTurns }
}

/** Applies n puts to key as one apply batch (the member's Ready); returns their revisions. */
function batch(s: ReturnType<typeof newStore>, key: string, n: number): number[] {
  const revs: number[] = []
  s.watchHub.beginBatch()
  for (let i = 0; i < n; i++) {
    put(s, key, `v${s.revision + 1}`)
    revs.push(s.revision)
  }
  s.watchHub.endBatch()
  return revs
}

const revsOfWatcher = (sink: RecordingSink, id: number) => eventMessages(sink, id).flatMap(revsOf)

describe('watch pacing (etcd unsynced watchers, session 10)', () => {
  test('a batch to more than watchPaceWatchersMin watchers paces them out: no message, no index entry, until the sync tick', () => {
    const { s, clock, runTurns } = paced()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    for (let i = 0; i < 6; i++) stream.create(watchReq('k'))
    batch(s, 'k', 2) // revs 2, 3: 6 messages > 4: paced out
    assert.equal(eventMessages(sink).length, 0, 'nothing sent at the batch end')
    assert.equal(stream.pacedOut, 6)
    assert.equal(s.watchHub.held.keys, 0, 'out of the notify index: a put costs them nothing')
    batch(s, 'k', 3) // revs 4..6: no watcher notified
    put(s, 'other', 'x') // 7
    runTurns()
    assert.equal(sink.messages.filter((m) => m.events.length > 0).length, 0, 'nothing before the tick')
    assert.equal(clock.pending, 1, 'one sync tick for the stream')
    clock.advance(100)
    runTurns()
    // The tick: 3 watchers (watchSyncWatchersMax), one message each with revisions 2..6, header the current one.
    const sent = [0, 1, 2, 3, 4, 5].filter((id) => eventMessages(sink, id).length > 0)
    assert.deepEqual(sent, [0, 1, 2], 'watchSyncWatchersMax watchers per tick, oldest first')
    for (const id of sent) {
      const msgs = eventMessages(sink, id)
      assert.deepEqual(msgs.map(revsOf), [[2, 3, 4, 5, 6]], `watcher ${id}: one message, every revision once`)
      assert.equal(msgs[0]!.header!.revision, 7, 'header: the current revision (etcd syncWatchers)')
    }
    assert.equal(s.watchHub.held.keys, 1, 'synced watchers are back in the index')
    put(s, 'k', 'live') // 8: the synced three get it live; the paced three do not
    assert.deepEqual(revsOfWatcher(sink, 0), [2, 3, 4, 5, 6, 8])
    assert.deepEqual(revsOfWatcher(sink, 3), [])
    clock.advance(100)
    runTurns()
    for (const id of [3, 4, 5])
      assert.deepEqual(eventMessages(sink, id).map(revsOf), [[2, 3, 4, 5, 6, 8]], `watcher ${id}`)
    assert.equal(clock.pending, 0, 'no tick once every watcher is synced')
  })

  test('a stream with at most watchPaceWatchersMin watchers in a batch is not paced: at the batch end, as before', () => {
    const { s, clock } = paced()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    for (let i = 0; i < 4; i++) stream.create(watchReq('k'))
    batch(s, 'k', 2)
    for (let id = 0; id < 4; id++) assert.deepEqual(eventMessages(sink, id).map(revsOf), [[2, 3]])
    assert.equal(stream.pacedOut, 0)
    assert.equal(clock.pending, 0)
  })

  test('a paced watcher whose history is compacted before its tick is cancelled with compact_revision', () => {
    const { s, clock, runTurns } = paced()
    const sink = new RecordingSink()
    const stream = s.watchHub.openStream(sink)
    for (let i = 0; i < 5; i++) stream.create(watchReq('k'))
    batch(s, 'k', 2) // 2, 3: paced out from rev 2
    batch(s, 'k', 2) // 4, 5
    s.apply({ compaction: { revision: 4, physical: false } })
    clock.advance(100)
    runTurns()
    const cancels = sink.messages.filter((m) => m.canceled)
    assert.deepEqual(
      cancels.map((m) => [m.watch_id, m.compact_revision]),
      [
        [0, 4],
        [1, 4],
        [2, 4],
      ],
      'the tick reaches 3: cancelled, compact_revision 4',
    )
    assert.equal(sink.messages.filter((m) => m.events.length > 0).length, 0, 'no events from compacted history')
  })

  test('seeded: puts in batches of random size to 200 watchers; every watcher gets every revision once, in order', () => {
    for (const seed of [1, 7, 42]) {
      const rand = xorshift(seed)
      const { s, clock, runTurns } = paced({ watchPaceWatchersMin: 16, watchSyncWatchersMax: 64 })
      const sink = new RecordingSink()
      const stream = s.watchHub.openStream(sink)
      const n = 200
      for (let i = 0; i < n; i++) stream.create(watchReq('k'))
      const want: number[] = []
      for (let round = 0; round < 60; round++) {
        if (rand() < 0.2) {
          put(s, 'k', 'lone')
          want.push(s.revision)
        } else want.push(...batch(s, 'k', 1 + Math.floor(rand() * 4)))
        if (rand() < 0.1) put(s, 'other', 'x')
        clock.advance(Math.floor(rand() * 40))
        runTurns()
      }
      // Let every watcher catch up.
      for (let i = 0; i < 20; i++) {
        clock.advance(100)
        runTurns()
      }
      for (let id = 0; id < n; id++) {
        assert.deepEqual(
          revsOfWatcher(sink, id),
          want,
          `seed ${seed} watcher ${id}: every revision of k once, in order`,
        )
      }
      assert.ok(stream.pacedOut > 0, `seed ${seed}: some batches paced out`)
      assert.equal(clock.pending, 0, `seed ${seed}: all synced, no tick left`)
    }
  })
})
