/**
 * The checkers on synthetic histories: each test feeds the events of a small history, right or wrong, and expects
 * silence or exactly the violation that history commits. Runs under Node and Deno (node:test, node:assert only).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MemoryStorage } from '../../src/raft/storage.js'
import { type Entry, EntryType } from '../../src/raft/types.js'
import { type AppState, applyEntry, emptyApp } from './app.js'
import { Checker, type ViolationKind } from './checkers.js'

const enc = new TextEncoder()

function ent(index: number, term: number, data = `v${index}`): Entry {
  return { index, term, type: EntryType.EntryNormal, data: enc.encode(data) }
}

function kinds(c: Checker): ViolationKind[] {
  return c.violations.map((v) => v.kind)
}

/** Applies entries on app through the checker, as a node does. */
function apply(c: Checker, node: string, app: AppState, ents: Entry[]): void {
  for (const e of ents) if (c.onApply(node, app, e)) applyEntry(app, e)
}

function logOf(ents: Entry[]): MemoryStorage {
  const s = new MemoryStorage()
  s.append(ents)
  return s
}

describe('election safety', () => {
  test('one leader per term passes, the same leader seen twice passes', () => {
    const c = new Checker()
    c.onLeader('1', 1, logOf([]))
    c.onLeader('1', 1, logOf([]))
    c.onLeader('2', 2, logOf([]))
    assert.deepEqual(kinds(c), [])
  })
  test('two leaders in one term fire', () => {
    const c = new Checker()
    c.onLeader('1', 3, logOf([]))
    c.onLeader('2', 3, logOf([]))
    assert.deepEqual(kinds(c), ['election-safety'])
  })
})

describe('state machine safety', () => {
  test('the same entries applied on two nodes pass', () => {
    const c = new Checker()
    const ents = [ent(1, 1), ent(2, 1), ent(3, 2)]
    apply(c, '1', emptyApp(), ents)
    apply(c, '2', emptyApp(), ents)
    assert.deepEqual(kinds(c), [])
    assert.equal(c.maxApplied, 3)
  })
  test('a different entry at the same index fires', () => {
    const c = new Checker()
    apply(c, '1', emptyApp(), [ent(1, 1), ent(2, 1)])
    apply(c, '2', emptyApp(), [ent(1, 1), ent(2, 1, 'corrupted')])
    assert.deepEqual(kinds(c), ['state-machine-safety'])
  })
  test('the same data under another term fires', () => {
    const c = new Checker()
    apply(c, '1', emptyApp(), [ent(1, 1)])
    apply(c, '2', emptyApp(), [ent(1, 2, 'v1')])
    assert.deepEqual(kinds(c), ['state-machine-safety'])
  })
  test('a gap in the applied entries fires', () => {
    const c = new Checker()
    apply(c, '1', emptyApp(), [ent(1, 1), ent(3, 1)])
    assert.deepEqual(kinds(c), ['apply-order'])
  })
  test('an entry applied twice fires', () => {
    const c = new Checker()
    apply(c, '1', emptyApp(), [ent(1, 1), ent(2, 1), ent(2, 1)])
    assert.deepEqual(kinds(c), ['apply-order'])
  })
  test('a snapshot holding the applied history passes; one that does not fires', () => {
    const c = new Checker()
    const a = emptyApp()
    apply(c, '1', a, [ent(1, 1), ent(2, 1)])
    assert.equal(c.onRestore('2', 2, { ...a, kv: new Map(a.kv) }), true)
    assert.deepEqual(kinds(c), [])
    const forged = emptyApp()
    applyEntry(forged, ent(1, 1))
    applyEntry(forged, ent(2, 1, 'lost write'))
    assert.equal(c.onRestore('3', 2, forged), false)
    assert.deepEqual(kinds(c), ['state-machine-safety'])
  })
  test('a node restarted from a snapshot must re-apply the same entries', () => {
    const c = new Checker()
    const a = emptyApp()
    apply(c, '1', a, [ent(1, 1), ent(2, 1), ent(3, 1)])
    const b = emptyApp()
    apply(c, '2', b, [ent(1, 1)])
    // Node 2 restarts from its snapshot at 1; the cluster then hands it another entry 2: a committed entry lost.
    apply(c, '2', b, [ent(2, 2, 'other')])
    assert.deepEqual(kinds(c), ['state-machine-safety'])
  })
})

describe('log matching', () => {
  test('the same entries persisted twice pass', () => {
    const c = new Checker()
    c.onEntriesPersisted('1', [ent(1, 1), ent(2, 1)], 0)
    c.onEntriesPersisted('2', [ent(1, 1), ent(2, 1)], 0)
    c.onEntriesPersisted('3', [ent(2, 1)], 1)
    assert.deepEqual(kinds(c), [])
  })
  test('same index and term with other data fires', () => {
    const c = new Checker()
    c.onEntriesPersisted('1', [ent(1, 1), ent(2, 1)], 0)
    c.onEntriesPersisted('2', [ent(2, 1, 'x')], 1)
    assert.deepEqual(kinds(c), ['log-matching'])
  })
  test('same index and term after another previous term fires', () => {
    const c = new Checker()
    c.onEntriesPersisted('1', [ent(4, 3)], 2)
    c.onEntriesPersisted('2', [ent(4, 3)], 1)
    assert.deepEqual(kinds(c), ['log-matching'])
  })
  test('an unknown previous term (compacted) is not held against it', () => {
    const c = new Checker()
    c.onEntriesPersisted('1', [ent(4, 3)], -1)
    c.onEntriesPersisted('2', [ent(4, 3)], 2)
    c.onEntriesPersisted('3', [ent(4, 3)], 1)
    assert.deepEqual(kinds(c), ['log-matching'])
  })
  test('terms going down in a log fire', () => {
    const c = new Checker()
    c.onEntriesPersisted('1', [ent(1, 2), ent(2, 1)], 0)
    assert.deepEqual(kinds(c), ['log-matching'])
  })
})

