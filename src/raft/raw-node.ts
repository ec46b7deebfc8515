import { encodeConfChange } from './confchange.js'
import type { ConfigInput } from './config.js'
import { RaftError } from './errors.js'
import type { ProgressState } from './progress.js'
import { Raft } from './raft.js'
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  emptyBytes,
  type HardState,
  hardStateEqual,
  isEmptyHardState,
  isLocalMsg,
  isResponseMsg,
  type Message,
  MessageType,
  type NodeId,
  None,
  newMessage,
  type ReadState,
  type Snapshot,
  type SoftState,
} from './types.js'

/**
 * A batch of work for the application. Process it in this order, then call advance(rd):
 *
 * 1. Persist: `snapshot` (if any), then `entries`, then `hardState` (if any), durably (fsync) when `mustSync`.
 *    A vote or an acknowledged entry must never be forgotten after it was promised to a peer.
 * 2. Send `messages`. They may depend on step 1 (a vote, an MsgAppResp), so never before it.
 *    (Exception allowed by the thesis §10.2.1: the leader's own MsgApps may go out before its disk write; edgecd
 *    keeps the simple order.)
 * 3. Apply: restore the state machine from `snapshot` (if any), then apply `committedEntries` in order.
 *    Conf change entries among them take effect inside Raft at advance(); the application only updates its
 *    transport (peer addresses) from their context.
 * 4. advance(rd).
 *
 * `readStates` answer earlier readIndex() calls: a read with that requestCtx may be served once `index` is applied.
 */
export interface Ready {
  softState?: SoftState
  hardState?: HardState
  readStates: ReadState[]
  entries: Entry[]
  snapshot?: Snapshot
  committedEntries: Entry[]
  messages: Message[]
  /** Whether step 1 needs a durable sync (a new term, vote, or entries); commit-only changes do not. */
  mustSync: boolean
}

export interface ProgressStatus {
  match: number
  next: number
  state: ProgressState
  isLearner: boolean
  recentActive: boolean
}

export interface Status {
  id: NodeId
  hardState: HardState
  softState: SoftState
  applied: number
  leadTransferee: NodeId
  /** Only on the leader: its view of every member. */
  progress?: Map<NodeId, ProgressStatus>
  confState: ConfState
}

/**
 * The application's handle on a Raft node (etcd-io/raft's RawNode): a thin, synchronous wrapper that turns method
 * calls into messages and hands the accumulated work out as Ready batches. Single-threaded by design: the caller
 * serialises calls (the JS event loop already does).
 */
export class RawNode {
  readonly raft: Raft
  private prevSoftSt: SoftState
  private prevHardSt: HardState

  constructor(config: ConfigInput) {
    this.raft = new Raft(config)
    this.prevSoftSt = this.raft.softState()
    this.prevHardSt = this.raft.hardState()
  }

