import { RaftError } from './errors.js'
import type { Rand } from './rand.js'
import type { Storage } from './storage.js'
import type { ConfChange, NodeId } from './types.js'

/** How read-only requests are served (etcd's ReadOnlyOption). */
export enum ReadOnlyOption {
  /** The leader confirms it is still leader with a heartbeat round before answering (linearizable; the default). */
  ReadOnlySafe = 0,
  /** The leader trusts its lease (check-quorum); cheaper, but relies on bounded clock drift. */
  ReadOnlyLeaseBased = 1,
}

/** Everything a Raft node needs to start. Limits carry their unit in their name; `validateConfig` checks them all. */
export interface Config {
  /** This node's id. Must not be None. */
  id: NodeId
  /** Ticks a follower waits without hearing from a leader before it campaigns; randomized in [n, 2n). */
  electionTicks: number
  /** Ticks between the leader's heartbeats. Must be less than electionTicks. */
  heartbeatTicks: number
  /** The log as persisted so far. */
  storage: Storage
  /** The last index the application has applied (its state already reflects it); 0 for a fresh application. */
  applied: number
  /** Upper bound of the entries' bytes in one MsgApp (at least one entry is always sent). */
  maxMsgBytes: number
  /** Upper bound of the committed entries' bytes handed to the application in one Ready. */
  maxCommittedBytesPerReady: number
  /** Upper bound of the bytes of proposed but uncommitted entries on a leader; proposals past it are dropped. */
  maxUncommittedEntriesBytes: number
  /** Upper bound of MsgApps in flight to one follower (the pipelining window). */
  maxInflightMsgs: number
  /** Upper bound of entry bytes in flight to one follower; 0 means only maxInflightMsgs applies. */
  maxInflightBytes: number
  /** The leader steps down when it has not heard from a quorum within an election timeout. */
  checkQuorum: boolean
  /** A node first asks whether it could win (pre-vote) before it bumps its term (Raft thesis §9.6). */
  preVote: boolean
  readOnlyOption: ReadOnlyOption
  /** When true, followers drop proposals instead of forwarding them to the leader. */
  disableProposalForwarding: boolean
  /** Leader ticks to wait for a MsgSnap's outcome before probing the follower again (a lost snapshot). */
  snapshotTimeoutTicks: number
  /** Seeded randomness for election timeouts. */
  rand: Rand
  /**
   * Called for each committed conf change as it is applied; returning false makes it a no-op. Must be deterministic
   * (a function of the applied state only), since every member decides alone. etcd's server uses the same idea to
   * refuse re-adding a removed member id.
   */
  acceptConfChange?: (cc: ConfChange, index: number) => boolean
}

/** Defaults as etcd's: with a 100 ms tick, heartbeat 100 ms and election timeout 1000 ms. */
export const defaultConfig = {
  electionTicks: 10,
  heartbeatTicks: 1,
  applied: 0,
  maxMsgBytes: 1024 * 1024,
  maxCommittedBytesPerReady: 64 * 1024 * 1024,
  maxUncommittedEntriesBytes: 64 * 1024 * 1024,
  maxInflightMsgs: 256,
  maxInflightBytes: 0,
  checkQuorum: true,
  preVote: true,
  readOnlyOption: ReadOnlyOption.ReadOnlySafe,
  disableProposalForwarding: false,
  snapshotTimeoutTicks: 50,
} as const

export type ConfigInput = Partial<Config> & Pick<Config, 'id' | 'storage' | 'rand'>

/** Fills in defaults and checks every limit; throws ErrConfigInvalid naming the offending field. */
export function validateConfig(input: ConfigInput): Config {
  const c: Config = { ...defaultConfig, ...input }
  const bad = (why: string): never => {
    throw new RaftError('ErrConfigInvalid', why)
  }
  if (typeof c.id !== 'string' || c.id === '' || c.id === '0') bad('id must be a non-empty node id other than "0"')
  const posInt = (name: keyof Config) => {
    const v = c[name] as unknown
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      bad(`${name} must be a positive integer, got ${String(v)}`)
  }
  posInt('electionTicks')
  posInt('heartbeatTicks')
  posInt('maxMsgBytes')
  posInt('maxCommittedBytesPerReady')
  posInt('maxUncommittedEntriesBytes')
  posInt('maxInflightMsgs')
  posInt('snapshotTimeoutTicks')
  if (!Number.isSafeInteger(c.maxInflightBytes) || c.maxInflightBytes < 0) bad('maxInflightBytes must be >= 0')
  if (c.maxInflightBytes > 0 && c.maxInflightBytes < c.maxMsgBytes) bad('maxInflightBytes must be >= maxMsgBytes')
  if (!Number.isSafeInteger(c.applied) || c.applied < 0) bad('applied must be >= 0')
  if (c.electionTicks <= c.heartbeatTicks) bad('electionTicks must be greater than heartbeatTicks')
  if (c.readOnlyOption === ReadOnlyOption.ReadOnlyLeaseBased && !c.checkQuorum)
    bad('checkQuorum must be enabled when readOnlyOption is ReadOnlyLeaseBased')
  if (!c.storage) bad('storage must be set')
  if (!c.rand || typeof c.rand.intn !== 'function') bad('rand must be set')
  return c
}
