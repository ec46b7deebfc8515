/**
 * Multi-node and feature tests of the Raft core beyond the paper: pre-vote, check-quorum, batching, pipelining and
 * flow control, fast backtracking, size limits, dropped proposals, leader transfer, ReadIndex batching, snapshots to
 * lagging followers, restarts from storage, and the Ready contract.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  ConfChangeType,
  emptyBytes,
  MemoryStorage,
  type Message,
  MessageType,
  None,
  newMessage,
  ProgressState,
  RaftError,
  RawNode,
  ReadOnlyOption,
  StateType,
  seededRand,
  validateConfig,
} from '../../src/raft/index.js'
import { becomeLeaderAndCommitNoop, ent, entsWithTerms, newTestRaft, nextEnts, readMessages, text } from './helpers.js'
import { Network } from './network.js'

describe('elections: pre-vote and check-quorum', () => {
  test('pre-vote: an isolated node does not bump its term, so it cannot disrupt the leader when it returns', () => {
    const nw = new Network(['1', '2', '3'], { preVote: true, checkQuorum: true })
    nw.campaign('1')
    const term = nw.get('1').node.raft.term
    nw.isolate('3')
    // Node 3 times out again and again while isolated.
    for (let i = 0; i < 100; i++) nw.tick(1, ['3'])
    assert.equal(nw.get('3').node.raft.term, term, 'pre-vote must not bump the term')
    assert.equal(nw.state('3'), StateType.StatePreCandidate)
    nw.recover()
    nw.tick(3)
    assert.equal(nw.leader(), '1')
    assert.equal(nw.get('1').node.raft.term, term)
    assert.equal(nw.state('3'), StateType.StateFollower)
  })

  test('without pre-vote the same isolated node bumps its term and forces a new election when it returns', () => {
    const nw = new Network(['1', '2', '3'], { preVote: false, checkQuorum: false })
    nw.campaign('1')
    const term = nw.get('1').node.raft.term
    nw.isolate('3')
    for (let i = 0; i < 100; i++) nw.tick(1, ['3'])
    assert.ok(nw.get('3').node.raft.term > term)
    nw.recover()
    nw.tick(3)
    assert.ok(nw.get('1').node.raft.term > term, 'the old leader was deposed by the higher term')
  })

  test('pre-vote: a node with a stale log loses the pre-vote and no term changes anywhere', () => {
    const nw = new Network(['1', '2', '3'], { preVote: true, checkQuorum: false })
    nw.campaign('1')
    nw.isolate('3')
    nw.propose('1', 'a')
    nw.recover()
    const terms = ['1', '2', '3'].map((id) => nw.get(id).node.raft.term)
    nw.get('3').node.campaign()
    // 3's pre-vote is rejected by 1 and 2 (their logs are longer); deliver and check no term moved.
    nw.drop('1', '3')
    nw.drop('2', '3', 0)
    nw.send()
    assert.deepEqual(
      ['1', '2'].map((id) => nw.get(id).node.raft.term),
      terms.slice(0, 2),
    )
  })

  test('check-quorum: a leader that cannot hear from a quorum steps down within an election timeout', () => {
    const nw = new Network(['1', '2', '3'], { checkQuorum: true, preVote: true })
    nw.campaign('1')
    nw.isolate('1')
    nw.tick(25, ['1'])
    assert.equal(nw.state('1'), StateType.StateFollower)
  })

  test('check-quorum: a follower that heard from the leader recently ignores a vote request (leader lease)', () => {
    const r = newTestRaft('2', ['1', '2', '3'], { checkQuorum: true, preVote: false })
    r.becomeFollower(1, '1')
    r.step(newMessage({ type: MessageType.MsgHeartbeat, from: '1', to: '2', term: 1 }))
    readMessages(r)
    r.step(newMessage({ type: MessageType.MsgVote, from: '3', to: '2', term: 2, index: 5, logTerm: 1 }))
    assert.equal(r.term, 1, 'vote in lease must be ignored')
    assert.deepEqual(readMessages(r), [])
  })

  test('votes are persisted before the reply: the vote is in the Ready that carries the MsgVoteResp, with mustSync', () => {
    const storage = MemoryStorage.fromState({ confState: { voters: ['1', '2', '3'], learners: [] } })
    const n = new RawNode({ id: '2', storage, rand: seededRand(1), preVote: false, checkQuorum: false })
    n.step(newMessage({ type: MessageType.MsgVote, from: '1', to: '2', term: 1 }))
    const rd = n.ready()
    assert.deepEqual(rd.hardState, { term: 1, vote: '1', commit: 0 })
    assert.equal(rd.mustSync, true)
    assert.equal(rd.messages.length, 1)
    assert.equal(rd.messages[0]!.type, MessageType.MsgVoteResp)
    assert.equal(rd.messages[0]!.reject, false)
  })
})

describe('replication: batching, pipelining, flow control, backtracking, limits', () => {
  test('batching: many proposals become one MsgApp per follower and one Ready to persist', () => {
    const nw = new Network(['1', '2', '3'], { preVote: false })
    nw.campaign('1')
    nw.recordTraffic = true
    const batch = Array.from({ length: 100 }, (_, i) => text(`v${i}`))
    nw.get('1').node.proposeBatch(batch)
    nw.send()
    const apps = nw.delivered.filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0)
    assert.equal(apps.length, 2)
    assert.ok(apps.every((m) => m.entries.length === 100))
    assert.equal(nw.appliedData('3').length, 100)
  })

  test('maxMsgBytes: one MsgApp carries at most maxMsgBytes of entries (but always one)', () => {
    const r = newTestRaft('1', ['1', '2'], { maxMsgBytes: 1000, preVote: false })
    becomeLeaderAndCommitNoop(r)
    const big = new Uint8Array(300)
    r.step(
      newMessage({
        type: MessageType.MsgProp,
        from: '1',
        entries: Array.from({ length: 10 }, () => ent(0, 0)).map((e) => ({ ...e, data: big })),
      }),
    )
    const apps = readMessages(r).filter((m) => m.type === MessageType.MsgApp)
    assert.ok(apps.length >= 3, `expected the batch split over several messages, got ${apps.length}`)
    for (const m of apps) {
      const bytes = m.entries.reduce((s, e) => s + e.data.length + 24, 0)
      assert.ok(m.entries.length === 1 || bytes <= 1000, `message of ${bytes} bytes`)
    }
    assert.equal(
      apps.reduce((s, m) => s + m.entries.length, 0),
      10,
    )
  })

  test('pipelining: in replicate state the leader sends up to maxInflightMsgs MsgApps without waiting, then pauses', () => {
    const r = newTestRaft('1', ['1', '2'], { maxInflightMsgs: 4, preVote: false })
    becomeLeaderAndCommitNoop(r)
    assert.equal(r.progress('2')!.state, ProgressState.StateReplicate)
    for (let i = 0; i < 10; i++)
      r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [ent(0, 0, `p${i}`)] }))
    const apps = readMessages(r).filter((m) => m.type === MessageType.MsgApp)
    assert.equal(apps.length, 4, 'window of 4 messages in flight')
    assert.equal(r.progress('2')!.isPaused(), true)
    // An acknowledgement frees the window: the rest goes out.
    r.step(newMessage({ type: MessageType.MsgAppResp, from: '2', to: '1', term: r.term, index: apps[3]!.index + 1 }))
    const more = readMessages(r).filter((m) => m.type === MessageType.MsgApp)
    assert.ok(more.length >= 1)
    assert.equal(more.at(-1)!.entries.at(-1)!.index, 11)
  })

  test('probe state: one MsgApp at a time until the follower answers', () => {
    const r = newTestRaft('1', ['1', '2'], { preVote: false })
    r.becomeCandidate()
    r.becomeLeader()
    r.bcastAppend()
    assert.equal(r.progress('2')!.state, ProgressState.StateProbe)
    assert.equal(readMessages(r).length, 1)
    for (let i = 0; i < 3; i++) r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [ent(0, 0, 'x')] }))
    assert.equal(readMessages(r).length, 0, 'paused while probing')
    // A heartbeat response unpauses the probe (its MsgApp may have been lost).
    r.step(newMessage({ type: MessageType.MsgHeartbeatResp, from: '2', to: '1', term: r.term }))
    assert.equal(readMessages(r).filter((m) => m.type === MessageType.MsgApp).length, 1)
  })

  test('fast backtracking: a follower with a long divergent tail is repaired in a few round trips, not one per entry', () => {
    // Leader: 1 entry of term 1, then 50 of term 3. Follower: 1 of term 1, then 50 of term 2.
    const leaderTerms = [1, ...Array(50).fill(3)]
    const followerTerms = [1, ...Array(50).fill(2)]
    const lead = newTestRaft('1', ['1', '2', '3'], {
      preVote: false,
      entries: entsWithTerms(...leaderTerms),
      hardState: { term: 3, vote: None, commit: 1 },
    })
    const fol = newTestRaft('2', ['1', '2', '3'], {
      preVote: false,
      entries: entsWithTerms(...followerTerms),
      hardState: { term: 3, vote: None, commit: 1 },
    })
    lead.becomeCandidate()
    lead.becomeLeader()
    lead.bcastAppend()
    let queue = readMessages(lead).filter((m) => m.to === '2')
    let rejects = 0
    for (let round = 0; round < 100 && queue.length > 0; round++) {
      const next: Message[] = []
      for (const m of queue) {
        const dst = m.to === '1' ? lead : fol
        if (m.type === MessageType.MsgAppResp && m.reject) rejects++
        dst.step(m)
        nextEnts(dst)
        next.push(...readMessages(dst).filter((x) => x.to === '1' || x.to === '2'))
      }
      queue = next
    }
    assert.ok(rejects <= 2, `${rejects} rejections: backtracking went entry by entry`)
    assert.deepEqual(
      fol.raftLog.slice(1, fol.raftLog.lastIndex() + 1, Infinity).map((e) => e.term),
      lead.raftLog.slice(1, lead.raftLog.lastIndex() + 1, Infinity).map((e) => e.term),
    )
  })

  test('maxUncommittedEntriesBytes: a leader drops proposals past the limit instead of growing without bound', () => {
    const r = newTestRaft('1', ['1', '2', '3'], { maxUncommittedEntriesBytes: 1000, preVote: false })
    becomeLeaderAndCommitNoop(r)
    const data = new Uint8Array(400)
    r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [{ ...ent(0, 0), data }] }))
    r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [{ ...ent(0, 0), data }] }))
    assert.throws(
      () => r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [{ ...ent(0, 0), data }] })),
      (e: unknown) => e instanceof RaftError && e.code === 'ErrProposalDropped',
    )
  })

  test('followers forward proposals; with no leader a proposal is dropped with ErrProposalDropped', () => {
    const r = newTestRaft('2', ['1', '2', '3'])
    assert.throws(
      () => r.step(newMessage({ type: MessageType.MsgProp, from: '2', entries: [ent(0, 0, 'x')] })),
      /raft proposal dropped/,
    )
    r.becomeFollower(1, '1')
    r.step(newMessage({ type: MessageType.MsgProp, from: '2', entries: [ent(0, 0, 'x')] }))
    const msgs = readMessages(r)
    assert.equal(msgs.length, 1)
    assert.equal(msgs[0]!.type, MessageType.MsgProp)
    assert.equal(msgs[0]!.to, '1')
    const nf = newTestRaft('2', ['1', '2', '3'], { disableProposalForwarding: true })
    nf.becomeFollower(1, '1')
    assert.throws(
      () => nf.step(newMessage({ type: MessageType.MsgProp, from: '2', entries: [ent(0, 0, 'x')] })),
      /forwarding disabled/,
    )
  })
})

describe('leader transfer (MsgTimeoutNow, thesis §3.10)', () => {
  test('transfer to an up-to-date follower: it becomes leader at once, in the next term', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    const term = nw.get('1').node.raft.term
    nw.get('1').node.transferLeader('2')
    nw.send()
    assert.equal(nw.leader(), '2')
    assert.equal(nw.get('2').node.raft.term, term + 1)
  })

  test('transfer to a lagging follower: the leader catches it up first, dropping proposals meanwhile', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    nw.isolate('3')
    for (let i = 0; i < 5; i++) nw.propose('1', `v${i}`)
    nw.get('1').node.transferLeader('3')
    nw.send()
    assert.equal(nw.get('1').node.raft.leadTransferee, '3')
    assert.throws(() => nw.get('1').node.propose(text('during')), /leadership transfer in progress/)
    nw.recover()
    nw.tick(2)
    assert.equal(nw.leader(), '3')
    assert.deepEqual(nw.appliedData('3'), ['v0', 'v1', 'v2', 'v3', 'v4'])
  })

  test('a transfer that cannot finish within an election timeout is abandoned', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    nw.isolate('3')
    nw.get('1').node.transferLeader('3')
    nw.send()
    nw.tick(12, ['1'])
    assert.equal(nw.get('1').node.raft.leadTransferee, None)
    assert.equal(nw.leader(), '1')
    nw.propose('1', 'ok-again')
  })

  test('transferLeader on a follower is forwarded to the leader', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    nw.get('3').node.transferLeader('3')
    nw.send()
    assert.equal(nw.leader(), '3')
  })
})

describe('ReadIndex (thesis §6.4)', () => {
  test('reads issued together are confirmed by one heartbeat round (batched)', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    nw.recordTraffic = true
    nw.drop('1', '2')
    nw.drop('1', '3')
    const leader = nw.get('1').node
    for (let i = 0; i < 5; i++) leader.readIndex(text(`r${i}`))
    nw.send()
    assert.equal(nw.get('1').readStates.length, 0)
    nw.recover()
    // The leader heartbeats with the newest context only; its acknowledgement releases all five.
    nw.tick(1)
    assert.deepEqual(
      nw.get('1').readStates.map((r) => new TextDecoder().decode(r.requestCtx)),
      ['r0', 'r1', 'r2', 'r3', 'r4'],
    )
  })

  test('a new leader answers reads only after its first entry commits (it must know the commit index)', () => {
    const r = newTestRaft('1', ['1', '2', '3'], { preVote: false })
    r.becomeCandidate()
    r.becomeLeader()
    r.bcastAppend()
    readMessages(r)
    r.step(newMessage({ type: MessageType.MsgReadIndex, from: '1', entries: [ent(0, 0, 'ctx')] }))
    assert.equal(readMessages(r).filter((m) => m.type === MessageType.MsgHeartbeat).length, 0)
    r.step(newMessage({ type: MessageType.MsgAppResp, from: '2', to: '1', term: r.term, index: 1 }))
    const hbs = readMessages(r).filter((m) => m.type === MessageType.MsgHeartbeat)
    assert.equal(hbs.length, 2)
    assert.equal(new TextDecoder().decode(hbs[0]!.context), 'ctx')
  })

  test('lease-based reads answer without a heartbeat round', () => {
    const nw = new Network(['1', '2', '3'], { readOnlyOption: ReadOnlyOption.ReadOnlyLeaseBased, checkQuorum: true })
    nw.campaign('1')
    nw.isolate('1')
    nw.get('1').node.readIndex(text('lease'))
    nw.send()
    assert.equal(nw.get('1').readStates.length, 1)
  })

  test('a single-voter cluster answers reads at once', () => {
    const nw = new Network(['1'])
    nw.campaign('1')
    nw.get('1').node.readIndex(text('solo'))
    nw.send()
    assert.equal(nw.get('1').readStates[0]!.index, nw.get('1').node.raft.raftLog.committed)
  })
})

describe('snapshots and restarts', () => {
  test('a lost MsgSnap is retried after snapshotTimeoutTicks; reportSnapshot(failure) retries at once', () => {
    const nw = new Network(['1', '2', '3'], { snapshotTimeoutTicks: 5 })
    nw.campaign('1')
    nw.isolate('3')
    for (let i = 0; i < 5; i++) nw.propose('1', `v${i}`)
    const lead = nw.get('1')
    const applied = lead.node.status().applied
    lead.storage.createSnapshot(applied, lead.node.confState(), text('snap'))
    lead.storage.compact(applied)
    nw.recover()
    nw.ignore(MessageType.MsgSnap)
    nw.tick(2)
    assert.equal(lead.node.raft.progress('3')!.state, ProgressState.StateSnapshot)
    nw.recover()
    nw.tick(8)
    assert.equal(nw.get('3').storage.snapshot().metadata.index, applied)
    assert.equal(lead.node.raft.progress('3')!.state, ProgressState.StateReplicate)
  })

  test('a node restarted from its storage keeps its term, vote and log, and re-applies committed entries', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    nw.propose('1', 'a')
    nw.propose('1', 'b')
    const before = nw.get('2').node.status().hardState
    nw.restart('2')
    nw.send()
    assert.deepEqual(nw.get('2').node.status().hardState, before)
    assert.deepEqual(nw.appliedData('2'), ['a', 'b'])
    nw.propose('1', 'c')
    assert.deepEqual(nw.appliedData('2'), ['a', 'b', 'c'])
  })

  test('bootstrap refuses a non-empty storage and an empty peer list', () => {
    const nw = new Network(['1'])
    assert.throws(() => nw.get('1').node.bootstrap(['1']), /nonempty/)
    const n = new RawNode({ id: '1', storage: new MemoryStorage(), rand: seededRand(1) })
    assert.throws(() => n.bootstrap([]), /at least one peer/)
  })

  test('step refuses local messages; responses from non-members are dropped', () => {
    const nw = new Network(['1', '2'])
    nw.campaign('1')
    const n = nw.get('1').node
    assert.throws(() => n.step(newMessage({ type: MessageType.MsgHup })), /local message/)
    n.step(newMessage({ type: MessageType.MsgAppResp, from: '9', to: '1', term: n.raft.term, index: 100 }))
    assert.equal(n.raft.raftLog.committed, nw.get('2').node.raft.raftLog.committed)
  })

  test('removing the last voter or demoting a voter is refused', () => {
    const nw = new Network(['1'])
    nw.campaign('1')
    const n = nw.get('1').node
    assert.throws(
      () => n.proposeConfChange({ type: ConfChangeType.ConfChangeRemoveNode, nodeId: '1', context: emptyBytes }),
      /last voter/,
    )
    assert.throws(
      () => n.proposeConfChange({ type: ConfChangeType.ConfChangeAddLearnerNode, nodeId: '1', context: emptyBytes }),
      /demoting/,
    )
  })
})

describe('validateConfig', () => {
  const base = { id: '1', storage: new MemoryStorage(), rand: seededRand(1) }
  test('fills etcd defaults', () => {
    const c = validateConfig(base)
    assert.equal(c.electionTicks, 10)
    assert.equal(c.heartbeatTicks, 1)
    assert.equal(c.preVote, true)
    assert.equal(c.checkQuorum, true)
  })
  for (const [field, value, msg] of [
    ['id', '', /id must be/],
    ['id', '0', /id must be/],
    ['electionTicks', 0, /electionTicks must be a positive integer/],
    ['heartbeatTicks', 1.5, /heartbeatTicks must be a positive integer/],
    ['electionTicks', 1, /greater than heartbeatTicks/],
    ['maxInflightMsgs', -1, /maxInflightMsgs/],
    ['maxMsgBytes', 0, /maxMsgBytes/],
    ['maxUncommittedEntriesBytes', 0, /maxUncommittedEntriesBytes/],
    ['maxInflightBytes', 10, /maxInflightBytes must be >= maxMsgBytes/],
  ] as const) {
    test(`rejects ${field}=${JSON.stringify(value)}`, () => {
      assert.throws(
        () => validateConfig({ ...base, [field]: value }),
        (e: unknown) => e instanceof RaftError && e.code === 'ErrConfigInvalid' && msg.test(e.message),
      )
    })
  }
  test('lease-based reads require check-quorum', () => {
    assert.throws(
      () => validateConfig({ ...base, readOnlyOption: ReadOnlyOption.ReadOnlyLeaseBased, checkQuorum: false }),
      /checkQuorum/,
    )
  })
})

describe('membership gaps found by the simulator', () => {
  test('a member added after the leader last snapshotted catches up from that older snapshot (it does not name it)', () => {
    const nw = new Network(['1', '2', '3'])
    nw.campaign('1')
    for (let i = 0; i < 5; i++) nw.propose('1', `v${i}`)
    const lead = nw.get('1')
    // Snapshot and compact now, before node 4 exists in the configuration.
    const applied = lead.node.status().applied
    lead.storage.createSnapshot(applied, lead.node.confState(), text('snap'))
    lead.storage.compact(applied)
    nw.add('4')
    lead.node.proposeConfChange({ type: ConfChangeType.ConfChangeAddLearnerNode, nodeId: '4', context: emptyBytes })
    nw.send()
    nw.tick(3)
    nw.propose('1', 'after')
    assert.equal(nw.get('4').storage.snapshot().metadata.index, applied)
    assert.deepEqual(nw.appliedData('4'), ['after'])
    assert.deepEqual(nw.get('4').node.confState(), { voters: ['1', '2', '3'], learners: ['4'] })
    // And it can be promoted and counts for the quorum afterwards.
    lead.node.proposeConfChange({ type: ConfChangeType.ConfChangeAddNode, nodeId: '4', context: emptyBytes })
    nw.send()
    assert.deepEqual(nw.get('4').node.confState().voters, ['1', '2', '3', '4'])
  })

  test('acceptConfChange lets the application refuse a change deterministically (re-adding a removed id)', () => {
    const removed = new Set<string>()
    const nw = new Network(['1', '2', '3'], {
      acceptConfChange: (cc) => {
        if (cc.type === ConfChangeType.ConfChangeRemoveNode) removed.add(cc.nodeId)
        return !(cc.type !== ConfChangeType.ConfChangeRemoveNode && removed.has(cc.nodeId))
      },
    })
    nw.campaign('1')
    const n = nw.get('1').node
    n.proposeConfChange({ type: ConfChangeType.ConfChangeRemoveNode, nodeId: '3', context: emptyBytes })
    nw.send()
    n.proposeConfChange({ type: ConfChangeType.ConfChangeAddNode, nodeId: '3', context: emptyBytes })
    nw.send()
    assert.deepEqual(n.confState().voters, ['1', '2'])
    nw.propose('1', 'still-works')
    assert.deepEqual(nw.appliedData('2'), ['still-works'])
  })
})

describe('restart with a persisted commit below the snapshot', () => {
  test('the snapshot index is the commit floor (commit-only hard states need not be synced)', () => {
    const storage = MemoryStorage.fromState({
      snapshot: {
        data: new Uint8Array(0),
        metadata: { index: 5, term: 1, confState: { voters: ['1'], learners: [] } },
      },
      hardState: { term: 1, vote: '1', commit: 3 },
    })
    const n = new RawNode({ id: '1', storage, rand: seededRand(1), applied: 5 })
    assert.equal(n.raft.raftLog.committed, 5)
    n.campaign()
    assert.equal(n.raft.state, StateType.StateLeader)
  })
})
