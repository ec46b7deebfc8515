/**
 * RaftNode's proposal waiters (src/raftnode/proposal-waiters.ts) against the Map they replaced: random runs of adds
 * (increasing numbers with gaps, bursts that grow the ring), settles in any order (some of numbers never added or
 * settled twice), expiries by deadline and fail-alls must answer exactly the same proposals, with the same values,
 * in the same order. Seeded; a failing run prints its seed.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { seededRand } from '../../src/raft/rand.js'
import { ProposalWaiters } from '../../src/raftnode/proposal-waiters.js'

interface ModelWaiter {
  resolve(v: unknown): void
  reject(e: unknown): void
  deadline: number
}

function run(seed: number): void {
  const rand = seededRand(seed)
  const got: string[] = []
  const want: string[] = []
  const w = new ProposalWaiters()
  const model = new Map<number, ModelWaiter>()
  let seq = 0
  let now = 0
  const timeout = 50
  for (let step = 0; step < 3000; step++) {
    const op = rand.intn(100)
    if (op < 45) {
      // A burst of proposals (now and then a large one), with numbers skipped for reads between them.
      const n = rand.intn(20) === 0 ? 1 + rand.intn(300) : 1 + rand.intn(3)
      for (let k = 0; k < n; k++) {
        seq += 1 + (rand.intn(4) === 0 ? rand.intn(5) : 0)
        const s = seq
        w.add(
          s,
          (v) => got.push(`ok ${s} ${v}`),
          (e) => got.push(`err ${s} ${e}`),
          now + timeout,
        )
        model.set(s, {
          resolve: (v) => want.push(`ok ${s} ${v}`),
          reject: (e) => want.push(`err ${s} ${e}`),
          deadline: now + timeout,
        })
      }
    } else if (op < 85) {
      // Settle one: mostly a waiting one (oldest first or any), sometimes one that is not waiting.
      const keys = [...model.keys()]
      const s =
        keys.length > 0 && rand.intn(5) !== 0
          ? keys[rand.intn(2) === 0 ? 0 : rand.intn(keys.length)]!
          : rand.intn(seq + 2)
      const error = rand.intn(4) === 0 ? `e${step}` : undefined
      const m = model.get(s)
      assert.equal(w.has(s), m !== undefined, `has(${s})`)
      const settled = w.settle(s, `r${step}`, error)
      assert.equal(settled, m !== undefined, `settle(${s})`)
      if (m !== undefined) {
        model.delete(s)
        if (error !== undefined) m.reject(error)
        else m.resolve(`r${step}`)
      }
    } else if (op < 97) {
      now += rand.intn(30)
      const n = w.expire(now, () => 'timeout')
      let m = 0
      for (const [s, x] of model) {
        if (x.deadline > now) break
        model.delete(s)
        m++
        x.reject('timeout')
      }
      assert.equal(n, m, 'expired count')
    } else {
      w.rejectAll('stopped')
      const all = [...model.values()]
      model.clear()
      for (const x of all) x.reject('stopped')
    }
    assert.equal(w.size, model.size, 'size')
    const oldest = model.values().next().value
    assert.equal(w.oldestDeadline(), oldest?.deadline, 'oldest deadline')
  }
  assert.deepEqual(got, want)
}

test('proposal waiters answer as the Map they replaced did, over random runs', () => {
  for (let seed = 1; seed <= 40; seed++) {
    try {
      run(seed)
    } catch (err) {
      console.error(`proposal waiters: failing seed ${seed}`)
      throw err
    }
  }
})

test('a proposal added out of order is refused', () => {
  const w = new ProposalWaiters()
  w.add(
    5,
    () => {},
    () => {},
    0,
  )
  assert.throws(() =>
    w.add(
      5,
      () => {},
      () => {},
      0,
    ),
  )
})