describe('leader completeness', () => {
  function committedAt(c: Checker, ents: Entry[], commitTerm: number): void {
    c.onHardState('1', { term: commitTerm, vote: '1', commit: ents.length })
    apply(c, '1', emptyApp(), ents)
  }
  test('a later leader holding the committed entries passes', () => {
    const c = new Checker()
    const ents = [ent(1, 1), ent(2, 1)]
    committedAt(c, ents, 1)
    c.onLeader('2', 2, logOf([...ents, ent(3, 2)]))
    assert.deepEqual(kinds(c), [])
  })
  test('a later leader missing a committed entry fires', () => {
    const c = new Checker()
    committedAt(c, [ent(1, 1), ent(2, 1)], 1)
    c.onLeader('2', 2, logOf([ent(1, 1)]))
    assert.deepEqual(kinds(c), ['leader-completeness'])
  })
  test('a later leader with another entry at a committed index fires', () => {
    const c = new Checker()
    committedAt(c, [ent(1, 1), ent(2, 1)], 1)
    c.onLeader('2', 2, logOf([ent(1, 1), ent(2, 2, 'new')]))
    assert.deepEqual(kinds(c), ['leader-completeness'])
  })
  test('a stale leader of the committing term (or older) is not held to it', () => {
    const c = new Checker()
    committedAt(c, [ent(1, 1), ent(2, 1)], 3)
    c.onLeader('2', 3, logOf([ent(1, 1)]))
    c.onLeader('3', 2, logOf([]))
    assert.deepEqual(kinds(c), [])
  })
  test('entries below the leader snapshot are not looked up', () => {
    const c = new Checker()
    const ents = [ent(1, 1), ent(2, 1), ent(3, 1)]
    committedAt(c, ents, 1)
    const log = logOf(ents)
    log.createSnapshot(2, { voters: ['2'], learners: [] }, new Uint8Array(0))
    log.compact(2)
    c.onLeader('2', 2, log)
    assert.deepEqual(kinds(c), [])
  })
})

describe('commit rule', () => {
  test('a leader committing an entry of its own term passes', () => {
    const c = new Checker()
    c.onLeaderCommit('1', 4, 7, 4)
    assert.deepEqual(kinds(c), [])
  })
  test('a leader committing an older term by counting replicas fires (Figure 8)', () => {
    const c = new Checker()
    c.onLeaderCommit('1', 4, 6, 2)
    assert.deepEqual(kinds(c), ['commit-rule'])
  })
})

describe('durability', () => {
  test('term, vote and commit moving forward pass', () => {
    const c = new Checker()
    c.onHardState('1', { term: 1, vote: '', commit: 0 })
    c.onHardState('1', { term: 1, vote: '2', commit: 1 })
    c.onHardState('1', { term: 2, vote: '', commit: 1 })
    c.onHardState('1', { term: 2, vote: '3', commit: 4 })
    assert.deepEqual(kinds(c), [])
  })
  test('a term going back fires', () => {
    const c = new Checker()
    c.onHardState('1', { term: 3, vote: '', commit: 0 })
    c.onHardState('1', { term: 2, vote: '', commit: 0 })
    assert.deepEqual(kinds(c), ['durability'])
  })
  test('a second vote in one term fires (a vote lost in a crash)', () => {
    const c = new Checker()
    c.onHardState('1', { term: 3, vote: '2', commit: 0 })
    c.onHardState('1', { term: 3, vote: '3', commit: 0 })
    assert.deepEqual(kinds(c), ['durability'])
  })
  test('a commit index going back fires', () => {
    const c = new Checker()
    c.onHardState('1', { term: 3, vote: '2', commit: 5 })
    c.onHardState('1', { term: 3, vote: '2', commit: 4 })
    assert.deepEqual(kinds(c), ['durability'])
  })
})

describe('read index', () => {
  test('a read at or past the commit index of its request passes', () => {
    const c = new Checker()
    c.onHardState('1', { term: 1, vote: '1', commit: 5 })
    c.onReadRequest('2', 'r1')
    c.onHardState('1', { term: 1, vote: '1', commit: 7 })
    c.onReadState('2', 'r1', 5)
    assert.deepEqual(kinds(c), [])
  })
  test('a read below what was committed before it was requested fires', () => {
    const c = new Checker()
    c.onHardState('3', { term: 1, vote: '1', commit: 5 })
    c.onReadRequest('2', 'r1')
    c.onReadState('2', 'r1', 4)
    assert.deepEqual(kinds(c), ['read-index'])
  })
  test('a read answered on another node or never asked fires', () => {
    const c = new Checker()
    c.onReadRequest('2', 'r1')
    c.onReadState('3', 'r1', 0)
    c.onReadState('3', 'r9', 0)
    assert.deepEqual(kinds(c), ['read-index', 'read-index'])
  })
})
