/**
 * Paper tests: each checks one sentence of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
 * Consensus Algorithm (Extended Version)") or Ongaro's thesis, quoted in the test name or comment. Pre-vote is off
 * where the sentence describes the plain algorithm; other tests cover pre-vote.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  ConfChangeType,
  EntryType,
  emptyBytes,
  encodeConfChange,
  type Message,
  MessageType,
  None,
  newMessage,
  StateType,
} from '../../src/raft/index.js'
import {
  becomeLeaderAndCommitNoop,
  ent,
  entsWithTerms,
  newTestRaft,
  nextEnts,
  readMessages,
  text,
  tickUntilElection,
} from './helpers.js'
import { Network } from './network.js'

const plain = { preVote: false, checkQuorum: false }

function types(msgs: Message[]): MessageType[] {
  return msgs.map((m) => m.type)
}

describe('§5.1 Raft basics', () => {
  for (const state of [StateType.StateFollower, StateType.StateCandidate, StateType.StateLeader]) {
    test(`"If one server's current term is smaller than the other's, then it updates its current term to the larger value. If a candidate or leader discovers that its term is out of date, it immediately reverts to follower state." (${StateType[state]})`, () => {
      const r = newTestRaft('1', ['1', '2', '3'], plain)
      if (state === StateType.StateCandidate) r.becomeCandidate()
      if (state === StateType.StateLeader) {
        r.becomeCandidate()
        r.becomeLeader()
      }
      r.step(newMessage({ type: MessageType.MsgApp, from: '2', to: '1', term: 2 }))
      assert.equal(r.term, 2)
      assert.equal(r.state, StateType.StateFollower)
      assert.equal(r.lead, '2')
    })
  }

  test('"If a server receives a request with a stale term number, it rejects the request."', () => {
    const r = newTestRaft('1', ['1', '2', '3'], { ...plain, hardState: { term: 2, vote: None, commit: 0 } })
    r.step(newMessage({ type: MessageType.MsgApp, from: '2', to: '1', term: 1, entries: [ent(1, 1, 'x')] }))
    assert.equal(r.raftLog.lastIndex(), 0, 'stale append must not touch the log')
    assert.equal(r.term, 2)
  })
})

describe('§5.2 Leader election', () => {
  test('"When servers start up, they begin as followers."', () => {
    const r = newTestRaft('1', ['1', '2', '3'])
    assert.equal(r.state, StateType.StateFollower)
  })

  test('"Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all followers in order to maintain their authority."', () => {
    const r = newTestRaft('1', ['1', '2', '3'], { ...plain, heartbeatTicks: 1 })
    r.becomeCandidate()
    r.becomeLeader()
    nextEnts(r)
    readMessages(r)
    r.tick()
    const msgs = readMessages(r).sort((a, b) => a.to.localeCompare(b.to))
    assert.deepEqual(
      msgs.map((m) => [m.type, m.to, m.entries.length]),
      [
        [MessageType.MsgHeartbeat, '2', 0],
        [MessageType.MsgHeartbeat, '3', 0],
      ],
    )
  })

  test('"If a follower receives no communication over a period of time called the election timeout, then it assumes there is no viable leader and begins an election to choose a new leader. To begin an election, a follower increments its current term and transitions to candidate state. It then votes for itself and issues RequestVote RPCs in parallel to each of the other servers."', () => {
    for (const start of [StateType.StateFollower, StateType.StateCandidate]) {
      const r = newTestRaft('1', ['1', '2', '3'], plain)
      if (start === StateType.StateCandidate) r.becomeCandidate()
      const term0 = r.term
      tickUntilElection(r)
      assert.equal(r.term, term0 + 1)
      assert.equal(r.state, StateType.StateCandidate)
      assert.equal(r.vote, '1')
      const msgs = readMessages(r)
      assert.deepEqual(msgs.map((m) => [m.type, m.to, m.term]).sort(), [
        [MessageType.MsgVote, '2', term0 + 1],
        [MessageType.MsgVote, '3', term0 + 1],
      ])
    }
  })

  test('"A candidate wins an election if it receives votes from a majority of the servers in the full cluster for the same term."', () => {
    const cases: [number, Record<string, boolean>, StateType][] = [
      [1, {}, StateType.StateLeader],
      [3, { '2': true, '3': true }, StateType.StateLeader],
      [3, { '2': true }, StateType.StateLeader],
      [5, { '2': true, '3': true, '4': true, '5': true }, StateType.StateLeader],
      [5, { '2': true, '3': true, '4': true }, StateType.StateLeader],
      [5, { '2': true, '3': true }, StateType.StateLeader],
      // return to follower state when a majority rejects
      [3, { '2': false, '3': false }, StateType.StateFollower],
      [5, { '2': false, '3': false, '4': false }, StateType.StateFollower],
      // stay candidate without a majority either way
      [3, {}, StateType.StateCandidate],
      [5, { '2': true }, StateType.StateCandidate],
      [5, { '2': false, '3': false }, StateType.StateCandidate],
    ]
    for (const [size, votes, want] of cases) {
      const ids = Array.from({ length: size }, (_, i) => String(i + 1))
      const r = newTestRaft('1', ids, plain)
      r.step(newMessage({ type: MessageType.MsgHup, from: '1' }))
      for (const [id, granted] of Object.entries(votes))
        r.step(newMessage({ type: MessageType.MsgVoteResp, from: id, to: '1', term: r.term, reject: !granted }))
      assert.equal(r.state, want, `size ${size} votes ${JSON.stringify(votes)}`)
      if (want !== StateType.StateFollower) assert.equal(r.term, 1)
    }
  })

  test('"Each server will vote for at most one candidate in a given term, on a first-come-first-served basis."', () => {
    for (const [vote, nvote, reject] of [
      [None, '2', false],
      [None, '3', false],
      ['2', '2', false],
      ['3', '3', false],
      ['2', '3', true],
      ['3', '2', true],
    ] as const) {
      const r = newTestRaft('1', ['1', '2', '3'], { ...plain, hardState: { term: 1, vote, commit: 0 } })
      r.step(newMessage({ type: MessageType.MsgVote, from: nvote, to: '1', term: 1 }))
      const msgs = readMessages(r)
      assert.equal(msgs.length, 1)
      assert.equal(msgs[0]!.type, MessageType.MsgVoteResp)
      assert.equal(msgs[0]!.reject, reject, `vote ${vote} nvote ${nvote}`)
    }
  })

  test('"While waiting for votes, a candidate may receive an AppendEntries RPC from another server claiming to be leader. If the leader\'s term is at least as large as the candidate\'s current term, then the candidate recognizes the leader as legitimate and returns to follower state."', () => {
    for (const [mterm, want] of [
      [1, StateType.StateFollower],
      [2, StateType.StateFollower],
    ] as const) {
      const r = newTestRaft('1', ['1', '2', '3'], plain)
      r.becomeCandidate()
      r.step(newMessage({ type: MessageType.MsgApp, from: '2', to: '1', term: mterm }))
      assert.equal(r.state, want)
      assert.equal(r.term, mterm)
      assert.equal(r.lead, '2')
    }
    // A lower term leaves the candidate a candidate.
    const r = newTestRaft('1', ['1', '2', '3'], plain)
    r.becomeCandidate()
    r.becomeCandidate()
    r.step(newMessage({ type: MessageType.MsgApp, from: '2', to: '1', term: 1 }))
    assert.equal(r.state, StateType.StateCandidate)
  })

  test('"Raft uses randomized election timeouts to ensure that split votes are rare": timeouts are spread over [electionTimeout, 2*electionTimeout)', () => {
    const seen = new Set<number>()
    for (let seed = 1; seed <= 200; seed++) {
      const r = newTestRaft('1', ['1', '2', '3'], { ...plain, seed })
      let ticks = 0
      while (r.state === StateType.StateFollower && ticks < 100) {
        r.tick()
        ticks++
      }
      assert.ok(ticks >= 10 && ticks < 20, `timeout ${ticks} out of range`)
      seen.add(ticks)
    }
    assert.ok(seen.size >= 8, `only ${seen.size} distinct timeouts`)
  })

  test('"in most cases only a single server will time out": followers rarely time out in the same tick', () => {
    let conflicts = 0
    const rounds = 500
    for (let seed = 0; seed < rounds; seed++) {
      const rs = ['1', '2', '3', '4', '5'].map((id) =>
        newTestRaft(id, ['1', '2', '3', '4', '5'], { ...plain, seed: seed * 7 + Number(id) }),
      )
      let timedOut = 0
      for (let t = 0; t < 20 && timedOut === 0; t++) {
        for (const r of rs) {
          r.tick()
          if (readMessages(r).length > 0) timedOut++
        }
      }
      if (timedOut > 1) conflicts++
    }
    assert.ok(conflicts / rounds < 0.3, `probability of simultaneous timeouts ${conflicts / rounds}`)
  })
})

describe('§5.3 Log replication', () => {
  function leaderOf3(opts = {}) {
    const r = newTestRaft('1', ['1', '2', '3'], { ...plain, ...opts })
    becomeLeaderAndCommitNoop(r)
    return r
  }
  function acceptAndReply(m: Message): Message {
    assert.equal(m.type, MessageType.MsgApp)
    return newMessage({
      type: MessageType.MsgAppResp,
      from: m.to,
      to: m.from,
      term: m.term,
      index: m.index + m.entries.length,
    })
  }

  test('"The leader appends the command to its log as a new entry, then issues AppendEntries RPCs in parallel to each of the other servers to replicate the entry."', () => {
    const r = leaderOf3()
    r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [ent(0, 0, 'some data')] }))
    assert.equal(r.raftLog.lastIndex(), 2)
    assert.equal(r.raftLog.committed, 1, 'only the no-op is committed until followers acknowledge')
    const msgs = readMessages(r).sort((a, b) => a.to.localeCompare(b.to))
    assert.deepEqual(
      msgs.map((m) => [m.type, m.to, m.index, m.logTerm, m.entries.map((e) => [e.index, e.term])]),
      [
        [MessageType.MsgApp, '2', 1, 1, [[2, 1]]],
        [MessageType.MsgApp, '3', 1, 1, [[2, 1]]],
      ],
    )
  })

  test('"A log entry is committed once the leader that created the entry has replicated it on a majority of the servers."', () => {
    for (const [size, acks, committed] of [
      [1, 0, true],
      [3, 0, false],
      [3, 1, true],
      [3, 2, true],
      [5, 1, false],
      [5, 2, true],
      [5, 4, true],
    ] as const) {
      const ids = Array.from({ length: size }, (_, i) => String(i + 1))
      const r = newTestRaft('1', ids, plain)
      // Acknowledge the no-op from everyone so only the new entry's replication matters.
      becomeLeaderAndCommitNoop(r)
      r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [ent(0, 0, 'x')] }))
      const msgs = readMessages(r)
      for (const m of msgs.slice(0, acks)) r.step(acceptAndReply(m))
      assert.equal(r.raftLog.committed === 2, committed, `size ${size} acks ${acks}`)
      if (committed)
        assert.deepEqual(
          nextEnts(r).map((e) => e.index),
          [2],
        )
    }
  })

  test('"The leader keeps track of the highest index it knows to be committed, and it includes that index in future AppendEntries RPCs (including heartbeats) so that the other servers eventually find out."', () => {
    const r = leaderOf3({ heartbeatTicks: 1 })
    r.step(newMessage({ type: MessageType.MsgProp, from: '1', entries: [ent(0, 0, 'x')] }))
    for (const m of readMessages(r)) r.step(acceptAndReply(m))
    assert.equal(r.raftLog.committed, 2)
    const apps = readMessages(r)
    // Broadcast of the new commit index.
    assert.ok(apps.length >= 2 && apps.every((m) => m.type === MessageType.MsgApp && m.commit === 2))
    r.tick()
    const hbs = readMessages(r).filter((m) => m.type === MessageType.MsgHeartbeat)
    assert.equal(hbs.length, 2)
    for (const m of hbs) assert.equal(m.commit, 2)
  })

  test('"This also commits all preceding entries in the leader\'s log, including entries created by previous leaders."', () => {
    const r = newTestRaft('1', ['1', '2', '3'], {
      ...plain,
      entries: entsWithTerms(1, 2),
      hardState: { term: 2, vote: None, commit: 0 },
    })
    r.becomeCandidate()
    r.becomeLeader()
    r.bcastAppend()
    assert.equal(r.term, 3)
    nextEnts(r)
    for (const m of readMessages(r)) {
      if (m.type !== MessageType.MsgApp) continue
      r.step(newMessage({ type: MessageType.MsgAppResp, from: m.to, to: '1', term: 3, index: 3 }))
    }
    assert.equal(r.raftLog.committed, 3)
    assert.deepEqual(
      nextEnts(r).map((e) => [e.index, e.term]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
    )
  })

  test('"Once a follower learns that a log entry is committed, it applies the entry to its local state machine (in log order)."', () => {
    const r = newTestRaft('1', ['1', '2', '3'], plain)
    r.becomeFollower(1, '2')
    const ents = [ent(1, 1, 'a'), ent(2, 1, 'b'), ent(3, 1, 'c')]
    r.step(
      newMessage({
        type: MessageType.MsgApp,
        from: '2',
        to: '1',
        term: 1,
        index: 0,
        logTerm: 0,
        entries: ents,
        commit: 2,
      }),
    )
    assert.deepEqual(
      nextEnts(r).map((e) => e.index),
      [1, 2],
    )
    r.step(newMessage({ type: MessageType.MsgHeartbeat, from: '2', to: '1', term: 1, commit: 3 }))
    assert.deepEqual(
      nextEnts(r).map((e) => e.index),
      [3],
    )
  })

  test('"When sending an AppendEntries RPC, the leader includes the index and term of the entry in its log that immediately precedes the new entries. If the follower does not find an entry in its log with the same index and term, then it refuses the new entries."', () => {
    const ents = entsWithTerms(1, 2)
    for (const [index, logTerm, reject] of [
      [0, 0, false],
      [2, 2, false],
      [1, 1, false],
      [2, 1, true],
      [3, 3, true],
    ] as const) {
      const r = newTestRaft('1', ['1', '2', '3'], {
        ...plain,
        entries: ents,
        hardState: { term: 2, vote: None, commit: 0 },
      })
      r.becomeFollower(2, '2')
      r.step(newMessage({ type: MessageType.MsgApp, from: '2', to: '1', term: 2, index, logTerm, entries: [] }))
      const msgs = readMessages(r)
      assert.equal(msgs.length, 1)
      assert.equal(msgs[0]!.type, MessageType.MsgAppResp)
      assert.equal(msgs[0]!.reject, reject, `index ${index} logTerm ${logTerm}`)
    }
  })

  test('"If an existing entry conflicts with a new one (same index but different terms), delete the existing entry and all that follow it; append any new entries not already in the log."', () => {
    const base = () => [ent(1, 1), ent(2, 2)]
    const cases: [number, number, [number, number][], [number, number][]][] = [
      [0, 0, [[1, 3]], [[1, 3]]],
      [
        1,
        1,
        [
          [2, 3],
          [3, 4],
        ],
        [
          [1, 1],
          [2, 3],
          [3, 4],
        ],
      ],
      [
        1,
        1,
        [],
        [
          [1, 1],
          [2, 2],
        ],
      ],
      [
        2,
        2,
        [[3, 3]],
        [
          [1, 1],
          [2, 2],
          [3, 3],
        ],
      ],
    ]
    for (const [index, logTerm, add, want] of cases) {
      const r = newTestRaft('1', ['1', '2', '3'], {
        ...plain,
        entries: base(),
        hardState: { term: 2, vote: None, commit: 0 },
      })
      r.becomeFollower(2, '2')
      r.step(
        newMessage({
          type: MessageType.MsgApp,
          from: '2',
          to: '1',
          term: 2,
          index,
          logTerm,
          entries: add.map(([i, t]) => ent(i, t)),
        }),
      )
      const got = r.raftLog.slice(1, r.raftLog.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => [e.index, e.term])
      assert.deepEqual(got, want)
    }
  })

  test('"The leader handles inconsistencies by forcing the followers\' logs to duplicate its own." (Figure 7 followers a-f)', () => {
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    const followers = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6],
      [1, 1, 1, 4],
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
      [1, 1, 1, 4, 4, 4, 4],
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ]
    for (const fterms of followers) {
      const nw = new Network([], plain)
      // Hand-built logs: the leader at term 8 with the figure's log, one follower per case, a third empty voter.
      const lead = newTestRaft('1', ['1', '2', '3'], {
        ...plain,
        entries: entsWithTerms(...leaderTerms),
        hardState: { term: 8, vote: None, commit: 0 },
      })
      const fol = newTestRaft('2', ['1', '2', '3'], {
        ...plain,
        entries: entsWithTerms(...fterms),
        hardState: { term: 7, vote: None, commit: 0 },
      })
      lead.becomeCandidate()
      lead.becomeLeader()
      lead.bcastAppend()
      // Run the two nodes against each other (node 3 is down) until quiet.
      let queue = readMessages(lead)
      for (let round = 0; round < 1000 && queue.length > 0; round++) {
        const next: Message[] = []
        for (const m of queue) {
          const dst = m.to === '1' ? lead : m.to === '2' ? fol : undefined
          if (!dst) continue
          dst.step(m)
          nextEnts(dst)
          next.push(...readMessages(dst))
        }
        queue = next
      }
      void nw
      const l = lead.raftLog.slice(1, lead.raftLog.lastIndex() + 1, Infinity).map((e) => e.term)
      const f = fol.raftLog.slice(1, fol.raftLog.lastIndex() + 1, Infinity).map((e) => e.term)
      assert.deepEqual(f, l, `follower ${fterms.join(',')}`)
      assert.equal(lead.raftLog.committed, 11)
    }
  })
})

describe('§5.4 Safety', () => {
  test('"the voter denies its vote if its own log is more up-to-date than that of the candidate."', () => {
    const ents = entsWithTerms(1, 2) // lastIndex 2, lastTerm 2
    for (const [index, logTerm, reject] of [
      [2, 1, true], // lower last term
      [3, 1, true],
      [1, 2, true], // same term, shorter
      [2, 2, false],
      [3, 2, false],
      [1, 3, false], // higher last term wins even if shorter
    ] as const) {
      const r = newTestRaft('1', ['1', '2', '3'], {
        ...plain,
        entries: ents,
        hardState: { term: 2, vote: None, commit: 0 },
      })
      r.step(newMessage({ type: MessageType.MsgVote, from: '2', to: '1', term: 3, index, logTerm }))
      const msgs = readMessages(r)
      assert.equal(msgs.length, 1)
      assert.equal(msgs[0]!.reject, reject, `candidate (${index}, ${logTerm})`)
    }
  })

  test('"Raft never commits log entries from previous terms by counting replicas." (Figure 8)', () => {
    // The leader of term 3 has an entry of term 2 at index 2 replicated on a majority; it must not commit it until an
    // entry of its own term is replicated too.
    const r = newTestRaft('1', ['1', '2', '3'], {
      ...plain,
      entries: entsWithTerms(1, 2),
      hardState: { term: 2, vote: None, commit: 1 },
    })
    r.becomeCandidate()
    r.becomeLeader()
    r.bcastAppend()
    readMessages(r)
    // Follower 2 acknowledges only up to index 2 (the old term entry), not the new no-op at 3.
    r.step(newMessage({ type: MessageType.MsgAppResp, from: '2', to: '1', term: r.term, index: 2 }))
    assert.equal(r.raftLog.committed, 1, 'entry of an older term committed by counting replicas')
    r.step(newMessage({ type: MessageType.MsgAppResp, from: '2', to: '1', term: r.term, index: 3 }))
    assert.equal(r.raftLog.committed, 3)
  })

  test('"Election Safety: at most one leader can be elected in a given term." (a split vote elects nobody)', () => {
    const nw = new Network(['1', '2', '3', '4'], plain)
    nw.cut('1', '2')
    nw.cut('3', '4')
    nw.cut('1', '4')
    nw.cut('2', '3')
    // 1 and 3 campaign at once in term 2: each gets only itself and one other: 2 of 4 is no majority.
    nw.get('1').node.campaign()
    nw.get('3').node.campaign()
    nw.send()
    const leaders = [...nw.nodes.values()].filter((n) => n.node.raft.state === StateType.StateLeader)
    assert.equal(leaders.length, 0)
  })
})

describe('§6 Cluster membership changes (one server at a time, thesis §4.1)', () => {
  test('"a leader ... can only have one configuration change pending": a second change while one is uncommitted is refused', () => {
    const r = newTestRaft('1', ['1'], plain)
    r.becomeCandidate()
    r.becomeLeader()
    nextEnts(r)
    const cc = (id: string) =>
      newMessage({
        type: MessageType.MsgProp,
        from: '1',
        entries: [
          {
            term: 0,
            index: 0,
            type: EntryType.EntryConfChange,
            data: encodeConfChange({ type: ConfChangeType.ConfChangeAddNode, nodeId: id, context: emptyBytes }),
          },
        ],
      })
    r.step(cc('2'))
    assert.throws(() => r.step(cc('3')), /already pending/)
    // Once applied, the next change is accepted.
    const ents = nextEnts(r)
    r.applyCommittedConfChanges(ents)
    assert.deepEqual(r.confState().voters, ['1', '2'])
    r.step(cc('3'))
    assert.equal(r.raftLog.lastIndex(), 3)
  })

  test('"the leader ... steps down (returns to follower state) once it has committed the Cnew log entry" when it is not part of Cnew', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    nw.get('1').node.proposeConfChange({ type: ConfChangeType.ConfChangeRemoveNode, nodeId: '1', context: emptyBytes })
    nw.send()
    assert.notEqual(nw.state('1'), StateType.StateLeader)
    // It handed leadership over with MsgTimeoutNow: a remaining member leads without waiting for an election timeout.
    const lead = nw.leader()
    assert.ok(lead === '2' || lead === '3', `leader ${lead}`)
    assert.deepEqual(nw.get(lead!).node.confState().voters, ['2', '3'])
    nw.propose(lead!, 'after')
    assert.deepEqual(nw.appliedData(lead!), ['after'])
  })

  test('"new servers join the cluster as non-voting members (the leader replicates log entries to them, but they are not considered for majorities)": learners receive the log, do not count, then are promoted', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    nw.propose('1', 'before')
    nw.add('4')
    nw.get('1').node.proposeConfChange({
      type: ConfChangeType.ConfChangeAddLearnerNode,
      nodeId: '4',
      context: emptyBytes,
    })
    nw.send()
    nw.propose('1', 'x')
    assert.deepEqual(nw.appliedData('4'), ['before', 'x'], 'learner receives the log')
    assert.deepEqual(nw.get('1').node.confState(), { voters: ['1', '2', '3'], learners: ['4'] })
    // A learner never campaigns.
    const l = nw.get('4').node.raft
    assert.equal(l.isLearner, true)
    for (let i = 0; i < 50; i++) l.tick()
    assert.equal(l.state, StateType.StateFollower)
    // Not counted for majorities: with 2 and 3 down, the learner's ack does not commit.
    nw.isolate('2')
    nw.isolate('3')
    nw.drop('2', '1')
    nw.propose('1', 'needs-majority')
    assert.deepEqual(nw.appliedData('1'), ['before', 'x'])
    nw.recover()
    nw.tick(1)
    assert.deepEqual(nw.appliedData('1'), ['before', 'x', 'needs-majority'])
    // Promotion.
    nw.get('1').node.proposeConfChange({ type: ConfChangeType.ConfChangeAddNode, nodeId: '4', context: emptyBytes })
    nw.send()
    assert.deepEqual(nw.get('1').node.confState(), { voters: ['1', '2', '3', '4'], learners: [] })
    assert.equal(nw.get('4').node.raft.isLearner, false)
  })

  test('"a server that has been removed ... will not receive heartbeats": removed followers get no more traffic and the cluster goes on', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    nw.get('1').node.proposeConfChange({ type: ConfChangeType.ConfChangeRemoveNode, nodeId: '3', context: emptyBytes })
    nw.send()
    assert.deepEqual(nw.get('1').node.confState().voters, ['1', '2'])
    nw.recordTraffic = true
    nw.tick(3)
    nw.propose('1', 'y')
    assert.ok(!nw.delivered.some((m) => m.to === '3'))
    assert.deepEqual(nw.appliedData('2'), ['y'])
  })
})

describe('§7 Log compaction', () => {
  test('"the leader must occasionally send snapshots to followers that lag behind ... the follower discards its entire log; it is all superseded by the snapshot"', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    nw.isolate('3')
    for (let i = 0; i < 10; i++) nw.propose('1', `v${i}`)
    // The leader snapshots at its applied index and compacts its log.
    const lead = nw.get('1')
    const applied = lead.node.status().applied
    lead.storage.createSnapshot(applied, lead.node.confState(), text('state@' + applied))
    lead.storage.compact(applied)
    nw.recover()
    nw.tick(2)
    const f = nw.get('3')
    assert.equal(f.storage.snapshot().metadata.index, applied)
    assert.equal(new TextDecoder().decode(f.storage.snapshot().data), 'state@' + applied)
    assert.equal(f.node.raft.raftLog.firstIndex(), applied + 1)
    nw.propose('1', 'after-snapshot')
    assert.deepEqual(nw.appliedData('3'), ['after-snapshot'])
  })
})

describe('§8 Client interaction', () => {
  test('"Raft handles this by having each leader commit a blank no-op entry into the log at the start of its term."', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    const noop = nw.get('2').applied.at(-1)!
    assert.equal(noop.type, EntryType.EntryNormal)
    assert.equal(noop.data.length, 0)
    assert.equal(noop.term, nw.get('1').node.raft.term)
  })

  test('"a leader must check whether it has been deposed before processing a read-only request": ReadIndex waits for a heartbeat round acknowledged by a quorum', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    nw.propose('1', 'w')
    nw.isolate('1')
    nw.get('1').node.readIndex(text('ctx1'))
    nw.send()
    assert.equal(nw.get('1').readStates.length, 0, 'answered a read without confirming leadership')
    nw.recover()
    nw.tick(1)
    const rs = nw.get('1').readStates
    assert.equal(rs.length, 1)
    assert.equal(rs[0]!.index, nw.get('1').node.raft.raftLog.committed)
    assert.equal(new TextDecoder().decode(rs[0]!.requestCtx), 'ctx1')
  })

  test('"If the client\'s first choice is not the leader, that server will ... supply information about the most recent leader": followers forward proposals and reads to the leader', () => {
    const nw = new Network(['1', '2', '3'], plain)
    nw.campaign('1')
    nw.propose('2', 'via-follower')
    assert.deepEqual(nw.appliedData('1'), ['via-follower'])
    nw.get('3').node.readIndex(text('r3'))
    nw.send()
    assert.equal(nw.get('3').readStates.length, 1)
    assert.ok(nw.get('3').readStates[0]!.index >= 3)
  })
})

void types
