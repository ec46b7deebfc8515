import { assert, RaftError } from '../raft/errors.js'
import type { MemoryStorage } from '../raft/storage.js'
import type { ConfState, Entry, HardState, Snapshot } from '../raft/types.js'
import { isEmptySnapshot } from '../raft/types.js'
import { type DurableStorage, durableNow } from './durable-storage.js'
import { StorageError } from './errors.js'

/** One save's records: what `save(hardState, entries)` persists. */
export interface SaveRecords {
  hs: HardState | undefined
  entries: readonly Entry[]
}

/** A write waiting its turn: a plain save (which may be grouped with the saves queued next to it), or any other op. */
interface Pending {
  save?: SaveRecords
  op?: () => Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * At most this many queued saves are written and synced together (group commit across calls); each still resolves
 * only once the one write that holds it is durable.
 */
export const groupCommitSavesMax = 256

/**
 * What every durable backend shares: the read side served from a MemoryStorage (Raft reads are synchronous), the
 * checks that reject bad writes before any byte is written, ordering of writes, and refusing all writes after one
 * failed. A backend supplies only the persist steps.
 *
 * Group commit across calls: writes run one at a time in call order, and the plain saves (no snapshot) that were
 * called while an earlier write was in flight are written together by the next step, with one sync, then applied to
 * the read side in call order and resolved. A caller that issues saves without waiting for the previous one (a
 * pipeline) therefore pays one sync per group, not per save; a caller that waits sees no difference.
 */
export abstract class CachedStorage implements DurableStorage {
  private readonly pending: Pending[] = []
  private pumping = false
  private failure: Error | undefined
  private closed = false
  private closing: Promise<void> | undefined

  constructor(
    protected readonly mem: MemoryStorage,
    protected readonly readOnly: boolean,
    /** Where this storage lives (a directory or a database name), for error messages. */
    protected readonly location: string,
  ) {}

  /**
   * Writes the records of `saves` durably, in order, with one sync; `snap` (with exactly one save) is the leader's
   * snapshot that replaces the log, written first.
   */
  protected abstract persistSaves(saves: readonly SaveRecords[], snap?: Snapshot): Promise<void>
  /** Writes an application snapshot durably and releases the log space wholly behind it. */
  protected abstract persistSnapshot(snap: Snapshot): Promise<void>
  /** Called once the read side reflects a save (segment rotation, retention). */
  protected async afterSave(_snapshotSaved: boolean): Promise<void> {}
  /** Whether afterSave has anything to do now (false spares a plain save its call). */
  protected afterSaveNeeded(_snapshotSaved: boolean): boolean {
    return true
  }
  protected abstract release(): Promise<void>

  initialState(): { hardState: HardState; confState: ConfState } {
    return this.mem.initialState()
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.mem.entries(lo, hi, maxBytes)
  }
  term(i: number): number {
    return this.mem.term(i)
  }
  firstIndex(): number {
    return this.mem.firstIndex()
  }
  lastIndex(): number {
    return this.mem.lastIndex()
  }
  snapshot(): Snapshot {
    return this.mem.snapshot()
  }

  save(hs: HardState | undefined, entries: readonly Entry[], snap?: Snapshot): Promise<void> {
    if (snap === undefined || isEmptySnapshot(snap)) {
      // Nothing queued nor in flight (one client's puts: every save): a group of one, written at once.
      if (!this.pumping && this.pending.length === 0 && !this.closed) return this.saveNow(hs, entries)
      return this.enqueue({ save: { hs, entries } })
    }
    return this.enqueue({
      op: async () => {
        if (snap.metadata.index <= this.mem.snapshot().metadata.index) {
          throw new RaftError('ErrSnapOutOfDate', `snapshot ${snap.metadata.index} in ${this.location}`)
        }
        checkEntries(entries, snap.metadata.index)
        await this.persist(() => this.persistSaves([{ hs, entries }], snap))
        this.mem.applySnapshot(snap)
        this.mem.append(entries as Entry[])
        if (hs !== undefined) this.mem.setHardState(hs)
        await this.persist(() => this.afterSave(true))
      },
    })
  }

