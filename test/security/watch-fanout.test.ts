/**
 * Issue 17, watch fan-out: one event to N watchers of one stream costs one encode per distinct watch shape (range and
 * filters), not N, and matching a write against many watchers costs O(changes + matches + distinct ranges), not a
 * scan of every watcher. In process, on the hub and the gateway's JSON encoder; the end-to-end rate is in
 * `npm run bench -- watch`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { encodeMessage } from '../../src/api/http/codec/encode.js'
import { encodeWatchResponse, watchJsonStats, watchResultJson } from '../../src/api/http/codec/watch-json.js'
import * as M from '../../src/protocol/descriptors.js'
import { FilterType, type WatchResponse } from '../../src/protocol/types.js'
import { b, newStore, put, watchReq } from '../kv/helpers.js'

/** A sink that encodes every message as the WebSocket watch does, and keeps the texts. */
class JsonSink {
  texts: string[] = []
  messages: WatchResponse[] = []
  send(resp: WatchResponse): boolean {
    this.messages.push(resp)
    this.texts.push(watchResultJson(resp))
    return true
  }
}

describe('watch fan-out (issue 17)', () => {
  test('one put to 3,000 watchers of 3 shapes on one stream: 3 event encodes, each message byte-equal to the full encoder', () => {
    const s = newStore()
    const sink = new JsonSink()
    const stream = s.watchHub.openStream(sink)
    for (let i = 0; i < 1000; i++) stream.create(watchReq('k'))
    for (let i = 0; i < 1000; i++) stream.create(watchReq('k', '', { prev_kv: true }))
    for (let i = 0; i < 1000; i++) stream.create(watchReq('a', 'z'))
    put(s, 'k', 'v1')
    sink.texts.length = 0
    sink.messages.length = 0
    const before = watchJsonStats.eventEncodes
    put(s, 'k', 'v2')
    assert.equal(sink.messages.length, 3000)
    assert.equal(watchJsonStats.eventEncodes - before, 3, 'one events encode per shape')
    assert.equal(new Set(sink.messages.map((m) => m.events)).size, 3, 'watchers of a shape share one Event[]')
    for (let i = 0; i < sink.messages.length; i += 97) {
      assert.equal(sink.texts[i], `{"result":${encodeMessage(M.WatchResponse, sink.messages[i]!)}}`)
    }
    // Filters are part of the shape: a NOPUT watcher gets nothing for a put, a NODELETE one gets it.
    const other = new JsonSink()
    const st2 = s.watchHub.openStream(other)
    st2.create(watchReq('k', '', { filters: [FilterType.NOPUT] }))
    st2.create(watchReq('k', '', { filters: [FilterType.NODELETE] }))
    put(s, 'k', 'v3')
    assert.deepEqual(
      other.messages.filter((m) => m.events.length > 0).map((m) => m.watch_id),
      [1],
    )
  })

  test('the shared encoder equals the full encoder for every message shape', () => {
    const kv = { key: b('k'), create_revision: 2, mod_revision: 3, version: 2, value: b('v'), lease: 0n }
    const events = [{ type: 0, kv, prev_kv: { ...kv, value: b('p'), mod_revision: 2, version: 1 } }]
    const header = { cluster_id: '1', member_id: '2', revision: 3, raft_term: 4 }
    const base: WatchResponse = {
      watch_id: 0,
      created: false,
      canceled: false,
      compact_revision: 0,
      cancel_reason: '',
      fragment: false,
      events: [],
    }
    const cases: WatchResponse[] = [
      { ...base, events },
      { ...base, events, header },
      { ...base, events, header, watch_id: 7 },
      { ...base, events, header: { cluster_id: '0', member_id: '0', revision: 0, raft_term: 0 } },
      { ...base, events, fragment: true, watch_id: 3 },
      { ...base, header, created: true, watch_id: 1 },
      { ...base, header, canceled: true, cancel_reason: 'x', watch_id: -1 },
      { ...base, header, compact_revision: 5, canceled: true },
    ]
    for (const c of cases) {
      // Twice: the second call takes the cached parts.
      assert.equal(encodeWatchResponse(c), encodeMessage(M.WatchResponse, c))
      assert.equal(encodeWatchResponse(c), encodeMessage(M.WatchResponse, c))
    }
  })

  test('a put reaches its watchers without visiting the others: 20,000 single-key and 2,000 same-prefix watchers', () => {
    // Time per put with many watchers that the put does not match, against few: within 2x plus an allowance for a
    // loaded machine. Before, every range watcher was visited per put; single-key watchers were already a map.
    const measure = (watchersPerShape: number): number => {
      const s = newStore()
      const sink = new JsonSink()
      const stream = s.watchHub.openStream(sink)
      for (let i = 0; i < watchersPerShape * 10; i++) stream.create(watchReq(`single/${i}`))
      for (let i = 0; i < watchersPerShape; i++) stream.create(watchReq('pfx/', 'pfx0'))
      for (let i = 0; i < 200; i++) put(s, `hit/${i}`, 'x') // warm up
      const rounds: number[] = []
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now()
        for (let i = 0; i < 500; i++) put(s, `hit/${i}`, 'x')
        rounds.push((performance.now() - t0) / 500)
      }
      assert.equal(sink.messages.length, watchersPerShape * 11, 'only created messages: no put matched')
      rounds.sort((x, y) => x - y)
      return rounds[2]!
    }
    const few = measure(10)
    const many = measure(2000)
    const few2 = measure(10)
    const base = Math.max(few, few2)
    assert.ok(
      many <= 2 * base + 0.05,
      `per put: ${base.toFixed(4)} ms with 110 watchers, ${many.toFixed(4)} ms with 22,000`,
    )
  })
})
