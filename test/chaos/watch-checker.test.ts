import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Op, WatchEvent, Watcher, WatchResponse } from './history.js'
import { checkDurability, checkWatches } from './watch-checker.js'

const ev = (key: string, modRevision: number, value = `${key}${modRevision}`): WatchEvent => ({
  key,
  value,
  type: 'PUT',
  modRevision,
})
// The store: a@2, b@3, a@4 and b@4 (one txn), a@5.
const reference = [ev('a', 2), ev('b', 3), ev('a', 4), ev('b', 4), ev('a', 5)]
const created: WatchResponse = { at: 0, headerRevision: 1, created: true, events: [] }
const resp = (...events: WatchEvent[]): WatchResponse => ({
  at: 0,
  headerRevision: events.at(-1)?.modRevision ?? 0,
  events,
})
const progress = (rev: number): WatchResponse => ({ at: 0, headerRevision: rev, progress: true, events: [] })
const watcher = (...sessions: { from: number; responses: WatchResponse[] }[]): Watcher => ({
  id: 0,
  sessions: sessions.map((s, i) => ({ member: i, startRevision: s.from, responses: s.responses })),
})
const kinds = (w: Watcher, final = 5) => checkWatches([w], reference, final).map((v) => v.kind)

describe('watch checker', () => {
  test('a complete, ordered stream passes; so does a resume from covered+1 on another member', () => {
    assert.deepEqual(
      kinds(
        watcher({
          from: 1,
          responses: [created, resp(ev('a', 2)), resp(ev('b', 3)), resp(ev('a', 4), ev('b', 4)), resp(ev('a', 5))],
        }),
      ),
      [],
    )
    assert.deepEqual(
      kinds(
        watcher(
          { from: 1, responses: [created, resp(ev('a', 2)), resp(ev('b', 3)), progress(3)] },
          { from: 4, responses: [created, resp(ev('a', 4), ev('b', 4)), resp(ev('a', 5))] },
        ),
      ),
      [],
    )
  })
  test('a missing event is unreliable', () => {
    assert.deepEqual(
      kinds(
        watcher({ from: 1, responses: [created, resp(ev('a', 2)), resp(ev('a', 4), ev('b', 4)), resp(ev('a', 5))] }),
      ),
      ['reliable'],
    )
  })
  test('a wrong value or a phantom event is unreliable', () => {
    assert.deepEqual(
      kinds(
        watcher({
          from: 1,
          responses: [created, resp(ev('a', 2), ev('b', 3, 'zz')), resp(ev('a', 4), ev('b', 4)), resp(ev('a', 5))],
        }),
      ),
      ['reliable'],
    )
    assert.ok(kinds(watcher({ from: 1, responses: [created, resp(ev('c', 2))] })).includes('reliable'))
  })
  test('events out of order', () => {
    assert.ok(kinds(watcher({ from: 1, responses: [created, resp(ev('b', 3)), resp(ev('a', 2))] })).includes('ordered'))
  })
  test('a duplicate, within a session or across a resume', () => {
    assert.ok(kinds(watcher({ from: 1, responses: [created, resp(ev('a', 2)), resp(ev('a', 2))] })).includes('unique'))
    assert.ok(
      kinds(
        watcher(
          { from: 1, responses: [created, resp(ev('a', 2))] },
          { from: 3, responses: [created, resp(ev('a', 2)), resp(ev('b', 3))] },
        ),
      ).includes('unique'),
    )
  })
  test("a txn's events split across responses are not atomic", () => {
    assert.deepEqual(
      kinds(
        watcher({
          from: 1,
          responses: [
            created,
            resp(ev('a', 2)),
            resp(ev('b', 3)),
            resp(ev('a', 4)),
            resp(ev('b', 4)),
            resp(ev('a', 5)),
          ],
        }),
      ),
      ['atomic', 'atomic'],
    )
  })
  test('an event at or below a progress notification, or progress going back, breaks bookmarks', () => {
    assert.ok(
      kinds(watcher({ from: 1, responses: [created, resp(ev('a', 2)), progress(3), resp(ev('b', 3))] })).includes(
        'bookmarkable',
      ),
    )
    assert.ok(kinds(watcher({ from: 1, responses: [created, progress(3), progress(2)] }), 1).includes('bookmarkable'))
  })
  test('a progress notification that skips an event loses it (the resume starts after it)', () => {
    const w = watcher(
      { from: 1, responses: [created, resp(ev('a', 2)), progress(4)] },
      { from: 5, responses: [created, resp(ev('a', 5))] },
    )
    assert.deepEqual(kinds(w), ['reliable', 'reliable', 'reliable'])
  })
  test('a watcher that never reaches the final revision is not live', () => {
    assert.deepEqual(kinds(watcher({ from: 1, responses: [created, resp(ev('a', 2))] })), ['liveness'])
  })
  test('durability: an acknowledged write missing from the store, a value nobody wrote', () => {
    const op = (id: number, key: string, value: string, rev: number): Op => ({
      id,
      client: 0,
      f: 'put',
      key,
      value,
      call: 0,
      ret: 1,
      status: 'ok',
      rev,
    })
    const ops = [
      op(0, 'a', 'a2', 2),
      op(1, 'b', 'b3', 3),
      { ...op(2, 'a', 'a4', 4), f: 'mput' as const, more: [['b', 'b4']] as [string, string][] },
      op(3, 'a', 'a5', 5),
    ]
    assert.deepEqual(checkDurability(ops, reference, 5), [])
    assert.deepEqual(
      checkDurability([...ops, op(4, 'a', 'lost', 5)], reference, 5).map((v) => v.kind),
      ['durability'],
    )
    assert.match(checkDurability(ops.slice(1), reference, 5)[0]!.detail, /which no client wrote/)
  })
})