  /**
   * Starts a brand-new cluster on empty storage: appends one ConfChangeAddNode entry per peer at term 1, committed,
   * and applies them so the node can campaign. They come out in the first Ready (to persist and to apply), so the
   * initial membership is in the WAL like any other change.
   */
  bootstrap(peers: NodeId[]): void {
    if (peers.length === 0) throw new RaftError('ErrConfigInvalid', 'must provide at least one peer to bootstrap')
    if (this.raft.raftLog.lastIndex() !== 0)
      throw new RaftError('ErrConfigInvalid', "can't bootstrap a nonempty storage")
    this.prevHardSt = { term: 0, vote: None, commit: 0 }
    this.raft.becomeFollower(1, None)
    const ents: Entry[] = peers.map((id, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.EntryConfChange,
      data: encodeConfChange({ type: ConfChangeType.ConfChangeAddNode, nodeId: id, context: emptyBytes }),
    }))
    this.raft.raftLog.append(ents)
    this.raft.raftLog.committed = ents.length
    for (const id of peers)
      this.raft.applyConfChange({ type: ConfChangeType.ConfChangeAddNode, nodeId: id, context: emptyBytes })
  }

  /** Advances the logical clock by one tick (etcd: 100 ms by default). */
  tick(): void {
    this.raft.tick()
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.step(newMessage({ type: MessageType.MsgHup }))
  }

  /** Proposes data to be appended to the log. Throws RaftError('ErrProposalDropped') when it cannot be taken. */
  propose(data: Uint8Array): void {
    this.raft.step(
      newMessage({
        type: MessageType.MsgProp,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.EntryNormal, data }],
      }),
    )
  }

  /** Proposes many entries in one message: one append, one MsgApp per follower (batching). */
  proposeBatch(data: readonly Uint8Array[], n = data.length): void {
    if (n === 0) return
    const entries: Entry[] = new Array(n)
    for (let i = 0; i < n; i++) entries[i] = { term: 0, index: 0, type: EntryType.EntryNormal, data: data[i]! }
    this.raft.step(newMessage({ type: MessageType.MsgProp, from: this.raft.id, entries }))
  }

  /** Proposes a membership change; one at a time (a second while one is pending is dropped). */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      newMessage({
        type: MessageType.MsgProp,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.EntryConfChange, data: encodeConfChange(cc) }],
      }),
    )
  }

  /** Feeds a message from a peer. Local message types are refused (ErrStepLocalMsg); responses from non-members are dropped. */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new RaftError('ErrStepLocalMsg')
    // A response from a peer that is no longer a member is stale: drop it (etcd returns ErrStepPeerNotFound, which
    // every caller ignores).
    if (!this.raft.prs.has(m.from) && isResponseMsg(m.type)) return
    this.raft.step(m)
  }

  /** Requests a read index; the answer arrives later as a ReadState carrying ctx (which should be unique). */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(
      newMessage({
        type: MessageType.MsgReadIndex,
        entries: [{ term: 0, index: 0, type: EntryType.EntryNormal, data: ctx }],
      }),
    )
  }

  /** Asks the leader to hand leadership to transferee (forwarded when called on a follower). */
  transferLeader(transferee: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.MsgTransferLeader, from: transferee }))
  }

  /** The transport failed to reach id: the leader stops pipelining to it. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage({ type: MessageType.MsgUnreachable, from: id }))
  }

  /** The transport finished (ok) or failed to send a snapshot to id. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(newMessage({ type: MessageType.MsgSnapStatus, from: id, reject: !ok }))
  }

  hasReady(): boolean {
    const r = this.raft
    const ss = r.softState()
    if (ss.lead !== this.prevSoftSt.lead || ss.raftState !== this.prevSoftSt.raftState) return true
    const hs = r.hardState()
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardSt)) return true
    if (r.raftLog.hasPendingSnapshot()) return true
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextCommittedEnts()) return true
    return r.readStates.length > 0
  }

  /** The work accumulated since the last Ready. Call advance(rd) when done with it, before the next ready(). */
  ready(): Ready {
    const r = this.raft
    const rd: Ready = {
      readStates: r.readStates,
      entries: r.raftLog.unstableEntries().slice(),
      committedEntries: r.raftLog.nextCommittedEnts(),
      messages: r.msgs,
      mustSync: false,
    }
    const ss = r.softState()
    if (ss.lead !== this.prevSoftSt.lead || ss.raftState !== this.prevSoftSt.raftState) {
      rd.softState = ss
      this.prevSoftSt = ss
    }
    const hs = r.hardState()
    if (!hardStateEqual(hs, this.prevHardSt)) rd.hardState = hs
    const snap = r.raftLog.unstable.snapshot
    if (snap) rd.snapshot = snap
    rd.mustSync = rd.entries.length > 0 || hs.vote !== this.prevHardSt.vote || hs.term !== this.prevHardSt.term
    r.msgs = []
    r.readStates = []
    return rd
  }

  /** The application has persisted, sent and applied rd. */
  advance(rd: Ready): void {
    const r = this.raft
    if (rd.hardState) this.prevHardSt = rd.hardState
    const n = rd.committedEntries.length
    if (n > 0) {
      r.raftLog.appliedTo(rd.committedEntries[n - 1]!.index)
      r.reduceUncommittedSize(rd.committedEntries)
    } else if (rd.snapshot) {
      r.raftLog.appliedTo(rd.snapshot.metadata.index)
    }
    if (rd.entries.length > 0) {
      const e = rd.entries[rd.entries.length - 1]!
      r.raftLog.stableTo(e.index, e.term)
    }
    if (rd.snapshot) r.raftLog.stableSnapTo(rd.snapshot.metadata.index)
    if (n > 0) r.applyCommittedConfChanges(rd.committedEntries)
  }

  /** The membership as of the last advance(): use it when making a snapshot at the applied index. */
  confState(): ConfState {
    return this.raft.confState()
  }

  status(): Status {
    const r = this.raft
    const st: Status = {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
      confState: r.confState(),
    }
    if (r.state === 2) {
      st.progress = new Map()
      for (const [id, pr] of r.prs)
        st.progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
        })
    }
    return st
  }
}