  /**
   * The snapshot's bytes are written by `prepareSnapshot` alongside the queued writes (they touch no log file, and a
   * big snapshot would otherwise hold up every save behind it); only the step that makes it current (the WAL
   * record, the read side, retention) waits its turn in the queue. A crash in between leaves a file no record names,
   * which the next open deletes.
   */
  saveSnapshot(snap: Snapshot): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError('ErrClosed', this.location))
    try {
      this.checkWritable()
    } catch (err) {
      return Promise.reject(err)
    }
    const prepared = this.persist(() => this.prepareSnapshot(snap))
    this.preparing.add(prepared)
    const settled = () => this.preparing.delete(prepared)
    prepared.then(settled, settled)
    return prepared.then(() => this.enqueueSnapshot(snap))
  }

  /** Snapshot files being written outside the queue; close() waits for them. */
  private readonly preparing = new Set<Promise<void>>()

  /**
   * Writes a snapshot's data durably where it will live, before `persistSnapshot` makes it current; it may run while
   * queued writes go on. The default does nothing (the backend writes everything in persistSnapshot).
   */
  protected async prepareSnapshot(_snap: Snapshot): Promise<void> {}
  /** A prepared snapshot that will not be made current (a newer one came first): its data may go. */
  protected async abandonSnapshot(_snap: Snapshot): Promise<void> {}

  private enqueueSnapshot(snap: Snapshot): Promise<void> {
    return this.enqueue({
      op: async () => {
        const { index, term, confState } = snap.metadata
        if (index <= this.mem.snapshot().metadata.index) {
          await this.abandonSnapshot(snap).catch(() => {})
          throw new RaftError('ErrSnapOutOfDate', `snapshot ${index} in ${this.location}`)
        }
        if (index > this.mem.lastIndex()) {
          throw new RaftError('ErrUnavailable', `snapshot ${index} is past the last index ${this.mem.lastIndex()}`)
        }
        assert(this.mem.term(index) === term, `snapshot ${index} has term ${term}, the log has ${this.mem.term(index)}`)
        await this.persist(() => this.persistSnapshot(snap))
        this.mem.createSnapshot(index, confState, snap.data)
        await this.persist(() => this.afterSave(true))
      },
    })
  }

  compact(index: number): Promise<void> {
    return this.enqueue({
      op: async () => {
        const snapIndex = this.mem.snapshot().metadata.index
        if (index < this.mem.firstIndex()) throw new RaftError('ErrCompacted', `compact ${index} in ${this.location}`)
        assert(
          index <= snapIndex,
          `compact ${index} is past the snapshot ${snapIndex}: those entries exist nowhere else`,
        )
        this.mem.compact(index)
      },
    })
  }

  close(): Promise<void> {
    if (this.closing) return this.closing
    // A barrier behind every write already called; nothing can be called after it.
    const drained = this.enqueue({ op: async () => {} }).catch(() => {})
    this.closed = true
    // Snapshot files still being written outside the queue finish before the files are released.
    this.closing = Promise.allSettled([drained, ...this.preparing]).then(() => this.release())
    return this.closing
  }

  /** The save being written by saveNow, reused (saves are written one at a time); emptied once it is durable. */
  private readonly nowSave: SaveRecords = { hs: undefined, entries: noEntries }
  private readonly nowGroup: readonly SaveRecords[] = [this.nowSave]

  /**
   * A plain save while the queue is idle: checked and written as runSaves writes a group of one, without a queue entry
   * (no pending record, promise pair, queue arrays nor the pump's and runSaves' async frames: a put's largest own
   * share of allocations with one client, docs/benchmarks.md gRPC "Session 11"). When the backend wrote it durably at
   * once (persistSavesNow returned undefined) it returns `durableNow`, the read side already updated. The queue is
   * marked busy until the save is durable and applied to the read side, so saves called meanwhile queue behind it.
   */
  private saveNow(hs: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    try {
      this.checkWritable()
      // Checked before writing, because a gap on disk would make the next start refuse with ErrCorrupt.
      checkEntries(entries, this.mem.lastIndex())
    } catch (err) {
      return Promise.reject(err)
    }
    if (hs === undefined && entries.length === 0) return durableNow
    this.pumping = true
    const s = this.nowSave
    s.hs = hs
    s.entries = entries
    let written: Promise<void> | undefined
    try {
      written = this.persistSavesNow(this.nowGroup)
    } catch (err) {
      this.saveNowFailed(err)
      return Promise.reject(err)
    }
    if (written !== undefined || this.afterSaveNeeded(false)) return this.saveNowLater(written)
    this.savedNow()
    return durableNow
  }

  /** saveNow when the write is still in flight, or when afterSave has work (a segment to cut). */
  private async saveNowLater(written: Promise<void> | undefined): Promise<void> {
    try {
      await written
      const s = this.nowSave
      this.mem.append(s.entries as Entry[])
      if (s.hs !== undefined) this.mem.setHardState(s.hs)
      if (this.afterSaveNeeded(false)) await this.afterSave(false)
    } catch (err) {
      this.saveNowFailed(err)
      throw err
    }
    this.endSaveNow()
  }

  /** The save of saveNow is durable: the read side takes it, and the queue goes on. */
  private savedNow(): void {
    const s = this.nowSave
    this.mem.append(s.entries as Entry[])
    if (s.hs !== undefined) this.mem.setHardState(s.hs)
    this.endSaveNow()
  }

  /** saveNow's write failed: the storage is poisoned (as `persist` does), and what queued meanwhile fails with it. */
  private saveNowFailed(err: unknown): void {
    this.failure = err as Error
    this.endSaveNow()
  }

  private endSaveNow(): void {
    this.nowSave.hs = undefined
    this.nowSave.entries = noEntries
    this.pumping = false
    if (this.pending.length > 0) void this.pump()
  }

  /**
   * persistSaves for a backend that can tell a write that was durable at once: undefined then (no promise), else the
   * promise of the write. The default is persistSaves.
   */
  protected persistSavesNow(saves: readonly SaveRecords[]): Promise<void> | undefined {
    return this.persistSaves(saves)
  }

  /** Queues a write (refused if the storage is closed) and starts the queue if it is idle. */
  private enqueue(p: Omit<Pending, 'resolve' | 'reject'>): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError('ErrClosed', this.location))
    const done = new Promise<void>((resolve, reject) => {
      this.pending.push({ save: p.save, op: p.op, resolve, reject })
    })
    void this.pump()
    return done
  }

  /** Runs the queue until it is empty: an op alone, or a run of plain saves together. */
  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.pending.length > 0) {
        const head = this.pending[0]!
        if (head.op) {
          this.pending.shift()
          await this.run(head, head.op)
          continue
        }
        const group: Pending[] = []
        while (group.length < groupCommitSavesMax && this.pending[0]?.save) group.push(this.pending.shift()!)
        await this.runSaves(group)
      }
    } finally {
      this.pumping = false
    }
  }

  /** Runs one op, refusing it if the storage failed or is read-only. */
  private async run(p: Pending, op: () => Promise<void>): Promise<void> {
    try {
      this.checkWritable()
      await op()
      p.resolve()
    } catch (err) {
      p.reject(err)
    }
  }

  /**
   * Writes a group of plain saves with one persist step. Each is checked against the log as the saves before it in
   * the group leave it; one that fails its check is refused alone, before any byte is written.
   */
  private async runSaves(group: Pending[]): Promise<void> {
    const ok: Pending[] = []
    let last = this.mem.lastIndex()
    for (const p of group) {
      try {
        this.checkWritable()
        const { entries } = p.save!
        // Checked before writing, because a gap on disk would make the next start refuse with ErrCorrupt.
        checkEntries(entries, last)
        if (entries.length > 0) last = entries[entries.length - 1]!.index
        ok.push(p)
      } catch (err) {
        p.reject(err)
      }
    }
    const work: SaveRecords[] = []
    for (const p of ok) if (p.save!.hs !== undefined || p.save!.entries.length > 0) work.push(p.save!)
    // The persist steps inline (no closure and async frame per step: this runs once per Ready, per put with one
    // client); a failure poisons the storage as `persist` does.
    try {
      if (work.length > 0) {
        try {
          await this.persistSaves(work)
          for (const s of work) {
            this.mem.append(s.entries as Entry[])
            if (s.hs !== undefined) this.mem.setHardState(s.hs)
          }
          if (this.afterSaveNeeded(false)) await this.afterSave(false)
        } catch (err) {
          this.failure = err as Error
          throw err
        }
      }
    } catch (err) {
      for (const p of ok) p.reject(err)
      return
    }
    for (const p of ok) p.resolve()
  }

  private checkWritable(): void {
    if (this.failure) throw this.failure
    if (this.readOnly) throw new StorageError('ErrReadOnly', `${this.location} was opened read-only`)
  }

  /** Runs an I/O step; if it fails, every later write fails with the same error (see DurableStorage). */
  private async persist(step: () => Promise<void>): Promise<void> {
    try {
      await step()
    } catch (err) {
      this.failure = err as Error
      throw err
    }
  }
}

const noEntries: readonly Entry[] = []

/** Asserts `entries` are contiguous and start at most one past `last` (a gap on disk would refuse the next start). */
function checkEntries(entries: readonly Entry[], last: number): void {
  if (entries.length === 0) return
  if (entries[0]!.index > last + 1) assert(false, `missing log entry [last: ${last}, append at: ${entries[0]!.index}]`)
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.index !== entries[i - 1]!.index + 1) assert(false, `entries not contiguous at ${entries[i]!.index}`)
  }
}
