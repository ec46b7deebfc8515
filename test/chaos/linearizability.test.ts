import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Op } from './history.js'
import { checkLinearizable } from './linearizability.js'

let nextId = 0
const base = (
  client: number,
  call: number,
  ret: number | undefined,
): Pick<Op, 'id' | 'client' | 'call' | 'ret' | 'status'> => ({
  id: nextId++,
  client,
  call,
  ret,
  status: ret === undefined ? 'unknown' : 'ok',
})
const put = (c: number, call: number, ret: number | undefined, value: string, rev?: number, key = 'k'): Op => ({
  ...base(c, call, ret),
  f: 'put',
  key,
  value,
  rev,
})
const get = (c: number, call: number, ret: number, readValue: string | null, readRev = 0, key = 'k'): Op => ({
  ...base(c, call, ret),
  f: 'get',
  key,
  readValue,
  readRev,
})
const cas = (
  c: number,
  call: number,
  ret: number | undefined,
  expectValue: string,
  value: string,
  succeeded?: boolean,
  rev?: number,
): Op => ({
  ...base(c, call, ret),
  f: 'cas',
  key: 'k',
  cmp: 'value',
  expectValue,
  value,
  succeeded,
  rev,
})
const casMod = (
  c: number,
  call: number,
  ret: number | undefined,
  expectRev: number,
  value: string,
  succeeded?: boolean,
  rev?: number,
): Op => ({
  ...base(c, call, ret),
  f: 'cas',
  key: 'k',
  cmp: 'mod',
  expectRev,
  value,
  succeeded,
  rev,
})
const verdict = (ops: Op[]) => checkLinearizable(ops).verdict

describe('linearizability checker: linearizable histories pass', () => {
  test('sequential put then get', () => {
    assert.equal(verdict([put(0, 0, 10, 'a', 2), get(1, 20, 30, 'a', 2)]), 'ok')
  })
  test('a read concurrent with a write may see either value', () => {
    const w = () => [put(0, 0, 10, 'a', 2), put(0, 20, 40, 'b', 3)]
    assert.equal(verdict([...w(), get(1, 25, 35, 'a', 2)]), 'ok')
    assert.equal(verdict([...w(), get(1, 25, 35, 'b', 3)]), 'ok')
    assert.equal(
      verdict([...w(), get(1, 25, 35, 'b', 3), get(2, 30, 38, 'a', 2)]),
      'ok',
      'reads overlapping each other and the write',
    )
  })
  test('an empty key reads as absent', () => {
    assert.equal(verdict([get(0, 0, 5, null), put(1, 10, 20, 'a', 2), get(0, 30, 40, 'a', 2)]), 'ok')
  })
  test('an unknown write may take effect late, or never', () => {
    assert.equal(verdict([put(0, 0, undefined, 'a'), get(1, 100, 110, null), get(1, 200, 210, 'a', 5)]), 'ok', 'late')
    assert.equal(
      verdict([put(0, 0, undefined, 'a'), get(1, 100, 110, null), put(1, 120, 130, 'b', 6), get(1, 200, 210, 'b', 6)]),
      'ok',
      'never',
    )
  })
  test('failed operations and unknown reads are ignored', () => {
    const failed: Op = { ...put(0, 0, 10, 'x'), status: 'fail' }
    const unknownRead: Op = { ...get(1, 0, 10, 'zzz'), status: 'unknown' }
    assert.equal(verdict([failed, unknownRead, get(2, 20, 30, null)]), 'ok')
  })
  test('compare-and-set on value and on mod revision, failed compares are reads', () => {
    assert.equal(
      verdict([
        put(0, 0, 10, 'a', 2),
        cas(1, 20, 30, 'a', 'b', true, 3),
        cas(2, 40, 50, 'a', 'c', false),
        get(0, 60, 70, 'b', 3),
      ]),
      'ok',
    )
    assert.equal(
      verdict([
        casMod(0, 0, 10, 0, 'a', true, 2),
        casMod(1, 20, 30, 2, 'b', true, 3),
        casMod(0, 40, 50, 2, 'c', false),
      ]),
      'ok',
    )
    assert.equal(verdict([cas(0, 0, 10, '', 'a', false)]), 'ok', 'a VALUE compare on a missing key is false')
  })
  test('two concurrent CAS on the same old value: one wins', () => {
    assert.equal(
      verdict([
        put(0, 0, 10, 'a', 2),
        cas(1, 20, 40, 'a', 'b', true, 3),
        cas(2, 21, 41, 'a', 'c', false),
        get(0, 50, 60, 'b', 3),
      ]),
      'ok',
    )
  })
  test('an unknown CAS may or may not have applied', () => {
    const h = () => [put(0, 0, 10, 'a', 2), cas(1, 20, undefined, 'a', 'b')]
    assert.equal(verdict([...h(), get(0, 100, 110, 'a', 2)]), 'ok')
    assert.equal(verdict([...h(), get(0, 100, 110, 'b', 3)]), 'ok')
  })
  test('keys are independent; a multi-key put is a put on each key', () => {
    const m: Op = { ...base(0, 0, 10), f: 'mput', key: 'x', value: 'x1', more: [['y', 'y1']], rev: 2 }
    assert.equal(
      verdict([
        m,
        get(1, 20, 30, 'x1', 2, 'x'),
        get(1, 40, 50, 'y1', 2, 'y'),
        put(2, 5, 15, 'z1', 3, 'z'),
        get(2, 60, 70, 'z1', 3, 'z'),
      ]),
      'ok',
    )
  })
  test('seeded random histories produced by a real register are linearizable', () => {
    let seed = 12345
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed / 0x7fffffff
    }
    for (let round = 0; round < 30; round++) {
      // Each op gets a random interval and a linearization point inside it; results come from applying the ops in
      // the order of their points, so the history is linearizable by construction.
      const n = 60
      const spec = Array.from({ length: n }, (_, i) => {
        const call = rand() * 1000
        const ret = call + 1 + rand() * 80
        return { i, call, ret, at: call + (ret - call) * rand(), kind: rand() }
      })
      let value: string | null = null
      let rev = 0
      let nextRev = 1
      const ops: Op[] = []
      for (const s of [...spec].sort((a, b) => a.at - b.at)) {
        const unknown = rand() < 0.1
        const ret = unknown ? undefined : s.ret
        if (s.kind < 0.35) {
          const v = `v${s.i}`
          if (unknown && rand() < 0.5) {
            ops.push(put(s.i, s.call, undefined, v)) // never applied
            continue
          }
          value = v
          rev = ++nextRev
          ops.push(put(s.i, s.call, ret, v, unknown ? undefined : rev))
        } else if (s.kind < 0.7) {
          ops.push(get(s.i, s.call, s.ret, value, value === null ? 0 : rev))
        } else {
          const expect = rand() < 0.5 && value !== null ? value : `v${Math.floor(rand() * n)}`
          const holds = value !== null && value === expect
          const v = `v${s.i}`
          if (holds) {
            value = v
            rev = ++nextRev
          }
          ops.push(cas(s.i, s.call, ret, expect, v, unknown ? undefined : holds, unknown || !holds ? undefined : rev))
        }
      }
      const r = checkLinearizable(ops)
      assert.equal(r.verdict, 'ok', `round ${round}: ${r.keys.map((k) => k.detail ?? '').join('\n')}`)
    }
  })
})

