import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { EtcdError } from '../../src/protocol/errors.js'
import { EntryType, type Message, MessageType, newMessage } from '../../src/raft/index.js'
import { RaftNode, type StateMachine } from '../../src/raftnode/raft-node.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'

/** A tiny state machine: a list of strings; "boom" is refused with an etcd error. */
class ListMachine implements StateMachine {
  items: string[] = []
  apply(data: Uint8Array): unknown {
    const s = new TextDecoder().decode(data)
    if (s === 'boom') throw new EtcdError('ErrKeyNotFound')
    this.items.push(s)
    return this.items.length
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.items))
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(new TextDecoder().decode(data))
  }
}

const members: RaftNode[] = []
after(async () => {
  for (const m of members) await m.stop().catch(() => {})
})

async function start(ops: MemoryFileOps, sm: StateMachine, snapshotCount = 10_000) {
  const storage = await openFileStorage(ops)
  const m = await RaftNode.start({
    id: '1',
    storage,
    stateMachine: sm,
    tickMs: 10,
    electionTicks: 10,
    snapshotCount,
    snapshotCatchUpEntries: 5,
    requestTimeoutMs: 2000,
    initialPeers: ['1'],
  })
  members.push(m)
  return m
}

test('a single member proposes, applies, answers errors, and serves linearizable reads', async () => {
  const sm = new ListMachine()
  const m = await start(new MemoryFileOps(), sm)
  assert.equal(m.isLeader(), true)
  const results = await Promise.all(['a', 'b', 'c'].map((s) => m.propose(new TextEncoder().encode(s))))
  assert.deepEqual(results, [1, 2, 3])
  await assert.rejects(m.propose(new TextEncoder().encode('boom')), /key not found/)
  await m.linearizableRead()
  assert.deepEqual(sm.items, ['a', 'b', 'c'])
  await m.stop()
})

test('a restarted member recovers its state from snapshot + WAL, with nothing acknowledged lost', async () => {
  const ops = new MemoryFileOps()
  const sm = new ListMachine()
  const m = await start(ops, sm, 7)
  for (let i = 0; i < 25; i++) await m.propose(new TextEncoder().encode(`v${i}`))
  await m.stop()
  ops.crash()
  const sm2 = new ListMachine()
  const m2 = await start(ops, sm2, 7)
  await m2.linearizableRead()
  assert.deepEqual(
    sm2.items,
    Array.from({ length: 25 }, (_, i) => `v${i}`),
  )
  await m2.propose(new TextEncoder().encode('after'))
  assert.equal(sm2.items.at(-1), 'after')
  await m2.stop()
})

test('a follower that has not heard from its leader for an election timeout has no recent leader (/health)', async () => {
  // No timer ticks (an hour per tick): the test ticks by hand.
  const storage = await openFileStorage(new MemoryFileOps())
  const m = await RaftNode.start({
    id: '1',
    storage,
    stateMachine: new ListMachine(),
    tickMs: 3_600_000,
    electionTicks: 10,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 5,
    requestTimeoutMs: 2000,
    initialPeers: ['1', '2'],
  })
  members.push(m)
  m.step(newMessage({ type: MessageType.MsgHeartbeat, from: '2', to: '1', term: 5 }))
  assert.equal(m.leader(), '2')
  assert.equal(m.hasRecentLeader(), true)
  // The follower's own randomized timeout is at its longest (2x - 1 ticks): it still names the leader after one
  // election timeout of silence, but that leader is not one it heard from recently.
  m.node.raft.randomizedElectionTimeout = 19
  for (let i = 0; i < 9; i++) m.node.tick()
  assert.equal(m.hasRecentLeader(), true)
  m.node.tick()
  assert.equal(m.leader(), '2')
  assert.equal(m.hasRecentLeader(), false)
  // A message from the leader makes it recent again.
  m.step(newMessage({ type: MessageType.MsgHeartbeat, from: '2', to: '1', term: 5 }))
  assert.equal(m.hasRecentLeader(), true)
  await m.stop()
})

test('a lost ReadIndex is asked again (etcd 3.5 readIndexRetryTime) and the read completes', async () => {
  const sent: Message[] = []
  const storage = await openFileStorage(new MemoryFileOps())
  const m = await RaftNode.start({
    id: '1',
    storage,
    stateMachine: new ListMachine(),
    tickMs: 3_600_000,
    electionTicks: 10,
    snapshotCount: 10_000,
    snapshotCatchUpEntries: 5,
    requestTimeoutMs: 5000,
    initialPeers: ['1', '2'],
    transport: { send: (msgs) => sent.push(...msgs) },
  })
  members.push(m)
  m.step(newMessage({ type: MessageType.MsgHeartbeat, from: '2', to: '1', term: 5 }))
  const read = m.linearizableRead()
  const asks = () => sent.filter((x) => x.type === MessageType.MsgReadIndex)
  const deadline = Date.now() + 30_000
  // The first MsgReadIndex is lost (never answered); a second one follows within the retry interval.
  while (asks().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.ok(asks().length >= 2, `asked ${asks().length} time(s)`)
  const last = asks().at(-1)!
  m.step(
    newMessage({
      type: MessageType.MsgReadIndexResp,
      from: '2',
      to: '1',
      term: 5,
      index: 0,
      entries: [{ term: 0, index: 0, type: EntryType.EntryNormal, data: last.entries[0]!.data }],
    }),
  )
  await read
  await m.stop()
})
