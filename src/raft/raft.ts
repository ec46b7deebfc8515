import { decodeConfChange } from './confchange.js'
import { type Config, type ConfigInput, ReadOnlyOption, validateConfig } from './config.js'
import { assert, RaftError } from './errors.js'
import { RaftLog } from './log.js'
import { Progress, ProgressState } from './progress.js'
import { ReadOnly } from './read-only.js'
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  emptyBytes,
  type HardState,
  isEmptyHardState,
  type Message,
  MessageType,
  type NodeId,
  None,
  newMessage,
  type ReadState,
  type Snapshot,
  type SoftState,
  StateType,
  voteRespMsgType,
} from './types.js'

/** The context of a forced election started by MsgTimeoutNow: voters skip their leader lease for it (§3.10). */
export const campaignTransfer = new TextEncoder().encode('CampaignTransfer')

type CampaignType = 'pre-election' | 'election' | 'transfer'

enum VoteResult {
  VotePending = 0,
  VoteLost = 1,
  VoteWon = 2,
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Bytes an entry counts against maxUncommittedEntriesBytes: its payload only, so empty entries are free. */
function payloadsSize(ents: Entry[]): number {
  let s = 0
  for (const e of ents) s += e.data.byteLength
  return s
}

/**
 * The Raft consensus state machine (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", and
 * Ongaro's thesis), modelled on etcd-io/raft. It is pure: time arrives as tick(), input as step(), and every output
 * (messages, entries to persist, entries to apply) accumulates here until RawNode hands it out in a Ready.
 */
export class Raft {
  readonly id: NodeId
  term = 0
  vote: NodeId = None
  readStates: ReadState[] = []
  readonly raftLog: RaftLog
  state: StateType = StateType.StateFollower
  isLearner = false
  /** Outgoing messages, handed out by the next Ready. */
  msgs: Message[] = []
  lead: NodeId = None
  /** The node leadership is being transferred to, if any. Proposals are dropped meanwhile (§3.10). */
  leadTransferee: NodeId = None
  /**
   * Only one conf change may be pending (appended but not applied): its index, or lastIndex when this node became
   * leader, since entries of earlier leaders may hold one (Raft thesis §4.1 and its errata on one-at-a-time changes).
   */
  pendingConfIndex = 0
  uncommittedSize = 0
  readOnly = new ReadOnly()
  electionElapsed = 0
  heartbeatElapsed = 0
  randomizedElectionTimeout = 0

  /** Progress of every member, voters and learners, as seen by this node's configuration. */
  readonly prs = new Map<NodeId, Progress>()
  readonly voters = new Set<NodeId>()
  readonly learners = new Set<NodeId>()
  readonly votes = new Map<NodeId, boolean>()

  private readonly c: Config
  private pendingReadIndexMessages: Message[] = []
  private quorumScratch: number[] = []

  constructor(input: ConfigInput) {
    this.c = validateConfig(input)
    this.id = this.c.id
    this.raftLog = new RaftLog(this.c.storage, this.c.maxCommittedBytesPerReady)
    const { hardState, confState } = this.c.storage.initialState()
    this.restoreConfig(confState)
    if (!isEmptyHardState(hardState)) this.loadState(hardState)
    if (this.c.applied > this.raftLog.applied) this.raftLog.appliedTo(Math.min(this.c.applied, this.raftLog.committed))
    this.becomeFollower(this.term, None)
  }

