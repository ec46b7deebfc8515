/** The replica's file storage on Node (src/replica/file-storage.ts over node:fs). */
import { FileReplicaStorage } from '../../replica/file-storage.js'
import { NodeFileOps } from './file-ops.js'

/** The replica's copy in directory `dir` (created if missing; locked while open). */
export function openFileReplicaStorage(dir: string): FileReplicaStorage {
  return new FileReplicaStorage(new NodeFileOps(dir))
}
