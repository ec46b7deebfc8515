/**
 * lastStates (src/replica/replica.ts): a watch message's changes reduced to each key's last state. A small message
 * scans the keys seen so far, a large one uses a Map; both must answer what the Map-based reduction it replaced
 * answered (first-seen key order, the last change of a key wins, a delete keeps its own revision, changes at or below
 * the applied revision dropped). Seeded random messages, small and large; a failing run prints its seed
 * (LAST_STATES_SEED=n reruns it).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { StoredKv } from '../../src/replica/local-index.js'
import { lastStates } from '../../src/replica/replica.js'
import type { SourceEvent } from '../../src/replica/source.js'
import { rng } from './scripted-server.js'

/** The reduction as the engine did it before (a Map from key to kv or delete revision). */
function reference(events: SourceEvent[], applied: number) {
  const m = new Map<string, StoredKv | number>()
  let revision = applied
  for (const e of events) {
    if (e.kv.modRevision <= applied) continue
    m.set(e.kv.key, e.type === 'DELETE' ? e.kv.modRevision : e.kv)
    if (e.kv.modRevision > revision) revision = e.kv.modRevision
  }
  return { keys: [...m.keys()], states: [...m.values()], revision }
}

function message(rand: () => number, n: number, firstRev: number, keySpace: number): SourceEvent[] {
  const out: SourceEvent[] = []
  let rev = firstRev
  for (let i = 0; i < n; i++) {
    // Mostly increasing revisions, sometimes a repeat of an older one (a late or repeated delivery).
    rev += rand() < 0.1 ? -Math.floor(rand() * 3) : 1
    const key = `k${Math.floor(rand() * keySpace)}`
    const kv: StoredKv = {
      key,
      value: new Uint8Array([i & 255]),
      createRevision: 1,
      modRevision: rev,
      version: i + 1,
      lease: '0',
    }
    out.push({ type: rand() < 0.25 ? 'DELETE' : 'PUT', kv })
  }
  return out
}

test('lastStates equals the Map reduction on seeded random messages (small and large, repeated keys, old revisions)', () => {
  const seed = Number(process.env.LAST_STATES_SEED ?? 4242)
  const rand = rng(seed)
  for (let round = 0; round < 2000; round++) {
    const n = rand() < 0.7 ? Math.floor(rand() * 17) : 17 + Math.floor(rand() * 60)
    const keySpace = 1 + Math.floor(rand() * (rand() < 0.5 ? 4 : 100))
    const applied = 100 + Math.floor(rand() * 5)
    const events = message(rand, n, 100, keySpace)
    const want = reference(events, applied)
    const got = lastStates(events, applied)
    assert.deepEqual(got.keys, want.keys, `seed ${seed} round ${round}: keys (LAST_STATES_SEED=${seed} reruns it)`)
    assert.equal(got.revision, want.revision, `seed ${seed} round ${round}: revision`)
    assert.equal(got.states.length, want.states.length, `seed ${seed} round ${round}: states`)
    for (let i = 0; i < want.states.length; i++)
      assert.equal(got.states[i], want.states[i], `seed ${seed} round ${round}: state of ${want.keys[i]}`)
  }
})

test('lastStates: a key changed twice in one message keeps its first position and its last state', () => {
  const kv = (key: string, modRevision: number): StoredKv => ({
    key,
    value: new Uint8Array(0),
    createRevision: 1,
    modRevision,
    version: 1,
    lease: '0',
  })
  const a1 = kv('a', 11)
  const b = kv('b', 12)
  const a2 = kv('a', 13)
  const got = lastStates(
    [
      { type: 'PUT', kv: kv('z', 10) },
      { type: 'PUT', kv: a1 },
      { type: 'PUT', kv: b },
      { type: 'DELETE', kv: a2 },
      { type: 'PUT', kv: kv('c', 9) },
    ],
    10,
  )
  assert.deepEqual(got.keys, ['a', 'b'])
  assert.deepEqual(got.states, [13, b])
  assert.equal(got.revision, 13)
})
