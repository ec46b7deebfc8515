/**
 * One simulated member: a RawNode, its MemoryStorage (which stands for its disk and survives crashes), and its
 * application state machine (which does not: after a crash it is rebuilt from the snapshot on disk, and Raft
 * re-delivers the committed entries after it).
 *
 * `processReady` follows the Ready contract step by step, and a crash may strike between any two steps:
 *   1. persist: snapshot, entries and hard state, as one atomic write (etcd's wal.Save writes HardState and
 *      entries in one record, and a snapshot only counts once the WAL names it, so a crash never leaves half);
 *   2. send the messages (a crash may cut the list anywhere);
 *   3. restore the snapshot into the state machine, then apply the committed entries (again cut anywhere);
 *   4. advance.
 */
import { decodeConfChange, RawNode, type Ready } from '../../src/raft/index.js'
import { seededRand } from '../../src/raft/rand.js'
import { MemoryStorage } from '../../src/raft/storage.js'
import {
  type ConfChange,
  ConfChangeType,
  EntryType,
  isEmptyHardState,
  isEmptySnapshot,
  type Message,
  type NodeId,
  None,
  type SoftState,
  StateType,
} from '../../src/raft/types.js'
import { type AppState, applyEntry, decodeApp, emptyApp, encodeApp } from './app.js'
import type { Checker } from './checkers.js'
import type { SimRand } from './rng.js'
import type { Trace } from './trace.js'

/** Where in Ready processing a crash strikes. */
export type CrashPoint = 'before-persist' | 'before-send' | 'mid-send' | 'before-apply' | 'mid-apply' | 'before-advance'

export const crashPoints: readonly CrashPoint[] = [
  'before-persist',
  'before-send',
  'mid-send',
  'before-apply',
  'mid-apply',
  'before-advance',
]

/** A deliberately wrong behaviour, to prove the checkers catch it. */
export type InjectedBug = 'corrupt-apply' | 'forget-vote' | 'lose-tail' | 'never-heal'

export interface NodeOptions {
  electionTicks: number
  heartbeatTicks: number
  maxMsgBytes: number
  maxInflightMsgs: number
  /** Take a snapshot once this many entries were applied since the last one (with snapshotPct chance per Ready). */
  snapshotEntriesMin: number
  snapshotPct: number
  /** Entries kept in the log behind a snapshot, for followers that lag a little. */
  compactKeepEntries: number
  checkQuorum: boolean
  preVote: boolean
  bug: InjectedBug | undefined
}

/** What a node needs from the cluster around it. */
export interface NodeEnv {
  readonly checker: Checker
  readonly trace: Trace
  readonly rng: SimRand
  readonly options: NodeOptions
  send(m: Message): void
  /** Decides whether this Ready is cut short by a crash, and where. */
  crashPointFor(node: SimNode): CrashPoint | undefined
  onConfChangeApplied(node: SimNode, cc: ConfChange): void
}

/** Ready batches handled in one go before the loop is considered stuck (a Ready that never drains). */
export const readyLoopMax = 64

export class SimNode {
  readonly id: NodeId
  /** The disk: everything persisted survives a crash. */
  storage = new MemoryStorage()
  /** The initial members, for a node of the founding cluster (bootstrapped on an empty disk); undefined for a
   * node added later, which learns everything from the leader. */
  readonly bootstrapPeers: NodeId[] | undefined
  raw: RawNode | undefined
  app: AppState = emptyApp()
  soft: SoftState = { lead: None, raftState: StateType.StateFollower }
  /** Set once any node applied this node's removal: it is never restarted. */
  removed = false
  /** Set when the node applied its own removal: it shuts down at this tick (etcd stops a removed member after a
   * delay of ten ticks, so that the commit of its removal can still reach the others). */
  stopAtTick = Number.POSITIVE_INFINITY
  crashes = 0
  /** The commit index of the last hard state this node persisted (since it started). */
  private lastCommit = 0
  private readonly env: NodeEnv
  private corrupted = false

  constructor(id: NodeId, bootstrapPeers: NodeId[] | undefined, env: NodeEnv) {
    this.id = id
    this.bootstrapPeers = bootstrapPeers
    this.env = env
  }

  get up(): boolean {
    return this.raw !== undefined
  }

  isLeader(): boolean {
    return this.raw !== undefined && this.soft.raftState === StateType.StateLeader
  }

