/**
 * edgecd's replica: a revision-stamped local copy of key ranges that answers reads in memory, linearizable after one
 * round trip when online and marked stale when not. See docs/replica.md.
 *
 * ```ts
 * const r = await openReplica({ endpoint: 'http://127.0.0.1:2379', prefix: 'app/' })
 * const { value, revision, stale } = await r.get('app/greeting')
 * ```
 */
export {
  type GetBytesResult,
  type GetResult,
  openReplica,
  type RangeReadOptions,
  type RangeResult,
  type ReadMeta,
  type ReadOptions,
  Replica,
  type ReplicaChange,
  type ReplicaEvent,
  type ReplicaKv,
  type ReplicaOptions,
} from './api.js'
export { FileReplicaStorage } from './file-storage.js'
export type { KeySpan } from './keys.js'
export type { SortOrder, SortTarget, StoredKv } from './local-index.js'
export type { Consistency, RangeStatus, ReplicaState, ReplicaStatus } from './replica.js'
export { ClientSource, type ReplicaSource, SourceError } from './source.js'
export {
  MemoryReplicaStorage,
  type RangeMeta,
  ReplicaError,
  type ReplicaErrorCode,
  type ReplicaStorage,
  type StorageOp,
} from './storage.js'
