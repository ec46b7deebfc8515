/**
 * A leader removing itself hands leadership over (src/raft/raft.ts applyConfChange: MsgTimeoutNow to its most
 * up-to-date voter, then it steps down), on virtual time with the production member, so that the outcome is exact:
 * a survivor leads in the very next term, the removed member stops, and no acknowledged write is lost. The process
 * test (test/cluster/membership.test.ts) can only ask for "a newer term", because on a loaded machine real timers
 * let an election timeout fire first; here the only clock is virtual.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { keyBytes } from '../../../src/kv/bytes.js'
import { defaultPutRequest, defaultRangeRequest } from '../../../src/protocol/types.js'
import { SimRand } from '../rng.js'
import { Scheduler } from './scheduler.js'
import { World } from './world.js'

async function removeLeader(seed: number, writer: boolean) {
  const sched = new Scheduler()
  const world = new World({
    seed,
    rng: new SimRand(seed),
    sched,
    size: 3,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 5,
    walPreallocateBytes: 0,
    walSegmentBytesMax: 64 * 1024,
    fsyncMsMax: 2,
    trace: () => {},
  })
  for (const m of world.members) void world.start(m)
  // Elected, every member published, nothing in flight: the leader's log is on its followers.
  await sched.run(5000)
  const leader = world.leader()
  assert.ok(leader, 'a leader')
  const termBefore = leader.member!.raft.node.raft.term
  const others = world.members.filter((m) => m !== leader)
  // Writes through the survivors (forwarded to the leader) keep going across the removal.
  const acked: string[] = []
  let stop = false
  const writes = (async () => {
    for (let n = 0; writer && !stop && n < 500; n++) {
      const key = `rm${n}`
      try {
        await others[n % 2]!.member!.put(defaultPutRequest({ key: keyBytes(key), value: keyBytes('v') }))
        acked.push(key)
      } catch {
        await sched.sleep(5)
      }
    }
  })()
  await sched.run(sched.now + 200)
  let removed = false
  void leader.member!.memberRemove({ ID: leader.id }).then(() => {
    removed = true
  })
  // Well inside one election timeout (1 s): only a handover can have elected anyone by then.
  await sched.run(sched.now + 500)
  const handedOver = world.leader()
  stop = true
  await Promise.race([writes, sched.run(sched.now + 10_000)])
  await sched.run(sched.now + 3000)
  assert.ok(removed, 'the removal was acknowledged')
  assert.equal(world.isUp(leader), false, 'the removed leader stopped')
  assert.ok(leader.removed)
  const next = world.leader()
  assert.ok(next && others.includes(next), 'a survivor leads')
  // Every acknowledged write is on both survivors.
  for (const m of others)
    for (const key of acked) {
      const r = await m.member!.range(defaultRangeRequest({ key: keyBytes(key), serializable: true }))
      assert.equal(r.kvs.length, 1, `${key} on member ${m.id}`)
    }
  return {
    termBefore,
    termAfter: next.member!.raft.node.raft.term,
    handedOver: handedOver !== undefined && handedOver !== leader,
    acked: acked.length,
  }
}

test('a leader that removes itself hands over in the next term, with nothing acknowledged lost', async () => {
  for (let seed = 1; seed <= 10; seed++) {
    const r = await removeLeader(seed, false)
    assert.ok(r.handedOver, `seed ${seed}: no survivor led within 500 ms of the removal`)
    assert.equal(
      r.termAfter,
      r.termBefore + 1,
      `seed ${seed}: handed over in term ${r.termAfter}, from ${r.termBefore}`,
    )
  }
})

test('while writes keep coming through the survivors, a survivor leads and nothing acknowledged is lost', async () => {
  // With entries still in flight when the removal applies, no voter may hold the leader's whole log: then the leader
  // steps down without MsgTimeoutNow (raft.ts), and a survivor wins an election after its timeout. A handover, when
  // it happens, is still the next term.
  for (let seed = 1; seed <= 10; seed++) {
    const r = await removeLeader(seed, true)
    assert.ok(r.acked > 20, `seed ${seed}: ${r.acked} writes acknowledged`)
    if (r.handedOver) assert.equal(r.termAfter, r.termBefore + 1, `seed ${seed}: handed over in term ${r.termAfter}`)
    else assert.ok(r.termAfter > r.termBefore, `seed ${seed}: term ${r.termAfter}`)
  }
})
