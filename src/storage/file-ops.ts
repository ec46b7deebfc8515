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
  /** Opens `name` for durable writes at any offset, creating it empty if it does not exist. */
  openWrite(name: string): Promise<WriteFile>
  /** Cuts `name` to `size` bytes and makes the new length durable (ftruncate + fdatasync). */
  truncate(name: string, size: number): Promise<void>
  /** Atomically renames `from` to `to`, replacing `to`. Durable only after syncDir(). */
  rename(from: string, to: string): Promise<void>
  /** Removes a file; removing a missing file is not an error. */
  unlink(name: string): Promise<void>
  /** Makes the directory's entries (creates, renames, unlinks) durable (fsync on the directory). */
  syncDir(): Promise<void>
  /**
   * Takes the data directory's lock for this process (dir-lock.ts has the protocol), or throws ErrLocked naming the
   * directory and the holder. The returned function releases it. Optional: a FileOps without it is not locked.
   */
  lock?(): Promise<() => Promise<void>>
}

/** A file open for durable writes. */
export interface WriteFile {
  /** The file's length in bytes when it was opened. */
  readonly size: number
  /**
   * Writes all of `data` at byte `position` (looping over short writes) and resolves only once it is on stable
   * storage, with the file length if the write grew the file: one O_DSYNC write, or write + fdatasync. An overwrite
   * inside space that was already written and synced needs no metadata flush, which is why the WAL preallocates.
   * `background`: no request waits on this write (the WAL's zero fill); a runtime may schedule it apart from the
   * writes that answer requests and leave it out of whatever it learns from their sizes (Node: the blocking-write gate).
   */
  writeDurable(data: Uint8Array, position: number, background?: boolean): Promise<void>
  /**
   * Optional: writeDurable for a write that a request waits on, which may finish before it returns: undefined then
   * (the data is on stable storage; a failure throws), else writeDurable's promise. Spares the one-client put path a
   * promise per save (Node: a lone small write is one blocking O_DSYNC write).
   */
  writeDurableNow?(data: Uint8Array, position: number): Promise<void> | undefined
  close(): Promise<void>
}

/** Writes `data` to `name` durably and atomically: a temp file, durable write, rename, directory sync. */
export async function writeFileAtomic(ops: FileOps, name: string, data: Uint8Array): Promise<void> {
  const tmp = `${name}.tmp`
  await ops.unlink(tmp)
  const f = await ops.openWrite(tmp)
  try {
    await f.writeDurable(data, 0)
  } finally {
    await f.close()
  }
  await ops.rename(tmp, name)
  await ops.syncDir()
}
