/**
 * Durable storage for a member: the DurableStorage interface, the runtime-neutral WAL + snapshot file backend over
 * a small FileOps interface, the in-memory FileOps used as the reference and by the simulator, and the errors.
 * docs/storage.md describes the formats byte by byte and the recovery rules.
 */
export type { DurableStorage } from './durable-storage.js'
export { CachedStorage } from './cached-storage.js'
export { StorageError, isStorageError, type StorageErrorCode } from './errors.js'
export { type AppendFile, type FileOps, writeFileAtomic } from './file-ops.js'
export {
  FileStorage,
  type FileStorageOptions,
  type RecoveryReport,
  fileStorageDefaults,
  openFileStorage,
  validateFileStorageOptions,
} from './file-storage.js'
export { MemoryFileOps } from './memory-file-ops.js'
export { formatVersion } from './format.js'