  /** Starts (or restarts) the node from its disk. */
  start(): void {
    const snap = this.storage.snapshot()
    if (this.env.options.bug === 'forget-vote' && this.crashes > 0) {
      const hs = this.storage.hardStateNow()
      this.storage.setHardState({ ...hs, vote: None })
    }
    if (this.env.options.bug === 'lose-tail' && this.crashes > 0) this.loseTail()
    const applied = snap.metadata.index
    const o = this.env.options
    this.raw = new RawNode({
      id: this.id,
      storage: this.storage,
      rand: seededRand(this.env.rng.fork()),
      applied,
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      maxMsgBytes: o.maxMsgBytes,
      maxInflightMsgs: o.maxInflightMsgs,
      checkQuorum: o.checkQuorum,
      preVote: o.preVote,
    })
    this.soft = { lead: None, raftState: StateType.StateFollower }
    this.stopAtTick = Number.POSITIVE_INFINITY
    this.lastCommit = this.storage.hardStateNow().commit
    this.app = emptyApp()
    if (applied > 0) {
      this.app = decodeApp(snap.data)
      this.env.checker.onRestore(this.id, applied, this.app)
    }
    const empty = this.storage.lastIndex() === 0 && isEmptyHardState(this.storage.hardStateNow())
    if (this.bootstrapPeers && empty) this.raw.bootstrap(this.bootstrapPeers)
    this.env.trace.event('start', this.id, applied, this.storage.lastIndex())
  }

  /**
   * The 'lose-tail' bug: the disk forgets its last few entries past its own commit index, as if the entries' fsync
   * had been skipped (Ready.mustSync ignored). They may have been acknowledged, and so counted towards a commit.
   */
  private loseTail(): void {
    const old = this.storage
    const first = old.firstIndex()
    const hs = old.hardStateNow()
    const last = Math.max(first - 1, hs.commit, old.lastIndex() - 3)
    const fresh = new MemoryStorage()
    const snap = old.snapshot()
    if (snap.metadata.index > 0) fresh.applySnapshot(snap)
    if (last >= first) fresh.append(old.entries(first, last + 1, Number.MAX_SAFE_INTEGER))
    fresh.setHardState(hs)
    this.storage = fresh
  }

  /** Stops the node: everything not on its disk is gone. */
  crash(why: string): void {
    if (!this.raw) return
    this.raw = undefined
    this.crashes++
    this.env.trace.event('crash', this.id, why)
  }

  /** Stops a node for good (it was removed from the cluster). */
  halt(): void {
    if (!this.raw) return
    this.raw = undefined
    this.env.trace.event('stopped', this.id, 'removed')
  }

  /** Handles Ready batches until there are none (or the node crashes). */
  processReady(): void {
    for (let loops = 0; this.raw?.hasReady(); loops++) {
      if (loops >= readyLoopMax) throw new Error(`sim: node ${this.id} still has a Ready after ${readyLoopMax} rounds`)
      this.handleReady(this.raw, this.raw.ready())
    }
  }

