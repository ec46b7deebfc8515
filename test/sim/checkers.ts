/**
 * The safety oracle. The simulator reports what each node persists, applies and believes; the checker compares
 * every report against everything reported before, across all nodes and all restarts, and records a violation as
 * soon as one of Raft's guarantees (Raft paper, Figure 3) is broken:
 *
 * - Election Safety: at most one leader per term, ever.
 * - Log Matching: entries with the same index and term hold the same data and follow the same previous term, on
 *   every log ever persisted, so by induction the logs are identical up to there.
 * - Leader Completeness: a new leader's log holds every entry known to be committed in an earlier term.
 * - State Machine Safety: no two nodes apply different entries at the same index; a node applies every index once,
 *   in order; a snapshot restores exactly the history it claims (a hash chain over all entries applied).
 * - Commit rule (§5.4.2): a leader moves its commit index only onto an entry of its own term; older entries commit
 *   with it, never by counting replicas (the Figure 8 anomaly).
 * - Durability: a node's persisted term never goes back, its vote never changes within a term, its commit index
 *   never goes back, across crashes.
 * - ReadIndex: a read state's index covers every entry committed before the read was requested.
 *
 * Everything is incremental (one map lookup per persisted or applied entry), so it runs after every event.
 */
import { type Entry, type HardState, type NodeId, None } from '../../src/raft/types.js'
import { type AppState, entryHash, nextChain } from './app.js'

export type ViolationKind =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'commit-rule'
  | 'state-machine-safety'
  | 'apply-order'
  | 'durability'
  | 'read-index'
  | 'liveness'
  | 'exception'
  // member-level (test/sim/member/)
  | 'linearizability'
  | 'watch'
  | 'kv-hash'
  | 'assertion'

export interface Violation {
  kind: ViolationKind
  tick: number
  node: NodeId
  detail: string
}

/** The read side of a node's log the checker needs; MemoryStorage provides it. */
export interface LogView {
  firstIndex(): number
  lastIndex(): number
  term(i: number): number
  entries(lo: number, hi: number, maxBytes: number): Entry[]
}

interface CommittedRecord {
  term: number
  hash: number
  /** Hash chain over entries 1..index as applied by the first node to apply it. */
  chain: number
  node: NodeId
}

interface LogRecord {
  hash: number
  /** Term of the entry before it in the log it was seen in; -1 when not known (it sat below a snapshot). */
  prevTerm: number
  node: NodeId
}

interface ReadRequest {
  node: NodeId
  /** The highest commit index any node had persisted when the read was requested. */
  minIndex: number
}

/** Stop recording after this many violations; the first one is what matters. */
export const violationsMax = 20

/** Log records are keyed by index * termsMax + term. */
const termsMax = 1 << 20

export class Checker {
  readonly violations: Violation[] = []
  /** The current tick, stamped on violations. */
  tick = 0

  private readonly leaders = new Map<number, NodeId>()
  private readonly committed: (CommittedRecord | undefined)[] = []
  /** For each index, the lowest term of any node at the moment its persisted commit first covered the index. */
  private readonly commitTermBound: number[] = []
  private readonly seenCommit = new Map<NodeId, number>()
  private readonly hardStates = new Map<NodeId, HardState>()
  private readonly logRecords = new Map<number, LogRecord>()
  private readonly reads = new Map<string, ReadRequest>()
  /** The highest index applied by any node. */
  maxApplied = 0
  /** The highest commit index persisted by any node. */
  maxCommit = 0
  /** Terms with a known leader. */
  leaderTerms = 0

  ok(): boolean {
    return this.violations.length === 0
  }

  report(kind: ViolationKind, node: NodeId, detail: string): void {
    if (this.violations.length < violationsMax) this.violations.push({ kind, tick: this.tick, node, detail })
  }

  /** A node persisted a hard state. */
  onHardState(node: NodeId, hs: HardState): void {
    const prev = this.hardStates.get(node)
    if (prev) {
      if (hs.term < prev.term) this.report('durability', node, `term went back from ${prev.term} to ${hs.term}`)
      else if (hs.term === prev.term && prev.vote !== None && hs.vote !== prev.vote)
        this.report('durability', node, `vote changed from ${prev.vote} to ${hs.vote || 'none'} in term ${hs.term}`)
      if (hs.commit < prev.commit)
        this.report('durability', node, `commit went back from ${prev.commit} to ${hs.commit}`)
    }
    this.hardStates.set(node, { ...hs })
    const from = this.seenCommit.get(node) ?? 0
    for (let i = from + 1; i <= hs.commit; i++) {
      const b = this.commitTermBound[i]
      if (b === undefined || hs.term < b) this.commitTermBound[i] = hs.term
    }
    if (hs.commit > from) this.seenCommit.set(node, hs.commit)
    if (hs.commit > this.maxCommit) this.maxCommit = hs.commit
  }

