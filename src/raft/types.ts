/**
 * The vocabulary of the Raft core, named word for word after etcd-io/raft (raftpb) so that a reader who knows etcd
 * recognises every name. Everything here is plain data: it crosses the wire (CBOR) and the disk (WAL) unchanged.
 *
 * Indexes and terms are JS numbers (safe up to 2^53, far beyond any log). Node ids are canonical decimal strings of
 * etcd's uint64 member ids, because a uint64 does not fit a JS number; `None` ('') means "no node".
 */

/** A member id: the decimal string of etcd's uint64 id, e.g. '10276657743932975437'. Never '0'; `None` is ''. */
export type NodeId = string

/** No node: no leader known, no vote cast. */
export const None: NodeId = ''

export enum EntryType {
  EntryNormal = 0,
  EntryConfChange = 1,
}

/** One log entry. `data` is opaque to Raft; an empty `data` on a normal entry is the leader's no-op of a new term. */
export interface Entry {
  term: number
  index: number
  type: EntryType
  data: Uint8Array
}

/** What must be on stable storage before any message that depends on it is sent (Raft paper, Figure 2). */
export interface HardState {
  term: number
  vote: NodeId
  commit: number
}

/** The membership of the cluster as of some log index. Voters decide; learners only receive the log. */
export interface ConfState {
  voters: NodeId[]
  learners: NodeId[]
}

export interface SnapshotMetadata {
  confState: ConfState
  index: number
  term: number
}

/** A snapshot of the application state machine as of `metadata.index`; `data` is opaque to Raft. */
export interface Snapshot {
  data: Uint8Array
  metadata: SnapshotMetadata
}

export enum MessageType {
  MsgHup = 0,
  MsgBeat = 1,
  MsgProp = 2,
  MsgApp = 3,
  MsgAppResp = 4,
  MsgVote = 5,
  MsgVoteResp = 6,
  MsgSnap = 7,
  MsgHeartbeat = 8,
  MsgHeartbeatResp = 9,
  MsgUnreachable = 10,
  MsgSnapStatus = 11,
  MsgCheckQuorum = 12,
  MsgTransferLeader = 13,
  MsgTimeoutNow = 14,
  MsgReadIndex = 15,
  MsgReadIndexResp = 16,
  MsgPreVote = 17,
  MsgPreVoteResp = 18,
}

/**
 * One Raft message. Fields that a type does not use keep their zero value (0, '', false, empty array), as in raftpb.
 * `context` carries ReadIndex request contexts and the campaign kind of a forced (leader transfer) election.
 */
export interface Message {
  type: MessageType
  to: NodeId
  from: NodeId
  term: number
  /** MsgApp: term of the entry at `index`. MsgVote/MsgPreVote: term of the candidate's last entry. */
  logTerm: number
  /** MsgApp: index of the entry before `entries`. MsgAppResp: last index accepted or rejected. Votes: last index. */
  index: number
  entries: Entry[]
  commit: number
  snapshot?: Snapshot
  reject: boolean
  /** MsgAppResp with reject: the follower's hint for where its log may match (fast backtracking). */
  rejectHint: number
  context: Uint8Array
}

export enum ConfChangeType {
  ConfChangeAddNode = 0,
  ConfChangeRemoveNode = 1,
  ConfChangeUpdateNode = 2,
  ConfChangeAddLearnerNode = 3,
}

/**
 * One membership change. edgecd changes membership one node at a time (Raft thesis §4.1), applied when the entry is
 * applied, as etcd's ConfChange v1 does; `context` is opaque to Raft (the server puts the member's URLs there).
 */
export interface ConfChange {
  type: ConfChangeType
  nodeId: NodeId
  context: Uint8Array
}

export enum StateType {
  StateFollower = 0,
  StateCandidate = 1,
  StateLeader = 2,
  StatePreCandidate = 3,
}

/** Volatile state worth telling the application about: who leads and what this node is. */
export interface SoftState {
  lead: NodeId
  raftState: StateType
}

/** The answer to a ReadIndex request: reads with this `requestCtx` may be served once `index` is applied. */
export interface ReadState {
  index: number
  requestCtx: Uint8Array
}

/** Empty values, shared read-only. */
export const emptyHardState: Readonly<HardState> = Object.freeze({ term: 0, vote: None, commit: 0 })
export const emptyBytes: Uint8Array = new Uint8Array(0)

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === None && hs.commit === 0
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0
}

export function emptySnapshot(): Snapshot {
  return { data: emptyBytes, metadata: { confState: { voters: [], learners: [] }, index: 0, term: 0 } }
}

/** Builds a message with every unused field at its zero value. */
export function newMessage(fields: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    to: None,
    from: None,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: emptyBytes,
    ...fields,
  }
}

/** Approximate encoded size of an entry in bytes; used for the size limits (maxSizePerMsg and friends). */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 24
}

/** Local messages never cross the network: they are how the application pokes its own node. */
export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  )
}

/** Responses are messages a node sends back in reply to a request from a peer. */
export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  )
}

export function voteRespMsgType(t: MessageType): MessageType {
  return t === MessageType.MsgVote ? MessageType.MsgVoteResp : MessageType.MsgPreVoteResp
}
