/**
 * Issue 17, no O(n) per request: watchers of from-key and arbitrary [start, end) ranges are found per changed key by
 * an interval index (src/kv/range-index.ts), not by checking every distinct range. Seeded brute force against the
 * naive check (index alone, and the hub with watchers created and cancelled in random order), and the cost of a put
 * beside 10,000 distinct ranges against 100, counted in index nodes looked at (not wall time).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { RangeIndex } from '../../src/kv/range-index.js'
import type { WatchResponse } from '../../src/protocol/types.js'
import { newStore, put, rng, watchReq } from '../kv/helpers.js'

const seed0 = Number(process.env.SEED ?? 1717)

/** Keys over a small alphabet with the boundary bytes, so ranges overlap, nest and share endpoints. */
const alphabet = ['\u0000', 'a', 'b', 'c', '\u00fe', '\u00ff']
const keyOf = (rand: (n: number) => number) =>
  Array.from({ length: 1 + rand(3) }, () => alphabet[rand(alphabet.length)]).join('')
const bytes = (k: string) => Uint8Array.from(k, (ch) => ch.charCodeAt(0))

class Sink {
  messages: WatchResponse[] = []
  send(resp: WatchResponse): boolean {
    this.messages.push(resp)
    return true
  }
}

describe('watch range index (issue 17)', () => {
  test('RangeIndex equals the naive check: random adds, deletes and lookups (seeded)', () => {
    for (let round = 0; round < 20; round++) {
      const seed = seed0 + round
      const rand = rng(seed)
      const index = new RangeIndex<string>()
      const held = new Map<string, { start: string; end: string | undefined }>()
      for (let op = 0; op < 3000; op++) {
        const what = rand(10)
        if (what < 4) {
          // An empty start (every key from the first), no end (from-key), an empty end (an empty range).
          const start = rand(8) === 0 ? '' : keyOf(rand)
          const end = rand(4) === 0 ? undefined : rand(6) === 0 ? '' : keyOf(rand)
          const id = JSON.stringify([start, end ?? null])
          if (held.has(id)) continue
          held.set(id, { start, end })
          index.add(start, end, id)
        } else if (what < 6 && held.size > 0) {
          const ids = [...held.keys()]
          const id = ids[rand(ids.length)]!
          const r = held.get(id)!
          held.delete(id)
          assert.equal(index.delete(r.start, r.end), true, `seed ${seed} op ${op}: delete ${id}`)
          assert.equal(index.delete(r.start, r.end), false, `seed ${seed} op ${op}: deleted twice`)
        } else {
          // Keys at range boundaries as often as not.
          const ranges = [...held.values()]
          const k =
            ranges.length > 0 && rand(2) === 0
              ? rand(2) === 0
                ? ranges[rand(ranges.length)]!.start
                : (ranges[rand(ranges.length)]!.end ?? keyOf(rand))
              : keyOf(rand)
          const got: string[] = []
          index.stab(k, (id) => got.push(id))
          const want = [...held.entries()]
            .filter(([, r]) => k >= r.start && (r.end === undefined || k < r.end))
            .map(([id]) => id)
          assert.deepEqual(got.sort(), want.sort(), `seed ${seed} op ${op}: key ${JSON.stringify(k)}`)
        }
        assert.equal(index.size, held.size)
      }
    }
  })

  test('the hub: watchers created and cancelled in random order, puts and range deletes, against the naive check (seeded)', () => {
    for (let round = 0; round < 5; round++) {
      const seed = seed0 + 100 + round
      const rand = rng(seed)
      const s = newStore()
      const sink = new Sink()
      const stream = s.watchHub.openStream(sink)
      const live = new Map<number, { start: string; end: string }>()
      const stored = new Set<string>()
      const inR = (r: { start: string; end: string }, k: string) =>
        r.end === '' ? k === r.start : r.end === '\u0000' ? k >= r.start : k >= r.start && k < r.end
      for (let op = 0; op < 1500; op++) {
        const what = rand(10)
        if (what < 4) {
          // Several watchers per range: groups fill and empty as watchers come and go.
          const kind = rand(5)
          const start = kind !== 0 && rand(8) === 0 ? '' : keyOf(rand)
          const end = kind === 0 ? '' : kind === 1 ? '\u0000' : keyOf(rand)
          const copies = 1 + rand(3)
          for (let c = 0; c < copies; c++) {
            const id = Number(stream.create({ ...watchReq('', ''), key: bytes(start), range_end: bytes(end) }))
            if (id >= 0) live.set(id, { start, end })
          }
        } else if (what < 6 && live.size > 0) {
          const ids = [...live.keys()]
          const id = ids[rand(ids.length)]!
          live.delete(id)
          assert.equal(stream.cancel(id), true)
        } else {
          sink.messages.length = 0
          let changed: string[]
          if (rand(4) === 0) {
            const a = keyOf(rand)
            const z = keyOf(rand)
            // An end of one zero byte is etcd's from-key.
            changed = [...stored].filter((k) => k >= a && (z === '\u0000' || k < z))
            const res = s.apply({
              delete_range: { key: bytes(a), range_end: bytes(z), prev_kv: false },
            })
            assert.equal(res.deleted, changed.length)
            for (const k of changed) stored.delete(k)
          } else {
            const k = keyOf(rand)
            changed = [k]
            stored.add(k)
            s.apply({
              put: {
                key: bytes(k),
                value: bytes('v'),
                lease: 0n,
                prev_kv: false,
                ignore_value: false,
                ignore_lease: false,
              },
            })
          }
          const got = sink.messages
            .filter((m) => m.events.length > 0)
            .map((m) => Number(m.watch_id))
            .sort((a, b) => a - b)
          const want = [...live.entries()]
            .filter(([, r]) => changed.some((k) => inR(r, k)))
            .map(([id]) => id)
            .sort((a, b) => a - b)
          assert.deepEqual(got, want, `seed ${seed} op ${op}: changed ${JSON.stringify(changed)}`)
        }
      }
    }
  })

  test('a put beside 10,000 distinct arbitrary ranges costs about what it costs beside 100 (index nodes looked at)', () => {
    const measure = (ranges: number) => {
      const s = newStore()
      const sink = new Sink()
      const stream = s.watchHub.openStream(sink)
      // Disjoint ranges [r/i/a, r/i/m), and as many from-key ranges past every key written.
      for (let i = 0; i < ranges; i++) {
        const p = `r/${String(i).padStart(6, '0')}/`
        stream.create({ ...watchReq(`${p}a`, `${p}m`) })
      }
      for (let i = 0; i < 10; i++) stream.create({ ...watchReq(`z/${i}`, '\u0000') })
      sink.messages.length = 0
      const puts = 200
      const before = s.watchHub.rangeIndexVisits
      for (let i = 0; i < puts; i++) put(s, `r/${String((i * 7919) % ranges).padStart(6, '0')}/b`, 'x')
      assert.equal(sink.messages.length, puts, 'each put reaches exactly its one range')
      return (s.watchHub.rangeIndexVisits - before) / puts
    }
    const few = measure(100)
    const many = measure(10_000)
    assert.ok(few > 0, 'the lookup goes through the range index')
    console.log(
      `# index nodes looked at per put: ${few.toFixed(1)} beside 100 ranges, ${many.toFixed(1)} beside 10,000`,
    )
    // A balanced tree: O(log n) nodes per lookup (measured ~10 beside 100, ~19 beside 10,000); the naive loop looked at
    // every range.
    assert.ok(
      many <= 4 * few + 10,
      `nodes per put: ${few.toFixed(1)} beside 100 ranges, ${many.toFixed(1)} beside 10,000`,
    )
    assert.ok(many < 100, `nodes per put beside 10,000 ranges: ${many.toFixed(1)}`)
  })
})