  /**
   * A node persisted entries. `prevTerm` is the term of the entry just before the first one in its log, or -1 when
   * that entry is compacted away.
   */
  onEntriesPersisted(node: NodeId, entries: readonly Entry[], prevTerm: number): void {
    let prev = prevTerm
    let prevIndex = entries.length > 0 ? entries[0]!.index - 1 : 0
    for (const e of entries) {
      if (e.index !== prevIndex + 1) {
        this.report('log-matching', node, `persisted entries are not contiguous: ${prevIndex} then ${e.index}`)
        return
      }
      if (e.term >= termsMax) throw new Error(`sim: term ${e.term} exceeds the checker's range`)
      if (prev >= 0 && e.term < prev) {
        this.report('log-matching', node, `log terms go down at index ${e.index}: ${prev} then ${e.term}`)
        return
      }
      const key = e.index * termsMax + e.term
      const hash = entryHash(e)
      const rec = this.logRecords.get(key)
      if (!rec) {
        this.logRecords.set(key, { hash, prevTerm: prev, node })
      } else if (rec.hash !== hash) {
        this.report('log-matching', node, `entry ${e.index}@${e.term} differs from the one node ${rec.node} has`)
        return
      } else if (rec.prevTerm >= 0 && prev >= 0 && rec.prevTerm !== prev) {
        this.report(
          'log-matching',
          node,
          `entry ${e.index}@${e.term} follows term ${prev} here but term ${rec.prevTerm} on node ${rec.node}`,
        )
        return
      } else if (rec.prevTerm < 0 && prev >= 0) {
        rec.prevTerm = prev
      }
      prev = e.term
      prevIndex = e.index
    }
  }

  /** A node says it is leader of `term`; `log` is its log as persisted (it has just persisted its Ready). */
  onLeader(node: NodeId, term: number, log: LogView): void {
    const other = this.leaders.get(term)
    if (other !== undefined && other !== node) {
      this.report('election-safety', node, `two leaders in term ${term}: ${other} and ${node}`)
      return
    }
    if (other === undefined) this.leaderTerms++
    this.leaders.set(term, node)
    // Leader Completeness: entries committed in a term below this one must be in this log. An entry's commit term
    // is at most the term of any node that persisted a commit covering it, so only those entries are checked.
    const last = log.lastIndex()
    for (let i = Math.max(log.firstIndex(), 1); i <= this.maxApplied; i++) {
      const rec = this.committed[i]
      const bound = this.commitTermBound[i]
      if (!rec || bound === undefined || bound >= term) continue
      if (i > last) {
        this.report(
          'leader-completeness',
          node,
          `leader of term ${term} lacks committed entry ${i}@${rec.term}: its log ends at ${last}`,
        )
        return
      }
      const t = log.term(i)
      const e = t === rec.term ? log.entries(i, i + 1, Number.MAX_SAFE_INTEGER)[0] : undefined
      if (!e || entryHash(e) !== rec.hash) {
        this.report(
          'leader-completeness',
          node,
          `leader of term ${term} has ${i}@${t} where ${i}@${rec.term} was committed`,
        )
        return
      }
    }
  }

  /**
   * A node is about to apply e on top of app. Returns false (and reports) when it must not: out of order, or not
   * the entry other nodes applied at that index.
   */
  onApply(node: NodeId, app: AppState, e: Entry): boolean {
    if (e.index !== app.applied + 1) {
      this.report('apply-order', node, `applied ${app.applied}, next committed entry is ${e.index}`)
      return false
    }
    const chain = nextChain(app.chain, e)
    const rec = this.committed[e.index]
    if (!rec) {
      this.committed[e.index] = { term: e.term, hash: entryHash(e), chain, node }
      if (e.index > this.maxApplied) this.maxApplied = e.index
      return true
    }
    if (rec.term !== e.term || rec.hash !== entryHash(e)) {
      this.report(
        'state-machine-safety',
        node,
        `applied ${e.index}@${e.term} but node ${rec.node} applied ${e.index}@${rec.term} with other data`,
      )
      return false
    }
    if (rec.chain !== chain) {
      this.report('state-machine-safety', node, `history before ${e.index} differs from node ${rec.node}'s`)
      return false
    }
    return true
  }

  /** A leader of `term` persisted a commit index above its previous one; `commitTerm` is the term of that entry. */
  onLeaderCommit(node: NodeId, term: number, commit: number, commitTerm: number): void {
    if (commitTerm !== term)
      this.report(
        'commit-rule',
        node,
        `leader of term ${term} moved its commit index to ${commit}, an entry of term ${commitTerm}`,
      )
  }

  /** A node restored its state machine from a snapshot (received, or its own after a restart). */
  onRestore(node: NodeId, index: number, app: AppState): boolean {
    if (app.applied !== index) {
      this.report('state-machine-safety', node, `snapshot at ${index} holds state as of ${app.applied}`)
      return false
    }
    const rec = this.committed[index]
    if (!rec) {
      this.report('state-machine-safety', node, `snapshot at ${index}, which no node has applied`)
      return false
    }
    if (rec.chain !== app.chain) {
      this.report(
        'state-machine-safety',
        node,
        `snapshot at ${index} differs from the history node ${rec.node} applied`,
      )
      return false
    }
    return true
  }

  onReadRequest(node: NodeId, ctx: string): void {
    this.reads.set(ctx, { node, minIndex: this.maxCommit })
  }

  onReadState(node: NodeId, ctx: string, index: number): void {
    const r = this.reads.get(ctx)
    if (!r) this.report('read-index', node, `read state for unknown request ${ctx}`)
    else if (r.node !== node) this.report('read-index', node, `read state for ${ctx}, which node ${r.node} requested`)
    else if (index < r.minIndex)
      this.report(
        'read-index',
        node,
        `read ${ctx} at index ${index}, but ${r.minIndex} was committed before it was requested`,
      )
  }

  /** The entry applied at index, for the final check that nothing committed was lost. */
  committedAt(index: number): { term: number; chain: number } | undefined {
    return this.committed[index]
  }
}
