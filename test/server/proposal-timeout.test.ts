/**
 * A proposal not applied within requestTimeoutMs fails with etcd's "request timed out", each at its own deadline,
 * though the Ready loop keeps one timer for all of them (armed for the oldest), and etcd_server_proposals_pending
 * counts the ones still waiting. Virtual time: a clock whose timers fire only when the test moves it.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Clock } from '../../src/raftnode/clock.js'
import { RaftNode } from '../../src/raftnode/raft-node.js'
import type { FileOps } from '../../src/storage/file-ops.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'

function manualClock() {
  let t = 0
  let seq = 0
  const timers = new Map<number, { at: number; f: () => void }>()
  const clock: Clock = {
    now: () => t,
    wallMs: () => 1_700_000_000_000 + t,
    setTimeout: (f, ms) => {
      timers.set(++seq, { at: t + ms, f })
      return seq
    },
    clearTimeout: (h) => {
      timers.delete(h as number)
    },
    setInterval: () => 0,
    clearInterval: () => {},
  }
  const advance = (to: number) => {
    for (;;) {
      let next: [number, { at: number; f: () => void }] | undefined
      for (const e of timers) if (e[1].at <= to && (next === undefined || e[1].at < next[1].at)) next = e
      if (next === undefined) break
      timers.delete(next[0])
      t = next[1].at
      next[1].f()
    }
    t = to
  }
  return { clock, advance, armed: () => timers.size }
}

/** MemoryFileOps whose durable writes never complete once `hang` is set: proposals stay unapplied. */
function hangingOps(): { ops: FileOps; hang: () => void } {
  const inner = new MemoryFileOps()
  let hung = false
  const ops: FileOps = {
    path: (name) => inner.path(name),
    mkdir: () => inner.mkdir(),
    list: () => inner.list(),
    read: (name) => inner.read(name),
    truncate: (name, size) => inner.truncate(name, size),
    rename: (from, to) => inner.rename(from, to),
    unlink: (name) => inner.unlink(name),
    syncDir: () => inner.syncDir(),
    openWrite: async (name) => {
      const f = await inner.openWrite(name)
      return {
        size: f.size,
        writeDurable: (data, at) => (hung ? new Promise<void>(() => {}) : f.writeDurable(data, at)),
        close: () => f.close(),
      }
    },
  }
  return { ops, hang: () => (hung = true) }
}

const settled = () => new Promise((r) => setImmediate(r))

test('proposals time out each at its own deadline, with one timer for all of them', async () => {
  const { clock, advance, armed } = manualClock()
  const h = hangingOps()
  const m = await RaftNode.start({
    id: '1',
    storage: await openFileStorage(h.ops, { walPreallocateBytes: 0 }),
    stateMachine: { apply: () => 'ok', snapshot: () => new Uint8Array(0), restore: () => {} },
    tickMs: 100,
    electionTicks: 10,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 5,
    requestTimeoutMs: 5000,
    initialPeers: ['1'],
    clock,
  })
  assert.equal(await m.propose(new Uint8Array([1])), 'ok')
  await settled()
  h.hang()
  const outcome: string[] = []
  const track = (name: string, p: Promise<unknown>) =>
    p.then(
      () => outcome.push(`${name} ok`),
      (e: Error) => outcome.push(`${name} ${e.message}`),
    )
  const pending = () => /etcd_server_proposals_pending (\d+)/.exec(m.metrics.registry.render())?.[1]
  track('a', m.propose(new Uint8Array([2])))
  advance(1000)
  track('b', m.propose(new Uint8Array([3])))
  track('c', m.propose(new Uint8Array([4])))
  advance(3000)
  track('d', m.propose(new Uint8Array([5])))
  assert.equal(armed(), 1, 'one proposal timer, whatever the number of proposals')
  assert.equal(pending(), '4')
  advance(4999)
  await settled()
  assert.deepEqual(outcome, [])
  advance(5000)
  await settled()
  assert.deepEqual(outcome, ['a etcdserver: request timed out'])
  assert.equal(pending(), '3')
  advance(5999)
  await settled()
  assert.equal(outcome.length, 1)
  advance(6000)
  await settled()
  assert.deepEqual(outcome.slice(1), ['b etcdserver: request timed out', 'c etcdserver: request timed out'])
  advance(8000)
  await settled()
  assert.deepEqual(outcome.slice(3), ['d etcdserver: request timed out'])
  assert.equal(pending(), '0')
  assert.equal(armed(), 0, 'no timer left once nothing waits')
  assert.match(m.metrics.registry.render(), /etcd_server_proposals_failed_total 4/)
})
