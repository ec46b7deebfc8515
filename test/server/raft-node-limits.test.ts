/**
 * Every queue of the Ready loop has a named bound, checked once in validateServerConfig, and a request past it fails
 * at once with etcd's "too many requests" instead of growing the queue. The loop's assertions (applied indexes
 * contiguous, a snapshot past applied) stop the member; the member's revision assertion is proven by the
 * member-level simulator's injected bugs (test/sim/member/member-sim.test.ts).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError, serverDefaults, validateServerConfig } from '../../src/etcdserver/config.js'
import { EtcdError } from '../../src/protocol/errors.js'
import { AssertionFailed } from '../../src/raftnode/clock.js'
import { RaftNode, type StateMachine } from '../../src/raftnode/raft-node.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'

const machine = (): StateMachine => ({
  apply: () => 'ok',
  snapshot: () => new Uint8Array(0),
  restore: () => {},
})

async function start(
  limits: { proposalsPendingCountMax?: number; readsPendingCountMax?: number },
  onFatal?: (e: unknown) => void,
) {
  return RaftNode.start({
    id: '1',
    storage: await openFileStorage(new MemoryFileOps()),
    stateMachine: machine(),
    tickMs: 10,
    electionTicks: 10,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 5,
    requestTimeoutMs: 2000,
    initialPeers: ['1'],
    onFatal,
    ...limits,
  })
}

test('proposals past proposalsPendingCountMax fail at once with "too many requests"', async () => {
  const m = await start({ proposalsPendingCountMax: 2 })
  const a = m.propose(new Uint8Array([1]))
  const b = m.propose(new Uint8Array([2]))
  assert.throws(
    () => m.propose(new Uint8Array([3])),
    (e: unknown) => e instanceof EtcdError && e.message === 'etcdserver: too many requests',
  )
  assert.deepEqual(await Promise.all([a, b]), ['ok', 'ok'])
  // Once answered, the queue has room again.
  assert.equal(await m.propose(new Uint8Array([4])), 'ok')
  await m.stop()
})

test('linearizable reads past readsPendingCountMax fail at once with "too many requests"', async () => {
  const m = await start({ readsPendingCountMax: 1 })
  // A write in flight keeps the leader's commit ahead of apply, so the read below has to wait in the queue.
  const w = m.propose(new Uint8Array([1]))
  const r = m.linearizableRead()
  assert.throws(() => m.linearizableRead(), /too many requests/)
  await Promise.all([w, r])
  await m.linearizableRead()
  await m.stop()
})

test('validateServerConfig checks every queue bound', () => {
  assert.doesNotThrow(() => validateServerConfig({ ...serverDefaults }))
  for (const name of ['proposalsPendingCountMax', 'readsPendingCountMax'] as const)
    for (const bad of [0, -1, 1.5, Number.NaN])
      assert.throws(
        () => validateServerConfig({ ...serverDefaults, [name]: bad }),
        (e: unknown) => e instanceof ConfigError && e.message.startsWith(name),
      )
})

test('an applied index that does not follow the last one stops the member (assertion)', async () => {
  let fatal: unknown
  const m = await start({}, (e) => {
    fatal = e
  })
  // Inject the bug: the loop applies the next committed entry one index too far.
  const r = m as unknown as { applyEntry: (i: number, t: number, d: Uint8Array) => void }
  const applyEntry = r.applyEntry.bind(m)
  r.applyEntry = (i, t, d) => applyEntry(i + 1, t, d)
  await assert.rejects(m.propose(new Uint8Array([1])), /server stopped/)
  assert.ok(fatal instanceof AssertionFailed, String(fatal))
  assert.match((fatal as Error).message, /applied index \d+ does not follow/)
  await assert.rejects(async () => m.propose(new Uint8Array([2])), /server stopped/)
})

test('a snapshot that is not past the applied index stops the member (assertion)', async () => {
  const m = await start({})
  for (let i = 0; i < 5; i++) await m.propose(new Uint8Array([i]))
  const applied = m.applied
  assert.ok(applied >= 5)
  // Inject the bug: a Ready carries a snapshot below what was applied (storage accepts it: it has no snapshot yet).
  const rd = {
    snapshot: { data: new Uint8Array(0), metadata: { index: applied - 2, term: 1, confState: m.node.confState() } },
    entries: [],
    committedEntries: [],
    messages: [],
    readStates: [],
    mustSync: true,
  }
  const handleReady = (m as unknown as { handleReady: (r: unknown) => Promise<void> }).handleReady.bind(m)
  await assert.rejects(
    handleReady(rd),
    (e: unknown) => e instanceof AssertionFailed && /is not past applied/.test(e.message),
  )
  await m.stop().catch(() => {})
})
