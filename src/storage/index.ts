/**
 * Durable storage for a member: the DurableStorage interface, the runtime-neutral WAL + snapshot file backend over
 * a small FileOps interface, the in-memory FileOps used as the reference and by the simulator, and the errors.
 * docs/storage.md describes the formats byte by byte and the recovery rules.
 */

export { CachedStorage } from './cached-storage.js'
export type { DurableStorage } from './durable-storage.js'
export { isStorageError, StorageError, type StorageErrorCode } from './errors.js'
export { type FileOps, type WriteFile, writeFileAtomic } from './file-ops.js'
export {
  FileStorage,
  type FileStorageOptions,
  fileStorageDefaults,
  openFileStorage,
  type RecoveryReport,
  validateFileStorageOptions,
} from './file-storage.js'
export { formatVersion } from './format.js'
export { MemoryFileOps } from './memory-file-ops.js'
