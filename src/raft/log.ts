import { assert, RaftError } from './errors.js'
import { Unstable } from './log-unstable.js'
import { limitSize, type Storage } from './storage.js'
import type { Entry, Snapshot } from './types.js'

/**
 * The whole log as Raft sees it: what is on stable storage followed by what is not yet (etcd-io/raft's raftLog).
 * Invariant: applied <= committed <= lastIndex, and firstIndex-1 <= applied.
 */
export class RaftLog {
  readonly storage: Storage
  readonly unstable: Unstable
  /** Highest index known to be stored on a quorum. */
  committed: number
  /** Highest index the application has applied. */
  applied: number
  private readonly maxNextCommittedEntsBytes: number

  constructor(storage: Storage, maxNextCommittedEntsBytes: number) {
    this.storage = storage
    this.maxNextCommittedEntsBytes = maxNextCommittedEntsBytes
    const first = storage.firstIndex()
    const last = storage.lastIndex()
    this.unstable = new Unstable(last + 1)
    this.committed = first - 1
    this.applied = first - 1
  }

  /**
   * Appends ents after (index, logTerm) if our log has that entry, truncating any conflicting suffix (§5.3).
   * Returns the index of the last new entry, or -1 when (index, logTerm) does not match.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1
    const lastnewi = index + ents.length
    const ci = this.findConflict(ents)
    if (ci !== 0) {
      if (ci <= this.committed)
        assert(false, `entry ${ci} conflicts with committed entry [committed(${this.committed})]`)
      const offset = index + 1
      this.append(ci === offset ? ents : ents.slice(ci - offset))
    }
    this.commitTo(Math.min(committed, lastnewi))
    return lastnewi
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex()
    const after = ents[0]!.index - 1
    if (after < this.committed) assert(false, `after(${after}) is out of range [committed(${this.committed})]`)
    this.unstable.truncateAndAppend(ents)
    return this.lastIndex()
  }

  /**
   * The index of the first entry of ents that is new or conflicts with ours, or 0 when all are already here.
   * An entry conflicts when our entry at its index has another term.
   */
  findConflict(ents: Entry[]): number {
    const last = this.lastIndex()
    for (const e of ents) {
      if (e.index > last) return e.index
      if (!this.matchTerm(e.index, e.term)) return e.index
    }
    return 0
  }

  /**
   * The largest index <= index whose term is <= term: where a follower's log may match the leader's (fast
   * backtracking, Raft paper §5.3 "the follower can include the term of the conflicting entry").
   */
  findConflictByTerm(index: number, term: number): number {
    const first = this.firstIndex() - 1
    for (; index > first; index--) {
      if (this.termOrZero(index) <= term) return index
    }
    return index
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries
  }

  /** Committed entries ready to apply, bounded by maxNextCommittedEntsBytes. None while a snapshot is pending. */
  nextCommittedEnts(): Entry[] {
    if (this.hasPendingSnapshot()) return []
    const off = Math.max(this.applied + 1, this.firstIndex())
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextCommittedEntsBytes)
    return []
  }

  hasNextCommittedEnts(): boolean {
    if (this.hasPendingSnapshot()) return false
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex())
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot()
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex()
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex()
  }

  commitTo(tocommit: number): void {
    // Never decrease commit.
    if (this.committed < tocommit) {
      if (this.lastIndex() < tocommit)
        assert(
          false,
          `tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
        )
      this.committed = tocommit
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return
    if (this.committed < i || i < this.applied)
      assert(false, `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`)
    this.applied = i
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t)
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i)
  }

  lastTerm(): number {
    return this.termOrZero(this.lastIndex())
  }

  /**
   * The term of entry i; 0 when i is outside [firstIndex-1, lastIndex] (as etcd). Throws ErrCompacted when storage
   * compacted it meanwhile.
   */
  term(i: number): number {
    const dummy = this.firstIndex() - 1
    if (i < dummy || i > this.lastIndex()) return 0
    const t = this.unstable.maybeTerm(i)
    if (t !== undefined) return t
    return this.storage.term(i)
  }

  termOrZero(i: number): number {
    try {
      return this.term(i)
    } catch (err) {
      if (err instanceof RaftError && (err.code === 'ErrCompacted' || err.code === 'ErrUnavailable')) return 0
      throw err
    }
  }

  /** Entries from i on, at most maxBytes of them (at least one). */
  entries(i: number, maxBytes: number): Entry[] {
    if (i > this.lastIndex()) return []
    return this.slice(i, this.lastIndex() + 1, maxBytes)
  }

  /** Whether a candidate's log (lasti, term) is at least as up-to-date as ours (Raft paper §5.4.1). */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm()
    return term > lt || (term === lt && lasti >= this.lastIndex())
  }

  matchTerm(i: number, term: number): boolean {
    const dummy = this.firstIndex() - 1
    if (i < dummy || i > this.lastIndex()) return false
    return this.termOrZero(i) === term
  }

  /** Commits maxIndex if it is of the current term (Raft paper §5.4.2: never commit older terms by counting). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex)
      return true
    }
    return false
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index
    this.unstable.restore(s)
  }

  /** Entries in [lo, hi), at most maxBytes (at least one). Throws ErrCompacted when lo is compacted away. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi)
    if (lo === hi) return []
    let ents: Entry[] = []
    const off = this.unstable.offset
    if (lo < off) {
      const upper = Math.min(hi, off)
      const stored = this.storage.entries(lo, upper, maxBytes)
      // The size limit was hit in the stored part: return what fits.
      if (stored.length < upper - lo) return stored
      ents = stored
    }
    if (hi > off) {
      const unst = this.unstable.slice(Math.max(lo, off), hi)
      ents = ents.length > 0 ? ents.concat(unst) : unst
    }
    return limitSize(ents, maxBytes)
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) assert(false, `invalid slice ${lo} > ${hi}`)
    const fi = this.firstIndex()
    if (lo < fi) throw new RaftError('ErrCompacted')
    const last = this.lastIndex()
    if (hi > last + 1) assert(false, `slice[${lo},${hi}) out of bound [${fi},${last}]`)
  }
}
