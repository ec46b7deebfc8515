import type { Storage } from '../raft/storage.js'
import type { Entry, HardState, Snapshot } from '../raft/types.js'

/**
 * A member's durable log: Raft's synchronous read side (`Storage`, served from memory) plus an async write side that
 * has put every byte on stable storage by the time its promise resolves. Every backend (memory-backed files, Node
 * files, Deno files, IndexedDB) implements it and passes the same contract suite (test/storage/contract.ts).
 *
 * Calls may overlap; they run one at a time in call order, except that plain saves queued behind a write in flight
 * are written together with one sync (group commit across calls), each resolving only once that write is durable.
 * After a write fails the storage refuses every later write with the same error, because after a failed fsync the
 * page cache can no longer be trusted (PostgreSQL's "fsyncgate"): the member must stop, and recovery on the next
 * start reads only what is really on disk.
 */
export interface DurableStorage extends Storage {
  /**
   * Persists one Raft `Ready`: its snapshot first (received from the leader; it replaces the log), then its entries
   * (an entry at an index already present replaces it and drops every entry after it), then its hard state; one sync
   * for all of it (group commit). Then the read side reflects it. Throws `ErrSnapOutOfDate` (RaftError) for a snapshot
   * not newer than the current one.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[], snapshot?: Snapshot): Promise<void>
  /**
   * Persists a snapshot the application made of its applied state (index <= lastIndex, with the log's term there).
   * The log is kept; WAL space wholly behind the snapshot is released, and old snapshots beyond the kept count are
   * deleted. Throws `ErrSnapOutOfDate` if not newer than the current snapshot, `ErrUnavailable` if past the log.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>
  /**
   * Drops entries at or below `index` from the read side (etcd's MemoryStorage.Compact), to bound memory. `index`
   * must be at or below the snapshot, since the log after it is the only copy of state not in a snapshot. After a
   * restart the log starts right after the snapshot. Throws `ErrCompacted` if already compacted that far.
   */
  compact(index: number): Promise<void>
  /** Waits for writes in flight and releases files or database handles. Later calls throw ErrClosed. */
  close(): Promise<void>
}

/**
 * What `save` may return when the save was durable, and the read side reflected it, before `save` returned (a backend
 * whose write finished at once: Node's blocking small WAL write). A resolved promise like any other; a caller that
 * sees this very object may go on without waiting a microtask (the Ready loop does: src/raftnode/raft-node.ts).
 */
export const durableNow: Promise<void> = Promise.resolve()
