import { assert, RaftError } from './errors.js'
import {
  type ConfState,
  type Entry,
  emptyHardState,
  emptySnapshot,
  entrySize,
  type HardState,
  type Snapshot,
} from './types.js'

/**
 * The read side of a node's log, as Raft sees it (etcd-io/raft's `Storage`). Every method is synchronous: Raft is a
 * pure state machine and never waits. Durable backends (WAL files, IndexedDB, Durable Object storage) load the log
 * into memory when they open and serve these reads from there; writes go through their async `save()`, and the
 * application appends to this storage only after `save()` has resolved (see `Ready`).
 *
 * Errors: `ErrCompacted` for an index at or below the snapshot, `ErrUnavailable` for one past the last index.
 */
export interface Storage {
  /** The saved hard state and the membership as of the last snapshot. */
  initialState(): { hardState: HardState; confState: ConfState }
  /** Entries in [lo, hi), at least one if any, truncated once their total size passes maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): Entry[]
  /** The term of entry i, for i in [firstIndex()-1, lastIndex()]. */
  term(i: number): number
  /** The index of the first entry still in the log (the one after the snapshot). */
  firstIndex(): number
  /** The index of the last entry in the log. */
  lastIndex(): number
  /** The most recent snapshot. Throws ErrSnapshotTemporarilyUnavailable when one is being made. */
  snapshot(): Snapshot
}

/**
 * The reference `Storage`: the whole log in memory. It is what Raft reads, what the simulator persists to, and the
 * cache every durable backend fills on open. `ents[0]` is a dummy entry holding the snapshot's index and term, so
 * that `term(firstIndex()-1)` answers without a special case (as etcd's MemoryStorage does).
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { ...emptyHardState }
  private snap: Snapshot = emptySnapshot()
  private ents: Entry[] = [{ term: 0, index: 0, type: 0, data: new Uint8Array(0) }]

  /**
   * A storage holding a given state, as a durable backend has it after reading its files: an optional snapshot, then
   * entries that follow it, then the hard state. With no snapshot, `confState` is the membership at index 0.
   */
  static fromState(state: {
    hardState?: HardState
    confState?: ConfState
    snapshot?: Snapshot
    entries?: Entry[]
  }): MemoryStorage {
    const ms = new MemoryStorage()
    if (state.snapshot && state.snapshot.metadata.index > 0) ms.applySnapshot(state.snapshot)
    else if (state.confState) ms.snap = { ...ms.snap, metadata: { ...ms.snap.metadata, confState: state.confState } }
    if (state.entries) ms.append(state.entries)
    if (state.hardState) ms.setHardState(state.hardState)
    return ms
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState }
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs }
  }

  hardStateNow(): HardState {
    return { ...this.hardState }
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index
    if (lo <= offset) throw new RaftError('ErrCompacted')
    if (hi > this.lastIndex() + 1)
      throw new RaftError('ErrUnavailable', `hi ${hi} out of bound lastindex ${this.lastIndex()}`)
    if (this.ents.length === 1) throw new RaftError('ErrUnavailable')
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes)
  }

  term(i: number): number {
    const offset = this.ents[0]!.index
    if (i < offset) throw new RaftError('ErrCompacted')
    if (i - offset >= this.ents.length) throw new RaftError('ErrUnavailable')
    return this.ents[i - offset]!.term
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1
  }

  snapshot(): Snapshot {
    return this.snap
  }

  /** Replaces the log with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw new RaftError('ErrSnapOutOfDate')
    this.snap = snap
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 0, data: new Uint8Array(0) }]
  }

  /**
   * Makes a snapshot of the application state as of index i (which must be applied) and returns it. The log is not
   * compacted; call compact() for that, usually keeping some entries behind for slow followers.
   */
  createSnapshot(i: number, cs: ConfState | undefined, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new RaftError('ErrSnapOutOfDate')
    const offset = this.ents[0]!.index
    if (i > this.lastIndex()) assert(false, `snapshot ${i} is out of bound lastindex(${this.lastIndex()})`)
    this.snap = {
      data,
      metadata: {
        index: i,
        term: this.ents[i - offset]!.term,
        confState: cs ? { voters: [...cs.voters], learners: [...cs.learners] } : this.snap.metadata.confState,
      },
    }
    return this.snap
  }

  /** Discards every entry at or below compactIndex. The application must not compact past what it has applied. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index
    if (compactIndex <= offset) throw new RaftError('ErrCompacted')
    if (compactIndex > this.lastIndex())
      assert(false, `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`)
    const i = compactIndex - offset
    const head: Entry = { index: this.ents[i]!.index, term: this.ents[i]!.term, type: 0, data: new Uint8Array(0) }
    this.ents = [head, ...this.ents.slice(i + 1)]
  }

  /**
   * Appends entries that are now on stable storage. Entries that overlap existing ones replace them from the first
   * overlapping index on (a new leader overwrote an uncommitted tail); entries at or below the snapshot are ignored.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return
    const first = this.firstIndex()
    const last = entries[0]!.index + entries.length - 1
    if (last < first) return
    if (first > entries[0]!.index) entries = entries.slice(first - entries[0]!.index)
    const offset = entries[0]!.index - this.ents[0]!.index
    if (offset === this.ents.length) {
      for (const e of entries) this.ents.push(e)
    } else if (offset < this.ents.length) {
      this.ents.length = offset
      for (const e of entries) this.ents.push(e)
    } else {
      assert(false, `missing log entry [last: ${this.lastIndex()}, append at: ${entries[0]!.index}]`)
    }
  }
}

/** Keeps a prefix of ents whose total size is at most maxBytes, but always at least one entry (etcd's limitSize). */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents
  let size = entrySize(ents[0]!)
  let n = 1
  for (; n < ents.length; n++) {
    size += entrySize(ents[n]!)
    if (size > maxBytes) break
  }
  return n === ents.length ? ents : ents.slice(0, n)
}