  private handleReady(raw: RawNode, rd: Ready): void {
    const { checker, trace } = this.env
    const crashAt = this.env.crashPointFor(this)
    if (crashAt === 'before-persist') {
      this.crash(crashAt)
      return
    }

    // 1. Persist, atomically.
    const hasSnap = !isEmptySnapshot(rd.snapshot)
    if (hasSnap) this.storage.applySnapshot(rd.snapshot!)
    this.storage.append(rd.entries)
    if (rd.hardState) this.storage.setHardState(rd.hardState)
    if (rd.entries.length > 0) {
      const before = rd.entries[0]!.index - 1
      const prevTerm = before >= this.storage.firstIndex() - 1 ? this.storage.term(before) : -1
      checker.onEntriesPersisted(this.id, rd.entries, prevTerm)
    }
    if (rd.hardState) {
      const prevCommit = this.lastCommit
      this.lastCommit = rd.hardState.commit
      // A leader (already one before this Ready, so the commit moved under its rule) commits its own term only.
      if (this.soft.raftState === StateType.StateLeader && rd.hardState.commit > prevCommit && !rd.softState)
        checker.onLeaderCommit(this.id, rd.hardState.term, rd.hardState.commit, this.storage.term(rd.hardState.commit))
      checker.onHardState(this.id, rd.hardState)
    }
    trace.event(
      'ready',
      this.id,
      rd.hardState?.term ?? -1,
      rd.hardState?.commit ?? -1,
      rd.entries.length,
      hasSnap ? rd.snapshot!.metadata.index : 0,
      rd.messages.length,
      rd.committedEntries.length,
    )
    if (rd.softState) {
      this.soft = { ...rd.softState }
      const term = this.storage.hardStateNow().term
      trace.event('soft', this.id, rd.softState.lead, rd.softState.raftState, term)
      if (rd.softState.raftState === StateType.StateLeader) {
        checker.onLeader(this.id, term, this.storage)
        // Only a voter of its own configuration may lead (learners and removed nodes never campaign).
        if (!raw.confState().voters.includes(this.id))
          checker.report('election-safety', this.id, `leader of term ${term} is not a voter of its configuration`)
      }
    }
    if (crashAt === 'before-send') {
      this.crash(crashAt)
      return
    }

    // 2. Send.
    const cut = crashAt === 'mid-send' ? this.env.rng.intn(rd.messages.length + 1) : -1
    for (let k = 0; k < rd.messages.length; k++) {
      if (k === cut) {
        this.crash(crashAt!)
        return
      }
      this.env.send(rd.messages[k]!)
    }
    for (const rs of rd.readStates) checker.onReadState(this.id, ctxKey(rs.requestCtx), rs.index)
    if (crashAt === 'before-apply') {
      this.crash(crashAt)
      return
    }

    // 3. Apply.
    if (hasSnap) {
      const snap = rd.snapshot!
      this.app = decodeApp(snap.data)
      if (!checker.onRestore(this.id, snap.metadata.index, this.app)) {
        this.crash('violation')
        return
      }
    }
    // After adding a member, snapshot at once if the log is compacted: the leader sends its latest snapshot to a
    // node that is far behind, and a node ignores a snapshot whose ConfState does not name it (etcd raft restore:
    // "attempted to restore snapshot but it is not in the ConfState"), so an older one would never get it going.
    let snapshotDue = false
    const applyCut = crashAt === 'mid-apply' ? this.env.rng.intn(rd.committedEntries.length + 1) : -1
    for (let k = 0; k < rd.committedEntries.length; k++) {
      if (k === applyCut) {
        this.crash(crashAt!)
        return
      }
      let e = rd.committedEntries[k]!
      const normal = e.type === EntryType.EntryNormal && e.data.byteLength > 0
      if (this.env.options.bug === 'corrupt-apply' && !this.corrupted && this.id === '2' && normal) {
        this.corrupted = true
        e = { ...e, data: Uint8Array.from(e.data, (b, i) => (i === 0 ? b ^ 1 : b)) }
      }
      if (!checker.onApply(this.id, this.app, e)) {
        this.crash('violation')
        return
      }
      applyEntry(this.app, e)
      if (e.type === EntryType.EntryConfChange) {
        const cc = decodeConfChange(e.data)
        if (cc.type === ConfChangeType.ConfChangeRemoveNode) this.app.removed.add(cc.nodeId)
        else snapshotDue = true
        this.env.onConfChangeApplied(this, cc)
      }
    }
    if (crashAt === 'before-advance') {
      this.crash(crashAt)
      return
    }

    // 4. Advance.
    raw.advance(rd)
    this.maybeSnapshot(raw, snapshotDue && this.storage.firstIndex() > 1)
  }

  /** Now and then the application snapshots its state and compacts the log, so that lagging nodes need MsgSnap. */
  private maybeSnapshot(raw: RawNode, force: boolean): void {
    const o = this.env.options
    const snapIndex = this.storage.snapshot().metadata.index
    if (this.app.applied <= snapIndex) return
    if (!force && (this.app.applied - snapIndex < o.snapshotEntriesMin || !this.env.rng.chance(o.snapshotPct))) return
    this.storage.createSnapshot(this.app.applied, raw.confState(), encodeApp(this.app))
    const compactTo = this.app.applied - o.compactKeepEntries
    if (compactTo > this.storage.firstIndex() - 1) this.storage.compact(compactTo)
    this.env.trace.event('snapshot', this.id, this.app.applied, this.storage.firstIndex())
  }
}

const decoder = new TextDecoder()

/** ReadIndex request contexts are short strings, so they can key a map. */
export function ctxKey(ctx: Uint8Array): string {
  return decoder.decode(ctx)
}
