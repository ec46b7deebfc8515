/**
 * WatchHub.notify's matching (issue 17, put throughput with 10,000 watchers): single keys by map, every range
 * (prefixes of any length, from-key, arbitrary) by the interval index, watchers found through their range's group. Seeded brute force: random watchers (keys, prefixes of many lengths, arbitrary and
 * from-key ranges, filters, prev_kv) created and cancelled between puts, range deletes and multi-key txns; every
 * revision, each watcher's events must be exactly those a naive check of every watcher against every change gives,
 * and watchers of one shape on a stream must get the same Event[] (what lets a transport encode it once).
 * `SEED=n` replays a run; a failure names its seed and operation.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { defaultPutRequest, type Event, FilterType, type WatchResponse } from '../../src/protocol/types.js'
import { newStore, RecordingSink, rng, txn, watchReq } from './helpers.js'

const seed0 = Number(process.env.SEED ?? 4242)

/** Binary strings as bytes (one char per byte, as the store keys them). */
const bytes = (k: string) => Uint8Array.from(k, (ch) => ch.charCodeAt(0))
const text = (u: Uint8Array) => String.fromCharCode(...u)

/** etcd's prefix end (clientv3.GetPrefixRangeEnd): the last byte below 0xff plus one, what follows it dropped. */
function prefixEnd(p: string): string {
  for (let i = p.length - 1; i >= 0; i--) {
    if (p.charCodeAt(i) < 0xff) return p.slice(0, i) + String.fromCharCode(p.charCodeAt(i) + 1)
  }
  return '\u0000'
}

interface Spec {
  start: string
  /** '' one key, '\u0000' from-key, else the exclusive end. */
  end: string
  noPut: boolean
  noDelete: boolean
  prevKv: boolean
}

const holds = (s: Spec, k: string) =>
  s.end === '' ? k === s.start : s.end === '\u0000' ? k >= s.start : k >= s.start && k < s.end

/** One change as the test expects its event. */
interface Change {
  key: string
  del: boolean
  /** Whether the key existed before (the event's prev_kv when asked). */
  had: boolean
}

function expected(s: Spec, changes: Change[]): string[] {
  return changes
    .filter((c) => holds(s, c.key) && !(c.del ? s.noDelete : s.noPut))
    .map((c) => `${c.del ? 'DELETE' : 'PUT'} ${JSON.stringify(c.key)}${s.prevKv && c.had ? ' prev' : ''}`)
}

const got = (events: Event[]) =>
  events.map((e) => `${e.type === 1 ? 'DELETE' : 'PUT'} ${JSON.stringify(text(e.kv.key))}${e.prev_kv ? ' prev' : ''}`)

/**
 * One seeded run. `deep`: prefixes of up to 12 bytes, nested many deep (prefix watchers on a/, a/b/, a/b/a/ ... all
 * hit by one put); otherwise of 1 to 3 bytes over an alphabet with the boundary bytes 0x00, 0xfe and 0xff (prefix
 * ends that carry, ranges ending where others start). Returns the most distinct prefix lengths live at once.
 */