  get config(): Readonly<Config> {
    return this.c
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state }
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed }
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() }
  }

  // ---- sending ----

  /** Queues m for the next Ready. Vote messages carry their own term; MsgProp/MsgReadIndex are forwarded as is. */
  send(m: Message): void {
    if (m.from === None) m.from = this.id
    const t = m.type
    if (
      t === MessageType.MsgVote ||
      t === MessageType.MsgVoteResp ||
      t === MessageType.MsgPreVote ||
      t === MessageType.MsgPreVoteResp
    ) {
      if (m.term === 0) assert(false, `term should be set when sending ${MessageType[t]}`)
    } else {
      if (m.term !== 0) assert(false, `term should not be set when sending ${MessageType[t]} (was ${m.term})`)
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term
    }
    this.msgs.push(m)
  }

  /** Sends an append (or a snapshot) to `to` if its progress allows; returns whether a message was sent. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to)
    if (!pr || pr.isPaused()) return false
    const log = this.raftLog
    const prevIndex = pr.next - 1
    let prevTerm = 0
    let ents: Entry[] = []
    let needSnapshot = prevIndex < log.firstIndex() - 1
    if (!needSnapshot) {
      try {
        prevTerm = log.term(prevIndex)
        ents = log.entries(pr.next, this.c.maxMsgBytes)
      } catch (err) {
        if (!(err instanceof RaftError) || (err.code !== 'ErrCompacted' && err.code !== 'ErrUnavailable')) throw err
        needSnapshot = true
      }
    }
    if (!needSnapshot && ents.length === 0 && !sendIfEmpty) return false

    if (needSnapshot) {
      // The entries the follower needs are compacted away: send the snapshot (§7).
      if (!pr.recentActive) return false
      let snapshot: Snapshot
      try {
        snapshot = log.snapshot()
      } catch (err) {
        if (err instanceof RaftError && err.code === 'ErrSnapshotTemporarilyUnavailable') return false
        throw err
      }
      assert(snapshot.metadata.index > 0, 'need non-empty snapshot')
      this.send(newMessage({ type: MessageType.MsgSnap, to, snapshot }))
      pr.becomeSnapshot(snapshot.metadata.index)
      return true
    }

    this.send(
      newMessage({
        type: MessageType.MsgApp,
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries: ents,
        commit: log.committed,
      }),
    )
    const n = ents.length
    if (n > 0) {
      if (pr.state === ProgressState.StateReplicate) {
        const last = ents[n - 1]!.index
        pr.next = last + 1
        pr.inflights.add(last, payloadsSize(ents))
      } else if (pr.state === ProgressState.StateProbe) {
        pr.probeSent = true
      }
    }
    return true
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true)
  }

  /** Sends appends to every follower, pipelining as many MsgApps as the inflight window allows. */
  bcastAppend(): void {
    for (const id of this.prs.keys()) {
      if (id === this.id) continue
      if (!this.maybeSendAppend(id, true)) continue
      while (this.maybeSendAppend(id, false)) {}
    }
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array): void {
    // The follower may not have the leader's whole log: commit no further than what it is known to match.
    const pr = this.prs.get(to)!
    const commit = Math.min(pr.match, this.raftLog.committed)
    this.send(newMessage({ type: MessageType.MsgHeartbeat, to, commit, context: ctx }))
  }

  private bcastHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestCtx()
    this.bcastHeartbeatWithCtx(ctx ?? emptyBytes)
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx)
  }

  // ---- quorum ----

  /** Majority of the voters (§5.2). */
  private quorum(): number {
    return Math.floor(this.voters.size / 2) + 1
  }

  /** The largest index stored on a quorum of voters. */
  private committedIndex(): number {
    const n = this.voters.size
    if (n === 0) return Number.MAX_SAFE_INTEGER
    const a = this.quorumScratch
    a.length = 0
    for (const id of this.voters) a.push(this.prs.get(id)?.match ?? 0)
    a.sort((x, y) => y - x)
    return a[this.quorum() - 1]!
  }

  /** Commits what a quorum has stored, if it is of the current term. Returns whether commit moved. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.committedIndex(), this.term)
  }

  private voteResult(votes: (id: NodeId) => boolean | undefined): VoteResult {
    if (this.voters.size === 0) return VoteResult.VoteWon
    let granted = 0
    let missing = 0
    for (const id of this.voters) {
      const v = votes(id)
      if (v === undefined) missing++
      else if (v) granted++
    }
    const q = this.quorum()
    if (granted >= q) return VoteResult.VoteWon
    if (granted + missing >= q) return VoteResult.VotePending
    return VoteResult.VoteLost
  }

  private quorumActive(): boolean {
    return (
      this.voteResult((id) => (id === this.id ? true : (this.prs.get(id)?.recentActive ?? false))) ===
      VoteResult.VoteWon
    )
  }

  isSingleton(): boolean {
    return this.voters.size === 1 && this.voters.has(this.id)
  }

  // ---- state transitions ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term
      this.vote = None
    }
    this.lead = None
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.resetRandomizedElectionTimeout()
    this.abortLeaderTransfer()
    this.votes.clear()
    const last = this.raftLog.lastIndex()
    for (const [id, pr] of this.prs) {
      const fresh = new Progress(last + 1, this.c.maxInflightMsgs, this.c.maxInflightBytes, pr.isLearner)
      if (id === this.id) fresh.match = last
      this.prs.set(id, fresh)
    }
    this.pendingConfIndex = 0
    this.uncommittedSize = 0
    this.readOnly = new ReadOnly()
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.c.electionTicks + this.c.rand.intn(this.c.electionTicks)
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term)
    this.lead = lead
    this.state = StateType.StateFollower
  }

  becomeCandidate(): void {
    assert(this.state !== StateType.StateLeader, 'invalid transition [leader -> candidate]')
    this.reset(this.term + 1)
    this.vote = this.id
    this.state = StateType.StateCandidate
  }

  becomePreCandidate(): void {
    assert(this.state !== StateType.StateLeader, 'invalid transition [leader -> pre-candidate]')
    // Pre-vote changes neither the term nor the vote (thesis §9.6): a partitioned node cannot disrupt the cluster.
    this.votes.clear()
    this.lead = None
    this.state = StateType.StatePreCandidate
  }

  becomeLeader(): void {
    assert(this.state !== StateType.StateFollower, 'invalid transition [follower -> leader]')
    this.reset(this.term)
    this.lead = this.id
    this.state = StateType.StateLeader
    const self = this.prs.get(this.id)!
    self.becomeReplicate()
    self.recentActive = true
    // Entries of earlier terms may hold a conf change we cannot see as such until applied; wait for them.
    this.pendingConfIndex = this.raftLog.lastIndex()
    // A no-op entry of the new term, so that earlier entries commit with it (§5.4.2, §8).
    const ok = this.appendEntry([{ term: 0, index: 0, type: EntryType.EntryNormal, data: emptyBytes }])
    assert(ok, 'empty entry was dropped')
  }

  /** Whether this node may become leader: it is a voter of its own configuration and has no pending snapshot. */
  promotable(): boolean {
    return this.voters.has(this.id) && !this.raftLog.hasPendingSnapshot()
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.StateLeader) return
    if (!this.promotable()) return
    // A committed but unapplied conf change may change who votes: wait until it is applied.
    if (this.raftLog.committed > this.raftLog.applied) {
      const ents = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, Number.MAX_SAFE_INTEGER)
      if (ents.some((e) => e.type === EntryType.EntryConfChange)) return
    }
    this.campaign(t)
  }

  campaign(t: CampaignType): void {
    if (!this.promotable()) return
    let voteMsg: MessageType
    let term: number
    if (t === 'pre-election') {
      this.becomePreCandidate()
      voteMsg = MessageType.MsgPreVote
      // Pre-vote RPCs carry the term the node would have if it campaigned for real.
      term = this.term + 1
    } else {
      this.becomeCandidate()
      voteMsg = MessageType.MsgVote
      term = this.term
    }
    if (this.poll(this.id, voteRespMsgType(voteMsg), true) === VoteResult.VoteWon) {
      // A single-voter cluster wins at once.
      if (t === 'pre-election') this.campaign('election')
      else this.becomeLeader()
      return
    }
    const index = this.raftLog.lastIndex()
    const logTerm = this.raftLog.lastTerm()
    const context = t === 'transfer' ? campaignTransfer : emptyBytes
    for (const id of [...this.voters].sort()) {
      if (id === this.id) continue
      this.send(newMessage({ type: voteMsg, to: id, term, index, logTerm, context }))
    }
  }

  private poll(id: NodeId, _t: MessageType, v: boolean): VoteResult {
    if (!this.votes.has(id)) this.votes.set(id, v)
    return this.voteResult((x) => this.votes.get(x))
  }

  // ---- ticks ----

  tick(): void {
    if (this.state === StateType.StateLeader) this.tickHeartbeat()
    else this.tickElection()
  }

  private tickElection(): void {
    this.electionElapsed++
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.step(newMessage({ type: MessageType.MsgHup, from: this.id }))
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.c.electionTicks) {
      this.electionElapsed = 0
      if (this.c.checkQuorum) this.step(newMessage({ type: MessageType.MsgCheckQuorum, from: this.id }))
      // A transfer that did not finish within an election timeout is abandoned (§3.10).
      if (this.state === StateType.StateLeader && this.leadTransferee !== None) this.abortLeaderTransfer()
    }
    if (this.state !== StateType.StateLeader) return
    for (const [id, pr] of this.prs) {
      if (id === this.id || pr.state !== ProgressState.StateSnapshot) continue
      // A MsgSnap can be lost without the transport reporting it: probe again after a while.
      if (++pr.snapshotTicks >= this.c.snapshotTimeoutTicks) pr.becomeProbe()
    }
    if (this.heartbeatElapsed >= this.c.heartbeatTicks) {
      this.heartbeatElapsed = 0
      this.step(newMessage({ type: MessageType.MsgBeat, from: this.id }))
    }
  }

  // ---- step ----

  /** Feeds one message to the state machine. Throws RaftError('ErrProposalDropped') for a proposal it cannot take. */
  step(m: Message): void {
    if (m.term === 0) {
      // Local message.
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = bytesEqual(m.context, campaignTransfer)
        const inLease = this.c.checkQuorum && this.lead !== None && this.electionElapsed < this.c.electionTicks
        // Within the minimum election timeout of hearing from a leader, ignore votes (thesis §4.2.3): a removed or
        // partitioned server cannot disrupt a healthy cluster. A leader transfer is the exception.
        if (!force && inLease) return
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change our term in response to a pre-vote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // The term is bumped when the pre-vote wins and the real election starts.
      } else if (
        m.type === MessageType.MsgApp ||
        m.type === MessageType.MsgHeartbeat ||
        m.type === MessageType.MsgSnap
      ) {
        this.becomeFollower(m.term, m.from)
      } else {
        this.becomeFollower(m.term, None)
      }
    } else if (m.term < this.term) {
      if (
        (this.c.checkQuorum || this.c.preVote) &&
        (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)
      ) {
        // A stale leader (partitioned, or whose term we passed through pre-vote-less elections) would never learn of
        // the new term otherwise: answer so that it steps down.
        this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from }))
      } else if (m.type === MessageType.MsgPreVote) {
        this.send(newMessage({ type: MessageType.MsgPreVoteResp, to: m.from, term: this.term, reject: true }))
      }
      return
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.c.preVote ? 'pre-election' : 'election')
        return
      case MessageType.MsgVote:
      case MessageType.MsgPreVote: {
        // We can vote for the one we already voted for, or anyone when we have no vote and know no leader this
        // term, or anyone in a future term's pre-vote.
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === MessageType.MsgPreVote && m.term > this.term)
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // The vote is in this Ready's hard state, persisted before the response is sent (§5.2 / Figure 2).
          this.send(newMessage({ type: voteRespMsgType(m.type), to: m.from, term: m.term }))
          if (m.type === MessageType.MsgVote) {
            this.electionElapsed = 0
            this.vote = m.from
          }
        } else {
          this.send(newMessage({ type: voteRespMsgType(m.type), to: m.from, term: this.term, reject: true }))
        }
        return
      }
      default:
        switch (this.state) {
          case StateType.StateLeader:
            this.stepLeader(m)
            return
          case StateType.StateCandidate:
          case StateType.StatePreCandidate:
            this.stepCandidate(m)
            return
          case StateType.StateFollower:
            this.stepFollower(m)
            return
        }
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat()
        return
      case MessageType.MsgCheckQuorum:
        // Step down when a quorum has not been heard from within an election timeout (§6.2, check-quorum).
        if (!this.quorumActive()) this.becomeFollower(this.term, None)
        for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false
        return
      case MessageType.MsgProp:
        this.stepLeaderProp(m)
        return
      case MessageType.MsgReadIndex:
        if (this.isSingleton()) {
          this.respondToReadIndex(m, this.raftLog.committed)
          return
        }
        // A new leader does not know the commit index of its term until its no-op commits (thesis §6.4 step 1).
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m)
          return
        }
        this.sendMsgReadIndexResponse(m)
        return
    }

    const pr = this.prs.get(m.from)
    if (!pr) return
    switch (m.type) {
      case MessageType.MsgAppResp:
        this.handleAppendResponse(m, pr)
        return
      case MessageType.MsgHeartbeatResp: {
        pr.recentActive = true
        pr.probeSent = false
        // Free one slot so a follower whose MsgApps were all lost can recover.
        if (pr.state === ProgressState.StateReplicate && pr.inflights.full()) pr.inflights.freeFirstOne()
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from)
        if (this.c.readOnlyOption !== ReadOnlyOption.ReadOnlySafe || m.context.length === 0) return
        const acks = this.readOnly.recvAck(m.from, m.context)
        if (this.voteResult((id) => (acks.has(id) ? true : undefined)) !== VoteResult.VoteWon) return
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index)
        return
      }
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressState.StateSnapshot) return
        if (m.reject) pr.pendingSnapshot = 0
        pr.becomeProbe()
        // Wait for the follower's MsgAppResp (or a heartbeat) before probing further.
        pr.probeSent = true
        return
      case MessageType.MsgUnreachable:
        // The transport could not deliver: stop pipelining to it, probe instead.
        if (pr.state === ProgressState.StateReplicate) pr.becomeProbe()
        return
      case MessageType.MsgTransferLeader: {
        if (pr.isLearner) return
        const transferee = m.from
        if (this.leadTransferee !== None) {
          if (this.leadTransferee === transferee) return
          this.abortLeaderTransfer()
        }
        if (transferee === this.id) return
        // The transfer must finish within an election timeout or it is abandoned.
        this.electionElapsed = 0
        this.leadTransferee = transferee
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee)
        else this.sendAppend(transferee)
        return
      }
    }
  }

  private stepLeaderProp(m: Message): void {
    if (m.entries.length === 0) assert(false, `${this.id} stepped empty MsgProp`)
    if (!this.prs.has(this.id))
      throw new RaftError('ErrProposalDropped', 'this node was removed from the configuration')
    if (this.leadTransferee !== None) throw new RaftError('ErrProposalDropped', 'leadership transfer in progress')
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!
      if (e.type !== EntryType.EntryConfChange) continue
      if (this.pendingConfIndex > this.raftLog.applied)
        throw new RaftError('ErrProposalDropped', 'a configuration change is already pending')
      const why = this.checkConfChange(decodeConfChange(e.data))
      if (why) throw new RaftError('ErrProposalDropped', why)
      this.pendingConfIndex = this.raftLog.lastIndex() + i + 1
    }
    if (!this.appendEntry(m.entries)) throw new RaftError('ErrProposalDropped', 'too many uncommitted entry bytes')
    this.bcastAppend()
  }

  /** Why a conf change cannot apply to the current configuration, or undefined if it can. */
  private checkConfChange(cc: ConfChange): string | undefined {
    switch (cc.type) {
      case ConfChangeType.ConfChangeRemoveNode:
        if (this.voters.has(cc.nodeId) && this.voters.size === 1) return 'removing the last voter'
        return undefined
      case ConfChangeType.ConfChangeAddLearnerNode:
        if (this.voters.has(cc.nodeId)) return 'demoting a voter to a learner is not supported'
        return undefined
      default:
        return undefined
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true
    if (m.reject) {
      // Fast backtracking: jump to where the follower's log may match instead of one index at a time.
      let nextProbeIdx = m.rejectHint
      if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === ProgressState.StateReplicate) pr.becomeProbe()
        this.sendAppend(m.from)
      }
      return
    }
    const oldPaused = pr.isPaused()
    if (!pr.maybeUpdate(m.index)) return
    if (pr.state === ProgressState.StateProbe) pr.becomeReplicate()
    else if (pr.state === ProgressState.StateSnapshot && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe()
      pr.becomeReplicate()
    } else if (pr.state === ProgressState.StateReplicate) pr.inflights.freeLE(m.index)

    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages()
      this.bcastAppend()
    } else if (oldPaused) {
      this.sendAppend(m.from)
    }
    while (this.maybeSendAppend(m.from, false)) {}
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from)
  }

  private stepCandidate(m: Message): void {
    const myVoteRespType =
      this.state === StateType.StatePreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp
    switch (m.type) {
      case MessageType.MsgProp:
        throw new RaftError('ErrProposalDropped', 'no leader')
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from)
        this.handleAppendEntries(m)
        return
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from)
        this.handleHeartbeat(m)
        return
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from)
        this.handleSnapshot(m)
        return
      case myVoteRespType: {
        const res = this.poll(m.from, m.type, !m.reject)
        if (res === VoteResult.VoteWon) {
          if (this.state === StateType.StatePreCandidate) this.campaign('election')
          else {
            this.becomeLeader()
            this.bcastAppend()
          }
        } else if (res === VoteResult.VoteLost) {
          // A pre-vote response may carry a higher term: becomeFollower(m.term) would then be wrong; stay in ours.
          this.becomeFollower(this.term, None)
        }
        return
      }
      case MessageType.MsgReadIndex:
        throw new RaftError('ErrProposalDropped', 'no leader')
      default:
        return
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === None) throw new RaftError('ErrProposalDropped', 'no leader')
        if (this.c.disableProposalForwarding) throw new RaftError('ErrProposalDropped', 'proposal forwarding disabled')
        m.to = this.lead
        this.send(m)
        return
      case MessageType.MsgApp:
        this.electionElapsed = 0
        this.lead = m.from
        this.handleAppendEntries(m)
        return
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0
        this.lead = m.from
        this.handleHeartbeat(m)
        return
      case MessageType.MsgSnap:
        this.electionElapsed = 0
        this.lead = m.from
        this.handleSnapshot(m)
        return
      case MessageType.MsgTransferLeader:
        if (this.lead === None) throw new RaftError('ErrProposalDropped', 'no leader to transfer leadership')
        m.to = this.lead
        this.send(m)
        return
      case MessageType.MsgTimeoutNow:
        // The leader asked us to take over: campaign at once, skipping pre-vote (§3.10).
        this.hup('transfer')
        return
      case MessageType.MsgReadIndex:
        if (this.lead === None) throw new RaftError('ErrProposalDropped', 'no leader')
        m.to = this.lead
        this.send(m)
        return
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) return
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data })
        return
    }
  }

  private handleAppendEntries(m: Message): void {
    const log = this.raftLog
    if (m.index < log.committed) {
      this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: log.committed }))
      return
    }
    const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries)
    if (lastNew >= 0) {
      this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: lastNew }))
      return
    }
    // Reject, with a hint: the last index at or below m.index whose term is <= m.logTerm, and its term, so the leader
    // can skip every entry of a conflicting term at once.
    const hintIndex = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm)
    const hintTerm = log.termOrZero(hintIndex)
    this.send(
      newMessage({
        type: MessageType.MsgAppResp,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hintIndex,
        logTerm: hintTerm,
      }),
    )
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit)
    this.send(newMessage({ type: MessageType.MsgHeartbeatResp, to: m.from, context: m.context }))
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot
    if (!s) return
    if (this.restore(s))
      this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.lastIndex() }))
    else this.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }))
  }

  /** Installs a snapshot from the leader; returns false when it is stale or our log already has it. */
  restore(s: Snapshot): boolean {
    const meta = s.metadata
    if (meta.index <= this.raftLog.committed) return false
    if (this.state !== StateType.StateFollower) {
      // Only a follower may restore; a leader/candidate getting one is a bug we survive by stepping down.
      this.becomeFollower(this.term + 1, None)
      return false
    }
    const cs = meta.confState
    // A snapshot whose membership does not include us is still a committed prefix of the log: accept it. It happens
    // to a member added after the leader's latest snapshot was made (the AddNode entry follows the snapshot), and
    // refusing it would leave that member unable to ever catch up once the leader compacted its log (etcd-io/raft
    // refuses, raft-rs #472 is the resulting stall). Not being in its own configuration, the member cannot campaign
    // until it applies its own addition from the entries that follow.
    if (this.raftLog.matchTerm(meta.index, meta.term)) {
      // We have the entry already: just fast-forward commit.
      this.raftLog.commitTo(meta.index)
      return false
    }
    this.raftLog.restore(s)
    this.restoreConfig(cs)
    return true
  }

  private restoreConfig(cs: ConfState): void {
    this.prs.clear()
    this.voters.clear()
    this.learners.clear()
    const next = this.raftLog.lastIndex() + 1
    for (const id of cs.voters) {
      this.voters.add(id)
      this.prs.set(id, new Progress(next, this.c.maxInflightMsgs, this.c.maxInflightBytes, false))
    }
    for (const id of cs.learners) {
      if (this.voters.has(id)) continue
      this.learners.add(id)
      this.prs.set(id, new Progress(next, this.c.maxInflightMsgs, this.c.maxInflightBytes, true))
    }
    this.isLearner = this.learners.has(this.id)
  }

  private loadState(hs: HardState): void {
    if (hs.commit > this.raftLog.lastIndex())
      assert(
        false,
        `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
      )
    // A persisted commit below the snapshot is possible when the application does not sync commit-only hard states
    // (etcd's MustSync): the snapshot holds only committed entries, so its index is a safe floor.
    this.raftLog.committed = Math.max(hs.commit, this.raftLog.committed)
    this.term = hs.term
    this.vote = hs.vote
  }

  // ---- proposals, reads, transfers ----

  /** Appends ents to the leader's log with the current term; false when the uncommitted-bytes limit drops them. */
  appendEntry(ents: Entry[]): boolean {
    let li = this.raftLog.lastIndex()
    const size = payloadsSize(ents)
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.c.maxUncommittedEntriesBytes)
      return false
    this.uncommittedSize += size
    const out: Entry[] = new Array(ents.length)
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!
      out[i] = { term: this.term, index: ++li, type: e.type, data: e.data }
    }
    li = this.raftLog.append(out)
    // The leader counts its own entries: they are persisted before any message that depends on them leaves.
    this.prs.get(this.id)!.maybeUpdate(li)
    this.maybeCommit()
    return true
  }

  /** Called when committed entries are handed to the application: their bytes no longer count as uncommitted. */
  reduceUncommittedSize(ents: Entry[]): void {
    if (this.uncommittedSize === 0) return
    const s = payloadsSize(ents)
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return
    const msgs = this.pendingReadIndexMessages
    this.pendingReadIndexMessages = []
    for (const m of msgs) this.sendMsgReadIndexResponse(m)
  }

  private sendMsgReadIndexResponse(m: Message): void {
    if (this.c.readOnlyOption === ReadOnlyOption.ReadOnlySafe) {
      // Remember the commit index now, then confirm leadership with a heartbeat round (thesis §6.4 steps 2-3).
      this.readOnly.addRequest(this.raftLog.committed, m)
      this.readOnly.recvAck(this.id, m.entries[0]!.data)
      this.bcastHeartbeatWithCtx(m.entries[0]!.data)
    } else {
      this.respondToReadIndex(m, this.raftLog.committed)
    }
  }

  private respondToReadIndex(req: Message, readIndex: number): void {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0]!.data })
      return
    }
    this.send(newMessage({ type: MessageType.MsgReadIndexResp, to: req.from, index: readIndex, entries: req.entries }))
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(newMessage({ type: MessageType.MsgTimeoutNow, to }))
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = None
  }

  // ---- membership ----

  /**
   * Applies one membership change (one server at a time, thesis §4.1), when its entry is applied. Returns the new
   * configuration. A leader that removes itself hands leadership to its most up-to-date voter and steps down.
   */
  applyConfChange(cc: ConfChange): ConfState {
    const id = cc.nodeId
    const next = this.raftLog.lastIndex() + 1
    switch (cc.type) {
      case ConfChangeType.ConfChangeAddNode: {
        if (this.voters.has(id)) break
        const pr = this.prs.get(id)
        this.learners.delete(id)
        this.voters.add(id)
        if (pr) pr.isLearner = false
        else {
          const fresh = new Progress(next, this.c.maxInflightMsgs, this.c.maxInflightBytes, false)
          fresh.recentActive = true
          this.prs.set(id, fresh)
        }
        break
      }
      case ConfChangeType.ConfChangeAddLearnerNode: {
        if (this.voters.has(id) || this.learners.has(id)) break
        this.learners.add(id)
        const fresh = new Progress(next, this.c.maxInflightMsgs, this.c.maxInflightBytes, true)
        fresh.recentActive = true
        this.prs.set(id, fresh)
        break
      }
      case ConfChangeType.ConfChangeRemoveNode:
        if (this.voters.has(id) && this.voters.size === 1) break
        this.voters.delete(id)
        this.learners.delete(id)
        this.prs.delete(id)
        break
      case ConfChangeType.ConfChangeUpdateNode:
        break
    }
    this.isLearner = this.learners.has(this.id)

    if (this.state !== StateType.StateLeader) return this.confState()
    if (!this.voters.has(this.id)) {
      // Removed (or demoted): hand over to the voter whose log matches ours, if any, then step down.
      let best: NodeId = None
      let bestMatch = -1
      for (const v of [...this.voters].sort()) {
        const pr = this.prs.get(v)
        if (pr && pr.match > bestMatch) {
          best = v
          bestMatch = pr.match
        }
      }
      if (best !== None && bestMatch === this.raftLog.lastIndex()) this.sendTimeoutNow(best)
      this.becomeFollower(this.term, None)
      return this.confState()
    }
    if (this.leadTransferee !== None && !this.voters.has(this.leadTransferee)) this.abortLeaderTransfer()
    // The quorum may have shrunk: entries may commit now. New members need the log.
    if (this.maybeCommit()) this.bcastAppend()
    else for (const pid of this.prs.keys()) if (pid !== this.id) this.maybeSendAppend(pid, false)
    return this.confState()
  }

  /**
   * Applies the conf change entries among committed entries the application has just applied, skipping those the
   * application's `acceptConfChange` refuses (e.g. re-adding a removed member from a duplicated proposal).
   */
  applyCommittedConfChanges(ents: Entry[]): void {
    for (const e of ents) {
      if (e.type !== EntryType.EntryConfChange) continue
      const cc = decodeConfChange(e.data)
      if (this.c.acceptConfChange && !this.c.acceptConfChange(cc, e.index)) continue
      this.applyConfChange(cc)
    }
  }

  /** Called when the leader ticks with a pending snapshot; exposed for tests. */
  progress(id: NodeId): Progress | undefined {
    return this.prs.get(id)
  }
}