describe('linearizability checker: classic violations fail', () => {
  test('stale read after a completed write', () => {
    const r = checkLinearizable([put(0, 0, 10, 'a', 2), put(0, 20, 30, 'b', 3), get(1, 40, 50, 'a', 2)])
    assert.equal(r.verdict, 'violation')
    assert.match(r.keys[0]!.detail!, /get k -> "a"@2/)
  })
  test('lost write: an acknowledged put is not seen by a later read', () => {
    assert.equal(verdict([put(0, 0, 10, 'a', 2), get(1, 20, 30, null)]), 'violation')
  })
  test('a read of a value nobody wrote', () => {
    assert.equal(verdict([put(0, 0, 10, 'a', 2), get(1, 20, 30, 'ghost', 7)]), 'violation')
  })
  test('reads going back in time (new value, then old value, both after the write began)', () => {
    assert.equal(
      verdict([put(0, 0, 10, 'a', 2), put(0, 20, 100, 'b', 3), get(1, 30, 40, 'b', 3), get(2, 50, 60, 'a', 2)]),
      'violation',
    )
  })
  test('CAS succeeding twice on the same old value', () => {
    assert.equal(
      verdict([put(0, 0, 10, 'a', 2), cas(1, 20, 40, 'a', 'b', true, 3), cas(2, 21, 41, 'a', 'c', true, 4)]),
      'violation',
    )
    assert.equal(
      verdict([casMod(1, 0, 40, 0, 'b', true, 3), casMod(2, 1, 41, 0, 'c', true, 4)]),
      'violation',
      'create-if-absent twice',
    )
  })
  test('a CAS that failed although its compare held', () => {
    assert.equal(verdict([put(0, 0, 10, 'a', 2), cas(1, 20, 30, 'a', 'b', false)]), 'violation')
    assert.equal(verdict([cas(0, 0, 10, '', 'a', true, 2)]), 'violation', 'VALUE compare on a missing key succeeded')
  })
  test('an unknown write observed and then un-observed', () => {
    assert.equal(verdict([put(0, 0, undefined, 'a'), get(1, 100, 110, 'a', 5), get(1, 200, 210, null)]), 'violation')
  })
  test('writes linearized against their revisions', () => {
    assert.equal(verdict([put(0, 0, 10, 'a', 10), put(1, 20, 30, 'b', 5)]), 'violation')
  })
  test('one value at two revisions, two values at one revision', () => {
    assert.match(
      checkLinearizable([put(0, 0, 10, 'a', 2), get(1, 20, 30, 'a', 3)]).keys[0]!.detail!,
      /seen at mod_revision 2 and 3/,
    )
    assert.match(
      checkLinearizable([put(0, 0, 10, 'a', 2), put(1, 0, 10, 'b', 2)]).keys[0]!.detail!,
      /two values at mod_revision 2/,
    )
  })
  test('a torn multi-key put is caught per key when a key loses its write', () => {
    const m: Op = { ...base(0, 0, 10), f: 'mput', key: 'x', value: 'x1', more: [['y', 'y1']], rev: 2 }
    assert.equal(verdict([m, get(1, 20, 30, 'x1', 2, 'x'), get(1, 40, 50, null, 0, 'y')]), 'violation')
  })
  test('a search over its step budget reports unknown instead of hanging', () => {
    // Many unknown writes overlapping reads of absent: every subset and order is worth trying before giving up.
    const ops: Op[] = []
    for (let i = 0; i < 40; i++) ops.push(put(i, i, undefined, `u${i}`))
    for (let i = 0; i < 40; i++)
      ops.push(get(100 + i, 50 + i * 10, 55 + i * 10, i % 2 ? `u${i}` : null, i % 2 ? 100 + i : 0))
    const r = checkLinearizable(ops, { stepsMax: 5000 })
    assert.equal(r.verdict, 'unknown')
    assert.match(r.keys[0]!.detail!, /stopped after 5000 steps/)
  })
})
