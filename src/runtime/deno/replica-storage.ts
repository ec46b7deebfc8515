/** The replica's file storage on Deno (src/replica/file-storage.ts over Deno's file API). */
import { FileReplicaStorage } from '../../replica/file-storage.js'
import { DenoFileOps } from './file-ops.js'

/** The replica's copy in directory `dir` (created if missing; locked while open). */
export function openFileReplicaStorage(dir: string): FileReplicaStorage {
  return new FileReplicaStorage(new DenoFileOps(dir))
}
