/**
 * The browser build of the replica, served by every member at `GET /ui/replica.js` (one self-contained ES module):
 *
 * ```html
 * <script type="module">
 *   import { openReplica } from 'http://127.0.0.1:2379/ui/replica.js'
 *   const r = await openReplica({ endpoint: 'http://127.0.0.1:2379', prefix: 'app/' })
 *   const { value, revision, stale } = await r.get('app/greeting')
 * </script>
 * ```
 */
export type {
  GetBytesResult,
  GetResult,
  KeySpan,
  RangeReadOptions,
  RangeResult,
  RangeStatus,
  ReadMeta,
  ReadOptions,
  ReplicaChange,
  ReplicaEvent,
  ReplicaKv,
  ReplicaState,
  ReplicaStatus,
} from '../../replica/index.js'
export { MemoryReplicaStorage, Replica, ReplicaError } from '../../replica/index.js'
export { BrowserReplica, type BrowserReplicaOptions, openReplica } from './replica.js'
export { IndexedDbReplicaStorage, requestPersistentStorage, storageEstimate } from './replica-storage.js'