function run(seed: number, deep: boolean): number {
  const rand = rng(seed)
  const at = (op: number) => `seed ${seed} op ${op} (SEED=${seed0} replays the test)`
  // Few symbols, boundary bytes included, so keys share prefixes and land on range ends.
  const alphabet = deep ? ['a', 'b', '/', '\u00ff'] : ['a', 'b', '\u0000', '\u00fe', '\u00ff']
  const keyOf = (max: number) => Array.from({ length: 1 + rand(max) }, () => alphabet[rand(alphabet.length)]).join('')
  const s = newStore()
  const sinks = [new RecordingSink(), new RecordingSink()]
  const streams = sinks.map((k) => s.watchHub.openStream(k))
  const live = new Map<string, { stream: number; id: number; spec: Spec }>()
  const stored = new Set<string>()
  let lengthsMax = 0
  for (let op = 0; op < 800; op++) {
    const what = rand(12)
    // At most ~200 watchers at once: a create past that is a cancel.
    if (what < 4 && live.size < 200) {
      const kind = rand(6)
      const start = kind === 5 ? '' : keyOf(kind === 1 || kind === 2 ? (deep ? 12 : 3) : 4)
      const end =
        kind === 0 ? '' : kind === 1 || kind === 2 ? prefixEnd(start) : kind === 3 || kind === 5 ? '\u0000' : keyOf(4)
      const spec: Spec = { start, end, noPut: rand(5) === 0, noDelete: rand(5) === 0, prevKv: rand(3) === 0 }
      // Copies on both streams: watchers of one shape, and of one range with other filters.
      for (let c = 1 + rand(3); c > 0; c--) {
        const stream = rand(2)
        const filters = [...(spec.noPut ? [FilterType.NOPUT] : []), ...(spec.noDelete ? [FilterType.NODELETE] : [])]
        const id = Number(
          streams[stream]!.create({
            ...watchReq('', ''),
            key: bytes(start),
            range_end: bytes(end),
            filters,
            prev_kv: spec.prevKv,
          }),
        )
        if (id >= 0) live.set(`${stream}:${id}`, { stream, id, spec })
      }
      const lengths = new Set(
        [...live.values()]
          .filter((w) => w.spec.start !== '' && w.spec.end !== '' && w.spec.end === prefixEnd(w.spec.start))
          .map((w) => w.spec.start.length),
      )
      lengthsMax = Math.max(lengthsMax, lengths.size)
      continue
    }
    if (what < 6 && live.size > 0) {
      const keys = [...live.keys()]
      const k = keys[rand(keys.length)]!
      const w = live.get(k)!
      live.delete(k)
      assert.equal(streams[w.stream]!.cancel(w.id), true, `${at(op)}: cancel ${k} ${JSON.stringify(w.spec)}`)
      continue
    }
    for (const k of sinks) k.clear()
    let changes: Change[]
    if (what < 8) {
      // A range delete: every stored key in it, in key order (the store's order).
      const a = keyOf(3)
      const z = rand(3) === 0 ? '\u0000' : keyOf(3)
      const gone = [...stored].filter((k) => k >= a && (z === '\u0000' || k < z)).sort()
      const res = s.apply({ delete_range: { key: bytes(a), range_end: bytes(z), prev_kv: false } })
      assert.equal(res.deleted, gone.length, at(op))
      for (const k of gone) stored.delete(k)
      changes = gone.map((key) => ({ key, del: true, had: true }))
    } else {
      // One put, or a txn of up to four puts of distinct keys: one revision, one message per watcher.
      const keys = [...new Set(Array.from({ length: what < 10 ? 1 : 2 + rand(3) }, () => keyOf(deep ? 14 : 4)))]
      txn(s, { success: keys.map((k) => ({ request_put: defaultPutRequest({ key: bytes(k), value: bytes('v') }) })) })
      changes = keys.map((key) => ({ key, del: false, had: stored.has(key) }))
      for (const k of keys) stored.add(k)
    }
    const byWatcher = new Map<string, WatchResponse[]>()
    sinks.forEach((sink, i) => {
      for (const m of sink.messages) {
        const k = `${i}:${m.watch_id}`
        byWatcher.set(k, [...(byWatcher.get(k) ?? []), m])
      }
    })
    for (const [k, w] of live) {
      const want = expected(w.spec, changes)
      const msgs = byWatcher.get(k) ?? []
      byWatcher.delete(k)
      assert.deepEqual(
        msgs.flatMap((m) => got(m.events)),
        want,
        `${at(op)}: watcher ${k} on ${JSON.stringify(w.spec)}, changes ${JSON.stringify(changes)}`,
      )
      assert.ok(msgs.length <= 1, `${at(op)}: one message per revision`)
    }
    assert.deepEqual([...byWatcher.keys()], [], `${at(op)}: messages to no live watcher`)
    // Watchers of one shape (range and filters) share the revision's Event[] (one encode per shape).
    const shared = new Map<string, Event[]>()
    sinks.forEach((sink, i) => {
      for (const m of sink.messages) {
        const w = live.get(`${i}:${m.watch_id}`)!
        const shape = JSON.stringify(w.spec)
        const first = shared.get(shape)
        if (first === undefined) shared.set(shape, m.events)
        else assert.equal(m.events, first, `${at(op)}: watchers of ${shape} got different Event[] objects`)
      }
    })
  }
  return lengthsMax
}

describe('watch matching (issue 17)', () => {
  test('keys, prefixes, ranges and filters against the naive check, boundary bytes (seeded)', () => {
    for (let round = 0; round < 4; round++) run(seed0 + round, false)
  })

  test('prefixes of many lengths, nested, against the naive check (seeded)', () => {
    for (let round = 0; round < 4; round++) {
      const lengths = run(seed0 + 100 + round, true)
      assert.ok(lengths >= 8, `seed ${seed0 + 100 + round}: only ${lengths} distinct prefix lengths`)
    }
  })
})
