import { assert, RaftError } from '../raft/errors.js'
import type { MemoryStorage } from '../raft/storage.js'
import type { ConfState, Entry, HardState, Snapshot } from '../raft/types.js'
import { isEmptySnapshot } from '../raft/types.js'
import type { DurableStorage } from './durable-storage.js'
import { StorageError } from './errors.js'

/**
 * What every durable backend shares: the read side served from a MemoryStorage (Raft reads are synchronous), the
 * checks that reject bad writes before any byte is written, one-at-a-time ordering of writes, and refusing all writes
 * after one failed. A backend supplies only the three persist steps.
 */
export abstract class CachedStorage implements DurableStorage {
  private queue: Promise<unknown> = Promise.resolve()
  private failure: Error | undefined
  private closed = false

  constructor(
    protected readonly mem: MemoryStorage,
    protected readonly readOnly: boolean,
    /** Where this storage lives (a directory or a database name), for error messages. */
    protected readonly location: string,
  ) {}

  /** Writes snapshot (if any), entries and hard state durably, in that order, with one sync. */
  protected abstract persistSave(hs: HardState | undefined, entries: readonly Entry[], snap?: Snapshot): Promise<void>
  /** Writes an application snapshot durably and releases the log space wholly behind it. */
  protected abstract persistSnapshot(snap: Snapshot): Promise<void>
  /** Called once the read side reflects a save (segment rotation, retention). */
  protected async afterSave(_snapshotSaved: boolean): Promise<void> {}
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
    return this.write(async () => {
      const withSnap = snap !== undefined && !isEmptySnapshot(snap)
      if (withSnap && snap.metadata.index <= this.mem.snapshot().metadata.index) {
        throw new RaftError('ErrSnapOutOfDate', `snapshot ${snap.metadata.index} in ${this.location}`)
      }
      if (entries.length > 0) {
        // Checked before writing, because a gap on disk would make the next start refuse with ErrCorrupt.
        const last = withSnap ? snap.metadata.index : this.mem.lastIndex()
        assert(entries[0]!.index <= last + 1, `missing log entry [last: ${last}, append at: ${entries[0]!.index}]`)
        for (let i = 1; i < entries.length; i++) {
          assert(entries[i]!.index === entries[i - 1]!.index + 1, `entries not contiguous at ${entries[i]!.index}`)
        }
      }
      if (hs === undefined && entries.length === 0 && !withSnap) return
      await this.persist(() => this.persistSave(hs, entries, withSnap ? snap : undefined))
      if (withSnap) this.mem.applySnapshot(snap)
      this.mem.append(entries as Entry[])
      if (hs !== undefined) this.mem.setHardState(hs)
      await this.persist(() => this.afterSave(withSnap))
    })
  }

  saveSnapshot(snap: Snapshot): Promise<void> {
    return this.write(async () => {
      const { index, term, confState } = snap.metadata
      if (index <= this.mem.snapshot().metadata.index) {
        throw new RaftError('ErrSnapOutOfDate', `snapshot ${index} in ${this.location}`)
      }
      if (index > this.mem.lastIndex()) {
        throw new RaftError('ErrUnavailable', `snapshot ${index} is past the last index ${this.mem.lastIndex()}`)
      }
      assert(this.mem.term(index) === term, `snapshot ${index} has term ${term}, the log has ${this.mem.term(index)}`)
      await this.persist(() => this.persistSnapshot(snap))
      this.mem.createSnapshot(index, confState, snap.data)
      await this.persist(() => this.afterSave(true))
    })
  }

  compact(index: number): Promise<void> {
    return this.write(async () => {
      const snapIndex = this.mem.snapshot().metadata.index
      if (index < this.mem.firstIndex()) throw new RaftError('ErrCompacted', `compact ${index} in ${this.location}`)
      assert(index <= snapIndex, `compact ${index} is past the snapshot ${snapIndex}: those entries exist nowhere else`)
      this.mem.compact(index)
    })
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    const done = this.queue.then(
      () => this.release(),
      () => this.release(),
    )
    this.closed = true
    return done
  }

  /** Runs op after every earlier write, refusing it if the storage is closed, read-only or failed. */
  private write(op: () => Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError('ErrClosed', this.location))
    const run = async () => {
      if (this.failure) throw this.failure
      if (this.readOnly) throw new StorageError('ErrReadOnly', `${this.location} was opened read-only`)
      await op()
    }
    const p = this.queue.then(run, run)
    this.queue = p.catch(() => {})
    return p
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
