/**
 * The few bytes-level file operations a runtime must provide for the WAL and snapshot files. Everything about formats
 * and recovery lives in src/storage and is written once; a runtime adapter (src/runtime/node, src/runtime/deno, the
 * in-memory one in memory-file-ops.ts) only moves bytes.
 *
 * An instance is rooted at one data directory and takes plain file names (no slashes), because edgecd keeps all of
 * its files flat in that directory.
 *
 * Failures: implementations throw `StorageError` with code `ErrReadOnly` when the file system refuses a write for
 * being read-only or not permitted (EROFS, EACCES, EPERM), and `ErrIO` for anything else, always naming the path.
 * A missing file or directory is reported through the return values described below, not as an error.
 */
export interface FileOps {
  /** The full path of `name`, for error messages. */
  path(name: string): string
  /** Creates the data directory (and its parents) if it does not exist. */
  mkdir(): Promise<void>
  /** The names of the entries in the data directory, or `undefined` if it does not exist. */
  list(): Promise<string[] | undefined>
  /** The whole content of a file. */
  read(name: string): Promise<Uint8Array>
  /** Opens `name` for appending, creating it empty if it does not exist. */
  openAppend(name: string): Promise<AppendFile>
  /** Cuts `name` to `size` bytes and makes the new length durable (ftruncate + fdatasync). */
  truncate(name: string, size: number): Promise<void>
  /** Atomically renames `from` to `to`, replacing `to`. Durable only after syncDir(). */
  rename(from: string, to: string): Promise<void>
  /** Removes a file; removing a missing file is not an error. */
  unlink(name: string): Promise<void>
  /** Makes the directory's entries (creates, renames, unlinks) durable (fsync on the directory). */
  syncDir(): Promise<void>
}

/** A file open for appending. */
export interface AppendFile {
  /** Appends all of `data` (looping over short writes). Not durable until sync(). */
  append(data: Uint8Array): Promise<void>
  /** Makes every byte appended so far durable (fdatasync). */
  sync(): Promise<void>
  close(): Promise<void>
}

/** Writes `data` to `name` durably and atomically: a temp file, fdatasync, rename, directory sync. */
export async function writeFileAtomic(ops: FileOps, name: string, data: Uint8Array): Promise<void> {
  const tmp = `${name}.tmp`
  await ops.unlink(tmp)
  const f = await ops.openAppend(tmp)
  try {
    await f.append(data)
    await f.sync()
  } finally {
    await f.close()
  }
  await ops.rename(tmp, name)
  await ops.syncDir()
}
