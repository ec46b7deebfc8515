import { type FileStorage, type FileStorageOptions, openFileStorage } from '../../storage/file-storage.js'
import { NodeFileOps } from './file-ops.js'

/** The data directory `npm start` uses when none is given. */
export const defaultDataDir = './data'

/** Opens the WAL and snapshots in `dir` (created if missing) with node:fs; see openFileStorage. */
export function openNodeStorage(dir: string = defaultDataDir, options?: FileStorageOptions): Promise<FileStorage> {
  return openFileStorage(new NodeFileOps(dir), options)
}
