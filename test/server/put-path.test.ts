/**
 * The path of one write through the Ready loop costs what etcd's does and waits for nothing but the disk and the
 * peers: no timer (tick, heartbeat, batching window, request timeout) has to fire for a proposal to be committed,
 * applied and answered, on one member and on three; each member makes one durable write per batch of entries (no
 * second sync per write: a Ready that only moves the commit index writes nothing); proposals made while a write is in
 * flight go to disk together in the next one (group commit).
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import type { Message, NodeId } from '../../src/raft/index.js'
import type { Clock } from '../../src/raftnode/clock.js'
import { RaftNode, type StateMachine } from '../../src/raftnode/raft-node.js'
import type { FileOps } from '../../src/storage/file-ops.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'

class CountMachine implements StateMachine {
  n = 0
  apply(): unknown {
    return ++this.n
  }
  snapshot(): Uint8Array {
    return new Uint8Array([this.n])
  }
  restore(data: Uint8Array): void {
    this.n = data[0] ?? 0
  }
}

/** A clock whose timers never fire: anything that waits for one hangs, and the test times out. */
function frozenClock(): Clock & { armed: number } {
  const c = {
    armed: 0,
    now: () => performance.now(),
    wallMs: () => Date.now(),
    setTimeout: () => {
      c.armed++
      return {}
    },
    clearTimeout: () => {},
    setInterval: () => ({}),
    clearInterval: () => {},
  }
  return c
}

/** MemoryFileOps that counts durable writes. */
function countingOps(): { ops: FileOps; writes: () => number } {
  const inner = new MemoryFileOps()
  let n = 0
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
        writeDurable: (data, at) => {
          n++
          return f.writeDurable(data, at)
        },
        close: () => f.close(),
      }
    },
  }
  return { ops, writes: () => n }
}

const nodes: RaftNode[] = []
after(async () => {
  for (const m of nodes) await m.stop().catch(() => {})
})

async function member(id: NodeId, peers: NodeId[], transport?: (msgs: Message[]) => void) {
  const c = countingOps()
  // No preallocation: its background zero fills would count as writes.
  const storage = await openFileStorage(c.ops, { walPreallocateBytes: 0 })
  const clock = frozenClock()
  const m = await RaftNode.start({
    id,
    storage,
    stateMachine: new CountMachine(),
    tickMs: 100,
    electionTicks: 10,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 5,
    requestTimeoutMs: 5000,
    initialPeers: peers,
    clock,
    ...(transport ? { transport: { send: transport } } : {}),
  })
  nodes.push(m)
  return { m, writes: c.writes, clock }
}

const data = (s: string) => new TextEncoder().encode(s)

test('one member: a proposal is answered after one durable write, with no timer firing', {
  timeout: 30_000,
}, async () => {
  const { m, writes } = await member('1', ['1'])
  assert.equal(m.isLeader(), true)
  for (let i = 1; i <= 3; i++) {
    const w0 = writes()
    assert.equal(await m.propose(data(`v${i}`)), i)
    assert.equal(writes() - w0, 1, `put ${i}: ${writes() - w0} durable writes`)
  }
  // 50 proposals in one turn: the first goes to disk at once, the 49 made during its write together in the next.
  // (The answer above may come while the loop finishes its Ready: let it go idle first, or all 50 share one write.)
  await new Promise((r) => setImmediate(r))
  const w0 = writes()
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => m.propose(data(`b${i}`))))
  assert.deepEqual(
    results,
    Array.from({ length: 50 }, (_, i) => i + 4),
  )
  assert.equal(writes() - w0, 2)
})

test('three members: committed and answered on the leader with no timer firing, one durable write per member', {
  timeout: 30_000,
}, async () => {
  const byId = new Map<NodeId, Awaited<ReturnType<typeof member>>>()
  // Delivery in a later task, as a socket would; the member's clock plays no part in it.
  const send = (msgs: Message[]) =>
    setImmediate(() => {
      for (const msg of msgs) byId.get(msg.to)?.m.step(msg)
    })
  const peers = ['1', '2', '3']
  for (const id of peers) byId.set(id, await member(id, peers, send))
  const leader = byId.get('1')!
  leader.m.node.campaign()
  leader.m.kick()
  const deadline = Date.now() + 5000
  while (!(leader.m.isLeader() && leader.m.applied >= 4) && Date.now() < deadline)
    await new Promise((r) => setImmediate(r))
  assert.equal(leader.m.isLeader(), true)
  // Let the followers finish applying the leader's no-op (their last commit-only Ready) before counting.
  while (peers.some((id) => byId.get(id)!.m.applied < leader.m.applied) && Date.now() < deadline)
    await new Promise((r) => setImmediate(r))
  for (let i = 1; i <= 3; i++) {
    const before = peers.map((id) => byId.get(id)!.writes())
    await leader.m.propose(data(`v${i}`))
    // Followers apply on the leader's next append or heartbeat; their writes for this entry are done once it is
    // committed (a majority wrote it), and the third member's one write follows its MsgApp.
    while (peers.some((id) => byId.get(id)!.m.applied < leader.m.applied) && Date.now() < deadline)
      await new Promise((r) => setImmediate(r))
    const per = peers.map((id, k) => byId.get(id)!.writes() - before[k]!)
    assert.deepEqual(per, [1, 1, 1], `put ${i}: durable writes per member ${per}`)
  }
})
