/**
 * Issue 17, rows of a bench on one member: a member that served 10,000 watchers (100 streams x 100, on distinct
 * ranges or keys, events delivered) and saw their streams close holds nothing of them, and a later row of 10,000
 * prefix watchers costs the same per put as on a fresh member, counted in range-index nodes looked at (not wall time).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { WatchResponse } from '../../src/protocol/types.js'
import { newStore, put, watchReq } from '../kv/helpers.js'

type Store = ReturnType<typeof newStore>
type Shape = 'keys' | 'ranges' | 'prefixes'

class Sink {
  events = 0
  send(resp: WatchResponse): boolean {
    this.events += resp.events.length
    return true
  }
}

const dir = (i: number) => `bench/watch/${String(i).padStart(6, '0')}/`
const keyAt = (i: number) => `${dir(i)}k`
const n = 10_000
const puts = 2_000

/** bench/watch.ts's row: 100 streams x 100 watchers of one shape, each put reaching exactly one watcher. */
function row(s: Store, shape: Shape): { visitsPerPut: number; close(): void } {
  const sink = new Sink()
  const streams = Array.from({ length: 100 }, () => s.watchHub.openStream(sink))
  for (let i = 0; i < n; i++) {
    const d = dir(i)
    const req =
      shape === 'keys'
        ? watchReq(keyAt(i))
        : shape === 'ranges'
          ? watchReq(`${d}a`, `${d}z`)
          : watchReq(d, `${d.slice(0, -1)}0`)
    streams[i % 100]!.create(req)
  }
  assert.equal(s.watchHub.watcherCount, n)
  const v0 = s.watchHub.rangeIndexVisits
  for (let i = 0; i < puts; i++) put(s, keyAt((i * 7919) % n), 'v')
  assert.equal(sink.events, puts, `${shape}: each put reaches its one watcher`)
  return {
    visitsPerPut: (s.watchHub.rangeIndexVisits - v0) / puts,
    close: () => {
      for (const st of streams) st.close()
    },
  }
}

const empty = { keys: 0, ranges: 0, rangeIndex: 0, streams: 0, pending: 0, waiting: 0 }

describe('watch hub after a row of 10,000 watchers (issue 17)', () => {
  for (const before of ['ranges', 'keys', 'prefixes'] as const) {
    test(`closing 10,000 watchers on ${before} leaves nothing; a prefixes row after it costs what it costs fresh`, () => {
      const fresh = newStore()
      const f = row(fresh, 'prefixes')
      f.close()

      const used = newStore()
      row(used, before).close()
      assert.equal(used.watchHub.watcherCount, 0)
      assert.deepEqual(used.watchHub.held, empty)
      const u = row(used, 'prefixes')
      console.log(
        `# range-index nodes per put: ${f.visitsPerPut.toFixed(1)} fresh, ${u.visitsPerPut.toFixed(1)} after ${before}`,
      )
      // A treap of the same 10,000 ranges; its priorities go on from the seed, so shapes differ a little.
      assert.ok(
        u.visitsPerPut <= f.visitsPerPut * 1.2 + 1,
        `nodes per put: ${f.visitsPerPut.toFixed(1)} fresh, ${u.visitsPerPut.toFixed(1)} after a ${before} row`,
      )
      u.close()
      assert.deepEqual(used.watchHub.held, empty)
    })
  }
})
