import { type FileStorage, type FileStorageOptions, openFileStorage } from '../../storage/file-storage.js'
import { DenoFileOps } from './file-ops.js'

/** Opens the WAL and snapshots in `dir` (created if missing) with Deno's file API; see openFileStorage. */
export function openDenoStorage(dir: string, options?: FileStorageOptions): Promise<FileStorage> {
  return openFileStorage(new DenoFileOps(dir), options)
}
